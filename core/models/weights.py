"""Weights files: safetensors + model card, saved atomically, loaded with clear errors.

A weights file is ``<name>.safetensors`` holding the network's tensors (float32) with the model
card as JSON in the safetensors metadata under ``"deblur_card"``, and the same card as
``<name>.json`` beside it for people and the catalog. Loading never unpickles anything: a file
from a colleague cannot run code. A bioimage.io package that deblur exported (a .zip, see
``core.bioimageio``) loads the same way: its deblur weights and card are read from inside it.

This module is the file format only and knows no model: the registry
(``core.models.registry``) builds a card's network (`build_from_card`: the model's
description's ``network(**card["architecture"])``), writes cards (`make_card`) and loads
networks (`load_network`).

How a trainer exports (``training/export``)::

    card = make_card("comi", gan.g_deblur, training={...}, validation={...})
    save_weights(run / "comi.safetensors", gan.g_deblur.state_dict(), card)

and ``load_model("comi", weights=path)`` runs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from core.bioimageio.package_files import PackageError, is_package, read_package
from core.io import atomic_write
from resources import WEIGHTS

__all__ = ["WeightsError", "CARD_KEY", "save_weights", "load_weights", "read_card", "json_clean",
           "check_state_dict", "default_weights_path", "resolve_weights"]

CARD_KEY = "deblur_card"


class WeightsError(ValueError):
    """A weights file is missing, damaged, or does not fit the model; the message names the file
    in plain words, `detail` holds the technical reason (for a Details box), if any."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


# ----------------------------------------------------------------------------- helpers

def _json_default(obj: Any) -> Any:
    if isinstance(obj, (tuple, set)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):             # numpy / torch scalars
        return obj.item()
    return str(obj)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)


def _shape(t: Any) -> str:
    return "(" + ", ".join(str(int(s)) for s in t) + ")"


# ----------------------------------------------------------------------------- save / load

def save_weights(path: str | Path, state_dict: Mapping[str, torch.Tensor], card: dict) -> Path:
    """Write ``path`` (safetensors, card in metadata) and ``path.with_suffix('.json')`` atomically.

    Tensors are stored as contiguous float32 copies on the CPU (floating point), integer
    buffers keep their dtype. Returns the weights path.
    """
    from safetensors.torch import save as st_save

    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"weights file {path} must end in .safetensors")
    if "model" not in card or "architecture" not in card:
        raise WeightsError(f"model card for {path} needs 'model' and 'architecture' entries")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for key, value in state_dict.items():
        t = value.detach().to("cpu")
        if t.is_floating_point():
            t = t.float()
        tensors[key] = t.clone().contiguous()   # clone: safetensors refuses shared storage
    card_json = json.dumps(card, indent=2, default=_json_default)
    blob = st_save(tensors, metadata={CARD_KEY: card_json, "format": "pt"})
    _atomic_write_bytes(path, blob)
    _atomic_write_bytes(path.with_suffix(".json"), (card_json + "\n").encode("utf-8"))
    return path


def load_weights(path: str | Path, expected_model: str | None = None,
                 ) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a weights file written by `save_weights` -> (state_dict on CPU, card).

    Raises
    ------
    WeightsError
        Naming the file: it does not exist, is not a (complete) safetensors file, has no model
        card, or its card is for another model than `expected_model`.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    if is_package(path):
        return _load_package(path, expected_model)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            state = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise WeightsError(f"weights file {path} is not a readable safetensors file "
                           "(damaged, truncated or another format)", detail=str(exc)) from None

    card_text = meta.get(CARD_KEY)
    side = path.with_suffix(".json")
    if card_text is None and side.is_file():
        card_text = side.read_text(encoding="utf-8")
    if card_text is None:
        raise WeightsError(f"weights file {path} has no model card (no '{CARD_KEY}' metadata and "
                           f"no {side.name} beside it); export it with deblur-train")
    return state, _checked_card(path, card_text, expected_model)


def _load_package(path: Path, expected_model: str | None) -> tuple[dict[str, torch.Tensor], dict]:
    """The deblur weights inside a bioimage.io package (`deblur export-bioimageio`)."""
    from safetensors.torch import load as st_load

    try:
        blob, card, _ = read_package(path)
        state = st_load(blob)
    except PackageError as exc:
        raise WeightsError(str(exc)) from None
    except Exception as exc:  # safetensors raises its own error types for damaged data
        raise WeightsError(f"weights inside {path} are not readable (damaged package)",
                           detail=str(exc)) from None
    return state, _checked_card(path, json.dumps(card), expected_model)


def _checked_card(path: Path, card_text: str, expected_model: str | None) -> dict:
    """The card parsed and checked: it names a model and an architecture, the expected one."""
    try:
        card = json.loads(card_text)
    except json.JSONDecodeError as exc:
        raise WeightsError(f"weights file {path} has an unreadable model card: {exc}") from None
    if not isinstance(card, dict) or "model" not in card or not isinstance(card.get("architecture"), dict):
        raise WeightsError(f"weights file {path} has a model card without 'model' and 'architecture'")
    if expected_model is not None and card["model"] != expected_model:
        raise WeightsError(f"weights file {path} was trained for {card['model']!r}, not {expected_model!r}")
    return card


def read_card(weights: str | Path) -> dict:
    """The model card beside a weights file (<name>.json), else the one inside its metadata
    ({} when there is neither); ValueError naming the file when it cannot be read."""
    weights = Path(weights)
    if weights.is_file() and is_package(weights):
        try:
            return read_package(weights)[1]
        except PackageError as exc:
            raise ValueError(str(exc)) from None
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
        if CARD_KEY in meta:
            return json.loads(meta[CARD_KEY])
    return {}


def json_clean(obj: Any) -> Any:
    """`obj` as plain JSON types (tuples -> lists, paths -> strings, tensor scalars -> numbers)."""
    return json.loads(json.dumps(obj, default=_json_default))


# ----------------------------------------------------------------------------- networks

def check_state_dict(net: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Raise WeightsError naming the file and each missing/unexpected tensor or shape mismatch."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"tensor {k!r} has shape {_shape(state[k].shape)} in the file but the network "
             f"expects {_shape(v.shape)}"
             for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    problems = []
    if missing:
        problems.append(f"missing tensors: {', '.join(missing[:5])}"
                        + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""))
    if unexpected:
        problems.append(f"unexpected tensors: {', '.join(unexpected[:5])}"
                        + (f" (+{len(unexpected) - 5} more)" if len(unexpected) > 5 else ""))
    problems += wrong[:5]
    if problems:
        raise WeightsError(f"weights file {path} does not match its {type(net).__name__}: "
                           + "; ".join(problems))


def default_weights_path(model: str) -> Path:
    """``resources/weights/<model>.safetensors`` (shipped weights)."""
    return WEIGHTS / f"{model}.safetensors"


def resolve_weights(model: str, weights: str | Path | None) -> Path:
    """The file to load: `weights`, else the shipped default; a clear error if there is none."""
    if weights is not None:
        return Path(weights)
    path = default_weights_path(model)
    if not path.is_file():
        raise WeightsError(f"No trained weights for {model!r} yet: train with deblur-train "
                           f"or pass --weights FILE (looked for {path})")
    return path
