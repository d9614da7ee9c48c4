"""restore(image, model, rois) -> an image of the same shape and dtype.

Every YX plane (each channel, each z/t) is normalised by its own percentiles, only the part
of it around the ROIs (plus the model's margin) is computed, the restored pixels are blended
into the original through the feathered ROI mask, and every pixel whose mask is 0 is copied
from the input bit for bit. Memory stays bounded: one output copy plus float buffers of the
regions being restored.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from core.blur_estimate import first_plane
from core.blur_map import blur_channel_note, region_blur_map, region_radius
from core.defaults import DEFAULT_OVERLAP, DEFAULT_TILE
from core.input_match import InputMatch
from core.io import finite_copy
from core.normalize import cast_like, denormalize, normalize, percentile_params
from core.roi import RoiSet, bounding_rows, roi_mask
from core.tiling import Tiler

__all__ = ["Cancelled", "restore", "plan_regions", "default_axes", "Region", "cancel_check"]


class Cancelled(Exception):
    """The user cancelled the run; nothing was written."""


@dataclass(frozen=True)
class Region:
    """A rectangle of the plane that is restored in one go (y0:y1, x0:x1)."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def default_axes(ndim: int, shape: tuple[int, ...]) -> str:
    """Axes of a bare array: YX, YXS for RGB(A), otherwise an error (say which axes)."""
    if ndim == 2:
        return "YX"
    if ndim == 3 and shape[-1] in (3, 4):
        return "YXS"
    raise ValueError(f"an array of shape {shape} needs its axes (e.g. 'ZYX' or 'CYX')")


def plan_regions(mask: np.ndarray, pad: int) -> list[Region]:
    """Rectangles covering every pixel with mask > 0, grown by `pad` and merged where they touch.

    Distant ROIs are restored separately, so the cost follows the ROI area, not the frame.
    """
    from scipy import ndimage

    h, w = mask.shape
    # label only the box that holds every ROI: the cost follows the ROIs, not the frame
    (y0, y1), (x0, x1) = bounding_rows(mask > 0), bounding_rows((mask > 0).T)
    if y1 == y0:
        return []
    labels, n = ndimage.label(mask[y0:y1, x0:x1] > 0)
    boxes = []
    for sl in ndimage.find_objects(labels):
        if sl is None:
            continue
        boxes.append([max(0, y0 + sl[0].start - pad), min(h, y0 + sl[0].stop + pad),
                      max(0, x0 + sl[1].start - pad), min(w, x0 + sl[1].stop + pad)])
    merged = True
    while merged:  # merge overlapping boxes until none overlap (few ROIs: quadratic is fine)
        merged = False
        out: list[list[int]] = []
        for b in boxes:
            for o in out:
                if b[0] < o[1] and o[0] < b[1] and b[2] < o[3] and o[2] < b[3]:
                    o[0], o[1] = min(o[0], b[0]), max(o[1], b[1])
                    o[2], o[3] = min(o[2], b[2]), max(o[3], b[3])
                    merged = True
                    break
            else:
                out.append(b)
        boxes = out
    return [Region(*b) for b in sorted(boxes)]


def _region_tiler(tiler: Tiler, region_mask: np.ndarray, passes: int) -> Tiler:
    """The tiler for one ROI region: the pixels around the ROI that `plan_regions` added (the
    model's margin of real context) are read as halo, not restored and given a halo again.

    A 512 px ROI then costs one tile of 640 px instead of 752. Multi-pass models (the DDPM)
    keep restoring the whole region: each pass feeds the next, so the context must be updated too.
    """
    if passes != 1:
        return tiler
    (y0, y1), (x0, x1) = bounding_rows(region_mask > 0), bounding_rows((region_mask > 0).T)
    if y1 <= y0 or x1 <= x0:
        return tiler
    h, w = region_mask.shape
    return tiler.with_context((y0, h - y1, x0, w - x1))


def cancel_check(cancel: Callable[[], bool] | threading.Event | None) -> Callable[[], bool]:
    """A no-argument test for "stop now" from an Event, a callable or None (never)."""
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    return cancel


#: rows blended at a time: bounds the float temporaries of the blend to a strip of the frame
_BLEND_ROWS = 512


def _blend_into(dst: np.ndarray, sub: np.ndarray, y: np.ndarray, m: np.ndarray | None,
                nonfinite: np.ndarray | None, params, work: type) -> None:
    """dst = cast(sub + m * (restored - sub)) strip by strip; exactly sub where m == 0 or NaN."""
    for r0 in range(0, sub.shape[0], _BLEND_ROWS):
        rows = slice(r0, r0 + _BLEND_ROWS)
        orig = sub[rows]
        new = denormalize(y[rows], params).astype(work, copy=False)
        if m is not None:
            mw = m[rows].astype(work, copy=False)
            new -= orig
            new *= mw
            new += orig
        new = cast_like(new, dst.dtype)
        keep = None if m is None else (m[rows] == 0)
        if nonfinite is not None:
            bad = nonfinite[rows]
            keep = bad if keep is None else (keep | bad)
        if keep is not None:
            new[keep] = orig[keep]
        dst[rows] = new


def _use_region_blur(restorer: Any, plane: np.ndarray, rois: RoiSet | None,
                     ) -> tuple[InputMatch | None, list[float] | None]:
    """What the restorer does with each ROI's measured blur (measured once, on `plane`):
    "Match the input" (None when off or nothing to match) and the radii a network with a
    blur channel is told (None: no ROIs or no channel: it is told 0 everywhere). Sets the
    restorer's note on both; a restorer used again (a batch) must not keep the last one."""
    estimates = None
    if rois is not None and rois.rois and (restorer.blur_channel or restorer.match_steps > 0):
        from core.blur_estimate import estimate_regions

        estimates = estimate_regions(plane, rois)
    matcher = InputMatch.measure(plane, rois, restorer.match_steps, restorer.device,
                                 estimates=estimates)
    radii = None if estimates is None or not restorer.blur_channel else \
        [region_radius(e) for e in estimates]
    if restorer.match_steps > 0 or restorer.blur_channel:
        notes = [] if radii is None else [blur_channel_note(radii)]
        notes += [] if matcher is None or not matcher.note else [matcher.note]
        restorer.psf_note = "; ".join(notes)
    return (None if matcher is None or not matcher.blurs else matcher), radii


