"""Building blocks shared by every network: padding to the down-sampling grid, a per-pixel
LayerNorm, the norm factory, conv-norm-ReLU and the CycleGAN weight initialisation.

Why a per-pixel LayerNorm and not InstanceNorm
----------------------------------------------
InstanceNorm (the CycleGAN reference) and GroupNorm divide by statistics of the whole input, so
a tile and the full frame give different outputs for the same pixel and neighbouring tiles
disagree at their borders; BatchNorm is worse (batch-1 inference differs from training).
`LayerNorm2d` normalises the channel vector *of each pixel* (as ConvNeXt and NAFNet do), so
every output pixel depends only on its receptive field: tiling with a halo is exact up to the
part of the receptive field the halo cuts, and batch-1 tile inference equals training.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["pad_to_multiple", "lowpass_reach", "gaussian_kernel1d", "gaussian_lowpass",
           "keep_brightness", "LayerNorm2d", "make_norm", "init_weights", "conv_norm_act"]


def pad_to_multiple(x: torch.Tensor, multiple: int, min_multiples: int = 1) -> torch.Tensor:
    """Pad (..., H, W) at the bottom/right up to a multiple of `multiple`, and to at least
    ``min_multiples * multiple``; crop the result back with ``y[..., :H, :W]``.

    Networks that down-sample by `multiple` need it. Reflect padding where the image is large
    enough (no artificial edge), replicate otherwise (reflect needs pad < size).
    """
    h, w = x.shape[-2:]
    th = max(-(-h // multiple) * multiple, min_multiples * multiple)
    tw = max(-(-w // multiple) * multiple, min_multiples * multiple)
    ph, pw = th - h, tw - w
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def lowpass_reach(sigma: float) -> int:
    """How far (px) `gaussian_lowpass` reads around a pixel: the halo a tile needs for it."""
    return max(1, int(math.ceil(3 * sigma)))


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    """The normalised 1-D Gaussian of `sigma` px, `lowpass_reach(sigma)` either side."""
    r = lowpass_reach(sigma)
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-t * t / (2 * sigma * sigma))
    return k / k.sum()


def gaussian_lowpass(x: torch.Tensor, sigma: float, kernel: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """(N, C, H, W) smoothed by a Gaussian of `sigma` px (separable; mirrored at the edges,
    replicated where the image is smaller than the kernel's reach). `kernel`: a precomputed
    `gaussian_kernel1d(sigma)` (a module's buffer, so that ONNX export sees a constant)."""
    k = (gaussian_kernel1d(sigma) if kernel is None else kernel).to(x.device, x.dtype)
    r = k.shape[0] // 2
    c = x.shape[1]
    h, w = x.shape[-2:]
    mode = "reflect" if r < h and r < w else "replicate"
    y = F.pad(x, (r, r, r, r), mode=mode)
    kx, ky = k.view(1, 1, 1, -1), k.view(1, 1, -1, 1)
    if c > 1:
        kx, ky = kx.repeat(c, 1, 1, 1), ky.repeat(c, 1, 1, 1)
    return F.conv2d(F.conv2d(y, kx, groups=c), ky, groups=c)


def keep_brightness(x: torch.Tensor, y: torch.Tensor, sigma: float,
                    kernel: torch.Tensor | None = None) -> torch.Tensor:
    """`y` (a restoration of `x`) with its content above a Gaussian of `sigma` px replaced by
    `x`'s: defocus spreads light but neither adds nor removes it. The engine
    (`NetworkRestorer`) and the bioimage.io tile network both call this."""
    return y + gaussian_lowpass(x - y, sigma, kernel)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel, for (N, C, H, W) tensors (see module doc).

    One fused ``F.layer_norm`` on the channels-last view (free for channels_last tensors), in
    float32 even under bf16 autocast, cast back to the input dtype.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1).float(), (x.shape[1],), self.weight.float(),
                         self.bias.float(), self.eps)
        return y.permute(0, 3, 1, 2).to(x.dtype)


def make_norm(kind: str, channels: int) -> nn.Module:
    """'layer' (per-pixel LayerNorm, default), 'instance' (tile-dependent!) or 'none'."""
    if kind == "layer":
        return LayerNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r} (use 'layer', 'instance' or 'none')")


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """CycleGAN initialisation: conv weights N(0, std), biases 0, norm scales 1."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def conv_norm_act(c_in: int, c_out: int, k: int, norm: str, stride: int = 1) -> nn.Sequential:
    """Reflect-padded conv -> norm -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, padding_mode="reflect"),
        make_norm(norm, c_out),
        nn.ReLU(inplace=True),
    )
