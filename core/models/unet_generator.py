"""A lean residual U-Net generator for COMI and CycleGAN: full-resolution skips, CPU-fast.

Why not the CycleGAN ResNet generator
-------------------------------------
The ResNet generator does all its work at 1/4 resolution and has no full-resolution path, so it
must rebuild every fine detail through two upsampling convolutions. Trained on defocus pairs it
stays at the identity for hundreds of steps, while a U-Net with skips learns at once
(``benchmarks/generator_probe.py``; the figures: docs/BENCHMARKS.md, "Design measurements").
Defocus removes exactly the fine detail, so the generator needs the skips.

Shape (``ngf=16, n_down=3``): per level two 3x3 convolutions (LeakyReLU) in the encoder, one in
the decoder; stride-2 3x3 convolutions down; 1x1 convolution + nearest upsampling up, *added* to
the skip (cheaper than concatenation, no checkerboard); a linear 3x3 head. Five levels
(``n_down=4``) give a receptive radius of 108 px (`receptive_radius`), enough for large ringed
defocus PSFs (the simulator's blur radii reach 40 px); its parameters sit mostly at the coarse
levels, where they are cheap.

No normalisation: every output pixel is a function of its receptive field only (tiled output
equals the whole frame given enough halo, batch-1 inference equals training) and there is no
float32 round trip under bf16 autocast. Zero padding (fastest on CPU); the tiler's halo hides it.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from core.models.layers import pad_to_multiple

__all__ = ["UNetGenerator"]


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1),
                         nn.LeakyReLU(0.1, inplace=True))


class UNetGenerator(nn.Module):
    """Residual U-Net image-to-image generator, any H and W (padded to ``2**n_down``).

    Parameters
    ----------
    in_channels, out_channels : int
        Image channels (1: one plane at a time).
    ngf : int
        Channels at full resolution; level i has ``ngf * 2**i``.
    widths : sequence of int, optional
        Channels per level (``n_down + 1`` entries), instead of doubling from `ngf`: e.g. a wider
        full-resolution level, where fine detail is rebuilt, without widening the coarse ones.
    n_down : int
        Number of 2x downsamplings (levels - 1).
    enc_convs, dec_convs : int
        3x3 convolutions per level in the encoder (also the bottleneck) and in the decoder.
    residual : bool
        ``out = x + g(x)`` (needs in_channels == out_channels).
    blur_channel : bool
        One more input channel after the image's: each pixel's region's measured blur
        (``core.blur_map``); the residual adds to the image channels only.
    kind : str
        Always "unet"; recorded in the card so `core.models.generators.make_generator` rebuilds it.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, ngf: int = 16, n_down: int = 3,
                 enc_convs: int = 2, dec_convs: int = 1, residual: bool = True,
                 kind: str = "unet", widths: Sequence[int] | None = None,
                 blur_channel: bool = False) -> None:
        super().__init__()
        if kind != "unet":
            raise ValueError(f"UNetGenerator is kind 'unet', not {kind!r}")
        if residual and in_channels != out_channels:
            raise ValueError("residual=True needs in_channels == out_channels")
        if n_down < 0 or enc_convs < 1 or dec_convs < 1:
            raise ValueError("n_down must be >= 0 and enc_convs, dec_convs >= 1")
        self.config = dict(kind="unet", in_channels=in_channels, out_channels=out_channels, ngf=ngf,
                           n_down=n_down, enc_convs=enc_convs, dec_convs=dec_convs, residual=residual)
        chans = [ngf * 2 ** i for i in range(n_down + 1)] if widths is None else [int(c) for c in widths]
        if len(chans) != n_down + 1 or min(chans) < 1:
            raise ValueError(f"widths needs n_down + 1 = {n_down + 1} positive channel counts, got {widths}")
        if widths is not None:                  # recorded only when set: older cards stay as they were
            self.config["widths"] = chans
        if blur_channel:
            self.config["blur_channel"] = True
        self.n_down, self.residual = n_down, residual
        self.in_channels, self.blur_channel = in_channels, bool(blur_channel)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        ch = in_channels + int(self.blur_channel)
        for i, c in enumerate(chans):
            self.encoders.append(nn.Sequential(*[_conv(ch if j == 0 else c, c) for j in range(enc_convs)]))
            ch = c
            if i < n_down:
                self.downs.append(_conv(c, chans[i + 1], stride=2))
                ch = chans[i + 1]
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[i + 1], chans[i], 1), nn.Upsample(scale_factor=2, mode="nearest"))
            for i in range(n_down))
        self.decoders = nn.ModuleList(
            nn.Sequential(*[_conv(chans[i], chans[i]) for _ in range(dec_convs)]) for i in range(n_down))
        self.head = nn.Conv2d(chans[0], out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = pad_to_multiple(x, 2 ** self.n_down, min_multiples=2) if self.n_down else x
        skips = []
        for i, enc in enumerate(self.encoders):
            y = enc(y if i == 0 else self.downs[i - 1](y))
            skips.append(y)
        skips.pop()
        for i in reversed(range(self.n_down)):
            y = self.decoders[i](self.ups[i](y) + skips.pop())
        y = self.head(y)[..., :h, :w]
        if not self.residual:
            return y
        return (x[:, :self.in_channels] if self.blur_channel else x) + y.to(x.dtype)

    @property
    def receptive_radius(self) -> int:
        """Theoretical receptive-field radius in pixels."""
        enc, dec, n = self.config["enc_convs"], self.config["dec_convs"], self.n_down
        r = sum(enc * 2 ** i for i in range(n + 1))        # encoder 3x3 convs at each level
        r += sum(2 ** i for i in range(n))                 # stride-2 convs
        r += sum(dec * 2 ** i for i in range(n))           # decoder 3x3 convs
        return r + 1 + 2 ** n - 1                          # head; nearest upsampling sub-grid

    @property
    def margin(self) -> int:
        """Halo per tile: half the receptive radius rounded up to 8 (see resnet_generator.default_margin;
        the effective receptive field is much narrower than the theoretical one)."""
        return int(-(-(self.receptive_radius / 2) // 8) * 8)
