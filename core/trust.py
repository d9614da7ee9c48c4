"""How far to trust a restored region: is the result explained by the input?

Blurring the restored region with the region's estimated PSF (`core.blur_estimate`) must give
back the input, up to the camera noise. Where the difference, smoothed over a few pixels,
exceeds what noise explains, the model invented or removed structure that the blurred input
does not support. A region that already looked sharp gets that verdict instead: restoring it
can at most remove noise, and may add artefacts. (Checking such a region against the input
itself did not catch what harmed it on the validation cases: a sharp region's noise cannot be
told from its texture; docs/BENCHMARKS.md.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from core.blur_estimate import BlurEstimate, psf_for_radius
from core.roi import RoiSet

__all__ = ["TrustCheck", "RegionReport", "check_region", "region_checks", "disagreement_map",
           "noise_sigma", "noise_model", "VERDICTS"]

#: plain verdicts (the first words of `TrustCheck.words`)
VERDICTS = ("consistent with the input", "check", "already looks sharp", "not checked")
_SMOOTH = 2.0          # px: the scale at which structure is compared (finer is noise)
_Z = 4.0               # how many noise standard deviations a difference must exceed
_MODEL_SLACK = 0.03    # normalised units: PSF shape and estimate errors the check forgives
_FLAG_SHARE = 0.03     # more than this share of the region disagreeing -> "check"
_RMS_FACTOR = 2.0      # local residual RMS above this many noise std: more than noise


@dataclass
class TrustCheck:
    verdict: str                 # one of VERDICTS
    disagree: float | None       # share of the region's pixels the input does not explain
    noise: float | None          # camera noise (normalised units) the check allowed for
    radius_px: float | None      # the blur the check assumed
    disagree_map: np.ndarray | None = None   # bool, the region's bounding box (for display)
    map_origin: tuple[int, int] = (0, 0)     # (row, column) of that box in the plane

    def words(self) -> str:
        if self.verdict == "check":
            return (f"check: {100 * (self.disagree or 0):.0f} % of the region disagrees with the "
                    "input (detail the blurred input does not support)")
        if self.verdict == "already looks sharp":
            return ("this region already looks sharp: a model can at most remove noise here, and "
                    "may add artefacts; compare with the original")
        if self.verdict == "not checked":
            return "not checked: the blur could not be measured; compare with the original by eye"
        return "consistent with the input"


def noise_sigma(x: np.ndarray, mask: np.ndarray) -> float:
    """Camera noise (std) of the pixels under `mask`, from neighbour differences (robust: the
    median absolute difference; a blurred region's fine differences are mostly noise)."""
    dx = np.diff(x, axis=1)[mask[:, 1:] & mask[:, :-1]]
    dy = np.diff(x, axis=0)[mask[1:, :] & mask[:-1, :]]
    d = np.concatenate([dx, dy])
    if d.size < 16:
        return float("nan")
    return _difference_sigma(d)


def _difference_sigma(d: np.ndarray) -> float:
    """The noise std behind neighbour differences `d` (robust: 1.4826 x their median absolute
    deviation is the differences' std, sqrt(2) x the pixels')."""
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def noise_model(x: np.ndarray, mask: np.ndarray, bins: int = 8) -> tuple[float, float]:
    """Signal-dependent camera noise under `mask`: variance = a * intensity + b (Poisson-Gaussian:
    photon noise grows with the signal, read noise does not), fitted to the neighbour-difference
    variance of `bins` intensity bins (robust, as `noise_sigma`). (0, sigma**2) when the pixels
    do not span enough intensities to tell a slope."""
    from scipy import ndimage

    level = ndimage.uniform_filter(np.asarray(x, np.float64), 5)
    pairs = [(np.diff(x, axis=1), (level[:, 1:] + level[:, :-1]) / 2, mask[:, 1:] & mask[:, :-1]),
             (np.diff(x, axis=0), (level[1:, :] + level[:-1, :]) / 2, mask[1:, :] & mask[:-1, :])]
    d = np.concatenate([a[m] for a, _, m in pairs])
    v = np.concatenate([b[m] for _, b, m in pairs])
    flat = _difference_sigma(d) if d.size >= 16 else float("nan")   # = noise_sigma(x, mask)
    if not np.isfinite(flat):
        return 0.0, 0.0
    if d.size < 16 * bins:
        return 0.0, flat ** 2
    edges = np.unique(np.quantile(v, np.linspace(0, 1, bins + 1)))
    means, variances, counts = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (v >= lo) & (v <= hi)
        if sel.sum() < 16:
            continue
        means.append(float(v[sel].mean()))
        variances.append(_difference_sigma(d[sel]) ** 2)
        counts.append(float(sel.sum()))
    if len(means) < 3 or np.ptp(means) < 1e-3:
        return 0.0, flat ** 2
    slope, icept = np.polyfit(means, variances, 1, w=np.sqrt(counts))
    a = max(0.0, float(slope))
    b = float(icept) if slope > 0 else float(np.average(variances, weights=counts))
    return a, max(0.0, b)


def check_region(blurred: np.ndarray, restored: np.ndarray, region: np.ndarray,
                 estimate: BlurEstimate) -> TrustCheck:
    """Verdict for one region: `blurred` and `restored` are the same plane, normalised alike
    (float), `region` its bool mask, `estimate` its blur."""
    from scipy import ndimage, signal

    if estimate.radius_px is None:
        return TrustCheck("not checked", None, None, None)
    if estimate.looks_sharp:
        return TrustCheck("already looks sharp", None, None, estimate.radius_px)
    ys, xs = np.nonzero(region)
    # real defocus varies inside a region (a tilted or curved specimen): a pixel is explained
    # when any blur from a third of the estimate up to its upper bound explains it
    r = float(estimate.radius_px)
    radii = sorted({round(v, 2) for v in (r / 3, 2 * r / 3, r, max(r, estimate.high_px or r))})
    psfs = [psf_for_radius(v) for v in radii]
    pad = max(p.shape[0] for p in psfs) // 2 + int(6 * _SMOOTH) + 1
    y0, y1 = max(0, ys.min() - pad), min(region.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(region.shape[1], xs.max() + pad + 1)
    b = np.asarray(blurred[y0:y1, x0:x1], np.float64)
    rest = np.asarray(restored[y0:y1, x0:x1], np.float64)
    m = region[y0:y1, x0:x1]
    sigma = noise_sigma(b, m)
    # white noise smoothed by a Gaussian of sigma s keeps 1 / (2 sqrt(pi) s) of its std
    coarse_limit = _Z * sigma / (2 * np.sqrt(np.pi) * _SMOOTH) + _MODEL_SLACK
    rms_limit = _RMS_FACTOR * sigma + _MODEL_SLACK
    unexplained = np.ones(b.shape, bool)
    for psf in psfs:
        h = psf.shape[0] // 2
        resid = b - signal.fftconvolve(np.pad(rest, h, mode="reflect"), psf, mode="valid")
        # two ways to be unexplained: a coarse difference (structure moved, removed or added
        # at the scale of a few pixels) and too much fine residual energy (invented texture)
        coarse = np.abs(ndimage.gaussian_filter(resid, _SMOOTH))
        local_rms = np.sqrt(ndimage.gaussian_filter(resid ** 2, 2 * _SMOOTH))
        unexplained &= (coarse > coarse_limit) | (local_rms > rms_limit)
    # the region's edge mixes in the outside's blur: judge its inside
    inner = ndimage.binary_erosion(m, iterations=max(1, int(round(estimate.radius_px))))
    judged = inner if inner.sum() >= 64 else m
    bad = unexplained & judged
    share = float(bad.sum() / max(1, judged.sum()))
    verdict = "check" if share > _FLAG_SHARE else "consistent with the input"
    full = np.zeros(region.shape, bool)
    full[y0:y1, x0:x1] = bad
    return TrustCheck(verdict, share, sigma, estimate.radius_px,
                      disagree_map=full[ys.min():ys.max() + 1, xs.min():xs.max() + 1],
                      map_origin=(int(ys.min()), int(xs.min())))


def disagreement_map(reports: Sequence["RegionReport"], shape: tuple[int, int]) -> np.ndarray:
    """One bool (Y, X) map of every region's pixels the input does not explain (for display)."""
    out = np.zeros(shape, bool)
    for r in reports:
        m = r.check.disagree_map
        if m is None:
            continue
        y, x = r.check.map_origin
        out[y:y + m.shape[0], x:x + m.shape[1]] |= m
    return out


def region_line(blur_words: str, verdict_words: str) -> str:
    """The blur and the verdict of one region in one line (the terminal, the app's log). The
    verdict on a region that already looks sharp says so itself: the blur's words, which say
    it too, are left out."""
    if verdict_words == TrustCheck("already looks sharp", None, None, None).words():
        return verdict_words
    return f"{blur_words}; {verdict_words}"


@dataclass
class RegionReport:
    """What deblur can say about one restored region: its blur and the trust check."""

    label: str
    estimate: BlurEstimate
    check: TrustCheck

    def as_dict(self) -> dict:
        e, c = self.estimate, self.check
        return {"region": self.label, "blur": e.words(), "radius_px": e.radius_px,
                "radius_range_px": [e.low_px, e.high_px], "confidence": e.confidence,
                "defocus_um": e.defocus_um, "verdict": c.verdict, "verdict_words": c.words(),
                "disagree_share": c.disagree, "noise": c.noise}


def region_checks(before: np.ndarray, after: np.ndarray, rois: RoiSet | None,
                  labels: Sequence[str] = ()) -> list[RegionReport]:
    """Blur estimate and trust check of each ROI of one plane (Y, X) or RGB plane (Y, X, S,
    judged on the mean intensity), the input and its restoration. Without ROIs there is no
    in-focus part to compare with: the whole image is "not checked"."""
    from core.blur_estimate import estimate_regions
    from core.normalize import normalize, percentile_params
    from core.roi import roi_mask

    b = np.asarray(before, np.float32)
    a = np.asarray(after, np.float32)
    if b.ndim == 3:
        b, a = b.mean(axis=-1), a.mean(axis=-1)
    if rois is None or not rois.rois:
        none = BlurEstimate(None, reason="no regions marked, so no in-focus part to compare with")
        return [RegionReport("Whole image", none, TrustCheck("not checked", None, None, None))]
    params = percentile_params(b)
    bn, an = normalize(b, params), normalize(a, params)
    out = []
    for i, (roi, est) in enumerate(zip(rois.rois, estimate_regions(b, rois))):
        region = roi_mask(RoiSet([roi], feather=0), b.shape) > 0
        if not region.any():
            continue
        label = labels[i] if i < len(labels) else f"Region {i + 1}"
        out.append(RegionReport(label, est, check_region(bn, an, region, est)))
    return out