def restore(image: Any, model: Any, rois: RoiSet | None = None, *, axes: str | None = None,
            tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, device: str = "auto", seed: int = 0,
            weights: str | None = None, batch_size: int | None = None,
            progress: Callable[[int, int], None] | None = None,
            cancel: Callable[[], bool] | threading.Event | None = None,
            **model_params: Any) -> Any:
    """Restore the ROIs of an image (a `core.io.Image` or a numpy array).

    Parameters
    ----------
    image : Image or ndarray. An array needs `axes` unless it is YX or YXS (RGB).
    model : a `Restorer`, or a registry name (then `weights`, `device`, `model_params` apply).
    rois : the regions to restore; None restores the whole field.
    tile, overlap : tile core size and overlap in pixels.
    seed : makes stochastic models (DDPM) reproducible.
    progress : called with (tiles done, tiles total).
    cancel : an Event or a callable; checked between tile batches, raises `Cancelled`.

    Returns
    -------
    The same type as `image`, same shape and dtype; pixels outside every ROI are unchanged.
    """
    from core.models.base import Restorer

    data = getattr(image, "data", image)
    data = np.asarray(data)
    if axes is None:
        axes = getattr(image, "axes", None) or default_axes(data.ndim, data.shape)
    if len(axes) != data.ndim or "Y" not in axes or "X" not in axes:
        raise ValueError(f"axes {axes!r} do not fit an image of shape {data.shape}")
    if data.dtype.kind not in "iuf":
        raise ValueError(f"images of type {data.dtype} cannot be restored (use integer or float images)")

    if isinstance(model, Restorer):
        restorer = model
        if model_params or weights is not None:
            raise ValueError("model settings and weights apply only when the model is given by name")
    else:
        from core.models.registry import load_model

        restorer = load_model(str(model), weights=weights, device=device, **model_params)

    is_cancelled = cancel_check(cancel)
    yi, xi = axes.index("Y"), axes.index("X")
    src = np.moveaxis(data, (yi, xi), (-2, -1))
    h, w = src.shape[-2:]
    # rois=None: the whole field, with no mask array at all (an 8k frame's mask is 256 MB)
    mask = None if rois is None else roi_mask(rois, (h, w))
    planes = list(np.ndindex(src.shape[:-2]))
    # a model that measures the image (Richardson-Lucy's blur radius) does it once, on the
    # first plane (an RGB one on its mean), before its margin decides the regions and tiles;
    # so does "Match the input" (the blur of each ROI)
    measured = first_plane(data, axes)
    restorer.prepare(measured, rois)
    matcher, radii = _use_region_blur(restorer, measured, rois)
    del measured

    if batch_size is None:
        from core.devices import tile_batch_size

        batch_size = tile_batch_size(restorer.device, tile + 2 * restorer.margin)
    state = {"done": 0}
    regions = [Region(0, h, 0, w)] if mask is None else plan_regions(mask, restorer.margin)

    def check_cancel(_n: int = 0) -> None:
        if is_cancelled():
            raise Cancelled("cancelled by the user")

    def on_batch(n: int) -> None:
        state["done"] += n
        if progress is not None:
            progress(min(state["done"], total), total)
        check_cancel()

    tiler = Tiler(tile=tile, overlap=overlap, margin=restorer.margin, device=restorer.device,
                  batch_size=batch_size, on_batch=on_batch, align=restorer.align)
    tilers = [tiler if mask is None else _region_tiler(tiler, mask[r.slices], restorer.passes)
              for r in regions]
    total = len(planes) * restorer.passes * sum(t.n_tiles(r.shape) for t, r in zip(tilers, regions))
    if progress is not None:
        progress(0, total)

    # what a network with a blur channel is told over each region's box (every plane alike)
    blur_maps = [None if radii is None else
                 region_blur_map(rois, radii, (h, w), (r.y0, r.y1, r.x0, r.x1)) for r in regions] \
        if restorer.blur_channel else []
    out = data.copy()
    dst = np.moveaxis(out, (yi, xi), (-2, -1))
    work = np.float64 if data.dtype == np.float64 else np.float32
    for p_index, idx in enumerate(planes):
        plane = src[idx]
        params = percentile_params(plane)
        for r_index, region in enumerate(regions):
            check_cancel()
            sub = plane[region.slices]
            # NaN/Inf would spread through every convolution: the model sees them filled, and
            # the blend puts the original values back
            filled, nonfinite = finite_copy(sub)
            x = normalize(filled, params)
            del filled
            told = {"blur": blur_maps[r_index]} if restorer.blur_channel else {}
            y = restorer.restore_plane(x, tilers[r_index], seed=seed + 1009 * p_index + r_index,
                                       **told)
            if matcher is not None:
                y = matcher.apply(x, y, (region.y0, region.y1, region.x0, region.x1), tile=tile,
                                  overlap=overlap, batch_size=batch_size, on_batch=check_cancel)
            del x
            m = None if mask is None else mask[region.slices]
            _blend_into(dst[idx][region.slices], sub, y, m, nonfinite, params, work)
    if progress is not None:
        progress(total, total)

    if hasattr(image, "with_data"):
        return image.with_data(out)
    return out
