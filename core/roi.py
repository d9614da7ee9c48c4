"""Regions of interest: shapes, their JSON file (DESIGN §2) and feathered masks.

Coordinates are image pixels, x = column, y = row; a pixel (r, c) belongs to a shape when its
centre (c + 0.5, r + 0.5) lies inside. The feather runs *inward* from the edge of the drawn
shape, so every pixel outside every ROI keeps mask 0 and is left bit-identical by the engine.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

import numpy as np
from scipy import ndimage

from core.defaults import DEFAULT_FEATHER

__all__ = [
    "Rect", "Ellipse", "Polygon", "Roi", "RoiSet", "RoiError", "DEFAULT_FEATHER", "ROI_SUFFIX",
    "load_rois", "save_rois", "parse_rect", "roi_mask", "bounding_rows", "rois_to_dict", "rois_from_dict",
    "sidecar_path", "polygon_pixels", "simplify_polygon", "work_megapixels",
]



class RoiError(ValueError):
    """A ROI file or ROI text that cannot be used; the message says which and why."""


@dataclass
class _Box:
    """A shape given by its bounding box: x, y of the top-left corner, width, height."""

    x: float
    y: float
    w: float
    h: float

    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the shape."""
        return self.x, self.y, self.x + self.w, self.y + self.h

    def shifted(self, dx: float, dy: float):
        """The same shape moved by (dx, dy) px (e.g. into a crop's coordinates)."""
        return type(self)(self.x + dx, self.y + dy, self.w, self.h)


@dataclass
class Rect(_Box):
    pass


@dataclass
class Ellipse(_Box):
    pass


@dataclass
class Polygon:
    points: list[tuple[float, float]]

    def bounds(self) -> tuple[float, float, float, float]:
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        return min(xs), min(ys), max(xs), max(ys)

    def shifted(self, dx: float, dy: float) -> "Polygon":
        """The same shape moved by (dx, dy) px (e.g. into a crop's coordinates)."""
        return Polygon([(x + dx, y + dy) for x, y in self.points])


Roi = Union[Rect, Ellipse, Polygon]


@dataclass
class RoiSet:
    rois: list[Roi] = field(default_factory=list)
    feather: float = DEFAULT_FEATHER

    def __len__(self) -> int:
        return len(self.rois)

    def __iter__(self):
        return iter(self.rois)


# --------------------------------------------------------------------------- JSON

def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RoiError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _roi_from_dict(item: object, index: int) -> Roi:
    if not isinstance(item, dict):
        raise RoiError(f"ROI #{index + 1} is not an object")
    kind = item.get("type")
    if kind in ("rect", "ellipse"):
        vals = {k: _number(item.get(k), f"ROI #{index + 1} ({kind}) field '{k}'") for k in "xywh"}
        if vals["w"] <= 0 or vals["h"] <= 0:
            raise RoiError(f"ROI #{index + 1} ({kind}) has zero or negative width/height")
        return (Rect if kind == "rect" else Ellipse)(**vals)
    if kind == "polygon":
        pts = item.get("points")
        if not isinstance(pts, list) or len(pts) < 3:
            raise RoiError(f"ROI #{index + 1} (polygon) needs at least 3 points")
        out = []
        for j, p in enumerate(pts):
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                raise RoiError(f"ROI #{index + 1} (polygon) point {j + 1} is not [x, y]")
            out.append((_number(p[0], "polygon x"), _number(p[1], "polygon y")))
        return Polygon(out)
    raise RoiError(f"ROI #{index + 1} has unknown type {kind!r} (use rect, ellipse or polygon)")


def rois_from_dict(data: object) -> RoiSet:
    """Parse the DESIGN §2 structure ({"rois": [...], "feather": 16})."""
    if not isinstance(data, dict) or not isinstance(data.get("rois"), list):
        raise RoiError('expected an object with a "rois" list')
    feather = _number(data.get("feather", DEFAULT_FEATHER), "feather")
    if feather < 0:
        raise RoiError("feather must not be negative")
    return RoiSet([_roi_from_dict(r, i) for i, r in enumerate(data["rois"])], feather)


