"""The one tiling and blending path that every model runs through.

A region is cut into tiles whose cores overlap by `overlap` pixels; each tile is handed to the
model with a halo of `margin` pixels of real context around it (mirrored beyond the region's
edge), the halo is cropped from the result, and the cores are blended with a raised-cosine
window. A model whose receptive field fits in the margin therefore gives the same output tiled
as on the whole frame, and models with wider context (or noise, as in the DDPM) show no seams
because every pixel is a smooth weighted average of the tiles that cover it.
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import numpy as np
import torch

from core.defaults import DEFAULT_OVERLAP, DEFAULT_TILE

__all__ = ["Tiler", "tile_starts", "blend_window", "DEFAULT_TILE", "DEFAULT_OVERLAP"]


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles of size `tile` covering [0, length) with about `overlap` overlap.

    The last tile is aligned to the end so every tile has the same size (batchable); a region
    shorter than a tile is one tile of the region's length. With `align` > 1 (length and tile
    multiples of it) every start is a multiple of `align`.
    """
    if length <= tile:
        return [0]
    stride = max(1, tile - overlap)
    n = math.ceil((length - tile) / stride) + 1
    if n == 1:
        return [0]
    # spread the tiles evenly so the overlaps are equal (no sliver of a last tile)
    starts = [round(i * (length - tile) / (n - 1) / align) * align for i in range(n)]
    return sorted(set(starts))


