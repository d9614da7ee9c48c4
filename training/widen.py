"""Widen a trained U-Net generator without changing what it computes (Net2WiderNet).

Why: a wider network trained from scratch costs a full schedule of CPU hours (about 5 h for the
shipped COMI); starting it from the trained narrower one keeps everything that network learned
and spends the steps on what the extra channels add (Chen, Goodfellow & Shlens 2016, "Net2Net").

How: every level's channels are mapped onto the old ones (the old channels first, each new one a
copy of an old one). A layer that writes a level copies the rows of the channels it copies; a
layer that reads a level splits each old input weight among that channel's copies in positive
shares that sum to 1. LeakyReLU acts per channel, so the copies carry the same
activations and every reader still sums to the old value: the output is the same up to float
rounding. The shares are unequal (1/3 and 2/3 for two copies), which breaks the symmetry between
copies: their gradients differ, so they grow apart as training goes on instead of staying twins.
New channels are spread over the old ones (no old channel gets a second copy before every one
has one).
"""

from __future__ import annotations

import torch
from torch import nn

from core.models.unet_generator import UNetGenerator

__all__ = ["can_widen", "widen_unet", "can_add_blur_channel", "add_blur_channel",
           "can_drop_blur_channel", "drop_blur_channel"]


def can_widen(src: nn.Module, dst: nn.Module) -> bool:
    """True if `dst` is `src`'s U-Net with the same shape and at least as many channels per level."""
    if not (isinstance(src, UNetGenerator) and isinstance(dst, UNetGenerator)):
        return False
    same = {k: v for k, v in src.config.items() if k not in ("ngf", "widths")}
    if same != {k: v for k, v in dst.config.items() if k not in ("ngf", "widths")}:
        return False
    return all(b >= a for a, b in zip(_widths(src), _widths(dst)))


def _widths(net: UNetGenerator) -> list[int]:
    return [net.head.in_channels] + [d[0].out_channels for d in net.downs]


class _Level:
    """How one level's new channels map onto its old ones, and each copy's share when read."""

    def __init__(self, old: int, new: int, gen: torch.Generator) -> None:
        extra = torch.randperm(old, generator=gen)[torch.arange(new - old) % old]  # spread copies
        self.source = torch.cat([torch.arange(old), extra])
        # the k-th copy of a channel gets k shares: 1/3 and 2/3 for two, never equal
        rank = torch.tensor([int((self.source[:i] == s).sum()) + 1 for i, s in enumerate(self.source)],
                            dtype=torch.float64)
        total = torch.zeros(old, dtype=torch.float64).index_add_(0, self.source, rank)
        self.share = rank / total[self.source]


def _copy_conv(src: nn.Conv2d, dst: nn.Conv2d, reads: _Level, writes: _Level) -> None:
    w = src.weight.detach().double()[writes.source][:, reads.source]
    w = w * reads.share.view(1, -1, 1, 1)
    with torch.no_grad():
        dst.weight.copy_(w.to(dst.weight.dtype))
        if src.bias is not None:
            dst.bias.copy_(src.bias.detach()[writes.source])


@torch.no_grad()
def widen_unet(src: UNetGenerator, dst: UNetGenerator, seed: int = 0) -> None:
    """Load `src`'s weights into the wider `dst` (see the module docstring); `dst` then computes
    what `src` computes. Raises ValueError if `dst` is not a widening of `src`."""
    if not can_widen(src, dst):
        raise ValueError("the new network is not the old U-Net with more channels per level")
    gen = torch.Generator().manual_seed(seed)
    levels = [_Level(a, b, gen) for a, b in zip(_widths(src), _widths(dst))]
    image_in = _Level(src.config["in_channels"], src.config["in_channels"], gen)     # unchanged
    image_out = _Level(src.config["out_channels"], src.config["out_channels"], gen)
    for i, (enc_s, enc_d) in enumerate(zip(src.encoders, dst.encoders)):
        for j, (cs, cd) in enumerate(zip(enc_s, enc_d)):
            _copy_conv(cs[0], cd[0], image_in if i == j == 0 else levels[i], levels[i])
    for i in range(src.n_down):
        _copy_conv(src.downs[i][0], dst.downs[i][0], levels[i], levels[i + 1])
        _copy_conv(src.ups[i][0], dst.ups[i][0], levels[i + 1], levels[i])
        for cs, cd in zip(src.decoders[i], dst.decoders[i]):
            _copy_conv(cs[0], cd[0], levels[i], levels[i])
    _copy_conv(src.head, dst.head, levels[0], image_out)


def can_add_blur_channel(src: nn.Module, dst: nn.Module) -> bool:
    """True if `dst` is `src`'s U-Net with a blur channel (``core.blur_map``) added."""
    return (isinstance(src, UNetGenerator) and isinstance(dst, UNetGenerator)
            and not src.blur_channel and dst.blur_channel
            and {**src.config, "blur_channel": True} == dst.config)


def add_blur_channel(src: UNetGenerator, dst: UNetGenerator) -> None:
    """Load `src` into `dst`, whose first convolution reads one more channel (the blur): its
    weights there start at 0, so `dst` starts out computing exactly what `src` computes,
    whatever it is told, and learns from the first step how to use what it is told."""
    _load_first_conv_fitted(src, dst)


def can_drop_blur_channel(src: nn.Module, dst: nn.Module) -> bool:
    """True if `dst` is `src`'s U-Net without its blur channel (e.g. the DDPM's predictor
    started from a COMI that takes one)."""
    return can_add_blur_channel(dst, src)


def drop_blur_channel(src: UNetGenerator, dst: UNetGenerator) -> None:
    """Load `src` into `dst`, which reads no blur channel: the first convolution's weights on
    that channel are left out. A network told 0 gets nothing through them, so `dst` computes
    exactly what `src` computes when told nothing (a region that was not measured)."""
    _load_first_conv_fitted(src, dst)


def _load_first_conv_fitted(src: nn.Module, dst: nn.Module) -> None:
    """Load `src` into `dst`, where only the first convolution's input channels differ: the
    channels both read are copied, one more in `dst` gets weights 0, one fewer is left out."""
    state = src.state_dict()
    own = dst.state_dict()
    for k, v in state.items():
        if own[k].shape != v.shape:             # the first convolution's input channels
            w = torch.zeros_like(own[k])
            n = min(v.shape[1], w.shape[1])
            w[:, :n] = v[:, :n]
            state[k] = w
    dst.load_state_dict(state)