def rois_to_dict(rois: RoiSet) -> dict:
    """The DESIGN §2 structure for `rois`, ready for json.dump."""
    items: list[dict] = []
    for r in rois.rois:
        if isinstance(r, Polygon):
            items.append({"type": "polygon", "points": [[_clean(x), _clean(y)] for x, y in r.points]})
        else:
            kind = "rect" if isinstance(r, Rect) else "ellipse"
            items.append({"type": kind, "x": _clean(r.x), "y": _clean(r.y),
                          "w": _clean(r.w), "h": _clean(r.h)})
    return {"rois": items, "feather": _clean(rois.feather)}


def _clean(v: float) -> float | int:
    """Whole numbers are written as ints so hand-written files round-trip unchanged."""
    return int(v) if float(v).is_integer() else round(float(v), 3)


def load_rois(path: str | Path) -> RoiSet:
    """Read a ROI file; a missing, unreadable or malformed file raises RoiError naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RoiError(f"{path}: ROI file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RoiError(f"{path}: cannot read the ROI file ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RoiError(f"{path}: not a valid ROI file (JSON error at line {exc.lineno})") from None
    try:
        return rois_from_dict(data)
    except RoiError as exc:
        raise RoiError(f"{path}: {exc}") from None


def save_rois(path: str | Path, rois: RoiSet) -> None:
    """Write a ROI file atomically (temp file + rename) so a crash never leaves half a file."""
    from core.io import atomic_write

    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(rois_to_dict(rois), indent=1) + "\n", encoding="utf-8")


def parse_rect(text: str) -> Rect:
    """`x,y,w,h` as given on the command line (--roi 10,20,100,80)."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if len(parts) != 4:
            raise ValueError
        x, y, w, h = (float(p) for p in parts)
    except ValueError:
        raise RoiError(f"ROI {text!r} must be four numbers x,y,w,h (e.g. 10,20,100,80)") from None
    if w <= 0 or h <= 0:
        raise RoiError(f"ROI {text!r} has zero or negative width/height")
    return Rect(x, y, w, h)


# --------------------------------------------------------------------------- files beside images

#: the suffix of a region file (a picker filter and the file name beside an image)
ROI_SUFFIX = ".roi.json"


def sidecar_path(image_path: str | Path) -> Path:
    """The region file beside an image: ``x.tif`` -> ``x.roi.json``, ``x.ome.tif`` ->
    ``x.roi.json`` (not ``x.ome.roi.json``). The one rule `deblur predict`, `deblur simulate`,
    the training data and the application use to find or write an image's regions."""
    path = Path(image_path)
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return path.with_name(name[: -len(suffix)] + ROI_SUFFIX)
    return path.with_name(path.stem + ROI_SUFFIX)


# --------------------------------------------------------------------------- polygons

def simplify_polygon(points: Sequence[tuple[float, float]] | np.ndarray, tolerance: float
                     ) -> list[tuple[float, float]]:
    """Fewer vertices, each dropped point within `tolerance` px of the outline (Douglas-Peucker,
    ``skimage.measure.approximate_polygon``). A closed ring (last point = first, as contours
    come) comes back without its closing point; an open path (a freehand stroke) keeps both
    ends. The one simplifier for freehand outlines, detected regions and simulated ones.
    Works on any two coordinates (x, y or row, column)."""
    from skimage.measure import approximate_polygon

    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    closed = len(pts) > 1 and bool(np.all(pts[0] == pts[-1]))
    out = approximate_polygon(pts, tolerance=tolerance) if len(pts) >= 3 else pts
    if closed:
        out = out[:-1]
    return [(float(a), float(b)) for a, b in out]


# --------------------------------------------------------------------------- masks

