"""Where is the image out of focus? A local sharpness map and blurred regions as ROIs.

The measure is the share of a window's structure energy that sits at fine scales. The plane is
reduced to a pyramid of 2 x 2 means; at each level the band-pass detail (a 5-point Laplacian)
is squared and averaged over the window, the energy the image's own noise puts into that band
is subtracted (noise level estimated once per plane, robustly), and

    focus = E(2-4 px) / (E(2-4 px) + E(8-16 px))

Defocus of a few pixels wipes out the 2-4 px band while the 8-16 px structure survives, so
blurred areas score about 0 and in-focus ones clearly more (typically 0.1-0.9 depending on the
texture). Being a ratio, it does not depend on brightness: a dim but sharp cell scores like a
bright one. The 1-2 px band is not used because in microscopy it mostly holds noise. If an image
has almost no 2-4 px detail anywhere (oversampled data) the bands move one octave coarser.

Windows whose structure is not clearly above the noise, or negligible next to the image's own
structure (empty background, flat areas), cannot be judged: they get the label `NO_CONTENT` (-1)
instead of a focus value and are never called blurred.

Everything is computed on a coarse grid (one value every `step` px, windows of `window` px)
and upsampled, so an 8192 x 8192 plane takes about a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import ndimage

from core.io import Image, finite_copy
from core.roi import Polygon, Roi, RoiSet

__all__ = ["NO_CONTENT", "focus_map", "focus_grid", "FocusGrid", "blurred_regions", "auto_rois"]

NO_CONTENT = -1.0          # focus value of windows with no structure to judge
_REF_PERCENTILE = 75       # automatic thresholds are fractions of this percentile of focus ...
_SEED_FRACTION = 0.05      # ... a region needs windows below this fraction (clearly blurred)
_GROW_FRACTION = 0.2       # ... and extends over windows below this one
_FINE = 1                  # pyramid level (2**k px per px) of the fine detail band (2-4 px) ...
_COARSE = 3                # ... and of the coarse structure band (8-16 px) defocus keeps longest
_MIN_FINE_SHARE = 0.05     # below this typical fine share, use the next octave (oversampled data)
_LAPLACE_GAIN = 20.0       # white noise of variance s2 gives a 5-point Laplacian variance 20*s2
_CONTENT_Z = 4.0           # structure must exceed the noise by this many standard errors ...
_NOISE_UNCERTAINTY = 0.3   # ... plus this share of the noise energy (the noise level is estimated)
_CONTENT_REL = 0.008       # ... and 0.8 % of the 90th percentile of structure in the image
_GROW_SCALE = 1.2          # blurred windows are grown by this times half the footprint
                           # (calibrated on textures with a blurred disk: balances over/under)


@dataclass
class FocusGrid:
    """Focus on the coarse grid: cell (i, j) covers rows i*step:(i+1)*step, cols j*step:..."""

    focus: np.ndarray        # float32 (gh, gw), NO_CONTENT where `content` is False
    content: np.ndarray      # bool (gh, gw)
    step: int
    shape: tuple[int, int]   # (H, W) of the plane
    levels: tuple[int, int] = (1, 3)   # pyramid levels of the fine and coarse bands used
    footprint: int = 56      # side (px) of the area each value depends on


def _half(x: np.ndarray) -> np.ndarray:
    """2 x 2 block mean in float32 (an odd last row/column is dropped)."""
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    out = x[0:h:2, 0:w:2].astype(np.float32)
    out += x[1:h:2, 0:w:2]
    out += x[0:h:2, 1:w:2]
    out += x[1:h:2, 1:w:2]
    out *= np.float32(0.25)
    return out


def _laplace_energy(x: np.ndarray) -> np.ndarray:
    """Squared 5-point Laplacian (the band-pass detail of one level), for the interior pixels
    x[1:-1, 1:-1]; `_window_means` accounts for the 1 px offset."""
    if min(x.shape) < 3:
        return np.zeros((1, 1), dtype=np.float32)
    band = x[1:-1, 1:-1] * np.float32(4.0)
    band -= x[:-2, 1:-1]
    band -= x[2:, 1:-1]
    band -= x[1:-1, :-2]
    band -= x[1:-1, 2:]
    band *= band
    return band


def _prefix_at(e: np.ndarray, cuts: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums of `e` along `axis` before each of the sorted positions `cuts` (0..n)."""
    n = e.shape[axis]
    starts = cuts[cuts < n]
    seg = np.add.reduceat(e, starts, axis=axis).astype(np.float64)  # short runs: float32 is exact enough
    shape = list(seg.shape)
    shape[axis] = 1
    prefix = np.concatenate([np.zeros(shape), np.cumsum(seg, axis=axis)], axis=axis)
    bounds = np.append(starts, n)
    return prefix, bounds


