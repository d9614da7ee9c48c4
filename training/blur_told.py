"""What a network with a blur channel (``core.blur_map``) is told in training.

At inference it is told each region's blur as ``core.blur_estimate`` measures it, and that
measurement errs: on the real validation and training-split cases its median error is about
20-25 % of the true radius, a few readings are off by 2x or more, some sharp regions read as
a few px of blur, and some regions are not measured at all (docs/BENCHMARKS.md). So training
tells it the simulator's true radius map with errors of that kind, drawn once per field, and
the network learns to use the reading without trusting it blindly:

* blurred regions: the true radius x a log-normal factor (sigma `ERROR_SIGMA`), with
  probability `FAR_OFF_SHARE` a factor of 0.4-2.5 instead; with probability `BLIND_SHARE`
  nothing (0: the network must judge alone, as for a region that was not measured);
* regions left sharp: 0, or with probability `SHARP_MISREAD_SHARE` a reading of 1.5-8 px.
"""

from __future__ import annotations

import numpy as np

from core.blur_map import blur_value

__all__ = ["told_blur", "ERROR_SIGMA", "FAR_OFF_SHARE", "BLIND_SHARE", "SHARP_MISREAD_SHARE"]

ERROR_SIGMA = 0.25
FAR_OFF_SHARE = 0.05
BLIND_SHARE = 0.12
SHARP_MISREAD_SHARE = 0.25


def told_blur(rng: np.random.Generator, blur_px: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The blur channel (float32, as `core.blur_map.blur_value`) for a field whose true radius
    map is `blur_px` and whose marked region is `mask` (> 0 inside)."""
    region = blur_px > 0 if mask is None else mask > 0
    if not (blur_px > 0).any():                      # the region was left sharp
        if rng.random() < SHARP_MISREAD_SHARE:
            misread = float(np.exp(rng.uniform(np.log(1.5), np.log(8.0))))
            return np.where(region, blur_value(misread), np.float32(0.0)).astype(np.float32)
        return np.zeros(blur_px.shape, np.float32)
    factor = float(np.exp(rng.normal(0.0, ERROR_SIGMA)))
    if rng.random() < FAR_OFF_SHARE:
        factor = float(np.exp(rng.uniform(np.log(0.4), np.log(2.5))))
    if rng.random() < BLIND_SHARE:
        return np.zeros(blur_px.shape, np.float32)
    r = np.where(blur_px > 0, np.maximum(blur_px * np.float32(factor), 0.5), 0.0)
    return blur_value(r)
