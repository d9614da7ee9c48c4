"""How a restored image was made, stored in the image it describes.

Every file deblur writes from a restoration carries a `record` in its metadata under
``"provenance"``: deblur's version, the input file, the model, the weights file and its SHA-256,
the settings, the regions, the seed, the date. TIFF keeps it in deblur's private tag (and, in
ImageJ-style files, as the "Info" text Fiji shows with Image > Show Info); `deblur info FILE`
prints it. Restoring an already restored image keeps the earlier record under ``"previous"``.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from core import __version__
from core.image import Image
from core.roi import RoiSet, rois_to_dict

__all__ = ["KEY", "record", "attach", "describe", "weights_sha256"]

KEY = "provenance"


def weights_sha256(path: str | Path) -> str:
    """SHA-256 of a weights file (hex): which exact file restored an image."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def record(*, model: str, weights: str | Path | None, params: dict[str, Any],
           rois: RoiSet | None, seed: int, tile: int, overlap: int, device: str,
           source: str | Path | None, planes: str = "") -> dict[str, Any]:
    """The provenance of one restoration (plain JSON types). `weights` None: the shipped default
    of a model that has weights (its file and checksum are recorded), or none (classical)."""
    from core.models.registry import check_params, get_entry

    entry = get_entry(model)
    params = check_params(entry, params)               # every setting, defaults included
    path = Path(weights) if weights is not None else entry.default_weights
    rec: dict[str, Any] = {
        "software": f"deblur {__version__}",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": str(source) if source is not None else None,
        "model": model,
        "weights": None,
        "settings": json.loads(json.dumps(params, default=str)),
        "tile": int(tile), "overlap": int(overlap), "device": str(device), "seed": int(seed),
        "regions": rois_to_dict(rois) if rois is not None and rois.rois else "whole image",
    }
    if planes:
        rec["planes"] = planes
    if entry.needs_weights and path is not None and Path(path).is_file():
        rec["weights"] = {"file": Path(path).name, "sha256": weights_sha256(path),
                          "shipped": weights is None}
    return rec


def attach(image: Image, rec: dict[str, Any]) -> Image:
    """`image` with `rec` as its provenance (an earlier one kept under ``"previous"``) and a
    one-paragraph summary as its ImageJ "Info" text."""
    meta = dict(image.metadata)
    earlier = meta.get(KEY)
    if isinstance(earlier, dict):
        rec = {**rec, "previous": earlier}
    meta[KEY] = rec
    meta["info"] = describe(rec)
    return Image(image.data, image.axes, image.pixel_size, meta, image.path)


def describe(rec: dict[str, Any]) -> str:
    """The record in plain lines, for people (Fiji's Show Info, `deblur info`)."""
    lines = [f"Restored by {rec.get('software', 'deblur')} on {rec.get('date', '?')}"]
    if rec.get("source"):
        lines.append(f"from: {rec['source']}")
    w = rec.get("weights")
    weights = (f"{w['file']} ({'shipped' if w.get('shipped') else 'user'} weights, "
               f"sha256 {w['sha256'][:16]}...)" if isinstance(w, dict) else "no weights")
    lines.append(f"model: {rec.get('model')}, {weights}")
    settings = ", ".join(f"{k}={v}" for k, v in (rec.get("settings") or {}).items()) or "defaults"
    lines.append(f"settings: {settings}; seed {rec.get('seed')}; tile {rec.get('tile')} px, "
                 f"overlap {rec.get('overlap')} px; device {rec.get('device')}")
    regions = rec.get("regions")
    if isinstance(regions, dict):
        n = len(regions.get("rois", []))
        lines.append(f"regions: {n} (edge softness {regions.get('feather')} px)")
    else:
        lines.append(f"regions: {regions}")
    if rec.get("planes"):
        lines.append(f"planes: {rec['planes']}")
    if isinstance(rec.get("previous"), dict):
        lines.append("before that: " + describe(rec["previous"]).replace("\n", "\n  "))
    return "\n".join(lines)