def _shape_pixels(roi: Roi, shape: tuple[int, int]) -> np.ndarray:
    """Boolean image of the pixels whose centre lies inside `roi`."""
    h, w = shape
    inside = np.zeros(shape, dtype=bool)
    x0, y0, x1, y1 = roi.bounds()
    r0, r1 = max(0, int(math.floor(y0 - 0.5))), min(h, int(math.ceil(y1 + 0.5)))
    c0, c1 = max(0, int(math.floor(x0 - 0.5))), min(w, int(math.ceil(x1 + 0.5)))
    if r0 >= r1 or c0 >= c1:
        return inside
    yy = np.arange(r0, r1, dtype=np.float64)[:, None] + 0.5
    xx = np.arange(c0, c1, dtype=np.float64)[None, :] + 0.5
    if isinstance(roi, Rect):
        sub = (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)
    elif isinstance(roi, Ellipse):
        cx, cy, ax, ay = x0 + roi.w / 2, y0 + roi.h / 2, roi.w / 2, roi.h / 2
        sub = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0
    else:
        pr, pc, sub = polygon_pixels(roi.points, shape)
        inside[pr:pr + sub.shape[0], pc:pc + sub.shape[1]] = sub
        return inside
    inside[r0:r1, c0:c1] = sub
    return inside


