"""How out of focus a region is, measured against the in-focus part of the same image.

The blur deblur repairs is local, so every image also shows its specimen sharp. The power
spectrum of a region is (about) the spectrum of the specimen times |OTF|^2 of the defocus PSF,
plus the camera's flat noise floor; the specimen's spectrum is measured on the image's own
in-focus areas. We fit the defocus PSF (the widefield family of `core.psf`, by effective radius)
and an intensity factor so that

    P_region(f) ~ c |OTF_r(f)|^2 (P_sharp(f) - N) + N

over the radial frequency bins, in log power (each octave of the spectrum counts alike). The
radius range whose fit is nearly as good as the best says how sure the estimate is.

The spectrum's lowest bins also hold the difference between the region's cells and those
around it, so a sharp region can read as a few px of blur. A second, independent measure
settles those: the focus map (``core.focus``: the share of structure at 2-4 px against 8-16 px,
which any blur of 2 px or more takes down). A region whose fit reads at most
`DETAIL_MAX_RADIUS_PX` and whose fine detail is at least that of the in-focus areas
(`SHARP_DETAIL_RATIO`) is called sharp.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from core.normalize import normalize, percentile_params
from core.roi import RoiSet, roi_mask

__all__ = ["BlurEstimate", "estimate_blur", "estimate_regions", "in_focus_reference",
           "psf_for_radius", "first_plane", "RADII", "SHARP_RADIUS_PX"]

#: the candidate effective radii (px): 0 (in focus) and 0.5 to 48 px, log-spaced
RADII = np.concatenate([[0.0], np.geomspace(0.5, 48.0, 56)])
#: below this effective radius a region looks as sharp as the image's in-focus areas
SHARP_RADIUS_PX = 1.2
#: a region with at least this share of the in-focus areas' fine detail (median focus value,
#: core.focus) is sharp, whatever its spectrum reads up to DETAIL_MAX_RADIUS_PX. Chosen on the
#: training split: 11 of the 18 sharp regions (of 126) the fit read as 2-4 px are called sharp,
#: and no blurred tuning case of 2.5 px or more changes (their ratios: at most 0.86;
#: docs/BENCHMARKS.md). Above DETAIL_MAX_RADIUS_PX blur wipes out both bands of the focus
#: measure, so the ratio says nothing there.
SHARP_DETAIL_RATIO = 1.0
DETAIL_MAX_RADIUS_PX = 6.0
_PATCHES = (64, 32, 16)          # patch sides tried, largest first
_MIN_PATCHES = 4                 # patches a side needs to be measured
_C_GRID = np.geomspace(0.05, 20.0, 121)


@dataclass
class BlurEstimate:
    """The blur of one region, with how sure we are and what it rests on."""

    radius_px: float | None              # effective blur radius (core.psf.psf_radius_px); None: unknown
    low_px: float | None = None          # the range of radii that fit nearly as well
    high_px: float | None = None
    confidence: str = "none"             # "high", "medium", "low" or "none"
    reason: str = ""                     # why there is no estimate, in plain words
    patches: tuple[int, int] = (0, 0)    # (region, in-focus) patches measured
    defocus_um: float | None = None      # when the optics are known
    detail_ratio: float | None = None    # the region's fine detail over the in-focus areas'
    sharp_by_detail: bool = False        # called sharp by its fine detail (see module doc)
    extra: dict = field(default_factory=dict)

    @property
    def looks_sharp(self) -> bool:
        if self.radius_px is None:
            return False
        return self.sharp_by_detail or (self.high_px is not None and self.high_px <= 2.5 * SHARP_RADIUS_PX
                                        and self.radius_px <= SHARP_RADIUS_PX)

    def short(self) -> str:
        """A few words for a list of regions: "about 6 px blur", "looks sharp"."""
        if self.radius_px is None:
            return "blur not measured"
        if self.looks_sharp:
            return "looks sharp"
        text = f"about {self.radius_px:.0f} px blur" if self.radius_px >= 2 else "slight blur"
        return text + (" (uncertain)" if self.confidence == "low" else "")

    def words(self) -> str:
        """One plain line: "about 6 px out of focus (4-8 px)"."""
        if self.radius_px is None:
            return f"blur unknown: {self.reason}" if self.reason else "blur unknown"
        if self.looks_sharp:
            return "already looks sharp (as sharp as the in-focus areas)"
        text = f"about {self.radius_px:.0f} px out of focus" if self.radius_px >= 2 else \
            f"slightly out of focus (about {self.radius_px:.1f} px)"
        if self.low_px is not None and self.high_px is not None:
            text += f" ({self.low_px:.1f}-{self.high_px:.1f} px)"
        if self.defocus_um is not None:
            text += f", about {self.defocus_um:.1f} \u00b5m of defocus"
        if self.confidence == "low":
            text += "; uncertain"
        return text


# ----------------------------------------------------------------------------- spectra

def _bins(p: int) -> np.ndarray:
    """Radial frequency bin index of each FFT coefficient of a p x p patch (0 = DC, dropped)."""
    f = np.fft.fftfreq(p)
    r = np.hypot(f[:, None], f[None, :])
    return np.minimum(np.rint(r * p).astype(int), p // 2)


@lru_cache(maxsize=8)
def _window(p: int) -> np.ndarray:
    w = np.hanning(p + 2)[1:-1]
    win = np.outer(w, w)
    return win / np.sqrt((win ** 2).mean())


def _patch_corners(mask: np.ndarray, p: int) -> list[tuple[int, int]]:
    """Top-left corners of p x p patches (stride p / 2) lying wholly inside `mask`."""
    from scipy import ndimage

    inside = ndimage.minimum_filter(mask.astype(np.uint8), size=p, mode="constant", cval=0,
                                    origin=(-(p // 2), -(p // 2)))
    s = max(1, p // 2)
    ys, xs = np.nonzero(inside[: mask.shape[0] - p + 1: s, : mask.shape[1] - p + 1: s])
    return [(int(y) * s, int(x) * s) for y, x in zip(ys, xs)]


#: context (px) read around each in-focus patch when it is blurred by a candidate PSF
_CONTEXT = 64
_MAX_REFERENCE = 32          # in-focus patches used (evenly chosen): enough for a mean spectrum


def psf_for_radius(radius_px: float) -> np.ndarray:
    """The family's PSF of this effective radius: widefield defocus with default optics (its
    shape changes little with the objective at a given effective radius); 0 -> no blur."""
    from core.psf import Optics, defocus_for_radius, defocus_psf

    if radius_px <= 0:
        return np.ones((1, 1))
    o = Optics()
    z = defocus_for_radius(float(radius_px), na=o.na, wavelength_um=o.wavelength_um,
                           n_medium=o.n_medium, pixel_um=o.pixel_um)
    return defocus_psf(z, na=o.na, wavelength_um=o.wavelength_um, n_medium=o.n_medium,
                       pixel_um=o.pixel_um)


@lru_cache(maxsize=1)
def _psfs() -> tuple[np.ndarray, ...]:
    """The PSF of each radius in RADII."""
    return tuple(psf_for_radius(float(r)) for r in RADII)


@lru_cache(maxsize=4)
def _otfs(size: int) -> tuple[np.ndarray, ...]:
    """rfft2 of each PSF on a size x size grid (cropped to it when larger, renormalised)."""
    out = []
    for psf in _psfs():
        h = psf.shape[0] // 2
        keep = min(h, size // 2 - 1)
        psf = psf[h - keep:h + keep + 1, h - keep:h + keep + 1]
        k = np.zeros((size, size))
        k[:psf.shape[0], :psf.shape[1]] = psf / psf.sum()
        out.append(np.fft.rfft2(np.roll(k, (-keep, -keep), (0, 1))))
    return tuple(out)


@lru_cache(maxsize=4)
def _otf2_radial(size: int, p: int) -> np.ndarray:
    """|OTF|^2 of each PSF at the radial bins of a p x p patch (for the noise's share)."""
    f = np.fft.fftfreq(size)
    rad = np.minimum(np.rint(np.hypot(f[:, None], f[None, : size // 2 + 1]) * p).astype(int), p // 2)
    counts = np.maximum(np.bincount(rad.ravel(), minlength=p // 2 + 1), 1)
    return np.array([(np.bincount(rad.ravel(), (np.abs(o) ** 2).ravel(), minlength=p // 2 + 1)
                      / counts)[1:] for o in _otfs(size)])


def _blurred_reference_spectra(x: np.ndarray, corners: list[tuple[int, int]], p: int) -> np.ndarray:
    """Spectra of the in-focus patches blurred by each candidate PSF (R, p // 2): blurring the
    pixels themselves, so windowing and leakage treat them exactly as the region's patches."""
    size = p + 2 * _CONTEXT
    padded = np.pad(x, _CONTEXT, mode="reflect")
    crops = [np.fft.rfft2(padded[y:y + size, x0:x0 + size]) for y, x0 in corners]
    c0, c1 = _CONTEXT, _CONTEXT + p
    return np.array([_spectrum_of([np.fft.irfft2(c * otf, s=(size, size))[c0:c1, c0:c1]
                                   for c in crops], p) for otf in _otfs(size)])


def _spectrum_of(patches: list[np.ndarray], p: int) -> np.ndarray:
    win = _window(p)
    bins = _bins(p).ravel()
    total = np.zeros(p // 2 + 1)
    for patch in patches:
        patch = (patch - patch.mean()) * win
        total += np.bincount(bins, (np.abs(np.fft.fft2(patch)) ** 2).ravel() / (p * p),
                             minlength=p // 2 + 1)
    counts = np.maximum(np.bincount(bins, minlength=p // 2 + 1), 1)
    return (total / max(len(patches), 1) / counts)[1:]


# ----------------------------------------------------------------------------- the fit

def _fit(x: np.ndarray, reg: list[tuple[int, int]], ref: list[tuple[int, int]], p: int) -> dict:
    """Best radius, the radii nearly as good, and the fit's figures."""
    if len(ref) > _MAX_REFERENCE:
        ref = [ref[i] for i in np.linspace(0, len(ref) - 1, _MAX_REFERENCE).round().astype(int)]
    p_reg = _spectrum_of([x[y:y + p, x0:x0 + p] for y, x0 in reg], p)
    p_ref = _spectrum_of([x[y:y + p, x0:x0 + p] for y, x0 in ref], p)
    top = max(2, len(p_reg) // 8)
    noise = float(p_reg[-top:].mean())            # the region's noise floor (blur removed the rest)
    ref_noise = float(min(p_ref[-top:].mean(), noise))
    use = p_ref - ref_noise > 0.5 * noise             # bins where the in-focus areas show structure
    use[0] = True
    if use.sum() < 3:
        return {"radius": None, "reason": "the in-focus areas show too little structure"}
    if p_reg[0] < 2.0 * noise:
        return {"radius": None, "reason": "the region shows no structure to judge (plain "
                                          "background or noise)"}
    blurred = _blurred_reference_spectra(x, ref, p)                  # (R, B)
    signal = np.maximum(blurred - _otf2_radial(p + 2 * _CONTEXT, p) * ref_noise, 1e-12)[:, use]
    obs = np.log(np.maximum(p_reg[use], 1e-12))
    pred = _C_GRID[None, :, None] * signal[:, None, :] + noise      # (R, C, B)
    loss = ((np.log(pred) - obs[None, None, :]) ** 2).mean(axis=2)
    best_c = loss.argmin(axis=1)
    per_r = loss[np.arange(len(RADII)), best_c]
    k = int(per_r.argmin())
    tol = max(0.02, 0.5 * float(per_r[k]))       # a fit this close is as plausible
    near = np.nonzero(per_r <= per_r[k] + tol)[0]
    return {"radius": float(RADII[k]), "low": float(RADII[near.min()]),
            "high": float(RADII[near.max()]), "loss": float(per_r[k]), "noise": noise,
            "scale": float(_C_GRID[best_c[k]]), "bins": int(use.sum())}


def detail_ratio(focus: np.ndarray | None, region: np.ndarray, reference: np.ndarray) -> float | None:
    """Median focus value (``core.focus``) of the region over that of the in-focus areas,
    windows with content only; None when either has none."""
    if focus is None:
        return None
    inside, outside = focus[region], focus[reference]
    inside, outside = inside[inside >= 0], outside[outside >= 0]
    if not len(inside) or not len(outside) or not np.median(outside) > 0:
        return None
    return float(np.median(inside) / np.median(outside))


def _focus_or_none(plane: np.ndarray) -> np.ndarray | None:
    from core.focus import focus_map

    try:
        return focus_map(plane)
    except ValueError:          # too small or flat to map: the spectrum alone decides
        return None


def estimate_blur(plane: np.ndarray, region: np.ndarray, reference: np.ndarray, *,
                  focus: np.ndarray | None = None,
                  pixel_um: float | None = None, na: float | None = None,
                  wavelength_um: float = 0.52, n_medium: float = 1.0) -> BlurEstimate:
    """The blur of `region` (bool mask) against `reference` (bool mask of in-focus pixels).

    The plane is percentile-normalised first. `focus`: the plane's focus map, when the caller
    has it (computed here otherwise). With `pixel_um` and `na` the radius is also given as
    defocus in um (the widefield PSF of those optics with the same effective radius).
    """
    x = normalize(np.nan_to_num(np.asarray(plane, np.float32)), percentile_params(plane))
    for p in _PATCHES:
        reg, ref = _patch_corners(region, p), _patch_corners(reference, p)
        if len(reg) >= _MIN_PATCHES and len(ref) >= _MIN_PATCHES:
            break
    else:
        what = "the region" if len(reg) < _MIN_PATCHES else "the in-focus part of the image"
        return BlurEstimate(None, reason=f"{what} is too small to measure (fewer than "
                                         f"{_MIN_PATCHES} patches of {_PATCHES[-1]} px)",
                            patches=(len(reg), len(ref)))
    fit = _fit(x, reg, ref, p)
    if fit["radius"] is None:
        return BlurEstimate(None, reason=fit["reason"], patches=(len(reg), len(ref)))
    ratio = (fit["high"] + 1.0) / (fit["low"] + 1.0)
    confidence = "high" if ratio < 1.6 else "medium" if ratio < 3.0 else "low"
    est = BlurEstimate(fit["radius"], fit["low"], fit["high"], confidence,
                       patches=(len(reg), len(ref)), extra={"patch": p, **fit})
    if fit["radius"] > SHARP_RADIUS_PX and fit["radius"] <= DETAIL_MAX_RADIUS_PX:
        est.detail_ratio = detail_ratio(_focus_or_none(plane) if focus is None else focus,
                                        region, reference)
        if est.detail_ratio is not None and est.detail_ratio >= SHARP_DETAIL_RATIO:
            # as much fine detail as the in-focus areas: the fit's few px were the specimen's
            # own difference (kept in `extra`), not blur
            est.radius_px, est.low_px, est.sharp_by_detail = 0.0, 0.0, True
    if pixel_um and na and est.radius_px and est.radius_px > SHARP_RADIUS_PX:
        from core.psf import defocus_for_radius

        est.defocus_um = defocus_for_radius(est.radius_px, na=na, wavelength_um=wavelength_um,
                                            n_medium=n_medium, pixel_um=pixel_um)
    return est


def in_focus_reference(plane: np.ndarray, rois: RoiSet, margin: int = 8,
                       focus: np.ndarray | None = None) -> np.ndarray:
    """Pixels outside every region (by `margin` px) that the focus map calls sharp: the
    image's own picture of its specimen in focus. `focus`: the plane's focus map, when the
    caller has it."""
    from scipy import ndimage

    outside = roi_mask(RoiSet(rois.rois, feather=0), plane.shape) == 0
    outside = ndimage.binary_erosion(outside, iterations=margin)
    focus = _focus_or_none(plane) if focus is None else focus
    if focus is not None:
        sharp = focus >= 0.5
        if (outside & sharp).sum() >= 0.25 * outside.sum():
            return outside & sharp
    return outside


def first_plane(data: np.ndarray, axes: str) -> np.ndarray:
    """The plane the engine measures on: the first of every axis but Y, X (and RGB samples S,
    kept last), as (Y, X) or (Y, X, S)."""
    index = tuple(slice(None) if a in "YXS" else 0 for a in axes)
    rest = [a for a in axes if a in "YXS"]
    order = [rest.index(a) for a in "YXS" if a in rest]
    return np.transpose(np.asarray(data)[index], order)


#: the in-focus areas a region is measured against lie within this many px of the regions'
#: bounding box (or within the box's own size, when larger): a 512 px region of an 8k frame
#: costs a crop of about 1.5k px, not the frame (memory and time; the nearby in-focus areas
#: also show the same specimen best)
REFERENCE_REACH_PX = 512


def _near_the_regions(plane: np.ndarray, rois: RoiSet) -> tuple[np.ndarray, RoiSet]:
    """The part of `plane` within reach of the regions, and the regions in its coordinates."""
    h, w = plane.shape[:2]
    if not rois.rois:
        return plane, rois
    bounds = np.array([r.bounds() for r in rois.rois], float)      # x0, y0, x1, y1
    x0, y0 = bounds[:, 0].min(), bounds[:, 1].min()
    x1, y1 = bounds[:, 2].max(), bounds[:, 3].max()
    reach = max(REFERENCE_REACH_PX, int(np.ceil(max(x1 - x0, y1 - y0))))
    r0, r1 = max(0, int(np.floor(y0)) - reach), min(h, int(np.ceil(y1)) + reach)
    c0, c1 = max(0, int(np.floor(x0)) - reach), min(w, int(np.ceil(x1)) + reach)
    if (r0, r1, c0, c1) == (0, h, 0, w) or r1 <= r0 or c1 <= c0:
        return plane, rois
    return plane[r0:r1, c0:c1], RoiSet([r.shifted(-c0, -r0) for r in rois.rois], feather=rois.feather)


#: the last few measurements (`estimate_regions`): one run asks for the same one several times
#: (the app's region list, the engine for the network's blur channel and "Match the input",
#: Richardson-Lucy's radius, the trust check after the run), and each costs the focus map of
#: the regions' neighbourhood and a spectral fit per region (about a second)
_MEASURED: "OrderedDict[tuple, list[BlurEstimate]]" = OrderedDict()
_MEASURED_SIZE = 4
_MEASURED_LOCK = threading.Lock()


def estimate_regions(plane: np.ndarray, rois: RoiSet, **optics: float) -> list[BlurEstimate]:
    """One estimate per ROI, each against the in-focus areas outside all of them (within
    `REFERENCE_REACH_PX` of the regions); an RGB plane (Y, X, S) is measured on its mean
    intensity. The same pixels and regions are measured once (`_MEASURED`); each caller gets
    its own copies."""
    plane = np.asarray(plane, np.float32)
    if plane.ndim == 3:
        plane = plane.mean(axis=-1)
    plane, rois = _near_the_regions(plane, rois)
    plane = np.ascontiguousarray(plane)
    key = (plane.shape, hashlib.blake2b(plane.tobytes(), digest_size=16).digest(),
           repr(rois.rois), tuple(sorted(optics.items())))
    with _MEASURED_LOCK:
        hit = _MEASURED.get(key)
        if hit is not None:
            _MEASURED.move_to_end(key)
            return copy.deepcopy(hit)
    out = _measure_regions(plane, rois, **optics)
    with _MEASURED_LOCK:
        _MEASURED[key] = copy.deepcopy(out)
        while len(_MEASURED) > _MEASURED_SIZE:
            _MEASURED.popitem(last=False)
    return out


def forget_measurements() -> None:
    """Empty the store of measurements, so the next run measures from scratch (the speed
    bench times what a first run of an image costs)."""
    with _MEASURED_LOCK:
        _MEASURED.clear()


def _measure_regions(plane: np.ndarray, rois: RoiSet, **optics: float) -> list[BlurEstimate]:
    focus = _focus_or_none(plane)
    reference = in_focus_reference(plane, rois, focus=focus)
    out = []
    for roi in rois.rois:
        region = roi_mask(RoiSet([roi], feather=0), plane.shape) > 0
        out.append(estimate_blur(plane, region, reference, focus=focus, **optics))
    return out