def _ramp(n: int) -> np.ndarray:
    """Raised-cosine ramp of n samples, strictly positive so every pixel keeps some weight."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / n
    return 0.5 - 0.5 * np.cos(np.pi * t)


def blend_window(size: int, overlap: int, ramp_start: bool, ramp_end: bool) -> np.ndarray:
    """1-D blending weights of a tile core: ramps only on sides that overlap a neighbour."""
    w = np.ones(size, dtype=np.float64)
    r = min(overlap, size // 2)
    if r > 0:
        ramp = _ramp(r)
        if ramp_start:
            w[:r] = ramp
        if ramp_end:
            w[size - r:] = ramp[::-1]
    return w


def _reflect_index(start: int, stop: int, length: int) -> np.ndarray:
    """Indices start..stop-1 mirrored into [0, length) (half-sample symmetric, any distance)."""
    idx = np.arange(start, stop)
    if length == 1:
        return np.zeros_like(idx)
    period = 2 * length
    idx = np.mod(idx, period)
    return np.where(idx < length, idx, period - 1 - idx)


class Tiler:
    """Maps a tile function over a (C, H, W) region and blends the results.

    Parameters
    ----------
    tile : size of the pieces a region is cut into (without halo or overlap); each piece is
        grown by the overlap it shares with its neighbours (`fitted_tile`).
    overlap : overlap between neighbouring cores, blended with a raised cosine.
    margin : halo of context given to the model around each core and cropped afterwards.
    device : where the tile batches are sent.
    batch_size : tiles per call of the model (1 is fastest on CPU).
    on_batch : called with the number of tiles after every batch (progress; may raise to cancel).
    align : the model's down-sampling factor. A network that down-samples by 4 is equivariant
        only to shifts by multiples of 4, so every tile (with its halo) must start on that grid
        of the region, or its output differs from the whole frame's. The region is mirrored
        at its bottom/right up to a multiple of `align`, the tile size and margin are rounded
        to multiples of it, and the padding is cropped from the result.
    """

    def __init__(self, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, margin: int = 0,
                 device: torch.device | str = "cpu", batch_size: int = 1,
                 on_batch: Callable[[int], None] | None = None, align: int = 1) -> None:
        if tile < 8:
            raise ValueError(f"tile size must be at least 8 pixels, got {tile}")
        if overlap < 0 or overlap >= tile:
            raise ValueError(f"overlap must be between 0 and the tile size ({tile}), got {overlap}")
        self.align = max(1, int(align))
        if tile < 2 * self.align:
            raise ValueError(f"tile size must be at least {2 * self.align} pixels for this model")
        self.tile = int(tile) // self.align * self.align
        self.overlap = min(int(overlap), self.tile - self.align)
        self.margin = -(-max(0, int(margin)) // self.align) * self.align
        self.device = torch.device(device)
        self.batch_size = max(1, int(batch_size))
        self.on_batch = on_batch
        self.context: tuple[int, int, int, int] = (0, 0, 0, 0)

    def with_context(self, context: tuple[int, int, int, int]) -> "Tiler":
        """The same tiler for a region that carries (top, bottom, left, right) px of real
        surrounding pixels whose output is not wanted (the ROI's neighbourhood): tiles cover only
        the inner part and read their halos from those pixels instead of mirroring, so a ROI
        does not pay for a second halo around the context it already has."""
        t = copy.copy(self)
        if any(int(c) < 0 for c in context):
            raise ValueError(f"context must be >= 0 on every side, got {context}")
        t.context = tuple(int(c) for c in context)
        return t

    def _inner_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        top, bottom, left, right = self.context
        h, w = int(shape[0]) - top - bottom, int(shape[1]) - left - right
        if h < 1 or w < 1:
            raise ValueError(f"context {self.context} leaves nothing of a {shape} region")
        return h, w

    def padded_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """The region's shape rounded up to the alignment grid."""
        a = self.align
        return -(-int(shape[0]) // a) * a, -(-int(shape[1]) // a) * a

    def fitted_tile(self, length: int) -> int:
        """The tile core actually used along an axis of `length` px.

        The axis is cut into ceil(length / tile) pieces of equal size, each grown by the overlap
        it shares with its neighbours, so a core is at most `tile + overlap` px. A 2048 px frame
        with 1024 px tiles is 2 tiles of 1040, not 3 of 704 (1.5x the pixels through the model
        once halos are added); a region just larger than a tile is shared evenly instead of
        paying for a mostly redundant extra tile.
        """
        if length <= self.tile:
            return length
        n = math.ceil(length / self.tile)
        t = math.ceil((length + (n - 1) * self.overlap) / n)
        return min(length, -(-t // self.align) * self.align)

    def grid(self, shape: tuple[int, int]) -> list[tuple[int, int, int, int]]:
        """Tile cores as (y0, y1, x0, x1) for a region of `shape` (in the padded region)."""
        h, w = self.padded_shape(shape)
        th, tw = self.fitted_tile(h), self.fitted_tile(w)
        return [(y, y + th, x, x + tw)
                for y in tile_starts(h, th, self.overlap, self.align)
                for x in tile_starts(w, tw, self.overlap, self.align)]

    def n_tiles(self, shape: tuple[int, int]) -> int:
        """Tiles for a region of `shape` (its inner part, without the context)."""
        return len(self.grid(self._inner_shape(shape)))

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Run `fn` on every tile of `x` (C, H, W) and return the blended (C', H, W) float32 result."""
        x = torch.as_tensor(x)
        if x.ndim != 3:
            raise ValueError(f"Tiler.map expects a (C, H, W) region, got shape {tuple(x.shape)}")
        x = x.detach().to("cpu", torch.float32)
        full_h, full_w = x.shape[-2:]
        top, _, left, _ = self.context
        h0, w0 = self._inner_shape((full_h, full_w))
        h, w = self.padded_shape((h0, w0))
        m = self.margin
        cores = self.grid((h, w))
        th, tw = cores[0][1] - cores[0][0], cores[0][3] - cores[0][2]
        wy = {y0: blend_window(th, self.overlap, y0 > 0, y1 < h) for y0, y1, _, _ in cores}
        wx = {x0: blend_window(tw, self.overlap, x0 > 0, x1 < w) for _, _, x0, x1 in cores}

        out: torch.Tensor | None = None
        # the tiles form a full grid of separable windows, so their summed weight is separable
        # too: two vectors instead of a full-frame weight image
        sum_y, sum_x = np.zeros(h), np.zeros(w)
        for y0 in {c[0] for c in cores}:
            sum_y[y0:y0 + th] += wy[y0]
        for x0 in {c[2] for c in cores}:
            sum_x[x0:x0 + tw] += wx[x0]
        for b in range(0, len(cores), self.batch_size):
            chunk = cores[b:b + self.batch_size]
            tiles = []
            for y0, y1, x0, x1 in chunk:
                # halos (and the alignment padding) read the region's own pixels where it has
                # them, mirrored only beyond its edge
                ys = torch.from_numpy(_reflect_index(top + y0 - m, top + y1 + m, full_h))
                xs = torch.from_numpy(_reflect_index(left + x0 - m, left + x1 + m, full_w))
                tiles.append(x.index_select(1, ys).index_select(2, xs))
            batch = torch.stack(tiles).to(self.device, non_blocking=True)
            with torch.inference_mode():
                res = fn(batch)
            if res.ndim != 4 or res.shape[0] != len(chunk) or res.shape[-2:] != batch.shape[-2:]:
                raise RuntimeError(f"tile function returned shape {tuple(res.shape)} "
                                   f"for input {tuple(batch.shape)}")
            res = res.detach().to("cpu", torch.float32)
            if m:
                res = res[..., m:m + th, m:m + tw]
            if out is None:
                out = torch.zeros((res.shape[1], h, w), dtype=torch.float32)
            for k, (y0, y1, x0, x1) in enumerate(chunk):
                win = torch.from_numpy(np.outer(wy[y0], wx[x0]).astype(np.float32))
                out[:, y0:y1, x0:x1] += res[k] * win
            if self.on_batch is not None:
                self.on_batch(len(chunk))
        assert out is not None
        out /= torch.from_numpy(sum_y.astype(np.float32))[:, None]
        out /= torch.from_numpy(sum_x.astype(np.float32))[None, :]
        out = out[:, :h0, :w0].contiguous() if (h, w) != (h0, w0) else out
        if (h0, w0) == (full_h, full_w):
            return out
        # the context keeps its input values (its output is not wanted; the same channels or 0)
        full = (x.clone() if x.shape[0] == out.shape[0]
                else torch.zeros((out.shape[0], full_h, full_w), dtype=torch.float32))
        full[:, top:top + h0, left:left + w0] = out
        return full
