"""The blur channel: a network told how blurred each region is.

A blind network must guess the blur from the region alone, and a region of large, smooth
nuclei looks much like a blurred region of small ones. deblur measures each region's blur
against the image's own in-focus areas (``core.blur_estimate``), so a network may take that
measurement as a second input channel: every pixel of a region holds its region's measured
radius, every other pixel 0. 0 also means "not measured" and "looks sharp": the network then
acts as a blind one (it was trained to, see ``training.data``).

The value is log(1 + r) / log(1 + 40): blur matters by ratio, and 40 px is the simulator's
largest radius; larger readings go above 1.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

from core.roi import RoiSet, roi_mask

if TYPE_CHECKING:
    import torch

__all__ = ["BLUR_MAP_SCALE_PX", "blur_value", "region_radius", "region_blur_map", "blur_channel_note",
           "with_blur"]

#: the radius whose blur value is 1
BLUR_MAP_SCALE_PX = 40.0


def blur_value(radius_px: float | np.ndarray) -> np.ndarray:
    """The channel's value for a blur radius in px (0 for 0 or less)."""
    r = np.maximum(np.asarray(radius_px, np.float32), 0.0)
    return (np.log1p(r) / np.float32(math.log1p(BLUR_MAP_SCALE_PX))).astype(np.float32)


def region_radius(estimate) -> float:
    """What a region tells the network: its measured radius, 0 when it looks sharp or its blur
    could not be measured (a `core.blur_estimate.BlurEstimate`)."""
    if estimate is None or estimate.radius_px is None or estimate.looks_sharp:
        return 0.0
    return float(estimate.radius_px)


def region_blur_map(rois: RoiSet, radii: Sequence[float], shape: tuple[int, int],
                    box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """The blur channel over `box` (y0, y1, x0, x1; default the whole frame of `shape`):
    each ROI's pixels hold the value of its radius (the larger where ROIs overlap), the rest 0.
    Only the box is built: a 512 px ROI in an 8k frame costs a 512 px map."""
    h, w = int(shape[0]), int(shape[1])
    y0, y1, x0, x1 = (0, h, 0, w) if box is None else box
    out = np.zeros((y1 - y0, x1 - x0), np.float32)
    for roi, r in zip(rois.rois, radii):
        if r <= 0:
            continue
        bx0, by0, bx1, by1 = roi.bounds()
        if by1 <= y0 or by0 >= y1 or bx1 <= x0 or bx0 >= x1:
            continue
        inside = roi_mask(RoiSet([roi.shifted(-x0, -y0)], feather=0), out.shape) > 0
        np.maximum(out, np.where(inside, blur_value(r), np.float32(0.0)), out=out)
    return out


def blur_channel_note(radii: Sequence[float]) -> str:
    """What the network was told, in plain words, for the note after a run."""
    told = [f"{i} ({r:.1f} px)" for i, r in enumerate(radii, start=1) if r > 0]
    alone = [str(i) for i, r in enumerate(radii, start=1) if r <= 0]
    parts = []
    if told:
        parts.append("used the measured blur of region " + ", ".join(told))
    if alone:
        one = len(alone) == 1
        parts.append(("region " if one else "regions ") + ", ".join(alone)
                     + (" looks sharp or its" if one else " look sharp or their")
                     + " blur could not be measured: restored without it")
    return "; ".join(parts)


def with_blur(net, x: "torch.Tensor", blur: "torch.Tensor | None" = None) -> "torch.Tensor":
    """`net`'s input for a batch `x` (N, C, H, W): `x` itself, or for a network with a blur
    channel `x` and `blur` (None: 0, nothing measured) side by side."""
    if not getattr(net, "blur_channel", False):
        return x
    import torch

    return torch.cat([x, torch.zeros_like(x) if blur is None else blur.to(x.dtype)], 1)
