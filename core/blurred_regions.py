"""Blurred regions as ROIs, from the focus map (``core.focus``): what *Detect blurred regions*
and ``deblur predict --auto-roi`` mark.

The automatic threshold looks for two clearly separated populations of log focus (sharp and
blurred) in the same image: Otsu's split of the windows' log focus, accepted only when the
classes are far apart (median ratio and Ashman's D); seeds well inside the blurred class that
miss significantly more fine detail than the noise explains are grown by about half the
measurement footprint (where the defocus is about half its maximum) and traced as polygons.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from core.focus import LOG_FLOOR, FocusGrid, focus_grid
from core.io import Image, finite_copy
from core.roi import Polygon, Roi, RoiSet, polygon_pixels, simplify_polygon

__all__ = ["blurred_regions", "auto_rois"]

_MIN_SEPARATION = 3.0      # automatic threshold: the blurred class's median focus is at least
                           # 3 x lower than the sharp class's ...
_MIN_ASHMAN_D = 2.5        # ... and the classes are well apart (Ashman's D of log focus)
_MIN_CLASS_CELLS = 4       # ... and each class has a few windows
_SEED_POSITION = 0.5       # seeds: below the point half way from the blurred median to the split
_SIGNIFICANCE_Z = 3.0      # a seed's missing fine detail must exceed 3 x its sampling spread
_SIGNIFICANCE_SMOOTH = 1.0 # ... with band energies pooled over sigma = this * window (px)
_MIN_SEED_AREA = 1.0       # a region needs seeds covering (this * window)**2 px
_GROW_SCALE = 0.9          # blurred windows are grown by this times half the footprint
                           # (calibrated on simulated defocus bands: the region ends about
                           # where the defocus is half its maximum)


def blurred_regions(plane: np.ndarray, *, threshold: float | None = None, min_area: int = 1024,
                    window: int = 32) -> tuple[list[Roi], np.ndarray]:
    """Clearly blurred connected regions that contain structure, as polygon ROIs.

    Parameters
    ----------
    plane : 2-D array.
    threshold : focus value (0..1, as `focus_map` shows it) below which a window counts as
        blurred. None = automatic: the windows' log focus must fall into two clearly
        separated populations (Otsu's split; the blurred class's median at least 3 x lower
        than the sharp class's and Ashman's D >= 2.5), else nothing is returned. A region then
        grows from seeds - windows well inside the blurred class (below the point half way
        from its median to the split) whose missing fine detail, compared with what the sharp
        class predicts from their coarse structure, is well beyond the noise - over the
        windows below the split, and must hold seeds covering at least window**2 px. A
        uniformly sharp field (and a uniformly blurred one) therefore gives no region.
    min_area : smallest region kept, in pixels (measured on the final ROI).
    window : window of the focus measure (px).

    Returns
    -------
    rois : list of `core.roi.Polygon` in pixel coordinates (x = column, y = row). A window
        that overlaps a sharp area looks sharp, so the blurred windows are grown back by
        about half the measure's footprint to reach the true edge. Holes are not cut out.
    mask : bool (H, W), True inside the returned ROIs (rasterised as the engine does).
    """
    grid = focus_grid(plane, window=window)
    h, w = grid.shape
    step = grid.step
    mask = np.zeros((h, w), dtype=bool)
    if not grid.content.any():
        return [], mask
    if threshold is None:
        auto = _auto_thresholds(grid)
        if auto is None:
            return [], mask
        low, high, sharp_ratio = auto
    else:
        low = high = float(threshold)
    # hysteresis: a region is built from clearly blurred windows (< low) and extends over
    # windows that are merely soft (< high) only near them (about one footprint), so a soft
    # but sharp area (smooth shading) that touches a blurred one is not swallowed
    seeds = grid.content & (grid.focus < low)
    if threshold is None and seeds.any():
        seeds &= _significant(grid, sharp_ratio, window)
    if not seeds.any():
        return [], mask
    soft = grid.content & (grid.focus < high)
    reach = max(1, math.ceil(grid.footprint / step))
    # windows without content (a flat spot, empty background) near a blurred area join it:
    # they cannot be judged, and restoring them does no harm
    blurred = ndimage.binary_dilation(seeds, structure=np.ones((3, 3), bool), iterations=reach,
                                      mask=soft | seeds | ~grid.content)
    labels, n = ndimage.label(blurred, structure=np.ones((3, 3), bool))
    if threshold is None and n:
        # a region needs a few seeds: a single clearly blurred window is more likely a smooth
        # patch of a sharp specimen than a defocused area
        min_seeds = math.ceil((_MIN_SEED_AREA * window) ** 2 / step**2)
        keep = np.bincount(labels[seeds], minlength=n + 1) >= min_seeds
        keep[0] = False
        labels = np.where(keep[labels], labels, 0)
    # A window that reaches into a sharp area looks sharp (its fine detail dominates the
    # ratio), so blurred windows are those lying wholly inside the blurred area: their centres
    # stop about half a footprint short of its edge. Grow each region back by that much (each
    # on its own: grown regions may overlap, they are not merged).
    grow = _GROW_SCALE * grid.footprint / 2.0 / step                 # in grid cells
    margin = int(math.ceil(grow)) + 2
    from skimage.measure import find_contours

    rois: list[Roi] = []
    for lab, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        r0, c0 = box[0].start - margin, box[1].start - margin
        r1, c1 = box[0].stop + margin, box[1].stop + margin
        gh, gw = labels.shape
        crop = labels[max(r0, 0):min(r1, gh), max(c0, 0):min(c1, gw)] == lab
        # pad so that the crop spans (r0, c0)..(r1, c1) even at the grid border (outside = not
        # blurred): a region touching an edge grows past it on every side alike, and clipping
        # to the image then gives its straight border (without the padding on the bottom and
        # right, a region filling the field came back as a corner-to-corner triangle)
        crop = np.pad(crop, ((max(-r0, 0), max(r1 - gh, 0)), (max(-c0, 0), max(c1 - gw, 0))))
        crop = np.pad(crop, 1)
        dist = ndimage.distance_transform_edt(~crop)                 # 0 on blurred cells
        contours = find_contours(dist, grow)
        if not contours:
            continue
        outer = max(contours, key=_polygon_area)
        ys = np.clip((outer[:, 0] - 1 + r0 + 0.5) * step, 0, h)
        xs = np.clip((outer[:, 1] - 1 + c0 + 0.5) * step, 0, w)
        keep_pts = simplify_polygon(np.stack([xs, ys], axis=1), tolerance=0.25 * step)
        if len(keep_pts) < 3:
            continue
        points = [(round(x, 2), round(y, 2)) for x, y in keep_pts]
        # rasterised with core.roi's rule: the mask is exactly what the engine will use
        pr, pc, inside = polygon_pixels(points, (h, w))
        if int(inside.sum()) < min_area:
            continue
        rois.append(Polygon(points))
        mask[pr:pr + inside.shape[0], pc:pc + inside.shape[1]] |= inside
    return rois, mask


def _otsu(v: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of the values `v` (the split maximising the between-class variance)."""
    hist, edges = np.histogram(v, bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = m0 / np.maximum(w0, 1.0)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1.0)
    return float(edges[int(np.argmax(w0 * w1 * (mu0 - mu1) ** 2)) + 1])


