"""The one model registry: name -> how to build it, its parameters, weights and card.

Model modules register themselves when imported; `BUILTIN_MODULES` lists the ones that ship.
The CLI, the GUI and the benchmark all go through `load_model`, so a model added here appears
everywhere at once.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from core.devices import pick_device
from core.models.base import Restorer

__all__ = ["Param", "ModelEntry", "register", "get_entry", "list_entries", "load_model",
           "default_model_name",
           "read_card", "card_summary", "data_label", "BUILTIN_MODULES"]

BUILTIN_MODULES = ["core.models.classical", "core.models.comi", "core.models.cyclegan",
                   "core.models.ddpm"]


@dataclass(frozen=True)
class Param:
    """A user-settable model parameter, described for the CLI and the GUI."""

    default: Any
    type: type
    help: str
    label: str = ""          # short plain label for the GUI
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None

    def check(self, name: str, value: Any) -> Any:
        """Convert and range-check a value, with a message a user understands."""
        try:
            value = self.type(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a {self.type.__name__}, got {value!r}") from None
        if self.min is not None and value < self.min:
            raise ValueError(f"{name} must be at least {self.min}, got {value}")
        if self.max is not None and value > self.max:
            raise ValueError(f"{name} must be at most {self.max}, got {value}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{name} must be one of {', '.join(map(str, self.choices))}")
        return value


@dataclass
class ModelEntry:
    name: str
    kind: str                                   # "classical" | "gan" | "diffusion"
    summary: str                                # one plain sentence for biologists
    build: Callable[..., Restorer]              # build(weights, device, **params)
    default_weights: Path | None = None
    params: dict[str, Param] = field(default_factory=dict)

    @property
    def needs_weights(self) -> bool:
        return self.kind != "classical"

    def has_weights(self) -> bool:
        return self.default_weights is not None and Path(self.default_weights).is_file()


_REGISTRY: dict[str, ModelEntry] = {}
_loaded = False


def register(entry: ModelEntry) -> None:
    """Add a model (a later registration of the same name replaces the earlier one)."""
    _REGISTRY[entry.name] = entry


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # only a model module that is not part of this installation is skipped
            if exc.name != module:
                raise


#: the order in which pickers and tables show the shipped models (others follow)
DISPLAY_ORDER = ["comi", "ddpm", "cyclegan", "richardson-lucy"]


def list_entries() -> list[ModelEntry]:
    """Every registered model: the shipped ones in DISPLAY_ORDER, then any others."""
    _load_builtins()
    rank = {n: i for i, n in enumerate(DISPLAY_ORDER)}
    return sorted(_REGISTRY.values(), key=lambda e: rank.get(e.name, len(rank)))


def default_model_name() -> str:
    """The model a new user gets: the first in DISPLAY_ORDER that can run here (has weights)."""
    for e in list_entries():
        if not e.needs_weights or e.has_weights():
            return e.name
    return "richardson-lucy"


def get_entry(name: str) -> ModelEntry:
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(_REGISTRY) or "none"
        raise ValueError(f"unknown model {name!r} (available: {known})") from None


def check_params(entry: ModelEntry, params: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in, values converted; an unknown parameter is an error, not ignored."""
    out = {k: p.default for k, p in entry.params.items()}
    for key, value in params.items():
        if value is None:
            continue
        if key not in entry.params:
            allowed = ", ".join(entry.params) or "none"
            raise ValueError(f"model {entry.name!r} has no setting {key!r} (its settings: {allowed})")
        out[key] = entry.params[key].check(key, value)
    return out


def load_model(name: str, weights: str | Path | None = None, device: str | torch.device = "auto",
               **params: Any) -> Restorer:
    """Build a ready-to-run model; weights None means the shipped default weights."""
    entry = get_entry(name)
    dev = pick_device(device)
    checked = check_params(entry, params)
    return entry.build(Path(weights) if weights is not None else None, dev, **checked)


def read_card(weights: str | Path) -> dict:
    """The model card beside a weights file (<name>.json), else the one inside its metadata."""
    weights = Path(weights)
    side = weights.with_suffix(".json")
    if side.is_file():
        try:
            return json.loads(side.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{side}: the model card cannot be read ({exc})") from None
    if weights.is_file():
        from safetensors import safe_open

        try:
            with safe_open(str(weights), framework="pt") as f:
                meta = f.metadata() or {}
        except Exception as exc:  # safetensors raises several types for damaged files
            raise ValueError(f"{weights}: not a readable safetensors file ({exc})") from None
        if "deblur_card" in meta:
            return json.loads(meta["deblur_card"])
    return {}


def data_label(data: str) -> str:
    """Plain words for a card's training data ("synthetic" is our simulated specimens)."""
    return "simulated specimens (no real images)" if data == "synthetic" else str(data)


def training_totals(card: dict) -> tuple[int, float, int]:
    """(steps, wall-time seconds, runs) of a card's training, summed over its ``started_from``
    chain: a fine-tuned model's own run is only the last part of what it took."""
    steps, seconds, runs = 0, 0.0, 0
    train = card.get("training") or {}
    while train:
        steps += int(train.get("steps") or 0)
        seconds += float(train.get("wall_time_s") or 0.0)
        runs += 1
        train = (train.get("started_from") or {}).get("training") or {}
    return steps, seconds, runs


def card_summary(entry: ModelEntry) -> str:
    """One or two plain lines: what the model is and what its shipped weights were trained on."""
    if not entry.needs_weights:
        return entry.summary
    if not entry.has_weights():
        return f"{entry.summary} (no trained weights shipped yet)"
    card = read_card(entry.default_weights)
    train = card.get("training", {})
    val = card.get("validation", {})
    bits = [entry.summary.rstrip(".")]
    if train.get("data"):
        bits.append(f"trained on {data_label(train['data'])}")
    steps, seconds, runs = training_totals(card)
    if steps:
        minutes = f" ({seconds / 60:.0f} min, {train.get('device', '?')})" if seconds else ""
        bits.append(f"{steps} steps{minutes}" + (f" in {runs} runs" if runs > 1 else ""))
    if val.get("psnr") is not None and val.get("psnr_blurred") is not None:
        bits.append(f"validation PSNR {val['psnr_blurred']:.1f} -> {val['psnr']:.1f} dB")
    bench = card.get("bench", {})
    if bench.get("gain_db") is not None:
        bits.append(f"benchmark: {bench['gain_db']:+.1f} dB inside blurred regions "
                    f"({bench.get('images', '?')} held-out images; "
                    f"{bench.get('gain_over_rl_true_psf_db', float('nan')):+.1f} dB vs. deconvolution "
                    "with the true PSF)")
    return "; ".join(bits)
