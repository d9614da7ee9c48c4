"""The engine: same shape and dtype, untouched outside pixels, tiles, progress and cancel."""

import threading

import numpy as np
import pytest
import torch
from scipy import ndimage

from core.engine import Cancelled, plan_regions, restore
from core.models.base import NetworkRestorer
from core.roi import Rect, RoiSet


def _sharpen_model(margin: int = 8) -> NetworkRestorer:
    """A deterministic convolutional 'model' (unsharp mask) with a 5x5 receptive field."""
    conv = torch.nn.Conv2d(1, 1, 5, padding=2, bias=False)
    k = -np.ones((5, 5), np.float32) / 25
    k[2, 2] += 2.0
    conv.weight.data[:] = torch.from_numpy(k)
    return NetworkRestorer(conv, "unsharp", margin=margin, channels_last=False)


def _field(rng, shape=(150, 190), dtype=np.uint16):
    x = ndimage.gaussian_filter(rng.random(shape), 1.5)
    x = (x - x.min()) / (x.max() - x.min())
    return (x * 40000 + 1000).astype(dtype)


def test_tiled_equals_whole_frame_on_sizes_not_multiple_of_tile(rng):
    img = _field(rng, (203, 177), np.float32)
    model = _sharpen_model()
    whole = restore(img, model, tile=1024, overlap=0)
    tiled = restore(img, model, tile=64, overlap=16)
    assert np.abs(whole - tiled).max() <= 1e-5 * np.abs(whole).max()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
def test_shape_dtype_kept_and_outside_roi_bit_identical(rng, dtype):
    img = _field(rng, dtype=np.float64)
    img = (img / img.max() * (200 if dtype == np.uint8 else 30000)).astype(dtype)
    rois = RoiSet([Rect(30, 20, 60, 50)], feather=6)
    out = restore(img, _sharpen_model(), rois, tile=64, overlap=16)
    assert out.shape == img.shape and out.dtype == img.dtype
    inside = np.zeros(img.shape, bool)
    inside[20:70, 30:90] = True
    assert np.array_equal(out[~inside], img[~inside])
    assert not np.array_equal(out[inside], img[inside])


def test_only_tiles_near_the_roi_are_computed(rng):
    img = _field(rng, (600, 600))
    counts = []
    restore(img, _sharpen_model(), RoiSet([Rect(10, 10, 40, 40)]), tile=64, overlap=16,
            progress=lambda d, t: counts.append(t))
    full = []
    restore(img, _sharpen_model(), None, tile=64, overlap=16, progress=lambda d, t: full.append(t))
    assert counts[-1] <= 4 < full[-1]


def test_a_roi_is_computed_once_with_one_halo_of_real_pixels(rng):
    """The model sees the ROI plus its margin of real neighbouring pixels, once: not a second,
    mirrored halo around that context (a 512 px ROI cost a 752 px tile, now 640). Inside the
    ROI the result equals the whole-frame pass (the receptive field fits in the margin)."""
    img = _field(rng, (300, 300), np.float32)
    model = _sharpen_model(margin=8)
    shapes = []
    fn = model.forward_tiles
    model.forward_tiles = lambda batch: (shapes.append(tuple(batch.shape[-2:])), fn(batch))[1]
    rois = RoiSet([Rect(100, 120, 60, 40)], feather=0)
    out = restore(img, model, rois, tile=1024)
    assert shapes == [(40 + 2 * 8, 60 + 2 * 8)]
    whole = restore(img, _sharpen_model(margin=8), None, tile=1024)
    assert np.abs(out[120:160, 100:160] - whole[120:160, 100:160]).max() <= 1e-5 * np.abs(whole).max()


def test_distant_rois_are_separate_regions():
    mask = np.zeros((500, 500), np.float32)
    mask[10:40, 10:40] = 1
    mask[400:450, 400:450] = 1
    assert len(plan_regions(mask, 20)) == 2
    assert len(plan_regions(mask, 400)) == 1
    # boxes are in frame coordinates, grown by the pad and clipped to the frame
    (a, b) = plan_regions(mask, 20)
    assert (a.y0, a.y1, a.x0, a.x1) == (0, 60, 0, 60) and (b.y0, b.y1, b.x0, b.x1) == (380, 470, 380, 470)
    assert plan_regions(np.zeros((50, 50), np.float32), 8) == []


def test_progress_reaches_total(rng):
    seen = []
    restore(_field(rng), _sharpen_model(), tile=64, overlap=16, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1][0] == seen[-1][1] > 0
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


def test_cancel_stops_within_one_tile_batch(rng):
    img = _field(rng, (300, 300))
    stop = threading.Event()
    done = []

    def progress(d, t):
        done.append(d)
        if d >= 2:
            stop.set()

    with pytest.raises(Cancelled):
        restore(img, _sharpen_model(), tile=64, overlap=16, progress=progress, cancel=stop)
    assert max(done) == 2  # the batch that saw the flag was the last one


def test_each_plane_of_a_stack_is_restored_with_its_own_scaling(rng):
    a = _field(rng)
    stack = np.stack([a, a // 4, a])
    out = restore(stack, _sharpen_model(), RoiSet([Rect(20, 20, 80, 80)]), axes="ZYX", tile=64)
    single = restore(a, _sharpen_model(), RoiSet([Rect(20, 20, 80, 80)]), tile=64)
    assert out.shape == stack.shape
    assert np.array_equal(out[0], single) and np.array_equal(out[2], single)
    rgb = np.stack([a, a, a], axis=-1).astype(np.uint16)
    out_rgb = restore(rgb, _sharpen_model(), tile=64)
    assert out_rgb.shape == rgb.shape and np.array_equal(out_rgb[..., 1], out_rgb[..., 0])


def test_nan_pixels_stay_nan_and_do_not_spread(rng):
    img = _field(rng).astype(np.float32)
    img[50, 50] = np.nan
    out = restore(img, _sharpen_model(), tile=64, overlap=16)
    assert np.isnan(out[50, 50]) and np.isfinite(np.delete(out.ravel(), 50 * img.shape[1] + 50)).all()


def test_arrays_without_axes_are_refused(rng):
    with pytest.raises(ValueError, match="axes"):
        restore(np.zeros((5, 40, 40), np.float32), _sharpen_model())
    with pytest.raises(ValueError, match="cannot be restored"):
        restore(np.zeros((40, 40), bool), _sharpen_model())
