"""The benchmark's cases: held-out sharp images with one locally defocused region of known
blur and noise (quality), and regions over plain background (empty: nothing to restore).

Sources: held-out seeds of the specimen generator, scikit-image's bundled microscopy images
and, when given, the user's own folder. ``training.bench`` runs the models on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core import defocus
from core.psf import Optics, defocus_for_radius, defocus_psf
from core.roi import Ellipse, RoiSet, roi_mask
from training.real_splits import BENCH_SIZE, REAL_SCALES, VAL_SOURCES, bench_planes, split_of

__all__ = ["BenchCase", "make_cases", "make_empty_cases", "make_real_cases", "make_train_cases",
           "make_train_sharp_cases", "split_of", "VAL_SOURCES", "REAL_BLURS", "TRAIN_BLURS", "REAL_SCALES", "BENCH_RADII",
           "BENCH_SEED_BASE", "EMPTY_LEVELS", "SAMPLE_LIKE", "make_sample_like_cases", "case_group"]

#: blur radii (px) of the benchmark's defocused regions: mild, moderate, strong, very strong
BENCH_RADII = (3.0, 6.0, 10.0, 16.0)
#: seeds of the specimen generator reserved for benchmarking (training uses seeds below 1e8)
BENCH_SEED_BASE = 900_000_000
#: background levels (relative intensity) of the empty-region cases: fluorescence-dark, mid-grey
EMPTY_LEVELS = {"dark": 0.03, "grey": 0.45}


@dataclass
class BenchCase:
    """One benchmark image: the sharp truth, its locally blurred version, the region and PSF."""

    name: str
    source: str
    sharp: np.ndarray            # float32 (H, W), relative intensity (the target)
    blurred: np.ndarray          # float32 (H, W), the model input
    region: np.ndarray           # bool (H, W), pixels of the defocused region (= the ROI)
    rois: RoiSet
    psf: np.ndarray              # the true PSF inside the region
    radius_px: float
    info: dict = field(default_factory=dict)

def _bench_optics(i: int) -> Optics:
    """A fixed rotation of common objectives (air 20x/0.8, water 40x/1.1, oil 63x/1.4, air 10x/0.45)."""
    table = [Optics(na=0.8, wavelength_um=0.52, n_medium=1.0, pixel_um=0.32),
             Optics(na=1.1, wavelength_um=0.6, n_medium=1.33, pixel_um=0.16),
             Optics(na=1.4, wavelength_um=0.52, n_medium=1.518, pixel_um=0.1),
             Optics(na=0.45, wavelength_um=0.52, n_medium=1.0, pixel_um=0.5)]
    return table[i % len(table)]


def _defocus_region(shape: tuple[int, int], rng: np.random.Generator, i: int,
                    radius: float | None = None
                    ) -> tuple[RoiSet, np.ndarray, np.ndarray, float, float, Optics]:
    """Case i's defocused ellipse: (ROI, region mask, true PSF, defocus um, blur radius, optics);
    the blur radius cycles through `BENCH_RADII` unless given."""
    h, w = shape
    optics = _bench_optics(i)
    radius = BENCH_RADII[i % len(BENCH_RADII)] if radius is None else float(radius)
    z = defocus_for_radius(radius, na=optics.na, wavelength_um=optics.wavelength_um,
                                   n_medium=optics.n_medium, pixel_um=optics.pixel_um)
    psf = defocus_psf(z, na=optics.na, wavelength_um=optics.wavelength_um,
                              n_medium=optics.n_medium, pixel_um=optics.pixel_um)
    ew, eh = rng.uniform(0.35, 0.55) * w, rng.uniform(0.35, 0.55) * h
    ex, ey = rng.uniform(0.05 * w, w - ew - 0.05 * w), rng.uniform(0.05 * h, h - eh - 0.05 * h)
    rois = RoiSet([Ellipse(float(ex), float(ey), float(ew), float(eh))], feather=8.0)
    region = roi_mask(RoiSet(rois.rois, feather=0), (h, w)) > 0
    return rois, region, psf, float(z), radius, optics


def _blur_region(x: np.ndarray, region: np.ndarray, psf: np.ndarray, z: float,
                 rng: np.random.Generator, photons: float) -> np.ndarray:
    """`x` defocused by `psf` inside `region` (uniform depth), plus camera noise."""
    depth = np.where(region, z, 0.0).astype(np.float32)
    blurred = defocus.blur_with_depth(x, depth, lambda d: psf if d > 0 else np.ones((1, 1)), levels=2)
    return defocus.add_noise(blurred, rng, photons, 1.0).astype(np.float32)


def _degrade_case(name: str, source: str, sharp: np.ndarray, rng: np.random.Generator, i: int,
                  photons: float = 400.0, radius: float | None = None) -> BenchCase:
    """One defocused ellipse with uniform depth and a known widefield PSF, plus camera noise
    (radius 0: no blur, only the noise: a model should leave such a region alone)."""
    x = defocus.relative_intensity(sharp)
    if radius == 0:
        rois, region, _, _, _, optics = _defocus_region(x.shape, rng, i, radius=1.0)
        psf, z = np.ones((1, 1)), 0.0
        blurred = defocus.add_noise(x, rng, photons, 1.0).astype(np.float32)
        blurred = np.where(region, blurred, x).astype(np.float32)
        info = {"na": optics.na, "n_medium": optics.n_medium, "pixel_um": optics.pixel_um,
                "defocus_um": 0.0, "photons": photons}
        return BenchCase(name, source, x.astype(np.float32), blurred, region, rois, psf, 0.0, info)
    rois, region, psf, z, radius, optics = _defocus_region(x.shape, rng, i, radius)
    blurred = _blur_region(x, region, psf, z, rng, photons)
    info = {"na": optics.na, "n_medium": optics.n_medium, "pixel_um": optics.pixel_um,
            "defocus_um": round(z, 3), "photons": photons}
    return BenchCase(name, source, x.astype(np.float32), blurred, region, rois, psf, radius, info)


def _skimage_images() -> list[tuple[str, np.ndarray]]:
    """Real microscopy bundled with scikit-image (no download): IHC brightfield, phase-contrast cell."""
    from skimage import data

    out = []
    ihc = data.immunohistochemistry().astype(np.float32)
    out.append(("skimage-ihc-brightfield", ihc.mean(axis=-1)))
    cell = data.cell().astype(np.float32)
    out.append(("skimage-cell-phase", cell))
    return out


def _folder_images(folder: Path, limit: int) -> list[tuple[str, np.ndarray]]:
    from core.io import READ_SUFFIXES, read_image

    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in READ_SUFFIXES or len(out) >= limit:
            continue
        img = read_image(p)
        plane = next(img.planes())[1].astype(np.float32)
        out.append((p.name, plane))
    if not out:
        raise ValueError(f"{folder}: no TIFF/PNG/JPEG images found")
    return out


def make_cases(n_synthetic: int = 8, size: int = 256, seed: int = 0, data: Path | None = None,
               include_skimage: bool = True, limit: int = 20) -> list[BenchCase]:
    """The benchmark set; the same arguments always give the same cases."""
    from training import synth

    cases: list[BenchCase] = []
    i = 0
    for k in range(n_synthetic):
        srng = np.random.default_rng(BENCH_SEED_BASE + seed * 1000 + k)
        spec = synth.random_specimen(srng, size)
        cases.append(_degrade_case(f"synthetic-{k}", "held-out specimen", spec, srng, i))
        i += 1
    sources: list[tuple[str, np.ndarray, str]] = []
    if include_skimage:
        sources += [(n, a, "scikit-image") for n, a in _skimage_images()]
    if data is not None:
        sources += [(n, a, "user folder") for n, a in _folder_images(Path(data), limit)]
    for name, arr, src in sources:
        rng = np.random.default_rng(BENCH_SEED_BASE + seed * 1000 + 500 + i)
        cases.append(_degrade_case(name, src, arr, rng, i))
        i += 1
    return cases


#: the source of `make_sample_like_cases` (its own group in the bench: `case_group`)
SAMPLE_LIKE = "sample-like nuclei"


def case_group(source: str) -> str:
    """The group a case is reported in: our simulated specimens, fields like the nuclei sample,
    or real microscopy."""
    if source == SAMPLE_LIKE:
        return SAMPLE_LIKE
    return "simulated specimens" if source.startswith("held-out specimen") else "real microscopy"


def make_sample_like_cases(n: int = 8) -> list[BenchCase]:
    """`n` simulated fields like the shipped nuclei sample (`training.make_samples.nuclei_field`,
    seeds 1..n; the sample itself is seed 2024): dense DAPI nuclei at 20x / 0.75, defocused up
    to 4 um (about 11.5 px) inside a region whose 40 px edge ramps the defocus from 0. Unlike the
    other cases the blur varies inside the region, as a tilted specimen's does; these are the
    first thing a user restores, and a checkpoint that does them harm must be seen
    (`benchmarks/checkpoints.py`). The target is the noise-free field."""
    from core.psf import psf_function
    from training.make_samples import NUCLEI_DEFOCUS_UM, NUCLEI_OPTICS, nuclei_blur_radius_px, nuclei_field

    psf = psf_function("widefield", NUCLEI_OPTICS)(NUCLEI_DEFOCUS_UM)
    radius = nuclei_blur_radius_px()
    cases = []
    for seed in range(1, n + 1):
        f = nuclei_field(seed)
        cases.append(BenchCase(f"nuclei-like-{seed}", SAMPLE_LIKE, f["clean"].astype(np.float32),
                               f["blurred"].astype(np.float32), f["depth"] > 0, f["rois"], psf,
                               float(radius), {"defocus_um": NUCLEI_DEFOCUS_UM}))
    return cases


#: blur levels of the real-image cases: none (is the model harmless on sharp content?), mild,
#: moderate, strong (each image is also seen at the magnifications of `REAL_SCALES`)
REAL_BLURS = {"none": 0.0, "mild": 2.5, "moderate": 6.0, "strong": 12.0}


def make_real_cases(split: str, cache: Path | None = None, size: int = BENCH_SIZE, seed: int = 0,
                    per_source: int = 4) -> list[BenchCase]:
    """Cases from real microscopy (the fetched pool of ``training.real_images``, and
    scikit-image's): the planes of `split`'s sources, up to `per_source` each, every one at a
    blur level and magnification of its own (cycling through `REAL_BLURS` x `REAL_SCALES`)."""
    from training.real_images import planes, skimage_planes

    pool = (planes(cache) if cache is not None else []) + skimage_planes()
    chosen = bench_planes(pool, split, per_source)
    return _cases_from_planes(chosen, f"real {split}", size, seed, dict(REAL_BLURS), 700)


#: blur levels of `make_train_cases`: finer steps where estimates fail most (mild blur)
TRAIN_BLURS = {"none": 0.0, "1.5px": 1.5, "mild": 2.5, "4px": 4.0, "moderate": 6.0,
               "9px": 9.0, "strong": 12.0, "20px": 20.0}


def make_train_cases(cache: Path, size: int = BENCH_SIZE, seed: int = 0,
                     repeats: int = 2) -> list[BenchCase]:
    """Cases cut from the TRAINING split of the real pool (``training.real_splits``), for tuning
    what is not learned (the blur estimator's settings) on more cases than validation holds;
    the validation and test cases stay for choosing and reporting. Each training plane gives
    `repeats` cases at blur levels and magnifications of their own (`TRAIN_BLURS`)."""
    from training.real_splits import load_train_planes

    chosen = [p for p in load_train_planes(cache) for _ in range(repeats)]
    return _cases_from_planes(chosen, "real train", size, seed, TRAIN_BLURS, 800)


def make_train_sharp_cases(cache: Path, size: int = BENCH_SIZE, seed: int = 5) -> list[BenchCase]:
    """Sharp regions (camera noise only, as the "none" cases) cut from every TRAINING plane at
    each of `REAL_SCALES`: how often the blur estimate reads a sharp region as blurred, on many
    more sharp regions than the other sets hold (126 for the pool's 42 training planes)."""
    from training.real_splits import load_train_planes

    chosen = [p for p in load_train_planes(cache) for _ in REAL_SCALES]
    return _cases_from_planes(chosen, "real train", size, seed, {"none": 0.0}, 5000)


def _cases_from_planes(chosen: list, label: str, size: int, seed: int, blurs: dict[str, float],
                       seed_offset: int) -> list[BenchCase]:
    """One case per plane: its centre crop (`size` px, after magnification) with one defocused
    ellipse, cycling through `blurs` x `REAL_SCALES`."""
    from scipy import ndimage

    cases = []
    combos = [(b, s) for s in REAL_SCALES for b in blurs]
    for j, plane in enumerate(chosen):
        blur, scale = combos[j % len(combos)]
        grey = plane.data.astype(np.float32)
        grey = grey.mean(axis=-1) if grey.ndim == 3 else grey
        if scale != 1.0:
            grey = ndimage.zoom(grey, scale, order=1)
        h, w = grey.shape
        if min(h, w) < 64:
            continue
        th, tw = min(h, size), min(w, size)
        y0, x0 = (h - th) // 2, (w - tw) // 2
        crop = grey[y0:y0 + th, x0:x0 + tw]
        rng = np.random.default_rng(BENCH_SEED_BASE + seed * 1000 + seed_offset + j)
        name = f"{plane.name} x{scale:g} {blur}"
        case = _degrade_case(name, f"{label}: {plane.source} ({plane.modality})", crop,
                             rng, j, radius=blurs[blur])
        case.info.update(package=plane.source, modality=plane.modality)
        cases.append(case)
    return cases


def make_empty_cases(size: int = 256, seed: int = 0) -> list[BenchCase]:
    """Held-out fields whose ROI covers plain background only (`BenchCase.sharp` is flat there)."""
    from scipy import ndimage

    from training import synth

    cases = []
    for k, (label, level) in enumerate(EMPTY_LEVELS.items()):
        rng = np.random.default_rng(BENCH_SEED_BASE + seed * 1000 + 900 + k)
        spec = defocus.relative_intensity(synth.random_specimen(rng, size))
        rois, region, psf, z, radius, optics = _defocus_region(spec.shape, rng, 1)
        # the specimen fades into plain background over ~10 px around (and under) the region
        fade = np.clip(ndimage.gaussian_filter(ndimage.binary_dilation(region, iterations=12)
                                               .astype(np.float32), 4.0) * 1.5, 0.0, 1.0)
        sharp = (spec * (1 - fade) + level * fade).astype(np.float32)
        photons = 400.0
        blurred = _blur_region(sharp, region, psf, z,
                               np.random.default_rng(BENCH_SEED_BASE + seed * 1000 + 950 + k), photons)
        info = {"na": optics.na, "n_medium": optics.n_medium, "pixel_um": optics.pixel_um,
                "defocus_um": round(z, 3), "photons": photons, "background": level}
        cases.append(BenchCase(f"empty-{label}", "held-out specimen, empty ROI", sharp, blurred,
                               region, rois, psf, radius, info))
    return cases
