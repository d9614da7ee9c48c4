"""Image-quality metrics shared by training validation, `deblur bench` and the GUI.

Full-reference metrics (PSNR, SSIM) compare a restoration with the sharp original; they are what
validation and benchmarks report. The no-reference sharpness score lets the GUI and the focus tools
rank regions when no sharp original exists. All functions take numpy arrays (or tensors, which are
moved to numpy) indexed ``[..., y, x]`` and return plain floats.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import ndimage
from skimage.metrics import structural_similarity

from core.roi import RoiSet, roi_mask

__all__ = ["psnr", "ssim", "sharpness", "region_sharpness", "sample_spread", "batch_metrics"]


def _as_float(x: Any) -> np.ndarray:
    """Tensors and integer arrays become float64 numpy arrays (metrics must not overflow)."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _check_pair(pred: np.ndarray, target: np.ndarray) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {pred.shape} vs {target.shape}")
    if pred.ndim < 2:
        raise ValueError("images need at least two dimensions (y, x)")


def _range(target: np.ndarray, data_range: float | None) -> float:
    """The data range of the reference, so that PSNR is comparable across normalisations."""
    if data_range is not None:
        if data_range <= 0:
            raise ValueError("data_range must be positive")
        return float(data_range)
    span = float(target.max() - target.min())
    return span if span > 0 else 1.0


def psnr(pred: Any, target: Any, data_range: float | None = None,
         mask: Any | None = None) -> float:
    """Peak signal-to-noise ratio in dB of `pred` against `target`.

    Parameters
    ----------
    pred, target : array_like
        Same shape, at least (y, x).
    data_range : float, optional
        Peak-to-peak range of the signal. Default: the range of `target` (so PSNR of two images
        normalised to [0, 1] uses 1.0; for uint16 pass 65535 when comparing raw counts).
    mask : array_like, optional
        Boolean/weight mask broadcastable to the images: only pixels with mask > 0 count (used by
        the benchmark to score inside and outside ROIs separately).

    Returns
    -------
    float
        PSNR in dB; ``inf`` for identical images.
    """
    p, t = _as_float(pred), _as_float(target)
    _check_pair(p, t)
    rng = _range(t, data_range)
    err = (p - t) ** 2
    if mask is not None:
        m = np.broadcast_to(_as_float(mask) > 0, err.shape)
        if not m.any():
            raise ValueError("mask selects no pixels")
        mse = float(err[m].mean())
    else:
        mse = float(err.mean())
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(rng * rng / mse))


def ssim(pred: Any, target: Any, data_range: float | None = None) -> float:
    """Structural similarity (Wang et al. 2004, scikit-image, Gaussian window sigma 1.5).

    Leading dimensions (channels, planes, batch) are scored plane by plane and averaged, because a
    microscopy stack's planes are separate images, not colour channels of one.

    Parameters
    ----------
    pred, target : array_like
        Same shape, at least (y, x); each plane at least 7 x 7 pixels.
    data_range : float, optional
        As in :func:`psnr`; default the range of `target`.
    """
    p, t = _as_float(pred), _as_float(target)
    _check_pair(p, t)
    rng = _range(t, data_range)
    p2 = p.reshape(-1, *p.shape[-2:])
    t2 = t.reshape(-1, *t.shape[-2:])
    if min(p2.shape[-2:]) < 7:
        raise ValueError("SSIM needs planes of at least 7 x 7 pixels")
    vals = [structural_similarity(a, b, data_range=rng, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False)
            for a, b in zip(p2, t2)]
    return float(np.mean(vals))


#: Scale (px) of the Laplacian of Gaussian in `sharpness`: above pixel noise, below cell edges.
SHARPNESS_SIGMA = 1.5