def polygon_pixels(points: Sequence[tuple[float, float]] | np.ndarray, shape: tuple[int, int]
                   ) -> tuple[int, int, np.ndarray]:
    """The pixels of a polygon (ROI coordinates, x = column, y = row) in an image of `shape`,
    as ``(r0, c0, inside)``: `inside` is the bool image of the clipped bounding box starting at
    row r0, column c0 (``(0, 0, empty)`` when nothing is inside).

    The one polygon rasteriser (ROI masks, detected regions, the GUI): the pixels
    ``skimage.draw.polygon`` gives for the pixel centres, bit for bit (even-odd rule, pixels on
    an edge or a vertex included, its floating-point decisions on an edge reproduced), computed
    by scanlines, so a large polygon costs its height x vertices instead of its area x vertices.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    h, w = int(shape[0]), int(shape[1])
    empty = (0, 0, np.zeros((0, 0), bool))
    if len(pts) == 0:
        return empty
    rows, cols = pts[:, 1] - 0.5, pts[:, 0] - 0.5          # pixel centres on integers
    r0, r1 = max(0, int(math.ceil(rows.min()))), min(h - 1, int(math.floor(rows.max())))
    c0, c1 = max(0, int(math.ceil(cols.min()))), min(w - 1, int(math.floor(cols.max())))
    if r1 < r0 or c1 < c0:
        return empty
    ny, nx = r1 - r0 + 1, c1 - c0 + 1
    # parity of the crossings left (L) and right (R) of each pixel: skimage's ray test counts
    # an edge to the right when it straddles the row "from above" (y > r) and crosses right of
    # the pixel, to the left when it straddles "from below" (y < r) and crosses left of it
    right = np.zeros((ny, nx + 1), np.int32)
    left = np.zeros((ny, nx + 1), np.int32)
    yi, xi = rows, cols
    yj, xj = np.roll(rows, 1), np.roll(cols, 1)              # edge (i - 1, i), as skimage walks
    lo, hi = np.minimum(yi, yj), np.maximum(yi, yj)
    for upper, out in ((True, right), (False, left)):
        first = np.ceil(lo) if upper else np.floor(lo) + 1     # R: lo <= r < hi; L: lo < r <= hi
        last = np.ceil(hi) - 1 if upper else np.floor(hi)
        first = np.maximum(first, r0).astype(np.int64)
        last = np.minimum(last, r1).astype(np.int64)
        count = np.maximum(last - first + 1, 0)
        if count.sum() == 0:
            continue
        e = np.repeat(np.arange(len(count)), count)
        r = first[e] + (np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count))
        x = xi[e] + (r - yi[e]) * (xj[e] - xi[e]) / (yj[e] - yi[e])
        # the last column counted: R counts pixels left of the crossing (c < x), L right of it
        k = np.ceil(x) - 1 if upper else np.floor(x) + 1
        near = np.abs(x - np.round(x)) < 1e-7
        if near.any():                                       # on an edge: skimage's own sign
            n, y0, y1 = np.round(x[near]), yi[e][near] - r[near], yj[e][near] - r[near]
            val = ((xi[e][near] - n) * y1 - (xj[e][near] - n) * y0) / (y1 - y0)
            k[near] = np.where(val > 0, n, n - 1) if upper else np.where(val < 0, n, n + 1)
        k = np.clip(k - c0, -1, nx).astype(np.int64)
        rr = r - r0
        if upper:                                            # columns c0 .. k
            np.add.at(out, (rr, np.zeros_like(rr)), 1)
            np.add.at(out, (rr, np.clip(k + 1, 0, nx)), -1)
        else:                                                # columns k .. c1
            np.add.at(out, (rr, np.clip(k, 0, nx)), 1)
    inside = ((np.cumsum(right[:, :-1], axis=1) & 1) | (np.cumsum(left[:, :-1], axis=1) & 1)) > 0
    # a pixel centre on a vertex is in
    on_vertex = (np.abs(rows - np.round(rows)) < 1e-12) & (np.abs(cols - np.round(cols)) < 1e-12)
    vr, vc = np.round(rows[on_vertex]).astype(np.int64) - r0, np.round(cols[on_vertex]).astype(np.int64) - c0
    ok = (vr >= 0) & (vr < ny) & (vc >= 0) & (vc < nx)
    inside[vr[ok], vc[ok]] = True
    return r0, c0, inside


def work_megapixels(rois: RoiSet | None, shape: tuple[int, int]) -> float:
    """About how much of a (H, W) plane a restoration computes: the ROIs' bounding boxes inside
    the plane (the whole plane without ROIs), in megapixels. The GUI's time estimate and its
    measured speed both use this, so one predicts the other."""
    h, w = int(shape[0]), int(shape[1])
    if rois is None or not rois.rois:
        return h * w / 1e6
    area = 0.0
    for roi in rois.rois:
        x0, y0, x1, y1 = roi.bounds()
        area += max(0.0, min(x1, w) - max(x0, 0.0)) * max(0.0, min(y1, h) - max(y0, 0.0))
    return min(area, float(h * w)) / 1e6


def bounding_rows(mask: np.ndarray) -> tuple[int, int]:
    """First and one-past-last row of a 2-D array that holds a nonzero value ((0, 0) if none)."""
    rows = np.flatnonzero(mask.any(axis=1))
    return (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, 0)


def roi_mask(rois: RoiSet, shape: tuple[int, int]) -> np.ndarray:
    """Feathered float32 mask: 0 outside every ROI, rising to 1 `feather` px inside the edge.

    The ramp is a raised cosine of the distance to the nearest outside pixel, so the blend
    between original and restored has no visible edge. Edges that coincide with the image
    border are not feathered (there is nothing outside to blend with).
    """
    h, w = int(shape[0]), int(shape[1])
    inside = np.zeros((h, w), dtype=bool)
    for roi in rois.rois:
        inside |= _shape_pixels(roi, (h, w))
    mask = np.zeros((h, w), dtype=np.float32)
    if not inside.any():
        return mask
    feather = float(rois.feather)
    if feather <= 0:
        mask[inside] = 1.0
        return mask
    # distance to the nearest outside pixel, treating the image border as inside; only the
    # ROIs' bounding box is worked on (row/column bounds: cheaper than nonzero() on a big frame)
    (y_lo, y_hi), (x_lo, x_hi) = bounding_rows(inside), bounding_rows(inside.T)
    pad = int(math.ceil(feather)) + 1
    r0, r1 = max(0, y_lo - pad), min(h, y_hi + pad)
    c0, c1 = max(0, x_lo - pad), min(w, x_hi + pad)
    sub = np.pad(inside[r0:r1, c0:c1], 1, mode="edge")
    dist = ndimage.distance_transform_edt(sub)[1:-1, 1:-1]
    t = np.clip(dist / feather, 0.0, 1.0)
    ramp = (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)
    ramp[~inside[r0:r1, c0:c1]] = 0.0
    mask[r0:r1, c0:c1] = ramp
    return mask
