"""A network told each region's measured blur (core.blur_map): what it is told, where, and
that starting one from a network without the channel changes nothing until it trains."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from core.blur_estimate import estimate_regions
from core.blur_map import blur_value, region_blur_map, region_radius
from core.bioimageio.tile_network import TileNetwork
from core.engine import restore
from core.normalize import percentile_params
from core.models.base import NetworkRestorer
from core.models.unet_generator import UNetGenerator
from core.tiling import Tiler
from core.roi import Ellipse, Polygon, Rect, RoiSet, roi_mask
from training.blur_told import told_blur
from training.steps.base import load_weights_into
from core.models.weights import save_weights
from core.models.registry import make_card


class _ShowsTheBlur(nn.Module):
    """Adds what it is told to the image: the output minus the input IS the blur channel."""

    config = {"kind": "probe", "blur_channel": True}
    n_down = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] + x[:, 1:2]


def _texture(shape=(160, 160), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.random(shape), 1.0).astype(np.float32) * 1000 + 100


def test_the_map_holds_each_regions_blur_inside_it_and_0_elsewhere():
    rois = RoiSet([Rect(10, 10, 30, 20), Ellipse(60, 40, 40, 30), Polygon([(5, 80), (40, 80), (20, 120)])])
    full = region_blur_map(rois, [4.0, 0.0, 12.0], (130, 120))
    inside = [roi_mask(RoiSet([r], feather=0), (130, 120)) > 0 for r in rois.rois]
    assert np.allclose(full[inside[0]], blur_value(4.0))
    assert not full[inside[1]].any()                       # looks sharp: told nothing
    assert np.allclose(full[inside[2]], blur_value(12.0))
    assert not full[~(inside[0] | inside[1] | inside[2])].any()
    # a box of the frame (the engine builds only the region it restores) is the same crop
    assert np.array_equal(region_blur_map(rois, [4.0, 0.0, 12.0], (130, 120), (30, 125, 0, 90)),
                          full[30:125, 0:90])
    assert blur_value(0.0) == 0.0 and blur_value(40.0) == pytest.approx(1.0)
    assert blur_value(10.0) > blur_value(5.0) > blur_value(1.0) > 0


def test_the_engine_tells_the_network_the_measured_blur_of_each_region():
    sharp = _texture()
    rois = RoiSet([Ellipse(40, 40, 70, 60)], feather=0)
    region = roi_mask(rois, sharp.shape) > 0
    img = np.where(region, ndimage.gaussian_filter(sharp, 4.0), sharp).astype(np.float32)
    net = _ShowsTheBlur()
    restorer = NetworkRestorer(net, "probe", margin=8)
    assert restorer.blur_channel
    out = restore(img, restorer, rois)
    r = region_radius(estimate_regions(img, rois)[0])
    assert r > 2                                   # the region's blur was measured
    params = percentile_params(img)
    told = (out - img)[region] / (params.hi - params.lo)      # back to normalised units
    assert np.allclose(told, blur_value(r), atol=1e-4)
    assert np.array_equal(out[~region], img[~region])      # nothing outside changes
    assert "used the measured blur of region 1" in restorer.psf_note
    # no regions: the whole field, told nothing (0 everywhere): the output is the input
    assert np.allclose(restore(img, restorer, None), img, atol=1e-3)


def test_a_region_that_looks_sharp_is_told_nothing():
    img = _texture(seed=1)
    rois = RoiSet([Rect(40, 40, 60, 60)], feather=0)
    restorer = NetworkRestorer(_ShowsTheBlur(), "probe", margin=8)
    out = restore(img, restorer, rois)
    assert estimate_regions(img, rois)[0].looks_sharp
    assert np.allclose(out, img, atol=1e-3)
    assert "looks sharp or its blur could not be measured: restored without it" in restorer.psf_note


def test_a_network_given_the_channel_computes_what_it_did_until_it_trains(tmp_path):
    torch.manual_seed(0)
    old = UNetGenerator(ngf=8, n_down=2)
    for p in old.parameters():          # not the identity: a network that does something
        p.data.normal_(0, 0.1)
    path = save_weights(tmp_path / "comi.safetensors", old.state_dict(), make_card("comi", old))
    new = UNetGenerator(ngf=8, n_down=2, blur_channel=True)
    card = load_weights_into([new], path)
    assert card["blur_channel_added_to"] == old.config
    x = torch.rand(2, 1, 32, 32)
    for told in (0.0, 0.3, 1.0):
        y = new(torch.cat([x, torch.full_like(x, told)], 1))
        assert torch.allclose(y, old(x), atol=1e-6)


def test_a_network_without_the_channel_started_from_one_with_it_computes_what_it_does_told_nothing(tmp_path):
    """The DDPM's predictor (no blur channel) can start from a COMI told the blur: it then
    computes what that COMI computes for a region that was not measured."""
    from core.models.generators import make_generator
    from training.config import load_config
    from training.steps import Precision, build_steps

    cfg = load_config("ddpm", "tiny")
    told = make_generator(**cfg["model"]["predictor"], blur_channel=True)
    for p in told.parameters():
        p.data.normal_(0, 0.1)
    path = save_weights(tmp_path / "comi.safetensors", told.state_dict(), make_card("comi", told))
    plain = make_generator(**cfg["model"]["predictor"])
    assert load_weights_into([plain], path)["blur_channel_dropped_from"] == told.config
    x = torch.rand(2, 1, 32, 32)
    assert torch.allclose(plain(x), told(torch.cat([x, torch.zeros_like(x)], 1)), atol=1e-6)
    cfg["diffusion"]["predictor_init"] = str(path)
    cpu = torch.device("cpu")
    steps = build_steps("ddpm", cfg, cpu, Precision(cpu, False))
    assert torch.allclose(steps.modules["ddpm"].predictor(x), plain(x), atol=1e-6)


def test_the_training_tells_the_true_blur_with_the_estimates_kind_of_errors():
    yy, xx = np.mgrid[:64, :64]
    mask = ((yy - 32) ** 2 + (xx - 32) ** 2 < 400).astype(np.float32)
    true = 6.0 * mask
    ratios, blind, sharp_told = [], 0, 0
    for i in range(400):
        rng = np.random.default_rng(i)
        told = told_blur(rng, true, mask)
        assert not told[mask == 0].any()
        if not told.any():
            blind += 1
            continue
        r = float(np.expm1(told[32, 32] * np.log1p(40.0)))
        ratios.append(r / 6.0)
        sharp_told += bool(told_blur(np.random.default_rng(10_000 + i), 0 * true, mask).any())
    assert 0.9 < np.median(ratios) < 1.1                    # right on average
    assert 0.1 < np.percentile(np.abs(np.log(ratios)), 50) < 0.35   # as wrong as the estimate
    assert 20 < blind < 90                                   # sometimes nothing was measured
    assert 40 < sharp_told < 150                             # sharp regions sometimes misread


def test_a_package_tells_the_network_nothing_as_deblur_does_without_regions():
    torch.manual_seed(1)
    net = UNetGenerator(ngf=8, n_down=2, blur_channel=True)
    for p in net.parameters():
        p.data.normal_(0, 0.1)
    tile = TileNetwork(net.config, margin=8, views=2)
    tile.net.load_state_dict(net.state_dict())
    x = torch.rand(1, 1, 64, 64)
    restorer = NetworkRestorer(net, "probe", margin=tile.margin, pad_multiple=4, orientations=2)
    restorer.amp = False
    engine = restorer.restore_plane(x[0, 0].numpy(), Tiler(tile=64, overlap=0, margin=tile.margin))
    with torch.no_grad():
        assert np.allclose(tile(x)[0, 0].numpy(), engine, atol=1e-5)


def test_deblur_train_adds_the_channel_to_a_trained_comi_and_the_result_restores(tmp_path, capsys):
    import json

    from training.cli import main

    tiny = (__import__("pathlib").Path(__file__).parents[1] / "training/configs/tiny.toml").read_text()
    told = tmp_path / "told.toml"
    told.write_text(tiny.replace("[comi.model]\n", "[comi.model]\nblur_channel = true\n"))
    base, run = tmp_path / "base", tmp_path / "told"
    assert main(["--model", "comi", "--data", "synthetic", "--config", "tiny", "--steps", "4",
                 "--val-every", "0", "--out", str(base), "-q"]) == 0
    rc = main(["--model", "comi", "--data", "synthetic", "--config", str(told), "--steps", "4",
               "--init", str(base / "comi.safetensors"), "--out", str(run), "-q"])
    assert rc == 0, capsys.readouterr().err
    card = json.loads((run / "comi.json").read_text())
    assert card["architecture"]["blur_channel"] is True
    assert "blur_channel_added_to" in card["training"]["started_from"]
    img = _texture(seed=2)
    rois = RoiSet([Ellipse(40, 40, 70, 60)])
    out = restore(img, "comi", rois, weights=str(run / "comi.safetensors"), device="cpu")
    assert out.shape == img.shape and np.isfinite(out).all()
    assert np.array_equal(out[roi_mask(rois, img.shape) == 0], img[roi_mask(rois, img.shape) == 0])


def test_unpaired_training_tells_each_blurred_patch_its_own_blur():
    """CycleGAN's data: the blur channel of an item is its BLURRED patch's, turned and flipped
    with it (it covers exactly that patch's marked region), never its sharp partner's."""
    from training.data import make_datasets

    train, _ = make_datasets("synthetic", paired=False, patch=64, seed=3, train_length=16, val_length=2)
    told = 0
    for i in range(len(train)):
        item = train[i]
        blur, mask = item["blur"][0].numpy(), item["mask"][0].numpy()
        if blur.any():
            told += 1
            assert np.array_equal(blur > 0, mask > 0), i
    assert told >= 4

