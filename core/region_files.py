"""Region files in every format deblur reads and writes: its own JSON (``.roi.json``, DESIGN §2)
and ImageJ/Fiji ROIs (one ``.roi`` or a ``.zip`` set from the ROI Manager), so regions move
between Fiji and deblur.

ImageJ and deblur use the same coordinates (pixel (r, c) covers x in [c, c+1), y in [r, r+1)),
so shapes cross unchanged: rectangles, ovals and polygons (also freehand and traced ones).
Lines, points, angles and composite shapes are not regions to restore: they are skipped, and
a file holding nothing else is refused with a message naming it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from core.io import atomic_write
from core.roi import Ellipse, Polygon, Rect, Roi, RoiError, RoiSet, load_rois, save_rois

__all__ = ["IMAGEJ_SUFFIXES", "load_region_file", "save_region_file", "read_imagej_rois",
           "write_imagej_rois"]

IMAGEJ_SUFFIXES = (".roi", ".zip")


def _is_imagej(path: Path) -> bool:
    return path.suffix.lower() in IMAGEJ_SUFFIXES


def load_region_file(path: str | Path) -> tuple[RoiSet, list[str]]:
    """(regions, what was skipped) from a deblur JSON file or an ImageJ .roi/.zip (by the
    file's suffix); a JSON file skips nothing."""
    path = Path(path)
    return read_imagej_rois(path) if _is_imagej(path) else (load_rois(path), [])


def save_region_file(path: str | Path, rois: RoiSet) -> None:
    """Write regions as deblur JSON, or for Fiji when the name ends in .roi (one region) or
    .zip (a ROI Manager set). Atomic either way."""
    path = Path(path)
    if _is_imagej(path):
        write_imagej_rois(path, rois)
    else:
        save_rois(path, rois)


# ----------------------------------------------------------------------------- ImageJ

def read_imagej_rois(path: str | Path) -> tuple[RoiSet, list[str]]:
    """(the regions, what was skipped) from an ImageJ .roi or .zip; RoiError naming the file
    when it cannot be read or holds no region deblur can use."""
    from roifile import ROI_TYPE, roiread

    path = Path(path)
    try:
        items = roiread(path)
    except FileNotFoundError:
        raise RoiError(f"{path}: file not found") from None
    except Exception as exc:  # roifile raises several types for damaged files
        raise RoiError(f"{path}: not a readable ImageJ ROI file ({exc})") from None
    if not isinstance(items, list):
        items = [items]
    rois: list[Roi] = []
    skipped: list[str] = []
    for item in items:
        kind = ROI_TYPE(item.roitype) if item.roitype in {t.value for t in ROI_TYPE} else None
        name = item.name or (kind.name.lower() if kind is not None else "unknown")
        if item.composite:
            skipped.append(f"{name} (composite shape)")
        elif kind == ROI_TYPE.RECT:
            x0, y0, w, h = _box(item)
            rois.append(Rect(x0, y0, w, h))
        elif kind == ROI_TYPE.OVAL:
            x0, y0, w, h = _box(item)
            rois.append(Ellipse(x0, y0, w, h))
        elif kind in (ROI_TYPE.POLYGON, ROI_TYPE.FREEHAND, ROI_TYPE.TRACED):
            pts = np.asarray(item.coordinates(), dtype=np.float64)
            if len(pts) >= 3:
                rois.append(Polygon([(float(x), float(y)) for x, y in pts]))
            else:
                skipped.append(f"{name} (fewer than 3 corners)")
        else:
            skipped.append(f"{name} ({kind.name.lower() if kind is not None else 'unknown'}: "
                           "not an area)")
    if not rois:
        what = "; ".join(skipped) if skipped else "nothing"
        raise RoiError(f"{path}: no region deblur can use (found: {what})")
    return RoiSet(rois), skipped


def _box(item) -> tuple[float, float, float, float]:
    """(x, y, w, h) of a rectangle or oval, at sub-pixel precision when the file has it."""
    if item.subpixelrect:
        return float(item.xd), float(item.yd), float(item.widthd), float(item.heightd)
    return float(item.left), float(item.top), float(item.right - item.left), float(item.bottom - item.top)


def write_imagej_rois(path: str | Path, rois: RoiSet) -> None:
    """Write regions for Fiji: a .roi holds one region, a .zip any number (ROI Manager).
    Whole-pixel rectangles and ovals stay rectangles and ovals; others become polygons or
    sub-pixel ovals."""
    from roifile import ROI_TYPE, ImagejRoi

    path = Path(path)
    if path.suffix.lower() == ".roi" and len(rois.rois) != 1:
        raise RoiError(f"{path}: a .roi file holds one region; save {len(rois.rois)} as a .zip")
    items = []
    for i, roi in enumerate(rois.rois, 1):
        name = f"deblur-{i}"
        if isinstance(roi, Polygon):
            item = ImagejRoi.frompoints(np.asarray(roi.points, dtype=np.float32), name=name)
        elif isinstance(roi, Rect) and all(float(v).is_integer() for v in (roi.x, roi.y, roi.w, roi.h)):
            item = ImagejRoi(roitype=ROI_TYPE.RECT, left=int(roi.x), top=int(roi.y),
                             right=int(roi.x + roi.w), bottom=int(roi.y + roi.h), name=name)
        elif isinstance(roi, Rect):
            corners = [(roi.x, roi.y), (roi.x + roi.w, roi.y), (roi.x + roi.w, roi.y + roi.h),
                       (roi.x, roi.y + roi.h)]
            item = ImagejRoi.frompoints(np.asarray(corners, dtype=np.float32), name=name)
        else:
            item = _oval(roi, name)
        items.append(item)
    with atomic_write(path) as tmp:
        if path.suffix.lower() == ".roi":
            tmp.write_bytes(items[0].tobytes())
        else:                                   # the ROI Manager's format: one <name>.roi each
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                for item in items:
                    zf.writestr(f"{item.name}.roi", item.tobytes())


def _oval(roi: Ellipse, name: str):
    from roifile import ROI_OPTIONS, ROI_TYPE, ImagejRoi

    left, top = int(np.floor(roi.x)), int(np.floor(roi.y))
    right, bottom = int(np.ceil(roi.x + roi.w)), int(np.ceil(roi.y + roi.h))
    item = ImagejRoi(roitype=ROI_TYPE.OVAL, left=left, top=top, right=right, bottom=bottom, name=name)
    if not all(float(v).is_integer() for v in (roi.x, roi.y, roi.w, roi.h)):
        item.options |= ROI_OPTIONS.SUB_PIXEL_RESOLUTION
        item.xd, item.yd, item.widthd, item.heightd = (float(roi.x), float(roi.y), float(roi.w),
                                                       float(roi.h))
    return item