def _auto_thresholds(grid: FocusGrid) -> tuple[float, float, float] | None:
    """(seed threshold, grow threshold, fine/coarse ratio of the sharp class), or None when
    the log focus of the windows does not split into a sharp and a clearly blurred class."""
    v = np.log(np.maximum(grid.focus[grid.content], LOG_FLOOR))
    if v.size < 2 * _MIN_CLASS_CELLS or float(np.ptp(v)) <= 0:
        return None
    split = _otsu(v)
    blurred, sharp = v[v <= split], v[v > split]
    if blurred.size < _MIN_CLASS_CELLS or sharp.size < _MIN_CLASS_CELLS:
        return None
    mb, ms = float(np.median(blurred)), float(np.median(sharp))
    ashman_d = math.sqrt(2.0) * (ms - mb) / math.sqrt(float(blurred.var() + sharp.var()) + 1e-12)
    if ms - mb < math.log(_MIN_SEPARATION) or ashman_d < _MIN_ASHMAN_D:
        return None
    sharp_cells = grid.content & (grid.focus > math.exp(split))
    ratio = grid.fine[sharp_cells] / np.maximum(grid.coarse[sharp_cells], 1e-30)
    return math.exp(mb + _SEED_POSITION * (split - mb)), math.exp(split), float(np.median(ratio))


def _significant(grid: FocusGrid, sharp_ratio: float, window: int) -> np.ndarray:
    """Windows whose fine detail falls short of what a sharp window with their coarse
    structure would have (`sharp_ratio` * coarse) by more than the noise explains.

    In noisy images a smooth but sharp patch (pale stroma, a dark coat) can have too little
    fine detail to measure; it is not clearly blurred. The band energies are pooled over
    neighbouring windows first (the spread is left as for one window: conservative).
    """
    c = grid.content.astype(np.float64)
    sigma = _SIGNIFICANCE_SMOOTH * window / grid.step
    den = np.maximum(ndimage.gaussian_filter(c, sigma, mode="nearest"), 1e-6)
    fine = ndimage.gaussian_filter(grid.fine * c, sigma, mode="nearest") / den
    coarse = ndimage.gaussian_filter(grid.coarse * c, sigma, mode="nearest") / den
    return sharp_ratio * coarse - fine > _SIGNIFICANCE_Z * grid.fine_spread


def _polygon_area(points: np.ndarray) -> float:
    y, x = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


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
