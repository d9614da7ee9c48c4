"""Export a trained run as ``RUN/<model>.safetensors`` + ``RUN/<model>.json`` (the model card).

The weights hold only the inference network (COMI/CycleGAN: the blurred->sharp generator; DDPM:
the EMA copy of the conditional U-Net), never discriminators or optimiser state, so the file
is small and `core.models.registry.load_model(name, weights=path)` rebuilds it from the card's
``architecture``. The card records everything needed to judge and reproduce the model.
"""

from __future__ import annotations

import dataclasses
import platform
from pathlib import Path
from typing import Any

import torch

from core.models.registry import make_card
from core.normalize import P_HIGH, P_LOW
from training.steps.base import ModelSteps

__all__ = ["export_run", "build_card", "weights_path"]


def weights_path(run: Path, model: str) -> Path:
    """``RUN/<model>.safetensors``."""
    return Path(run) / f"{model}.safetensors"


def _jsonable(obj: Any) -> Any:
    """Dataclasses (DefocusConfig) and paths into plain JSON values for the card."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def build_card(steps: ModelSteps, net: torch.nn.Module, notes: str, *, cfg: dict[str, Any],
               commands: list[str], wall_time_s: float, trained_steps: int,
               validation: dict[str, float], device: str, degradation: Any = None,
               world_size: int = 1, steps_per_s: float | None = None,
               validation_step: int | None = None,
               started_from: dict[str, Any] | None = None,
               averaged_steps: list[int] | None = None,
               real_images: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model card (DESIGN §2): architecture, normalisation, training, validation, notes.

    `started_from` (a fine-tuned run, ``--init``): the file it started from and that file's own
    training record, captured when the run began (the file may be replaced since), so the card
    tells the whole chain of training. `averaged_steps`: the weights are the mean over the
    checkpoints of these steps (``--export-only --average K``). `real_images`: the real planes
    mixed into synthetic data (share, planes per package).
    """
    data, t = cfg["data"], cfg["train"]
    training = {
        "command": commands[0] if commands else "",
        "resumed_with": commands[1:],
        "data": data["source"],
        "blurred": data["blurred"] or None,
        "paired": steps.paired,
        "patch": t["patch"],
        "batch_size": t["batch_size"],
        "degradation": _jsonable(degradation if degradation is not None else cfg["degradation"]),
        "steps": int(trained_steps),
        "wall_time_s": round(float(wall_time_s), 1),
        "steps_per_s": None if steps_per_s is None else round(float(steps_per_s), 3),
        "device": device,
        "world_size": int(world_size),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "seed": t["seed"],
        "config": _jsonable(cfg),
    }
    if started_from:
        training["started_from"] = _jsonable(started_from)
    if real_images:
        training["real_images"] = _jsonable(real_images)
    if averaged_steps and len(averaged_steps) > 1:
        training["averaged_steps"] = [int(s) for s in averaged_steps]
    val: dict[str, Any] = {k: float(f"{float(v):.6g}") for k, v in validation.items()}
    if not val:
        val["note"] = "not validated (exported from a checkpoint taken before any validation)"
    elif "psnr" not in val:
        val["reference"] = "none: unpaired real images, only the no-reference sharpness"
    val["items"] = int(t["val_items"])
    if validation_step is not None:
        val["step"] = int(validation_step)
    if averaged_steps and len(averaged_steps) > 1 and "note" not in val:
        val["note"] = (f"measured on the checkpoint of step {val.get('step', trained_steps)} "
                       "alone, before averaging")
    normalisation = {"kind": "percentile", "p_low": P_LOW, "p_high": P_HIGH, "per": "plane",
                     "reference": "the blurred input (as the engine does at inference)"}
    return make_card(steps.name, net, normalisation=normalisation, training=training,
                     validation=val, notes=notes)


def export_run(steps: ModelSteps, run: Path, card_args: dict[str, Any], dest: Path | None = None) -> Path:
    """Write the weights and card of `steps` into RUN (or to `dest`); returns the weights path.

    Parameters
    ----------
    steps : ModelSteps
        A trained (or checkpoint-restored) model.
    run : Path
        The run folder.
    card_args : dict
        Keyword arguments of `build_card` (cfg, commands, wall_time_s, trained_steps, ...).
    """
    from core.models.weights import save_weights

    net, notes = steps.export_network()
    card = build_card(steps, net, notes, **card_args)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    return save_weights(dest or weights_path(run, steps.name), state, card)
