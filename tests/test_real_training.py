"""Training on real images (issue 14): what may be trained on (never a test package, never a
validation crop), real planes blurred by the simulator, a share of sharp regions the model must
leave alone, and `deblur-train --real-pool` end to end (a fake wheel; no network)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core import defocus
from core.image import Image
from core.io import write_image
from tests.gui.conftest import make_specimen
from training.real_images import Plane, Source, fetch
from training.real_splits import bench_planes, crop_box, load_train_planes, split_of, train_planes


def _plane(source: str, shape=(700, 700), name="a.tif", seed=0) -> Plane:
    return Plane(make_specimen(shape, seed=seed).astype(np.float32), source, name, "fluorescence", 0.2)


def test_no_blur_share_keeps_the_marked_region_sharp_with_noise_only():
    sharp = make_specimen((96, 96), seed=1).astype(np.float32)
    cfg = defocus.DefocusConfig(no_blur_share=1.0, noise=None, brightfield_prob=0.0)
    sim = defocus.simulate_local_defocus(sharp, np.random.default_rng(3), cfg)
    assert sim.mask.any() and sim.psf_info["no_blur"] and sim.psf_info["radius_px"] == 0
    assert np.array_equal(sim.blurred, sim.sharp)                  # nothing blurred, no noise
    noisy = defocus.simulate_local_defocus(sharp, np.random.default_rng(3),
                                           defocus.DefocusConfig(no_blur_share=1.0))
    assert not np.array_equal(noisy.blurred, noisy.sharp)          # the camera's noise only
    assert abs(float((noisy.blurred - noisy.sharp).mean())) < 0.02      # unbiased: noise, no blur
    # the default (0) leaves the simulator's draws exactly as before
    a = defocus.simulate_local_defocus(sharp, np.random.default_rng(5), defocus.DefocusConfig())
    assert "no_blur" not in a.psf_info and a.psf_info["radius_px"] > 0
    shares = [defocus.simulate_local_defocus(sharp, np.random.default_rng(s),
                                             defocus.DefocusConfig(no_blur_share=0.5, noise=None))
              .psf_info.get("no_blur", False) for s in range(40)]
    assert 8 <= sum(shares) <= 32
    with pytest.raises(ValueError, match="no_blur_share"):
        defocus.DefocusConfig(no_blur_share=1.5)


def test_training_never_sees_a_test_package_or_a_validation_crop():
    pool = [_plane("cellprofiler", (900, 900), name=f"c{i}.tif", seed=i) for i in range(6)]
    pool += [_plane("epitools", name="e.tif"), _plane("symbac", (120, 40), "s.tif")]
    assert split_of("epitools") == "test" and split_of("cellprofiler") == "val"
    val = bench_planes(pool, "val")
    train = train_planes(pool)
    assert all(p.source != "epitools" for p in train)
    used = {p.name for p in val}
    whole = [p for p in train if "strip" not in p.name]
    assert whole and not ({p.name for p in whole} & used)          # unused planes, whole
    strips = [p for p in train if "strip" in p.name]
    assert strips and {p.name.split(" (")[0] for p in strips} <= used
    # a strip never overlaps the area any bench magnification crops from its plane
    y0, y1, x0, x1 = crop_box((900, 900))
    assert y1 - y0 >= 512 and x1 - x0 >= 512
    yy, xx = np.mgrid[:900, :900]
    coded = Plane((yy * 1000 + xx).astype(np.float64), "cellprofiler", "coded.tif", "fluorescence")
    for p in train_planes([coded]):
        y, x = np.divmod(p.data.astype(np.int64), 1000)
        assert not ((y >= y0) & (y < y1) & (x >= x0) & (x < x1)).any(), p.name


def _cache(tmp_path: Path) -> Path:
    wheel = tmp_path / "w.whl"
    img = write_image(tmp_path / "a.tif", Image(np.stack([make_specimen((300, 300), seed=s)
                                                          for s in range(6)]), "CYX"))
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(img, "pkg/a.tif")
    cache = tmp_path / "cache"

    def download(source, wheels):
        if source.package == "spotiflow":
            raise RuntimeError("pip could not download spotiflow==0.6.5")
        return wheel

    fetch(cache, (Source("cellprofiler", "1", ("pkg/*.tif",), "fluorescence", pixel_um=0.3),
                  Source("spotiflow", "0.6.5", ("*.tif",), "fluorescence"),
                  Source("epitools", "1", ("pkg/*.tif",), "confocal")),
          download=download, log=lambda s: None)
    return cache


def test_a_pool_with_missing_sources_trains_on_what_is_there_and_says_so(tmp_path):
    cache = _cache(tmp_path)
    manifest = json.loads((cache / "manifest.json").read_text())
    assert [m["package"] for m in manifest["missing"]] == ["spotiflow"]
    said: list[str] = []
    planes = load_train_planes(cache, said.append)
    assert planes and all(p.source == "cellprofiler" for p in planes)
    assert any("without the real images of" in s and "spotiflow" in s for s in said)
    with pytest.raises(ValueError, match="manifest.json"):
        load_train_planes(tmp_path / "nowhere")


def test_real_planes_are_blurred_by_the_simulator_at_varied_magnification():
    from training.sources import MixedSource, PlanePoolSource, SyntheticSource, item_rng

    planes = [_plane("cellprofiler", (400, 500)), Plane(np.random.default_rng(0).random((300, 300, 3))
                                                         .astype(np.float32), "histolab", "he", "H&E brightfield")]
    src = PlanePoolSource(planes, defocus.DefocusConfig(noise=None), field=128)
    sizes = set()
    for i in range(12):
        f = src.field(item_rng(0, 0, i), i)
        assert f.blurred.shape == f.sharp.shape == f.mask.shape and max(f.blurred.shape) <= 128
        assert np.isfinite(f.blurred).all() and f.mask.any()
        sizes.add(f.tag[0])
    assert len(sizes) == 2                                              # both planes drawn
    again = src.field(item_rng(0, 0, 3), 3)
    assert np.array_equal(again.blurred, src.field(item_rng(0, 0, 3), 3).blurred)
    mixed = MixedSource([SyntheticSource(defocus.DefocusConfig(), 64), src], [0.5, 0.5])
    tags = {mixed.field(item_rng(1, 0, i), i).tag[0] == "synthetic" for i in range(12)}
    assert tags == {True, False}
    with pytest.raises(ValueError):
        PlanePoolSource([])


def test_deblur_train_mixes_the_real_pool_into_synthetic_data(tmp_path, capsys):
    from training.cli import main

    cache = _cache(tmp_path)
    run = tmp_path / "run"
    rc = main(["--model", "comi", "--data", "synthetic", "--real-pool", str(cache), "--real-share", "0.5",
               "--config", "tiny", "--steps", "2", "--val-every", "0", "--out", str(run), "-q"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "real training planes: cellprofiler" in err and "spotiflow" in err
    card = json.loads((run / "comi.json").read_text())
    assert card["training"]["config"]["data"]["real_pool"] == str(cache)
    used = card["training"]["real_images"]
    assert used["share"] == 0.5 and set(used["planes"]) == {"cellprofiler"}
    from core.models.plain import data_label
    assert "real microscopy" in data_label("synthetic", used) and "cellprofiler" in data_label("synthetic", used)
    assert "no real images" in data_label("synthetic", None)
    rc = main(["--model", "comi", "--data", "synthetic", "--real-pool", str(tmp_path / "none"),
               "--config", "tiny", "--out", str(tmp_path / "r2"), "-q"])
    assert rc == 2 and "manifest.json" in capsys.readouterr().err
    rc = main(["--model", "comi", "--data", str(tmp_path), "--real-pool", str(cache),
               "--config", "tiny", "--out", str(tmp_path / "r3"), "-q"])
    assert rc == 2 and "synthetic" in capsys.readouterr().err


def test_a_card_shows_the_real_image_test_first_and_the_simulated_figure_apart():
    from core.models.plain import plain_lines, technical_lines
    from core.models.registry import get_entry

    card = {"training": {"data": "synthetic"},
            "bench": {"gain_db": 3.67, "images": 8, "per_image": [{"image": f"synthetic-{i}"} for i in range(8)]},
            "bench_real": {"split": "test", "images": 18, "what": "fluorescence, phase contrast",
                           "sources": ["epitools (confocal)"], "gain_db": 1.2, "worst_gain_db": -3.1,
                           "harm_rate": 2 / 18, "gain_over_rl_true_psf_db": 0.4, "ssim_blurred": 0.8,
                           "ssim": 0.85, "sharp": {"cases": 4, "passed": 1, "worst_psnr_smoothed": 30.2,
                                                   "worst_detail_ratio": 2.1},
                           "command": "deblur bench --split test"}}
    lines = plain_lines(get_entry("comi"), card)
    real = next(i for i, ln in enumerate(lines) if "real microscopy images from labs" in ln)
    sim = next(i for i, ln in enumerate(lines) if "simulated specimens it never saw" in ln)
    assert real < sim
    assert "+1.2 dB" in lines[real] and "2 of 18 came out worse" in lines[real] and "-3.1 dB" in lines[real]
    assert "+3.7 dB" in lines[sim]
    details = " ".join(technical_lines(card))
    assert "harm rate 11 %" in details and "1 of 4 left alone" in details and "epitools" in details


def test_a_pack_of_the_training_split_trains_on_exactly_the_same_planes(tmp_path, capsys):
    """A machine without the registry or a codec trains from one packed file: the same planes,
    nothing of the validation crops or test packages, and a damaged pack is named plainly."""
    from training.cli import main
    from training.real_splits import main as pack_main

    cache = _cache(tmp_path)
    pack = tmp_path / "real.trainpack.npz"
    assert pack_main([str(cache), str(pack)]) == 0
    direct, packed = load_train_planes(cache), load_train_planes(pack)
    assert [(p.source, p.name, p.pixel_um) for p in packed] == [(p.source, p.name, p.pixel_um) for p in direct]
    assert all(np.array_equal(a.data, b.data) and a.data.dtype == b.data.dtype for a, b in zip(direct, packed))
    assert pack_main([str(cache), str(tmp_path / "wrong.npz")]) == 1           # name must say what it is
    rc = main(["--model", "comi", "--data", "synthetic", "--real-pool", str(pack), "--config", "tiny",
               "--steps", "1", "--val-every", "0", "--out", str(tmp_path / "run"), "-q"])
    assert rc == 0 and "packed in real.trainpack.npz" in capsys.readouterr().err
    broken = tmp_path / "broken.trainpack.npz"
    broken.write_bytes(pack.read_bytes()[:1000])
    with pytest.raises(ValueError, match="broken.trainpack.npz"):
        load_train_planes(broken)
    rc = main(["--model", "comi", "--data", "synthetic", "--real-pool", str(tmp_path / "gone.trainpack.npz"),
               "--config", "tiny", "--steps", "1", "--out", str(tmp_path / "run2"), "-q"])
    assert rc == 2 and "gone.trainpack.npz: not a readable pack" in capsys.readouterr().err
