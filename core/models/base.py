"""What every restoration model looks like to the engine.

A `Restorer` gets one percentile-normalised plane (or the crop of it around the ROIs) and the
shared `Tiler`, and must do all of its pixel work through `tiler.map`, so that tiling, blending,
progress and cancel behave the same for a classical deconvolution, a GAN generator or a
diffusion sampler.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np
import torch

from core.devices import autocast_context
from core.models.layers import keep_brightness, lowpass_reach, pad_to_multiple
from core.tiling import Tiler

if TYPE_CHECKING:
    from core.roi import RoiSet

__all__ = ["Restorer", "NetworkRestorer", "ORIENTATION_CHOICES", "orient", "unorient"]

#: how many orientations a network may average over (the first k of `orient`): 1 as is, 2 and its
#: left-right mirror, 4 those and both turned a quarter, 8 all symmetries of the square
ORIENTATION_CHOICES = (1, 2, 4, 8)


def orient(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the 8 symmetries of the square applied to H, W: mirror if k is odd, then k // 2
    quarter turns. Microscopy has no preferred direction, so a network should give the same answer
    in every orientation; averaging over them removes what it does not (self-ensembling)."""
    y = x.flip(-1) if k % 2 else x
    return torch.rot90(y, k // 2, (-2, -1)) if k // 2 else y


def unorient(y: torch.Tensor, k: int) -> torch.Tensor:
    """Inverse of `orient`."""
    y = torch.rot90(y, -(k // 2), (-2, -1)) if k // 2 else y
    return y.flip(-1) if k % 2 else y


class Restorer(ABC):
    """A ready-to-run model: weights loaded, on its device, parameters fixed."""

    name: str = ""
    margin: int = 16      # context (px) each tile needs around its core
    passes: int = 1       # Tiler.map calls per restore_plane() (for progress totals)
    align: int = 1        # down-sampling factor: tiles must start on this grid (Tiler align)
    device: torch.device = torch.device("cpu")
    #: Richardson-Lucy steps the engine adds with each region's measured blur ("Match the
    #: input", `core.input_match`); the registry sets it from the model's setting, 0 = none
    match_steps: int = 0
    #: how the run used the blur measured on the image, in plain words (shown after a run)
    psf_note: str = ""
    #: the network takes each region's measured blur as a second input (`core.blur_map`); the
    #: engine then measures the regions and hands `restore_plane` the map
    blur_channel: bool = False

    def prepare(self, plane: np.ndarray, rois: "RoiSet | None") -> None:
        """Look at the whole plane and the regions before any tile is restored (a model that
        measures something on the image, e.g. Richardson-Lucy's blur radius, does it here;
        it may change `margin`). Most models need nothing."""

    @abstractmethod
    def restore_plane(self, x: np.ndarray, tiler: Tiler, seed: int = 0,
                      blur: np.ndarray | None = None) -> np.ndarray:
        """Restore a normalised (H, W) float32 plane; returns (H, W) float32, same scaling.
        `blur`: the blur channel over the same pixels (`core.blur_map`), for a restorer with
        `blur_channel`; None: nothing measured (all 0)."""


class NetworkRestorer(Restorer):
    """Runs a feed-forward image-to-image network tile by tile.

    Parameters
    ----------
    net : maps (N, 1, H, W) -> (N, 1, H, W) in normalised units.
    margin : receptive-field context the tiler must give each tile.
    pad_multiple : H and W are mirror-padded to a multiple of this before the forward pass.
    amp : run under autocast (bf16 on CPU); decided per model from measured PSNR cost.
    channels_last : use the channels_last memory format (faster convolutions on CPU).
    orientations : 1, 2, 4 or 8: run the network on that many mirrored/turned copies of each
        tile and average (`orient`); slightly cleaner results, that many times the time.
    brightness_px : when > 0, the output's content at scales above this (a Gaussian of that
        sigma) is replaced by the input's: defocus spreads light but neither adds nor removes
        it, so a restoration must keep the input's large-scale brightness. A network trained
        without pairs (CycleGAN) shifts it; a paired one (COMI) keeps it already. The halo
        grows to the low-pass's reach, so tiles stay seamless.
    """

    def __init__(self, net: torch.nn.Module, name: str, *, margin: int = 32, pad_multiple: int = 1,
                 device: torch.device = torch.device("cpu"), amp: bool = False,
                 channels_last: bool = True, orientations: int = 1,
                 brightness_px: float = 0.0) -> None:
        if orientations not in ORIENTATION_CHOICES:
            raise ValueError(f"orientations must be one of {', '.join(map(str, ORIENTATION_CHOICES))}")
        self.name = name
        self.orientations = orientations
        self.brightness_px = float(brightness_px)
        self.margin = int(margin)
        if self.brightness_px > 0:
            self.margin = max(self.margin, lowpass_reach(self.brightness_px))
        self.pad_multiple = max(1, int(pad_multiple))
        self.align = self.pad_multiple
        self.device = device
        self.amp = amp
        self.channels_last = channels_last
        self.net = net.to(device).eval()
        self.blur_channel = bool(getattr(net, "config", {}).get("blur_channel", False))
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)

    def forward_tiles(self, batch: torch.Tensor) -> torch.Tensor:
        """The tile function handed to Tiler.map."""
        h, w = batch.shape[-2:]
        x = pad_to_multiple(batch, self.pad_multiple)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        total = None
        with torch.inference_mode():
            for k in range(self.orientations):
                with autocast_context(self.device, self.amp):
                    y = self.net(orient(x, k).contiguous(memory_format=fmt))
                y = unorient(y.float(), k)
                total = y if total is None else total.add_(y)
        assert total is not None
        if self.orientations > 1:
            total /= self.orientations
        total = total[..., :h, :w]
        if self.brightness_px > 0:
            with torch.inference_mode():
                total = keep_brightness(batch[:, :total.shape[1]].float(), total, self.brightness_px)
        return total.contiguous()

    def restore_plane(self, x: np.ndarray, tiler: Tiler, seed: int = 0,
                      blur: np.ndarray | None = None) -> np.ndarray:
        planes = [np.ascontiguousarray(x, np.float32)]
        if self.blur_channel:       # tiled with the image, so every tile gets its own part
            planes.append(np.zeros_like(planes[0]) if blur is None else np.asarray(blur, np.float32))
        out = tiler.map(self.forward_tiles, torch.from_numpy(np.stack(planes)))
        return out[0].numpy()
