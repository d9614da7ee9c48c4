"""Richardson-Lucy deconvolution: the classical baseline every learned model must beat.

The user sets the blur radius (px) of a defocus PSF (a uniform disk, the geometric-optics
defocus blur, or a Gaussian); the iterations run on each tile in the frequency domain, through
the same tiling path as the networks.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from core.psf import disk_psf, gaussian_psf
from core.models.base import Restorer
from core.models.spec import ModelEntry, Param
from core.tiling import Tiler

__all__ = ["RichardsonLucy", "make_psf", "MODEL"]

# RL needs positive data; normalised images have their 1st percentile at 0, so a fixed shift
# keeps the dark background positive without changing the result's scale.
_OFFSET = 0.1
_EPS = 1e-6


def make_psf(radius: float, shape: str = "disk") -> np.ndarray:
    """Defocus PSF of the given blur radius in pixels (unit sum)."""
    if shape == "gaussian":
        return gaussian_psf(max(radius, 0.3) / 2.0)
    return disk_psf(max(radius, 0.5))


class RichardsonLucy(Restorer):
    """Richardson-Lucy with a known PSF, computed per tile with FFT convolutions."""

    name = "richardson-lucy"

    def __init__(self, psf: np.ndarray, iterations: int = 30, device: torch.device = torch.device("cpu"),
                 ) -> None:
        if psf.ndim != 2 or psf.shape[0] % 2 == 0 or psf.shape[1] % 2 == 0:
            raise ValueError("the PSF must be a 2-D array of odd size")
        self.psf = torch.as_tensor(psf / psf.sum(), dtype=torch.float32)
        self.iterations = int(iterations)
        self.device = device
        self.radius = psf.shape[0] // 2
        # influence of a pixel spreads by about one PSF radius per few iterations; beyond
        # this margin the tiled result differs from the whole frame by well under a grey level
        self.margin = int(min(128, max(16, 3 * self.radius + 2 * math.isqrt(self.iterations) * self.radius)))
        self._otf_cache: dict[tuple[int, int], torch.Tensor] = {}

    def _otf(self, h: int, w: int) -> torch.Tensor:
        key = (h, w)
        if key not in self._otf_cache:
            kh, kw = self.psf.shape
            big = torch.zeros((h, w), dtype=torch.float32)
            big[:kh, :kw] = self.psf
            big = torch.roll(big, shifts=(-(kh // 2), -(kw // 2)), dims=(0, 1))
            self._otf_cache[key] = torch.fft.rfft2(big.to(self.device))
        return self._otf_cache[key]

    def _convolve(self, u: torch.Tensor, otf: torch.Tensor, pad: int, transpose: bool) -> torch.Tensor:
        up = F.pad(u, (pad, pad, pad, pad), mode="reflect" if pad < min(u.shape[-2:]) else "replicate")
        spec = torch.fft.rfft2(up)
        spec = spec * (otf.conj() if transpose else otf)
        out = torch.fft.irfft2(spec, s=up.shape[-2:])
        return out[..., pad:pad + u.shape[-2], pad:pad + u.shape[-1]]

    def forward_tiles(self, batch: torch.Tensor) -> torch.Tensor:
        """RL iterations on a batch of tiles (N, 1, h, w) of normalised data."""
        pad = self.radius
        d = torch.clamp(batch.float() + _OFFSET, min=_EPS)
        otf = self._otf(d.shape[-2] + 2 * pad, d.shape[-1] + 2 * pad)
        u = d.clone()
        for _ in range(self.iterations):
            est = self._convolve(u, otf, pad, transpose=False).clamp_min(_EPS)
            u = u * self._convolve(d / est, otf, pad, transpose=True)
        return u - _OFFSET

    def restore_plane(self, x: np.ndarray, tiler: Tiler, seed: int = 0) -> np.ndarray:
        out = tiler.map(self.forward_tiles, torch.from_numpy(np.ascontiguousarray(x, np.float32))[None])
        return out[0].numpy()


def _build(net: None, card: dict, device: torch.device, psf_radius: float, iterations: int,
           psf_shape: str) -> RichardsonLucy:
    return RichardsonLucy(make_psf(psf_radius, psf_shape), iterations=iterations, device=device)


MODEL = ModelEntry(
    name="richardson-lucy", kind="classical", display_name="Richardson-Lucy", order=3,
    summary=("Classical deconvolution (Richardson-Lucy) with a defocus blur of the radius you set; "
             "no training, a baseline to compare against."),
    good_for="a predictable baseline: classical deconvolution that adds nothing beyond the "
             "blur you describe.",
    caution="you set the blur radius; a wrong radius gives rings around edges and more noise.",
    build=_build,
    params={
        "psf_radius": Param(4.0, float, "blur radius of the defocus PSF in pixels",
                            label="Blur radius (px)", min=0.5, max=60.0),
        "iterations": Param(30, int, "Richardson-Lucy iterations (more = sharper, noisier)",
                            label="Iterations", min=1, max=500),
        "psf_shape": Param("disk", str, "PSF shape: disk (defocus) or gaussian",
                           label="Blur shape", choices=("disk", "gaussian")),
    },
)
