"""Time-conditioned U-Net for the conditional DDPM (after lucidrains/denoising-diffusion-pytorch).

Reads top to bottom: timestep embedding, a residual block with FiLM time conditioning, the
U-Net. Input (N, in_channels, H, W) for any H, W (reflect-padded internally to a multiple of
``2**(len(dim_mults) - 1)`` and cropped back) plus timesteps (N,) -> (N, out_channels, H, W).

Tiling-friendly by construction
-------------------------------
- Normalisation is per-pixel LayerNorm (`LayerNorm2d`, normalises the channels of each pixel),
  not GroupNorm: GroupNorm statistics span the whole tile, so tiles would disagree with each
  other and with the whole frame; per-pixel norm keeps every output a function of its
  receptive field only, and batch-1 inference equals training.
- No self-attention by default (``attention=False``): attention is global over the tile, which
  makes outputs depend on the tile size. ``attention=True`` adds one attention block at the
  lowest resolution (for GPU presets); the DDPM sampler still averages over tile overlaps every
  step, so there are no seams either way, but tiled != whole-frame then.

How the DDPM uses it: ``UNet(in_channels=2, out_channels=1)``, input ``cat([x_t, cond])``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from core.models.layers import LayerNorm2d, pad_to_multiple

__all__ = ["UNet", "ResBlock", "Attention", "sinusoidal_embedding"]

# Sizes: see ``core.models.ddpm.ARCH_PRESETS`` (the U-Net is only used inside the DDPM).


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer sinusoidal embedding of (N,) timesteps -> (N, dim) float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([args.sin(), args.cos()], dim=-1)
    return F.pad(emb, (0, dim % 2))


class ResBlock(nn.Module):
    """norm-SiLU-conv, FiLM by the time embedding (scale, shift), norm-SiLU-conv, + skip."""

    def __init__(self, c_in: int, c_out: int, time_dim: int) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, 2 * c_out)
        self.norm2 = LayerNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.time(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return h + self.skip(x)


class Attention(nn.Module):
    """Multi-head self-attention over all pixels of a (low-resolution) feature map."""

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.norm = LayerNorm2d(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        o = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(o.transpose(-1, -2).reshape(n, c, h, w))


class UNet(nn.Module):
    """U-Net with timestep conditioning.

    Parameters
    ----------
    in_channels, out_channels : int
        2 -> 1 for the conditional DDPM (noisy image + blurred condition -> eps or v).
    dim : int
        Channels at full resolution; level i has ``dim * dim_mults[i]``.
    dim_mults : sequence of int
        One entry per resolution level (``len - 1`` 2x downsamplings).
    num_res_blocks : int
        Residual blocks per level in the encoder and in the decoder.
    attention : bool
        Self-attention at the lowest resolution (see module docstring: off for tiling).
    """

    def __init__(self, in_channels: int = 2, out_channels: int = 1, dim: int = 32,
                 dim_mults: Sequence[int] = (1, 2, 4), num_res_blocks: int = 1,
                 attention: bool = False) -> None:
        super().__init__()
        dim_mults = tuple(int(m) for m in dim_mults)
        self.config = dict(in_channels=in_channels, out_channels=out_channels, dim=dim,
                           dim_mults=list(dim_mults), num_res_blocks=num_res_blocks, attention=attention)
        self.factor = 2 ** (len(dim_mults) - 1)
        time_dim = 4 * dim
        self.time_mlp = nn.Sequential(nn.Linear(dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.stem = nn.Conv2d(in_channels, dim, 3, padding=1)
        chans = [dim * m for m in dim_mults]

        self.down_blocks, self.downs = nn.ModuleList(), nn.ModuleList()
        ch = dim
        for i, c in enumerate(chans):
            self.down_blocks.append(nn.ModuleList(
                [ResBlock(ch if j == 0 else c, c, time_dim) for j in range(num_res_blocks)]))
            ch = c
            last = i == len(chans) - 1
            self.downs.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))

        self.mid1 = ResBlock(ch, ch, time_dim)
        self.mid_attn = Attention(ch) if attention else nn.Identity()
        self.mid2 = ResBlock(ch, ch, time_dim)

        self.ups, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(chans))):
            c = chans[i]
            last = i == len(chans) - 1
            self.ups.append(nn.Identity() if last else nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, c, 3, padding=1)))
            self.up_blocks.append(nn.ModuleList(
                [ResBlock(2 * c if j == 0 else c, c, time_dim) for j in range(num_res_blocks)]))
            ch = c

        self.head_norm = LayerNorm2d(ch)
        self.head = nn.Conv2d(ch, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h_in, w_in = x.shape[-2:]
        x = pad_to_multiple(x, self.factor, min_multiples=2)
        t = t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t
        emb = self.time_mlp(sinusoidal_embedding(t, self.config["dim"]))

        x = self.stem(x)
        skips = []
        for blocks, down in zip(self.down_blocks, self.downs):
            for block in blocks:
                x = block(x, emb)
            skips.append(x)
            x = down(x)
        x = self.mid2(self.mid_attn(self.mid1(x, emb)), emb)
        for up, blocks in zip(self.ups, self.up_blocks):
            x = up(x)
            x = torch.cat([x, skips.pop().to(x.dtype)], dim=1)
            for block in blocks:
                x = block(x, emb)
        x = self.head(F.silu(self.head_norm(x)))
        return x[..., :h_in, :w_in]

    @property
    def receptive_radius(self) -> int:
        """Theoretical receptive-field radius in pixels (3x3 convs at each level)."""
        n_levels = len(self.config["dim_mults"])
        r = 1                                                       # stem
        for i in range(n_levels):
            s = 2 ** i
            r += 2 * self.config["num_res_blocks"] * s * 2          # encoder + decoder blocks
            if i < n_levels - 1:
                r += s + s                                          # downsample + upsample conv
        r += 2 * 2 * 2 ** (n_levels - 1)                            # two middle blocks
        return r + 1 + self.factor - 1                              # head; nearest-upsampling sub-grid