def sharpness(image: Any, mask: Any | None = None, sigma: float = SHARPNESS_SIGMA) -> float:
    """No-reference sharpness: variance of the Laplacian of Gaussian over the mean intensity squared.

    Dividing by the squared mean makes the score independent of exposure and bit depth, so a
    restored region can be compared with its own blurred input. Higher is sharper. Leading
    dimensions are averaged plane by plane. The Gaussian (`sigma` px) keeps pixel noise out of
    the score: with a bare Laplacian, a restoration that removes noise scored *less* sharp than
    its noisy input (nuclei sample, COMI: -80 %) though its edges were 3x steeper (+200 % here).
    """
    x = _as_float(image)
    if x.ndim < 2:
        raise ValueError("images need at least two dimensions (y, x)")
    planes = x.reshape(-1, *x.shape[-2:])
    m = None if mask is None else (_as_float(mask) > 0)
    scores = []
    for plane in planes:
        lap = (ndimage.gaussian_laplace(plane, sigma, mode="reflect") if sigma > 0
               else ndimage.laplace(plane, mode="reflect"))
        vals, ref = (lap, plane) if m is None else (lap[m], plane[m])
        mean = float(np.abs(ref).mean()) if ref.size else 0.0
        scores.append(float(vals.var()) / (mean * mean + 1e-12))
    return float(np.mean(scores))


def batch_metrics(restored: Any, blurred: Any, sharp: Any,
                  data_range: float | None = 1.0) -> dict[str, float]:
    """PSNR/SSIM of restored and of blurred against sharp, averaged over a batch (N, C, H, W).

    Training validation logs both pairs: the gain over the blurred input is what matters, since the
    absolute PSNR depends on how much of each patch was blurred at all.
    """
    r, b, s = _as_float(restored), _as_float(blurred), _as_float(sharp)
    out = {"psnr": [], "ssim": [], "psnr_blurred": [], "ssim_blurred": []}
    for ri, bi, si in zip(r, b, s):
        out["psnr"].append(psnr(ri, si, data_range))
        out["ssim"].append(ssim(ri, si, data_range))
        out["psnr_blurred"].append(psnr(bi, si, data_range))
        out["ssim_blurred"].append(ssim(bi, si, data_range))
    # identical pairs give inf PSNR; cap so means and CSV logs stay finite
    return {k: float(np.mean(np.minimum(v, 100.0))) for k, v in out.items()}


def region_sharpness(before: np.ndarray, after: np.ndarray, rois: RoiSet | None,
                     labels: Sequence[str] = ()) -> list[tuple[str, float, float]]:
    """(label, sharpness before, sharpness after) inside each ROI of one plane (Y, X) or RGB
    plane (Y, X, S), scored on the mean intensity; the whole image when there are no ROIs.
    Regions under 3 px across or outside the image are left out."""
    if rois is None or not rois.rois:
        return [("Whole image", sharpness(_mono(before)), sharpness(_mono(after)))]
    out = []
    h, w = before.shape[:2]
    for i, roi in enumerate(rois.rois):
        x0, y0, x1, y1 = roi.bounds()
        r0, r1 = max(0, int(np.floor(y0))), min(h, int(np.ceil(y1)))
        c0, c1 = max(0, int(np.floor(x0))), min(w, int(np.ceil(x1)))
        if r1 - r0 < 3 or c1 - c0 < 3:
            continue
        single = RoiSet([roi], feather=0)
        mask = roi_mask(single, (h, w))[r0:r1, c0:c1] > 0
        if not mask.any():
            continue
        b = _mono(before[r0:r1, c0:c1])
        a = _mono(after[r0:r1, c0:c1])
        label = labels[i] if i < len(labels) else f"Region {i + 1}"
        out.append((label, sharpness(b, mask), sharpness(a, mask)))
    return out


def _mono(plane: np.ndarray) -> np.ndarray:
    """RGB planes are scored on their mean intensity."""
    return plane.mean(axis=-1) if plane.ndim == 3 else plane


def sample_spread(samples: Sequence[np.ndarray]) -> np.ndarray:
    """Per-pixel standard deviation over several results of the same restoration that differ
    only by chance (a diffusion model's seeds), float32: where the samples disagree, the model
    is guessing; where they agree (0), the input decided. RGB planes: mean over the samples."""
    stack = np.stack([np.asarray(s, dtype=np.float32) for s in samples])
    if stack.ndim == 4:
        stack = stack.mean(axis=-1)
    if len(stack) < 2:
        raise ValueError("the spread needs at least two samples")
    return stack.std(axis=0).astype(np.float32)
