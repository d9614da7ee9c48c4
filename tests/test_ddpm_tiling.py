"""DDPM tiled sampling: no seams at tile borders, reproducible with a seed, equal to whole-frame.

A 96x160 region, tile 64 / overlap 16 (6 tiles). The seam measure compares the mean absolute
gradient across tile-core borders with the gradient inside the tiles. Two denoisers:

- a tiny random-weights U-Net DDPM (the real network code path);
- an analytic local denoiser (x0 estimate = gain * Gaussian(x_t)) whose samples are smooth,
  seed-dependent fields: on those a seam would be obvious, and a negative control (tiles
  sampled independently and pasted) shows that the measure catches it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.models.ddpm import ConditionalDDPM, DDPMRestorer
from core.tiling import Tiler, tile_starts

H, W, TILE, OVERLAP, STEPS = 96, 160, 64, 16, 4



class SmoothDenoiser(torch.nn.Module):
    """Stands in for the U-Net: v such that the x0 estimate is gain * Gaussian(x_t); local (radius 8)."""

    factor = 1
    receptive_radius = 8

    def __init__(self, alphas_cumprod: torch.Tensor, sigma: float = 2.5, gain: float = 4.0) -> None:
        super().__init__()
        x = torch.arange(-8, 9, dtype=torch.float32)
        g = torch.exp(-x ** 2 / (2 * sigma ** 2))
        self.register_buffer("g", g / g.sum())
        self.register_buffer("ac", alphas_cumprod)
        self.gain = gain

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x_t = x[:, :1]
        a = self.ac[t.long()].view(-1, 1, 1, 1)
        b = F.conv2d(F.pad(x_t, (8, 8, 8, 8), mode="replicate"), self.g.view(1, 1, 1, -1))
        b = F.conv2d(b, self.g.view(1, 1, -1, 1))
        return (a.sqrt() * x_t - self.gain * a.sqrt() * b) / (1 - a).clamp_min(1e-4).sqrt()


# without a predictor (diffusion refines the blurred image) and with one (predict-and-refine:
# the predictor's single pass is tiled too, then the diffusion refines its estimate)
PREDICTORS = {"plain": None, "predictor": dict(kind="unet", ngf=4, n_down=2)}


@pytest.fixture(scope="module", params=sorted(PREDICTORS))
def unet_restorer(request) -> DDPMRestorer:
    torch.manual_seed(0)
    net = ConditionalDDPM(dim=8, dim_mults=(1, 2), num_res_blocks=1, timesteps=100,
                          predictor=PREDICTORS[request.param])
    return DDPMRestorer(net, steps=STEPS, amp=False)


@pytest.fixture(scope="module")
def smooth_restorer() -> DDPMRestorer:
    net = ConditionalDDPM(dim=8, dim_mults=(1, 2), timesteps=100)
    net.unet = SmoothDenoiser(net.alphas_cumprod)
    return DDPMRestorer(net, steps=STEPS, amp=False)


@pytest.fixture(scope="module")
def blurred() -> np.ndarray:
    from scipy.ndimage import gaussian_filter
    rng = np.random.default_rng(0)
    return gaussian_filter(rng.random((H, W)), 3).astype(np.float32) * 4 - 1.5


def _tiler(restorer: DDPMRestorer, tile: int = TILE) -> Tiler:
    return Tiler(tile=tile, overlap=OVERLAP, margin=restorer.margin, align=restorer.align)


def _borders(length: int) -> np.ndarray:
    """Indices i of gradient steps (i -> i+1) that cross a tile-core edge."""
    starts = tile_starts(length, TILE, OVERLAP)
    edges = {s for s in starts if s > 0} | {s + TILE for s in starts if s + TILE < length}
    return np.array(sorted(edges)) - 1


def _seam_ratio(img: np.ndarray) -> float:
    """Mean |gradient| across tile borders / mean |gradient| inside tiles (worst of x and y)."""
    ratios = []
    for axis, length in ((1, W), (0, H)):
        g = np.abs(np.diff(img, axis=axis)).mean(axis=1 - axis)
        border = _borders(length)
        inside = np.setdiff1d(np.arange(len(g)), np.concatenate([border - 1, border, border + 1]))
        ratios.append(g[border].mean() / g[inside].mean())
    return float(max(ratios))


def _pasted(restorer: DDPMRestorer, blurred: np.ndarray) -> np.ndarray:
    """Negative control: every tile sampled on its own (own noise) and pasted: seams expected."""
    out = np.zeros((H, W), np.float32)
    for k, (y0, y1, x0, x1) in enumerate(Tiler(tile=TILE, overlap=OVERLAP).grid((H, W))):
        out[y0:y1, x0:x1] = restorer.restore_plane(blurred[y0:y1, x0:x1], Tiler(tile=256, overlap=0), seed=100 + k)
    return out


def test_unet_ddpm_tiles_add_no_seam(unet_restorer, blurred):
    tiler = _tiler(unet_restorer)
    assert tiler.n_tiles((H, W)) == 6
    tiled = unet_restorer.restore_plane(blurred, tiler, seed=3)
    assert tiled.shape == (H, W) and tiled.dtype == np.float32 and np.isfinite(tiled).all()
    whole = unet_restorer.restore_plane(blurred, _tiler(unet_restorer, tile=256), seed=3)
    # the sampled detail (out - blurred) is where a seam would show: no larger across borders
    ratio, ratio_whole = _seam_ratio(tiled - blurred), _seam_ratio(whole - blurred)
    assert ratio <= 1.15 and ratio <= ratio_whole * 1.02, (ratio, ratio_whole)
    detail = np.abs(whole - blurred).mean()
    assert np.abs(tiled - whole).mean() < 0.01 * detail


def test_smooth_samples_show_no_seam_and_the_measure_catches_pasted_tiles(smooth_restorer):
    flat = np.zeros((H, W), np.float32)
    tiled = smooth_restorer.restore_plane(flat, _tiler(smooth_restorer), seed=3)
    whole = smooth_restorer.restore_plane(flat, _tiler(smooth_restorer, tile=256), seed=3)
    assert tiled.std() > 0.05
    # a local denoiser whose reach fits in the margin: tiled sampling IS whole-frame sampling
    assert np.abs(tiled - whole).max() < 1e-5
    assert _seam_ratio(tiled) <= 1.2
    assert _seam_ratio(_pasted(smooth_restorer, flat)) > 3.0


def test_seeded(unet_restorer, blurred):
    tiler = _tiler(unet_restorer)
    a = unet_restorer.restore_plane(blurred, tiler, seed=3)
    assert np.array_equal(a, unet_restorer.restore_plane(blurred, tiler, seed=3))
    assert np.abs(a - unet_restorer.restore_plane(blurred, tiler, seed=4)).mean() > 1e-3


def test_restorer_runs_the_models_own_sampler(unet_restorer, blurred):
    one_tile = Tiler(tile=256, overlap=0, margin=0)               # the tile is exactly the region
    a = unet_restorer.restore_plane(blurred, one_tile, seed=5)
    ref = unet_restorer.net.sample(torch.from_numpy(blurred)[None, None], steps=STEPS, seed=5)[0, 0].numpy()
    assert np.abs(a - ref).max() < 1e-4


def test_eta_noise_is_seeded(blurred):
    torch.manual_seed(1)
    net = ConditionalDDPM(dim=8, dim_mults=(1, 2), timesteps=100)
    r = DDPMRestorer(net, steps=3, eta=1.0)
    a = r.restore_plane(blurred, _tiler(r), seed=1)
    assert np.array_equal(a, r.restore_plane(blurred, _tiler(r), seed=1))
    assert not np.array_equal(a, DDPMRestorer(net, steps=3, eta=0.0).restore_plane(blurred, _tiler(r), seed=1))