def _window_means(e: np.ndarray, scale: int, centres_y: np.ndarray, centres_x: np.ndarray,
                  window: float) -> np.ndarray:
    """Mean of `e` (interior of a level with `scale` plane px per px) over windows on the grid.

    A summed-area table evaluated only at the rows and columns where windows start and end.
    """
    h, w = e.shape
    half = window / 2.0
    # level coordinates -> interior coordinates (shifted by the 1 px Laplacian border)
    y0 = np.clip(np.floor((centres_y - half) / scale) - 1, 0, h - 1).astype(np.intp)
    y1 = np.clip(np.ceil((centres_y + half) / scale) - 1, y0 + 1, h).astype(np.intp)
    x0 = np.clip(np.floor((centres_x - half) / scale) - 1, 0, w - 1).astype(np.intp)
    x1 = np.clip(np.ceil((centres_x + half) / scale) - 1, x0 + 1, w).astype(np.intp)
    ycuts = np.unique(np.concatenate([[0], y0, y1]))
    rows, ybounds = _prefix_at(e, ycuts, axis=0)
    band = rows[np.searchsorted(ybounds, y1)] - rows[np.searchsorted(ybounds, y0)]   # (gh, w)
    xcuts = np.unique(np.concatenate([[0], x0, x1]))
    cols, xbounds = _prefix_at(band, xcuts, axis=1)
    total = cols[:, np.searchsorted(xbounds, x1)] - cols[:, np.searchsorted(xbounds, x0)]
    count = (y1 - y0)[:, None] * (x1 - x0)[None, :]
    return total / count


