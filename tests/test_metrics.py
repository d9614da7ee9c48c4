"""core.metrics: known values, agreement with scikit-image, ordering of blur levels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from core.metrics import batch_metrics, psnr, sharpness, ssim


def _texture(rng: np.random.Generator, n: int = 64) -> np.ndarray:
    return ndimage.gaussian_filter(rng.random((n, n)), 1.0).astype(np.float32)


def test_psnr_known_value() -> None:
    a = np.zeros((8, 8))
    b = np.full((8, 8), 0.1)
    assert psnr(b, a, data_range=1.0) == pytest.approx(20.0)
    assert psnr(a, a, data_range=1.0) == float("inf")


def test_psnr_matches_skimage(rng: np.random.Generator) -> None:
    t = _texture(rng)
    p = t + rng.normal(0, 0.01, t.shape).astype(np.float32)
    ref = peak_signal_noise_ratio(t.astype(np.float64), p.astype(np.float64), data_range=1.0)
    assert psnr(p, t, data_range=1.0) == pytest.approx(ref, rel=1e-9)


def test_psnr_mask_and_tensor_input(rng: np.random.Generator) -> None:
    t = _texture(rng)
    p = t.copy()
    p[:, 32:] += 0.5
    mask = np.zeros_like(t, dtype=bool)
    mask[:, :32] = True
    assert psnr(p, t, 1.0, mask=mask) == float("inf")
    assert psnr(torch.from_numpy(p), torch.from_numpy(t), 1.0) == pytest.approx(psnr(p, t, 1.0))
    with pytest.raises(ValueError):
        psnr(p, t, 1.0, mask=np.zeros_like(mask))
    with pytest.raises(ValueError):
        psnr(p[:10], t)


def test_ssim_matches_skimage_and_stacks(rng: np.random.Generator) -> None:
    t = _texture(rng)
    p = ndimage.gaussian_filter(t, 2.0)
    ref = structural_similarity(p.astype(np.float64), t.astype(np.float64), data_range=1.0,
                                gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(p, t, 1.0) == pytest.approx(ref, rel=1e-9)
    assert ssim(t, t, 1.0) == pytest.approx(1.0)
    stack_p, stack_t = np.stack([p, t]), np.stack([t, t])
    assert ssim(stack_p, stack_t, 1.0) == pytest.approx((ref + 1.0) / 2)
    with pytest.raises(ValueError):
        ssim(np.zeros((4, 4)), np.zeros((4, 4)))


def test_more_blur_scores_worse(rng: np.random.Generator) -> None:
    t = _texture(rng, 96)
    mild, strong = ndimage.gaussian_filter(t, 1.0), ndimage.gaussian_filter(t, 3.0)
    assert psnr(mild, t, 1.0) > psnr(strong, t, 1.0)
    assert ssim(mild, t, 1.0) > ssim(strong, t, 1.0)
    assert sharpness(t) > sharpness(mild) > sharpness(strong)
    # exposure-independent: scaling the intensities does not change the score
    assert sharpness(t * 1000.0) == pytest.approx(sharpness(t), rel=1e-6)


def test_removing_noise_from_a_blurred_region_does_not_score_it_less_sharp(
        rng: np.random.Generator) -> None:
    """The compare view's sharpness must not reward pixel noise: a restoration that denoises a
    blurred region and steepens its edges reads as sharper, not blurrier."""
    t = ndimage.gaussian_filter(_texture(rng, 128), 1.5)
    blurred = ndimage.gaussian_filter(t, 3.0)
    noisy = blurred + rng.normal(0, 0.03, blurred.shape)
    restored = ndimage.gaussian_filter(t, 1.5)         # clean, halfway back to the original
    assert sharpness(restored) > sharpness(noisy) > 0
    assert sharpness(t) > sharpness(restored)


def test_batch_metrics_shows_gain(rng: np.random.Generator) -> None:
    sharp = np.stack([_texture(rng)[None] for _ in range(3)])
    blurred = np.stack([ndimage.gaussian_filter(s, (0, 2, 2)) for s in sharp])
    m = batch_metrics(sharp, blurred, sharp)
    assert m["psnr"] == 100.0 and m["ssim"] == pytest.approx(1.0)
    assert m["psnr_blurred"] < 40 and m["ssim_blurred"] < 1.0
