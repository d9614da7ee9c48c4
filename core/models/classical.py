"""Richardson-Lucy deconvolution: the classical baseline every learned model must beat.

The blur radius (px) of the defocus PSF (a uniform disk, the geometric-optics defocus blur, or a
Gaussian) is measured on the image by default (``psf_radius=auto``: the regions against the
image's in-focus areas, ``core.blur_estimate``) or set by the user; the iterations run on each
tile in the frequency domain, through the same tiling path as the networks.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from core.psf import disk_psf, gaussian_psf
from core.models.base import Restorer
from core.models.spec import AUTO, ModelEntry, Param
from core.roi import RoiSet
from core.tiling import Tiler

__all__ = ["RichardsonLucy", "make_psf", "MODEL"]

# RL needs positive data; normalised images have their 1st percentile at 0, so a fixed shift
# keeps the dark background positive without changing the result's scale.
_OFFSET = 0.1
_EPS = 1e-6
#: the radius used when auto cannot measure one (no regions, no in-focus area): as one fixed
#: guess for every blurred case, 3 px lost least against the true radius on the tuning cases,
#: validation and simulated specimens (2 and 4 px more; docs/BENCHMARKS.md)
FALLBACK_RADIUS = 3.0
#: the disk RL deconvolves with, as a share of the blur radius (the effective radius of
#: `core.psf`, as `deblur estimate` reports it). A disk of the full radius over-sharpens a
#: widefield defocus blur, whose tails it lacks: on the training-split tuning cases 0.8x
#: restored +0.96 dB better (validation +1.18, simulated +1.49; docs/BENCHMARKS.md)
DISK_SCALE = 0.8


def make_psf(radius: float, shape: str = "disk") -> np.ndarray:
    """The PSF RL deconvolves a defocus blur of this radius (px) with (unit sum)."""
    if shape == "gaussian":
        return gaussian_psf(max(radius, 0.3) / 2.0)
    return disk_psf(max(DISK_SCALE * radius, 0.5))


class RichardsonLucy(Restorer):
    """Richardson-Lucy with a known PSF, computed per tile with FFT convolutions."""

    name = "richardson-lucy"

    def __init__(self, psf: np.ndarray | None, iterations: int = 5,
                 device: torch.device = torch.device("cpu"), shape: str = "disk") -> None:
        self.iterations = int(iterations)
        self.device = device
        self.shape = shape
        #: how the PSF was chosen, in plain words (shown after a run; "auto" fills it in)
        self.psf_note = ""
        self.auto = psf is None
        self._set_psf(make_psf(FALLBACK_RADIUS, shape) if psf is None else psf)

    def _set_psf(self, psf: np.ndarray) -> None:
        if psf.ndim != 2 or psf.shape[0] % 2 == 0 or psf.shape[1] % 2 == 0:
            raise ValueError("the PSF must be a 2-D array of odd size")
        self.psf = torch.as_tensor(psf / psf.sum(), dtype=torch.float32)
        self.radius = psf.shape[0] // 2
        # influence of a pixel spreads by about one PSF radius per few iterations; beyond
        # this margin the tiled result differs from the whole frame by well under a grey level
        self.margin = int(min(128, max(16, 3 * self.radius + 2 * math.isqrt(self.iterations) * self.radius)))
        self._otf_cache: dict[tuple[int, int], torch.Tensor] = {}

    def prepare(self, plane: np.ndarray, rois: RoiSet | None) -> None:
        """psf_radius=auto: the blur of the regions measured against the image's in-focus
        areas (`core.blur_estimate`; the median over regions), else the fallback radius."""
        if not self.auto:
            return
        from core.blur_estimate import estimate_regions

        found = [e.radius_px for e in estimate_regions(plane, rois)] if rois is not None and rois.rois else []
        found = [r for r in found if r is not None]
        if found:
            radius = float(np.median(found))
            self.psf_note = f"blur radius estimated from the image: {radius:.1f} px"
        else:
            radius = FALLBACK_RADIUS
            why = "no regions marked" if rois is None or not rois.rois else "the blur could not be measured"
            self.psf_note = f"blur radius {radius:g} px ({why}; set it yourself for a better result)"
        self._set_psf(make_psf(max(radius, 0.5), self.shape))

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

    def iterate(self, data: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """`iterations` RL steps on tiles (N, 1, h, w) of normalised `data`, starting from
        `start`: the data itself for deconvolution, a network's result for the engine's
        "Match the input" (`core.input_match`)."""
        pad = self.radius
        d = torch.clamp(data.float() + _OFFSET, min=_EPS)
        otf = self._otf(d.shape[-2] + 2 * pad, d.shape[-1] + 2 * pad)
        u = torch.clamp(start.float() + _OFFSET, min=_EPS)
        for _ in range(self.iterations):
            est = self._convolve(u, otf, pad, transpose=False).clamp_min(_EPS)
            u = u * self._convolve(d / est, otf, pad, transpose=True)
        return u - _OFFSET

    def forward_tiles(self, batch: torch.Tensor) -> torch.Tensor:
        """RL iterations on a batch of tiles (N, 1, h, w) of normalised data."""
        return self.iterate(batch, batch)

    def restore_plane(self, x: np.ndarray, tiler: Tiler, seed: int = 0,
                      blur: np.ndarray | None = None) -> np.ndarray:
        out = tiler.map(self.forward_tiles, torch.from_numpy(np.ascontiguousarray(x, np.float32))[None])
        return out[0].numpy()


def _build(net: None, card: dict, device: torch.device, psf_radius: float | str, iterations: int,
           psf_shape: str) -> RichardsonLucy:
    psf = None if psf_radius == AUTO else make_psf(float(psf_radius), psf_shape)
    return RichardsonLucy(psf, iterations=iterations, device=device, shape=psf_shape)


MODEL = ModelEntry(
    name="richardson-lucy", kind="classical", display_name="Richardson-Lucy", order=3,
    summary=("Classical deconvolution (Richardson-Lucy) with a defocus blur measured on the image "
             "(or the radius you set); no training, a baseline to compare against."),
    good_for="a predictable baseline: classical deconvolution that adds nothing beyond the "
             "blur you describe.",
    caution="a wrong blur radius gives rings around edges and more noise; the measured radius "
            "needs in-focus areas outside the regions.",
    build=_build,
    params={
        "psf_radius": Param(AUTO, float, "blur radius of the defocus PSF in pixels, or auto: "
                            "measured on the regions against the image's in-focus areas",
                            label="Blur radius (px)", min=0.5, max=60.0, auto=True),
        "iterations": Param(5, int, "Richardson-Lucy iterations (more = sharper, noisier; 5 "
                            "chosen on the tuning cases, where 30 made real images worse)",
                            label="Iterations", min=1, max=500),
        "psf_shape": Param("disk", str, "PSF shape: disk (defocus) or gaussian",
                           label="Blur shape", choices=("disk", "gaussian")),
    },
)