def _noise_sigma(plane: np.ndarray, scale: float) -> float:
    """Robust noise level from the finest detail (Immerkaer's mask, median of |response|).

    Edges are sparse, so the median is set by the noise. Large planes are sampled with up
    to 8 x 8 tiles of 256 px spread over the field. Returned in the normalised units.
    """
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    h, w = plane.shape
    tile = 256
    if h * w <= 16 * tile * tile:
        tiles = [plane]
    else:
        ys = np.linspace(0, max(h - tile, 0), min(8, max(1, h // tile))).astype(int)
        xs = np.linspace(0, max(w - tile, 0), min(8, max(1, w // tile))).astype(int)
        tiles = [plane[y:y + tile, c:c + tile] for y in ys for c in xs]
    resp = [np.abs(ndimage.convolve(t.astype(np.float32), k, mode="reflect")[1:-1, 1:-1]).ravel()
            for t in tiles]
    r = np.concatenate(resp)
    if r.size == 0:
        return 0.0
    # |N(0, 6 sigma)| has median 0.6745 * 6 sigma
    return float(np.median(r)) / (0.6745 * 6.0) / scale


def focus_grid(plane: np.ndarray, *, window: int = 32, step: int | None = None) -> FocusGrid:
    """Focus and content on the coarse grid (see the module docstring for the measure).

    Parameters
    ----------
    plane : 2-D array, any real dtype; NaN/Inf are replaced by the plane median first.
    window : side of the square window (px) each value summarises.
    step : grid spacing (px); default window // 2.
    """
    plane = np.asarray(plane)
    if plane.ndim != 2:
        raise ValueError(f"focus needs a 2-D plane, got shape {plane.shape}")
    if plane.dtype.kind not in "uif":
        raise ValueError(f"focus needs a numeric plane, got {plane.dtype}")
    window = max(4, int(window))
    step = max(1, int(step if step is not None else window // 2))
    h, w = plane.shape
    x, _ = finite_copy(plane)
    # work relative to the plane's range so float32 sums stay accurate for any dtype
    sample = x[:: max(1, h // 512), :: max(1, w // 512)].astype(np.float64)
    lo, hi = np.percentile(sample, [0.5, 99.5])
    scale = float(hi - lo) if hi > lo else 1.0

    gh, gw = math.ceil(h / step), math.ceil(w / step)
    cy = np.minimum((np.arange(gh) + 0.5) * step, h - 0.5)
    cx = np.minimum((np.arange(gw) + 0.5) * step, w - 0.5)
    sigma = _noise_sigma(x, scale)
    # pyramid of 2 x 2 means, normalised once at level 1 (a quarter of the pixels)
    first = _half(x) if min(h, w) >= 2 else x.astype(np.float32)
    first -= np.float32(lo)
    first *= np.float32(1.0 / scale)
    pyramid = {1: first}
    for k in range(2, _COARSE + 2):
        prev = pyramid[k - 1]
        pyramid[k] = _half(prev) if min(prev.shape) >= 2 else prev
    energies: dict[tuple[int, float], np.ndarray] = {}

    def energy(k: int, win: float) -> np.ndarray:
        key = (k, win)
        if key not in energies:
            energies[key] = _window_means(_laplace_energy(pyramid[k]), 2**k, cy, cx, win)
        return energies[key]

    focus, content = _measure(energy, (h, w), sigma, _FINE, _COARSE, window)
    levels = (_FINE, _COARSE)
    if content.any() and float(np.percentile(focus[content], _REF_PERCENTILE)) < _MIN_FINE_SHARE:
        # hardly any 2-4 px detail anywhere: an oversampled (or wholly soft) image; judge one
        # octave coarser so the sharp parts still stand out from the blurred ones
        levels = (_FINE + 1, _COARSE + 1)
        focus, content = _measure(energy, (h, w), sigma, levels[0], levels[1], window)
    return FocusGrid(focus=focus, content=content, step=step, shape=(h, w), levels=levels,
                     footprint=_footprint(window, levels[1]))


def _measure(energy: Callable[[int, float], np.ndarray], shape: tuple[int, int], sigma: float,
             fine_level: int, coarse_level: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise-corrected fine share and content flags on the grid for one pair of levels."""
    h, w = shape
    # A Laplacian at level k reaches 1.5 * 2**k px beyond its window; widen the finer levels'
    # windows so every band sees the same footprint (else coarse bands see structure that the
    # fine bands do not, and the ratio is biased near edges).
    footprint = _footprint(window, coarse_level)
    signal: dict[int, np.ndarray] = {}
    noise: dict[int, float] = {}
    spread: dict[int, float] = {}
    for k in (fine_level, fine_level + 1, coarse_level):
        win = footprint - 3 * 2**k
        e = energy(k, win)
        noise[k] = _LAPLACE_GAIN * sigma**2 / 4**k
        n_samples = max(1.0, min(win, h) / 2**k) * max(1.0, min(win, w) / 2**k)
        spread[k] = noise[k] * math.sqrt(2.0 / n_samples)
        signal[k] = np.maximum(e - noise[k], 0.0)
    fine, coarse = signal[fine_level], signal[coarse_level]
    # content: structure at the scales defocus leaves clearly above the noise, and not
    # negligible next to the image's own structure (a faint shading is not content)
    mid = fine_level + 1
    judge = signal[mid] + coarse
    noise_floor = (_CONTENT_Z * math.hypot(spread[mid], spread[coarse_level])
                   + _NOISE_UNCERTAINTY * (noise[mid] + noise[coarse_level]))
    above_noise = judge > noise_floor
    rel_floor = _CONTENT_REL * float(np.percentile(judge[above_noise], 90)) if above_noise.any() else 0.0
    content = above_noise & (judge > max(rel_floor, 1e-12))
    focus = np.full(fine.shape, NO_CONTENT, dtype=np.float32)
    focus[content] = (fine[content] / np.maximum(fine[content] + coarse[content], 1e-30)).astype(np.float32)
    return focus, content


def _upsample(grid: FocusGrid) -> np.ndarray:
    """Bilinear upsampling of the focus values; NO_CONTENT cells stay exactly NO_CONTENT."""
    h, w = grid.shape
    step = grid.step
    vals = grid.focus.astype(np.float32)
    if grid.content.any() and not grid.content.all():
        # fill empty cells with the nearest content value so interpolation does not mix in -1
        idx = ndimage.distance_transform_edt(~grid.content, return_distances=False,
                                             return_indices=True)
        vals = vals[idx[0], idx[1]]
    elif not grid.content.any():
        return np.full((h, w), NO_CONTENT, dtype=np.float32)

    def axis_weights(n: int, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = (np.arange(n) + 0.5) / step - 0.5
        i0 = np.clip(np.floor(pos).astype(np.intp), 0, g - 1)
        i1 = np.minimum(i0 + 1, g - 1)
        t = np.clip(pos - i0, 0.0, 1.0).astype(np.float32)
        return i0, i1, t

    y0, y1, ty = axis_weights(h, vals.shape[0])
    x0, x1, tx = axis_weights(w, vals.shape[1])
    rows = vals[y0] * (1 - ty)[:, None] + vals[y1] * ty[:, None]          # (h, gw)
    out = rows[:, x0] * (1 - tx)[None, :]
    out += rows[:, x1] * tx[None, :]
    if not grid.content.all():
        empty = ~grid.content
        out[empty[np.arange(h) // step][:, np.arange(w) // step]] = NO_CONTENT
    return out


def focus_map(plane: np.ndarray, *, window: int = 32, step: int | None = None) -> np.ndarray:
    """Local sharpness, float32 of the plane's shape: 0 (blurred) .. 1 (sharp), -1 = no content.

    Contrast-normalised (see the module docstring), so dim sharp areas are not called blurred,
    and empty background gets `NO_CONTENT` rather than a low value. Computed on a grid of
    `step` px (default window // 2) and upsampled bilinearly.
    """
    return _upsample(focus_grid(plane, window=window, step=step))


def blurred_regions(plane: np.ndarray, *, threshold: float | None = None, min_area: int = 1024,
                    window: int = 32) -> tuple[list[Roi], np.ndarray]:
    """Clearly blurred connected regions that contain structure, as polygon ROIs.

    Parameters
    ----------
    plane : 2-D array.
    threshold : focus value (0..1) below which a window counts as blurred. None = automatic,
        relative to the sharp part of the same image: with ``ref`` the 75th percentile of
        focus over the windows with content, a region must contain windows below
        0.05 * ref (clearly blurred) and extends over neighbouring windows below 0.2 * ref.
        A uniformly sharp field (and a uniformly blurred one) therefore gives no region.
    min_area : smallest region kept, in pixels (measured on the final ROI).
    window : window of the focus measure (px).

    Returns
    -------
    rois : list of `core.roi.Polygon` in pixel coordinates (x = column, y = row). A window
        that overlaps a sharp area looks sharp, so the blurred windows are grown back by
        half the measure's footprint to reach the true edge. Holes are not cut out.
    mask : bool (H, W), True inside the returned ROIs.
    """
    grid = focus_grid(plane, window=window)
    h, w = grid.shape
    step = grid.step
    mask = np.zeros((h, w), dtype=bool)
    if not grid.content.any():
        return [], mask
    values = grid.focus[grid.content]
    if threshold is None:
        ref = float(np.percentile(values, _REF_PERCENTILE))
        low, high = _SEED_FRACTION * ref, _GROW_FRACTION * ref
    else:
        low = high = float(threshold)
    # hysteresis: a region is built from clearly blurred windows (< low) and extends over
    # windows that are merely soft (< high) only near them (about one footprint), so a soft
    # but sharp area (smooth shading) that touches a blurred one is not swallowed
    seeds = grid.content & (grid.focus < low)
    soft = grid.content & (grid.focus < high)
    if not seeds.any():
        return [], mask
    reach = max(1, math.ceil(grid.footprint / step))
    blurred = ndimage.binary_dilation(seeds, structure=np.ones((3, 3), bool), iterations=reach,
                                      mask=soft | seeds)
    # a flat spot (no content) inside a blurred area does not split it
    closed = ndimage.binary_closing(blurred, structure=np.ones((3, 3), bool), border_value=0)
    blurred |= closed & ~grid.content
    if not blurred.any():
        return [], mask
    # A window that reaches into a sharp area looks sharp (its fine detail dominates the
    # ratio), so blurred windows are those lying wholly inside the blurred area: their centres
    # stop about half a footprint short of its edge. Grow each region back by that much (each
    # on its own: grown regions may overlap, they are not merged).
    grow = _GROW_SCALE * grid.footprint / 2.0 / step                 # in grid cells
    margin = int(math.ceil(grow)) + 2
    labels, n = ndimage.label(blurred, structure=np.ones((3, 3), bool))
    from skimage.draw import polygon as draw_polygon
    from skimage.measure import find_contours

    rois: list[Roi] = []
    for lab, box in enumerate(ndimage.find_objects(labels), start=1):
        r0, c0 = box[0].start - margin, box[1].start - margin
        crop = labels[max(r0, 0):box[0].stop + margin, max(c0, 0):box[1].stop + margin] == lab
        # pad so that the crop starts at (r0, c0) even at the grid border (outside = not blurred)
        crop = np.pad(crop, ((max(-r0, 0), 0), (max(-c0, 0), 0)))
        crop = np.pad(crop, 1)
        dist = ndimage.distance_transform_edt(~crop)                 # 0 on blurred cells
        contours = find_contours(dist, grow)
        if not contours:
            continue
        outer = max(contours, key=_polygon_area)
        ys = np.clip((outer[:, 0] - 1 + r0 + 0.5) * step, 0, h)
        xs = np.clip((outer[:, 1] - 1 + c0 + 0.5) * step, 0, w)
        rr, cc = draw_polygon(ys - 0.5, xs - 0.5, shape=(h, w))
        if len(rr) < min_area:
            continue
        keep = _simplify(np.stack([xs, ys], axis=1), tolerance=0.25 * step)
        rois.append(Polygon([(round(float(x), 2), round(float(y), 2)) for x, y in keep]))
        mask[rr, cc] = True
    return rois, mask


def _footprint(window: int, coarse_level: int = _COARSE) -> int:
    """Side (px) of the area every focus value depends on (window + the coarsest filter)."""
    return max(4, int(window)) + 3 * 2**coarse_level


def _polygon_area(points: np.ndarray) -> float:
    y, x = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _simplify(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Fewer vertices (Douglas-Peucker), without the repeated closing point."""
    from skimage.measure import approximate_polygon

    pts = approximate_polygon(points, tolerance=tolerance)
    if len(pts) > 3 and np.allclose(pts[0], pts[-1]):
        pts = pts[:-1]
    return pts if len(pts) >= 3 else points


def auto_rois(image: Image, **kw) -> RoiSet:
    """ROIs of the blurred regions of an image, judged on one representative plane.

    The plane is the first time point and z plane; channels and RGB samples are each scaled
    to their 1-99.8 percentiles and combined by maximum (defocus blurs every channel at a
    place alike, and the combination has content wherever any channel has). Keyword
    arguments go to `blurred_regions`.
    """
    from core.normalize import normalize, percentile_params

    data = image.data
    axes = image.axes
    index = tuple(0 if a in "TZ" else slice(None) for a in axes)
    sub = data[index]
    rest = "".join(a for a in axes if a not in "TZ")     # e.g. "YX", "CYX", "YXS", "CYXS"
    sub = np.moveaxis(sub, [rest.index("Y"), rest.index("X")], [-2, -1])
    planes = sub.reshape((-1,) + sub.shape[-2:])
    if planes.shape[0] == 1:
        plane = planes[0]
    else:
        plane = None
        for p in planes:
            q = normalize(finite_copy(p)[0], percentile_params(p))
            plane = q if plane is None else np.maximum(plane, q)
    rois, _ = blurred_regions(plane, **kw)
    return RoiSet(rois=list(rois))
