"""The settings every training run has, as typed sections with their defaults and ranges.

A model's own sections (its loss weights, EMA, diffusion extras) live beside its training
objective in ``training/steps/<model>.py``; ``training.config`` assembles, validates and
writes a run's configuration from both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["setting", "TrainSection", "DataSection", "OptimSection", "COMMON_SECTIONS"]


def setting(default: Any, help: str, *, min: float | None = None, max: float | None = None,
            choices: tuple | None = None) -> Any:
    """A dataclass field with its help text and the values it accepts."""
    return field(default=default, metadata={"help": help, "min": min, "max": max, "choices": choices})


@dataclass
class TrainSection:
    """The training loop."""

    steps: int = setting(4000, "total optimisation steps", min=1)
    batch_size: int = setting(4, "patches per step (per process under torchrun)", min=1)
    patch: int = setting(128, "patch size in pixels", min=16)
    seed: int = setting(0, "data order, initialisation, noise: a run is a function of its seed")
    amp: bool = setting(True, "bf16 autocast on CPU, AMP on CUDA")
    channels_last: bool = setting(False, "channels_last memory format (helps some GPUs)")
    num_workers: int = setting(1, "data-loading processes (0: in the training process)", min=0)
    log_every: int = setting(10, "steps per log.csv row (losses averaged over them); 0 = never", min=0)
    val_every: int = setting(250, "steps between validations (PSNR/SSIM + RUN/val/step_*.png); "
                                  "0 = never", min=0)
    val_items: int = setting(8, "size of the fixed validation set", min=1)
    val_batch: int = setting(8, "validation batch size", min=1)
    checkpoint_every: int = setting(250, "steps between checkpoints (and one at the end / on "
                                         "Ctrl-C); 0 = only those", min=0)
    keep_checkpoints: int = setting(3, "newest checkpoints kept in RUN/checkpoints/", min=1)
    init: str = setting("", "--init: weights file (.safetensors) to start the exported network from")


@dataclass
class DataSection:
    """Where the images come from."""

    source: str = setting("", "--data: folder of sharp images, or \"synthetic\"")
    blurred: str = setting("", "--blurred: folder of real blurred images (paired: same names); "
                               "\"\" = simulate the blur")
    val_fraction: float = setting(0.1, "share of images held out for validation", min=0.0, max=0.9)
    patches_per_field: int = setting(4, "training patches cut from one simulated field", min=1)
    field: int = setting(0, "side (px) of the field generated/cropped per item; 0 = the data default",
                         min=0)
    real_pool: str = setting("", "--real-pool: cache of python -m training.real_images whose "
                                 "training split is mixed into synthetic data; \"\" = none")
    real_share: float = setting(0.5, "--real-share: share of the fields cut from the real pool",
                                min=0.0, max=1.0)


@dataclass
class OptimSection:
    """Adam and its learning-rate schedule (`training.schedules.lr_lambda`)."""

    lr: float = setting(2e-4, "learning rate", min=0.0)
    beta1: float = setting(0.5, "Adam beta1", min=0.0, max=1.0)
    beta2: float = setting(0.999, "Adam beta2", min=0.0, max=1.0)
    weight_decay: float = setting(0.0, "Adam weight decay", min=0.0)
    grad_clip: float = setting(5.0, "max gradient norm per optimiser step (0 = off)", min=0.0)
    warmup: int = setting(0, "steps of linear LR warm-up", min=0)
    decay: str = setting("linear", "LR decay after warm-up", choices=("none", "linear", "cosine"))
    decay_start: float = setting(0.5, "share of the steps at full LR before a linear decay",
                                 min=0.0, max=1.0)


#: the sections every model has
COMMON_SECTIONS: dict[str, type] = {"train": TrainSection, "data": DataSection,
                                    "optim": OptimSection}
