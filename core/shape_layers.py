"""napari shapes-layer data <-> our ROI set (no napari import: plain arrays and type names).

napari puts a pixel's centre on integer coordinates (row, col); deblur's ROIs put pixel (r, c)
between c..c+1 and r..r+1, its centre at (c + 0.5, r + 0.5), as ImageJ and the app do. Every
conversion goes through here, so a rectangle drawn in napari covers the same pixels as the
same rectangle in the app, in a .roi.json or in Fiji.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from core.roi import Ellipse, Polygon, Rect, Roi, RoiSet

__all__ = ["rois_from_shapes", "shapes_from_rois", "AREA_TYPES"]

#: shape types that enclose an area; lines and paths do not and are refused
AREA_TYPES = ("rectangle", "ellipse", "polygon")
_ELLIPSE_POINTS = 64


def _xy(vertices: np.ndarray) -> np.ndarray:
    """(N, 2) of (x, y) in ROI coordinates from napari (..., row, col) vertices."""
    v = np.asarray(vertices, dtype=np.float64)
    return np.stack([v[:, -1] + 0.5, v[:, -2] + 0.5], axis=1)


def _axis_aligned_box(xy: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x, y, w, h) when the 4 corners form an axis-aligned box, else None (rotated)."""
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    on_edge = (np.isclose(xy[:, 0], x0) | np.isclose(xy[:, 0], x1)) & \
              (np.isclose(xy[:, 1], y0) | np.isclose(xy[:, 1], y1))
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0)) if on_edge.all() else None


def _rotated_ellipse(xy: np.ndarray) -> Polygon:
    """An ellipse inscribed in a rotated box (4 corners in order), as a polygon."""
    centre = xy.mean(axis=0)
    a, b = (xy[1] - xy[0]) / 2, (xy[3] - xy[0]) / 2       # half side vectors
    t = np.linspace(0, 2 * math.pi, _ELLIPSE_POINTS, endpoint=False)
    pts = centre + np.cos(t)[:, None] * a + np.sin(t)[:, None] * b
    return Polygon([(float(x), float(y)) for x, y in pts])


def rois_from_shapes(data: Sequence[np.ndarray], shape_types: Sequence[str],
                     feather: float | None = None) -> tuple[RoiSet, list[str]]:
    """A shapes layer's shapes (data coordinates of the image) -> (ROI set, skipped shapes in
    plain words). Lines and paths enclose no area and are skipped, as are shapes too small."""
    rois: list[Roi] = []
    skipped: list[str] = []
    for i, (vertices, kind) in enumerate(zip(data, shape_types)):
        xy = _xy(vertices)
        if kind not in AREA_TYPES:
            skipped.append(f"shape {i + 1} is a {kind}, which encloses no area")
            continue
        if kind == "polygon":
            if len(xy) < 3:
                skipped.append(f"shape {i + 1} is a polygon with fewer than 3 corners")
                continue
            rois.append(Polygon([(float(x), float(y)) for x, y in xy]))
            continue
        box = _axis_aligned_box(xy) if len(xy) == 4 else None
        if box is not None and (box[2] <= 0 or box[3] <= 0):
            skipped.append(f"shape {i + 1} has no area")
        elif box is not None:
            rois.append(Rect(*box) if kind == "rectangle" else Ellipse(*box))
        elif kind == "rectangle":
            rois.append(Polygon([(float(x), float(y)) for x, y in xy]))
        else:
            rois.append(_rotated_ellipse(xy))
    out = RoiSet(rois=rois) if feather is None else RoiSet(rois=rois, feather=float(feather))
    return out, skipped


def shapes_from_rois(rois: RoiSet) -> tuple[list[np.ndarray], list[str]]:
    """Our ROIs as napari shapes data ((N, 2) row, col vertices) and shape types."""
    data: list[np.ndarray] = []
    types: list[str] = []
    for roi in rois.rois:
        if isinstance(roi, Polygon):
            xy = np.asarray(roi.points, dtype=np.float64)
            types.append("polygon")
        else:
            x0, y0, x1, y1 = roi.bounds()
            xy = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
            types.append("rectangle" if isinstance(roi, Rect) else "ellipse")
        data.append(np.stack([xy[:, 1] - 0.5, xy[:, 0] - 0.5], axis=1))
    return data, types
