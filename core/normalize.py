"""Percentile normalisation per plane and its exact inverse (as CSBDeep does).

Networks are trained on images scaled so that the 1st percentile maps to 0 and the 99.8th to 1;
every image the engine restores is scaled the same way, restored, and mapped back exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NormParams", "P_LOW", "P_HIGH", "percentile_params", "normalize", "denormalize",
           "cast_like", "dtype_range"]

#: the percentiles every model is trained and run with (1st -> 0, 99.8th -> 1), as CSBDeep
P_LOW, P_HIGH = 1.0, 99.8

# Above this many pixels the percentiles are estimated on a regular subsample: the estimate is
# within a fraction of a grey level and it keeps an 8192x8192 plane from being sorted in full.
_MAX_SAMPLES = 4_000_000


@dataclass(frozen=True)
class NormParams:
    lo: float
    hi: float

    @property
    def scale(self) -> float:
        return self.hi - self.lo


def percentile_params(x: np.ndarray, p_low: float = P_LOW, p_high: float = P_HIGH) -> NormParams:
    """Low and high percentiles of the finite values of `x`; a flat plane gets scale 1."""
    flat = np.asarray(x).reshape(-1)
    if flat.size > _MAX_SAMPLES:
        flat = flat[:: int(np.ceil(flat.size / _MAX_SAMPLES))]
    if flat.dtype.kind == "f":
        flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return NormParams(0.0, 1.0)
    lo, hi = np.percentile(flat, [p_low, p_high])
    lo, hi = float(lo), float(hi)
    if not hi > lo:
        # a flat (or nearly flat) plane: keep it in range without dividing by ~0
        hi = lo + max(1.0, abs(lo) * 1e-3) if flat.dtype.kind in "iu" else lo + max(1e-6, abs(lo) * 1e-3)
    return NormParams(lo, hi)


def normalize(x: np.ndarray, params: NormParams) -> np.ndarray:
    """(x - lo) / (hi - lo) as float32."""
    out = np.asarray(x, dtype=np.float32) - np.float32(params.lo)
    out /= np.float32(params.scale)
    return out


def denormalize(y: np.ndarray, params: NormParams) -> np.ndarray:
    """Inverse of `normalize` (float32, no clipping: `cast_like` clips to the target dtype)."""
    out = np.asarray(y, dtype=np.float32) * np.float32(params.scale)
    out += np.float32(params.lo)
    return out


def dtype_range(dtype: np.dtype) -> tuple[float, float]:
    """Representable range of an integer dtype, (-inf, inf) for floats."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return -np.inf, np.inf


def cast_like(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Back to the input dtype: round and clip for integers, plain cast for floats."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        lo, hi = dtype_range(dtype)
        return np.clip(np.rint(y), lo, hi).astype(dtype)
    if dtype.kind == "b":
        raise ValueError("boolean images cannot be restored")
    return np.asarray(y).astype(dtype)
