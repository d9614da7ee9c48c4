"""The ResNet generator of Johnson et al. (2016) and the CycleGAN reference, with per-pixel norms.

Deliberate changes from the reference code (junyanz/pytorch-CycleGAN-and-pix2pix):
- per-pixel LayerNorm (``core.models.layers.LayerNorm2d``) instead of InstanceNorm, so tiles
  equal the whole frame (``norm="instance"`` and ``"none"`` remain for experiments; the card
  records the choice);
- nearest-neighbour upsampling + 3x3 convolution instead of transposed convolutions (no
  checkerboard artefacts);
- no output ``tanh``: images are percentile-normalised (~0..1, may exceed 1), the output is
  linear; with ``residual=True`` the generator predicts a correction, ``out = x + g(x)``;
- any H, W: the input is reflect-padded to a multiple of ``2**n_down`` and cropped back.

It has no full-resolution path and learns defocus correction far more slowly than the U-Net
(``core.models.unet_generator``), which the shipped models use; the ``resnet-*`` presets keep it.
"""

from __future__ import annotations

import torch
from torch import nn

from core.models.layers import conv_norm_act, init_weights, make_norm, pad_to_multiple

__all__ = ["ResnetBlock", "ResnetGenerator", "receptive_radius", "default_margin"]


class ResnetBlock(nn.Module):
    """x + conv-norm-relu-conv-norm(x), reflect padding (as in the CycleGAN reference)."""

    def __init__(self, channels: int, norm: str = "layer") -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect"),
            make_norm(norm, channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect"),
            make_norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """ResNet image-to-image generator (Johnson et al. 2016 / CycleGAN), any H and W.

    stem 7x7 (ngf) -> `n_down` stride-2 convs (channels x2 each) -> `n_blocks` residual blocks at
    1/2**n_down resolution -> `n_down` x (nearest upsample + 3x3 conv) -> 7x7 conv to
    `out_channels`.

    Parameters
    ----------
    in_channels, out_channels : int
        Image channels (1: one plane at a time).
    ngf : int
        Width of the first layer; the bottleneck has ``ngf * 2**n_down`` channels.
    n_down : int
        Number of 2x downsamplings (input padded internally to a multiple of 2**n_down).
    n_blocks : int
        Residual blocks at the lowest resolution.
    norm : {'layer', 'instance', 'none'}
        See the module docstring; 'layer' keeps tiled == whole-frame.
    residual : bool
        ``out = x + g(x)`` (needs in_channels == out_channels).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, ngf: int = 16, n_down: int = 2,
                 n_blocks: int = 6, norm: str = "layer", residual: bool = True) -> None:
        super().__init__()
        if residual and in_channels != out_channels:
            raise ValueError("residual=True needs in_channels == out_channels")
        self.config = dict(in_channels=in_channels, out_channels=out_channels, ngf=ngf,
                           n_down=n_down, n_blocks=n_blocks, norm=norm, residual=residual)
        self.n_down, self.residual = n_down, residual
        layers: list[nn.Module] = [conv_norm_act(in_channels, ngf, 7, norm)]
        ch = ngf
        for _ in range(n_down):
            layers.append(conv_norm_act(ch, ch * 2, 3, norm, stride=2))
            ch *= 2
        layers += [ResnetBlock(ch, norm) for _ in range(n_blocks)]
        for _ in range(n_down):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv_norm_act(ch, ch // 2, 3, norm)]
            ch //= 2
        layers.append(nn.Conv2d(ch, out_channels, 7, padding=3, padding_mode="reflect"))
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = self.net(pad_to_multiple(x, 2 ** self.n_down, min_multiples=2))[..., :h, :w]
        return x + y.to(x.dtype) if self.residual else y

    @property
    def receptive_radius(self) -> int:
        """Theoretical receptive-field radius in pixels (see `receptive_radius`)."""
        return receptive_radius(self.config)

    @property
    def margin(self) -> int:
        """Context (px) a tile needs around it; see `default_margin`."""
        return default_margin(self.config)


def receptive_radius(config: dict) -> int:
    """Theoretical receptive-field radius (px) of a `ResnetGenerator` with this config."""
    n_down, n_blocks = config.get("n_down", 2), config.get("n_blocks", 6)
    r = 3                                            # 7x7 stem
    r += sum(2 ** i for i in range(n_down))          # 3x3 stride-2 convs
    r += 2 * n_blocks * 2 ** n_down                  # 3x3 convs at the bottleneck
    r += sum(2 ** i for i in range(n_down))          # 3x3 convs after each upsample
    r += 3                                           # 7x7 head
    return r + 2 ** n_down - 1                       # nearest upsampling: sub-grid position


def default_margin(config: dict) -> int:
    """Halo (px) per tile: half the theoretical receptive radius, rounded up to a multiple of 8.

    The effective receptive field of a conv net is roughly Gaussian and much narrower than the
    theoretical one, so half the radius leaves tiled and whole-frame output a tiny fraction of
    a grey level apart, provided the tiles start on the down-sampling grid (Tiler `align`);
    without the grid they differ visibly whatever the margin (docs/BENCHMARKS.md, "Design
    measurements"). A margin >= the radius makes them equal to float precision. A card may
    override it (``inference.margin``).
    """
    half = receptive_radius(config) / 2
    return int(-(-half // 8) * 8)
