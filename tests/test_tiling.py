"""The shared tiling path: tiled output equals the whole frame for a convolutional model."""

import numpy as np
import pytest
import torch

from core.tiling import Tiler, blend_window, tile_starts


def _conv_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 5, padding=2), torch.nn.Tanh(),
                               torch.nn.Conv2d(4, 1, 5, padding=2)).eval()


@pytest.mark.parametrize("shape", [(203, 177), (64, 300), (50, 50), (129, 65)])
def test_tiled_equals_whole_frame(shape):
    net = _conv_model()
    x = torch.rand(1, *shape)
    whole = Tiler(tile=4096, overlap=0, margin=8).map(net, x)
    tiled = Tiler(tile=48, overlap=12, margin=8, batch_size=3).map(net, x)
    assert whole.shape == (1, *shape)
    assert (whole - tiled).abs().max().item() < 1e-5


def test_tiles_cover_region_with_requested_overlap():
    for length in (8, 63, 64, 65, 200, 1000):
        starts = tile_starts(length, 64, 16)
        assert starts[0] == 0
        assert starts[-1] + min(64, length) == length
        assert all(b - a <= 64 - 16 for a, b in zip(starts, starts[1:]))


def test_blend_window_is_positive_and_flat_at_region_edges():
    w = blend_window(64, 16, ramp_start=False, ramp_end=True)
    assert w[0] == 1.0 and np.all(w > 0) and w[-1] < 0.05
    assert np.all(np.diff(w[-16:]) < 0)


def test_on_batch_counts_every_tile():
    seen = []
    t = Tiler(tile=32, overlap=8, margin=4, batch_size=2, on_batch=seen.append)
    t.map(lambda b: b * 2, torch.ones(1, 70, 90))
    assert sum(seen) == t.n_tiles((70, 90))


def test_bad_tile_settings_are_refused():
    with pytest.raises(ValueError):
        Tiler(tile=4)
    with pytest.raises(ValueError):
        Tiler(tile=32, overlap=32)


def test_strided_network_tiled_equals_whole_frame_when_tiles_are_aligned():
    """A net that down-samples by 4 sees tiles on the same grid as the whole frame."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, stride=2, padding=1), torch.nn.Tanh(),
                              torch.nn.Conv2d(4, 4, 3, stride=2, padding=1), torch.nn.Tanh(),
                              torch.nn.Upsample(scale_factor=4), torch.nn.Conv2d(4, 1, 3, padding=1)).eval()
    x = torch.rand(1, 150, 173)
    whole = Tiler(tile=4096, overlap=0, margin=12, align=4).map(net, x)
    tiled = Tiler(tile=62, overlap=14, margin=10, align=4).map(net, x)
    assert whole.shape == tiled.shape == (1, 150, 173)
    assert (whole - tiled).abs().max().item() < 1e-5


def test_tiles_shrink_to_share_a_region_evenly():
    """A 560 px region with 256 px tiles: 3 tiles of 208 px, not 3 of 256 mostly overlapping."""
    t = Tiler(tile=256, overlap=32, margin=24, align=4)
    assert t.fitted_tile(560) == 208
    assert t.fitted_tile(100) == 100
    # 2048 px = 8 pieces of 256, each grown by its share of the overlap (284 = 2048 + 7 x 32, / 8)
    assert t.fitted_tile(2048) == 284 and t.n_tiles((2048, 2048)) == 64
    cores = t.grid((560, 560))
    assert len(cores) == 9 and all(c[1] - c[0] == 208 and c[0] % 4 == 0 for c in cores)


def test_a_camera_frame_with_default_tiles_is_four_tiles():
    """2048x2048 with 1024 px tiles: 2x2 tiles of 1040 px, not 3x3 of 704 px (halos alone made
    those 1.5x the pixels of a whole-frame pass)."""
    t = Tiler(margin=56, align=16)
    assert t.n_tiles((2048, 2048)) == 4 and t.fitted_tile(2048) == 1040
