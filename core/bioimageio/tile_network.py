"""The network a bioimage.io package runs: the engine's tile function as one torch module.

Our engine gives every tile `margin` px of context (mirrored beyond the image edge, edge pixel
included, the margin rounded up to the generator's size multiple: `core.tiling.Tiler`), averages the network over `views` mirrored copies and crops the
context off again (`core.models.base.NetworkRestorer`, `core.tiling.Tiler`); with Keep
brightness it puts the input's large-scale brightness back before the crop. A package that ran
the bare generator would give other results at image borders and without the views; this module
does the same steps, so a tile restored in Fiji equals the same tile restored by deblur.
"""

from __future__ import annotations

import torch
from torch import nn

from core.blur_map import with_blur
from core.models.base import ORIENTATION_CHOICES, orient, unorient
from core.models.generators import make_generator
from core.models.layers import gaussian_kernel1d, keep_brightness, lowpass_reach

__all__ = ["TileNetwork", "package_margin", "mirror_pad"]


def package_margin(margin: int, multiple: int) -> int:
    """The context margin as the engine's Tiler uses it: rounded up to the generator's size
    multiple. An input whose sides are multiples of it then needs no shape-dependent padding
    (which a traced TorchScript or ONNX graph would freeze at the example's size)."""
    multiple = max(1, int(multiple))
    return -(-int(margin) // multiple) * multiple


def mirror_pad(x: torch.Tensor, m: int) -> torch.Tensor:
    """Pad H and W by `m` px, mirrored with the edge pixel repeated (the Tiler's halo), built
    from slices and flips only, so TorchScript and ONNX keep it valid for any size >= m."""
    x = torch.cat([x[..., :m, :].flip(-2), x, x[..., -m:, :].flip(-2)], dim=-2)
    return torch.cat([x[..., :m].flip(-1), x, x[..., -m:].flip(-1)], dim=-1)


class TileNetwork(nn.Module):
    """(N, 1, H, W) normalised tile -> (N, 1, H, W) restored tile, H and W multiples of
    ``2 ** architecture["n_down"]``.

    Built from a card's ``architecture`` (so ``pytorch_state_dict`` packages can rebuild it by
    import), its state dict is the generator's under ``net.``.
    """

    def __init__(self, architecture: dict, margin: int, views: int,
                 brightness_px: float = 0.0) -> None:
        super().__init__()
        if views not in ORIENTATION_CHOICES:
            raise ValueError(f"views must be one of {ORIENTATION_CHOICES}")
        self.net = make_generator(**architecture)
        self.multiple = 2 ** int(getattr(self.net, "n_down", 0))
        self.brightness_px = float(brightness_px)
        # as NetworkRestorer: the halo holds the low-pass's reach
        reach = lowpass_reach(self.brightness_px) if self.brightness_px > 0 else 0
        self.margin = package_margin(max(int(margin), reach), self.multiple)
        self.views = int(views)
        if self.brightness_px > 0:           # a constant for TorchScript and ONNX
            self.register_buffer("lowpass_kernel", gaussian_kernel1d(self.brightness_px),
                                 persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.margin
        # a package has no blur measurement to give a network with a blur channel: 0, "not
        # measured", as deblur tells it for a region whose blur it cannot measure
        padded = with_blur(self.net, mirror_pad(x, m))
        total = self.net(padded)
        for k in range(1, self.views):
            total = total + unorient(self.net(orient(padded, k)), k)
        if self.views > 1:
            total = total / self.views
        if self.brightness_px > 0:
            total = keep_brightness(padded[:, :1], total, self.brightness_px, self.lowpass_kernel)
        return total[..., m:-m, m:-m]
