"""Restoring files one after another: the one path `deblur predict` and the app's "Restore a
folder" share. A file is read, its regions decided, restored, given its provenance and written
atomically next to nothing it could replace: the original is never touched, and a batch never
overwrites (it picks a free name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.blurred_regions import auto_rois
from core.defaults import OUT_SUFFIX
from core.engine import restore
from core.io import READ_SUFFIXES, Image, ImageError, read_image, same_file, write_image
from core.provenance import attach, record
from core.region_files import load_region_file
from core.roi import RoiError, RoiSet, roi_mask, sidecar_path

__all__ = ["REGION_RULES", "OUT_SUFFIX", "BatchItem", "image_files", "regions_for", "free_path",
           "restore_file"]

#: where each image's regions come from in a batch
REGION_RULES = {
    "sidecar_or_auto": "each image's region file (name.roi.json), else detect them",
    "auto": "detect the blurred regions in each image",
    "same": "the same regions for every image",
    "whole": "the whole image",
}


@dataclass
class BatchItem:
    """What happened to one file of a batch."""

    input: Path
    output: Path | None = None
    status: str = "pending"         # "restored", "unchanged" (no region found), "failed", "cancelled"
    message: str = ""
    regions: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def image_files(folder: str | Path) -> list[Path]:
    """The images in a folder (not its sub-folders), sorted; restored outputs left out."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in READ_SUFFIXES
                  and OUT_SUFFIX not in p.stem and not p.name.startswith("."))


def regions_for(image: Image, path: Path, rule: str, same: RoiSet | None = None
                ) -> tuple[RoiSet | None, str]:
    """(regions, where they came from) for one image under a `REGION_RULES` rule; None = the
    whole image."""
    if rule not in REGION_RULES:
        raise ValueError(f"unknown region rule {rule!r} (use {', '.join(REGION_RULES)})")
    if rule == "whole":
        return None, "whole image"
    if rule == "same":
        if same is None or not same.rois:
            raise ValueError("no regions are marked to use for every image")
        return same, "the marked regions"
    side = sidecar_path(path)
    if rule == "sidecar_or_auto" and side.is_file():
        return load_region_file(side)[0], side.name
    return auto_rois(image), "detected"


def free_path(path: Path) -> Path:
    """`path`, or `name-2.ext`, `name-3.ext`... : the first that does not exist."""
    if not path.exists():
        return path
    for n in range(2, 10_000):
        cand = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not cand.exists():
            return cand
    raise ImageError(f"no free file name next to {path}")


def restore_file(inp: Path, dest: Path, model: Any, *, model_name: str, weights: str | Path | None,
                 settings: dict[str, Any], rois: RoiSet | None, image: Image | None = None,
                 tile: int, overlap: int, seed: int, device: str, overwrite: bool = False,
                 progress: Callable[[int, int], None] | None = None,
                 cancel: Any = None, provenance_extra: dict[str, Any] | None = None) -> Path:
    """Restore one file into `dest` (atomic; never onto `inp`) with its provenance (plus
    `provenance_extra`, e.g. how the model was adapted to the image); `rois` None restores the
    whole image, an empty set writes an unchanged copy. Raises ImageError/RoiError (plain
    words, naming the file), or `core.engine.Cancelled`."""
    if dest.exists() and not overwrite:
        raise ImageError(f"{dest} already exists (use --overwrite to replace it)", dest)
    if same_file(dest, inp):
        raise ImageError(f"{dest} is the input file; deblur never overwrites an original", dest)
    image = read_image(inp) if image is None else image
    if rois is not None and rois.rois:
        h, w = image.shape_yx
        if not np.any(roi_mask(rois, (h, w))):
            raise RoiError(f"{inp}: none of the regions overlaps the image")
    result = restore(image, model, rois, tile=tile, overlap=overlap, seed=seed, progress=progress,
                     cancel=cancel)
    rec = record(model=model_name, weights=weights, params=settings, rois=rois, seed=seed,
                 tile=tile, overlap=overlap, device=device, source=inp)
    result = attach(result, {**rec, **(provenance_extra or {})})
    return write_image(dest, result, overwrite=overwrite)
