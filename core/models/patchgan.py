"""The 70x70 PatchGAN discriminator (Isola et al. 2017) of COMI and CycleGAN (training only)."""

from __future__ import annotations

import torch
from torch import nn

from core.models.layers import init_weights, make_norm

__all__ = ["PatchDiscriminator"]


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator (Isola et al. 2017): one real/fake score per overlapping patch.

    ``n_layers=3`` gives the 70x70 receptive field of the reference; for an (N, C, H, W) input
    the output is (N, 1, H//8 - 2, W//8 - 2) (inputs need H, W >= 24). Runs only in training, so
    InstanceNorm (the reference choice) is harmless here.

    ``forward(x, features=True)`` also returns the activations of every block, for the
    feature-matching loss (``core.models.losses.feature_matching_loss``).
    """

    def __init__(self, in_channels: int = 1, ndf: int = 64, n_layers: int = 3,
                 norm: str = "instance") -> None:
        super().__init__()
        self.config = dict(in_channels=in_channels, ndf=ndf, n_layers=n_layers, norm=norm)
        act = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
        blocks = [nn.Sequential(nn.Conv2d(in_channels, ndf, 4, 2, 1), act())]
        ch = ndf
        for i in range(1, n_layers + 1):
            out = ndf * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1
            blocks.append(nn.Sequential(nn.Conv2d(ch, out, 4, stride, 1), make_norm(norm, out), act()))
            ch = out
        blocks.append(nn.Sequential(nn.Conv2d(ch, 1, 4, 1, 1)))
        self.blocks = nn.ModuleList(blocks)
        init_weights(self)

    def forward(self, x: torch.Tensor, features: bool = False):
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return (x, feats[:-1]) if features else x
