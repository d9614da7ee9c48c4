"""Losses shared by the trainers: pure functions of tensors, no state, no pretrained weights.

- LSGAN (Mao et al. 2017): ``lsgan_d_loss(real_scores, fake_scores)`` and
  ``lsgan_g_loss(fake_scores)``, used by CycleGAN and COMI (PatchGAN score maps).
- The replacement for COMI's VGG19 perceptual loss. VGG19 needs ImageNet weights we cannot
  download, and ImageNet features are a poor fit for single-channel microscopy anyway. We use
  three terms that each see what a perceptual loss is meant to see, none needing pretrained
  weights:

  * ``ms_ssim_loss`` - 1 - SSIM averaged over 3 dyadic scales (local structure and contrast at
    several sizes; Zhao et al. 2017 show SSIM-type losses beat L2 for restoration);
  * ``fourier_amplitude_loss`` - L1 between log-amplitude spectra: defocus is a low-pass filter,
    so lost high frequencies show up directly (as in focal-frequency / FFT losses, Jiang et al.
    2021), and log-amplitude weights the weak high-frequency bands fairly;
  * ``feature_matching_loss`` - L1 between the discriminator's intermediate activations for
    real and generated images (Salimans et al. 2016; pix2pixHD), i.e. a perceptual loss whose
    feature extractor is trained on *our* data.

  ``perceptual_loss(fake, real, fake_feats, real_feats)`` combines them with
  ``PERCEPTUAL_WEIGHTS``; the exporter records this in the card (comi.CARD_NOTES).

Conventions: images (N, C, H, W) in normalised units (~0..1); every loss returns a scalar,
is 0 for identical inputs, is computed in float32 even under autocast, and is differentiable.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["lsgan_d_loss", "lsgan_g_loss", "ssim", "ms_ssim_loss", "fourier_amplitude_loss",
           "feature_matching_loss", "structure_loss", "perceptual_loss", "PERCEPTUAL_WEIGHTS"]

PERCEPTUAL_WEIGHTS: dict[str, float] = {"ms_ssim": 1.0, "fourier": 0.1, "feature_matching": 1.0}


# ----------------------------------------------------------------------------- adversarial

def lsgan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Least-squares discriminator loss: 0.5 * (E[(D(real) - 1)^2] + E[D(fake)^2])."""
    real, fake = real.float(), fake.float()
    return 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean())


def lsgan_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """Least-squares generator loss: E[(D(G(x)) - 1)^2]."""
    return (fake.float() - 1).pow(2).mean()


# ----------------------------------------------------------------------------- SSIM

def gaussian_window(size: int, sigma: float, device=None) -> torch.Tensor:
    """1-D normalised Gaussian of odd `size`."""
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filter, per channel."""
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _float32(fn):
    """Run a loss with autocast off: under bf16, E[x^2] - E[x]^2 goes negative and SSIM to -inf."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        device_type = tensors[0].device.type if tensors else "cpu"
        with torch.autocast(device_type, enabled=False):
            return fn(*args, **kwargs)

    return wrapper


@_float32
def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5,
         data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004) over valid windows; the window shrinks for small images."""
    x, y = x.float(), y.float()
    window = min(window, x.shape[-1], x.shape[-2])
    window -= (window + 1) % 2                       # odd
    g = gaussian_window(window, sigma * window / 11 if window < 11 else sigma, x.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = _blur(x, g), _blur(y, g)
    sxx = _blur(x * x, g) - mx * mx
    syy = _blur(y * y, g) - my * my
    sxy = _blur(x * y, g) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean()


def ms_ssim_loss(x: torch.Tensor, y: torch.Tensor, scales: int = 3, data_range: float = 1.0) -> torch.Tensor:
    """1 - SSIM averaged over `scales` dyadic scales (2x average pooling between them).

    An average of per-scale SSIM rather than the product of powers of Wang et al. (2003):
    stable for negative contrast terms and for small patches. Scales whose image would be
    smaller than 8 px are skipped.
    """
    total, n = x.new_zeros((), dtype=torch.float32), 0
    for s in range(scales):
        if s > 0:
            if min(x.shape[-2:]) < 16:
                break
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        total = total + (1 - ssim(x, y, data_range=data_range))
        n += 1
    return total / n


# ----------------------------------------------------------------------------- Fourier

@_float32
def fourier_amplitude_loss(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """Mean |log(|F x| + eps) - log(|F y| + eps)| over the 2-D spectrum (orthonormal rFFT).

    A Hann window suppresses the edge discontinuity of the patch (which would otherwise put
    spurious energy on the axes of the spectrum). `eps` ~ the amplitude of faint noise.
    """
    x, y = x.float(), y.float()
    h, w = x.shape[-2:]
    win = torch.outer(torch.hann_window(h, periodic=False, device=x.device, dtype=torch.float32),
                      torch.hann_window(w, periodic=False, device=x.device, dtype=torch.float32))
    if h < 3 or w < 3:
        win = torch.ones_like(win)

    def log_amp(img: torch.Tensor) -> torch.Tensor:
        f = torch.fft.rfft2(img * win, norm="ortho")
        amp = torch.sqrt(f.real ** 2 + f.imag ** 2 + 1e-12)      # smooth at 0 (abs() is not)
        return torch.log(amp + eps)

    return (log_amp(x) - log_amp(y)).abs().mean()


# ----------------------------------------------------------------------------- discriminator features

def feature_matching_loss(fake_feats: Sequence[torch.Tensor],
                          real_feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean L1 between discriminator activations of generated and real images (real detached).

    Get the features with ``disc(x, features=True)`` (see `PatchDiscriminator`).
    """
    if len(fake_feats) != len(real_feats) or not fake_feats:
        raise ValueError("feature_matching_loss needs two equally long, non-empty feature lists")
    terms = [(f.float() - r.detach().float()).abs().mean() for f, r in zip(fake_feats, real_feats)]
    return torch.stack(terms).mean()


# ----------------------------------------------------------------------------- combined

def structure_loss(fake: torch.Tensor, real: torch.Tensor, ms_ssim_weight: float = 1.0,
                   fourier_weight: float = 0.1) -> torch.Tensor:
    """The weight-free part of the perceptual replacement: MS-SSIM loss + Fourier log-amplitude."""
    return (ms_ssim_weight * ms_ssim_loss(fake, real)
            + fourier_weight * fourier_amplitude_loss(fake, real))


def perceptual_loss(fake: torch.Tensor, real: torch.Tensor,
                    fake_feats: Sequence[torch.Tensor] | None = None,
                    real_feats: Sequence[torch.Tensor] | None = None,
                    weights: dict[str, float] | None = None) -> torch.Tensor:
    """COMI's perceptual term without VGG: MS-SSIM + Fourier amplitude (+ feature matching).

    Feature matching is added when discriminator features of both images are given.
    """
    w = {**PERCEPTUAL_WEIGHTS, **(weights or {})}
    loss = structure_loss(fake, real, w["ms_ssim"], w["fourier"])
    if fake_feats is not None and real_feats is not None and w["feature_matching"]:
        loss = loss + w["feature_matching"] * feature_matching_loss(fake_feats, real_feats)
    return loss
