"""Per-model training steps: the table of trainable models, derived from the model descriptions.

A model trains when its description (``core.models.<name>.MODEL``) names its steps class
(``steps="training.steps.<name>:<Class>"``); nothing else lists the trainable models. The
protocol every steps class follows is `training.steps.base.ModelSteps`.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from core.models.registry import get_entry, list_entries
from training.steps.base import ModelSteps, Precision

__all__ = ["Precision", "ModelSteps", "model_names", "steps_class", "build_steps"]


def model_names() -> tuple[str, ...]:
    """The trainable model names, in display order, as ``deblur-train --model`` offers them."""
    return tuple(e.name for e in list_entries() if e.steps)


def steps_class(name: str) -> type[ModelSteps]:
    """The `ModelSteps` class of a trainable model (ValueError listing the names if unknown)."""
    names = model_names()
    if name not in names:
        raise ValueError(f"unknown model {name!r} (choose from {', '.join(names)})")
    module, _, cls = str(get_entry(name).steps).partition(":")
    return getattr(importlib.import_module(module), cls)


def build_steps(name: str, cfg: dict[str, Any], device: torch.device,
                precision: Precision) -> ModelSteps:
    """The `ModelSteps` for a model name, its networks initialised from the run's seed only."""
    cls = steps_class(name)
    seed = int(cfg["train"]["seed"])
    with torch.random.fork_rng(devices=[]):      # initialisation is a function of the seed only
        torch.manual_seed(seed)
        return cls(cfg, device, precision)
