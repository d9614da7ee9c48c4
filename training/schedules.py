"""Learning-rate schedules: one multiplier function for ``LambdaLR`` serves every model."""

from __future__ import annotations

import math
from typing import Callable

__all__ = ["lr_lambda"]


def lr_lambda(total_steps: int, *, warmup: int = 0, decay: str = "none",
              decay_start: float = 0.5) -> Callable[[int], float]:
    """LR multiplier per step: linear warm-up, then constant, linear or cosine decay to 0.

    ``decay_start`` is the fraction of `total_steps` trained at full LR before a linear decay
    (CycleGAN: 0.5, i.e. "100 epochs constant, 100 decaying").
    """
    start = max(warmup, int(total_steps * decay_start)) if decay == "linear" else warmup

    def factor(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        if decay == "none" or step < start:
            return 1.0
        span = max(1, total_steps - start)
        t = min(1.0, (step - start) / span)
        if decay == "linear":
            return max(0.0, 1.0 - t)
        if decay == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        raise ValueError(f"unknown LR decay {decay!r} (use none, linear or cosine)")

    return factor
