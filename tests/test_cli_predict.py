"""`deblur predict` and `deblur models` as a user runs them."""

import re
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from core.cli import main
from core.io import Image, read_image, write_image
from core.metrics import sharpness
from core.roi import Rect, RoiSet, save_rois


@pytest.fixture
def blurred_field(tmp_path):
    """A 16-bit field of small spots, blurred by a disk PSF inside one rectangle."""
    rng = np.random.default_rng(3)
    sharp = np.zeros((160, 200))
    ys, xs = rng.integers(4, 156, 300), rng.integers(4, 196, 300)
    sharp[ys, xs] = rng.uniform(0.5, 1, 300)
    sharp = ndimage.gaussian_filter(sharp, 1.0)
    sharp = sharp / sharp.max()
    from core.psf import disk_psf

    blurred = sharp.copy()
    psf = disk_psf(4.0)
    region = (slice(40, 120), slice(60, 160))
    blurred[region] = ndimage.convolve(sharp, psf, mode="reflect")[region]
    data = (blurred * 40000 + 200).astype(np.uint16)
    path = tmp_path / "field.tif"
    write_image(path, Image(data, "YX", pixel_size=(0.2, 0.2)))
    roi = tmp_path / "roi.json"
    save_rois(roi, RoiSet([Rect(60, 40, 100, 80)], feather=8))
    return path, roi, region


def _sharper_inside_untouched_outside(src, res, region) -> float:
    """Every pixel outside the region is the input's; returns how much sharper its core got."""
    outside = np.ones(src.data.shape, bool)
    outside[region] = False
    assert np.array_equal(res.data[outside], src.data[outside])
    inner = (slice(50, 110), slice(70, 150))
    return sharpness(res.data[inner]) / sharpness(src.data[inner])


def test_rl_restores_roi_and_leaves_outside_identical(blurred_field, tmp_path):
    path, roi, region = blurred_field
    out = tmp_path / "out.tif"
    rc = main(["predict", str(path), "-o", str(out), "--model", "richardson-lucy", "--roi", str(roi),
               "--device", "cpu", "--seed", "0", "-q"])
    assert rc == 0
    src, res = read_image(path), read_image(out)
    assert res.data.shape == src.data.shape and res.data.dtype == np.uint16
    assert res.pixel_size == pytest.approx((0.2, 0.2))
    assert _sharper_inside_untouched_outside(src, res, region) > 1.5


def test_rect_option_and_param(blurred_field, tmp_path):
    path, _, _ = blurred_field
    out = tmp_path / "o.tif"
    assert main(["predict", str(path), "-o", str(out), "--roi", "60,40,100,80", "--model", "richardson-lucy",
                 "--param", "psf_radius=3", "--param", "iterations=5", "-q"]) == 0
    assert out.exists()


def test_default_model_is_the_shipped_comi_and_it_sharpens_the_roi(blurred_field, tmp_path, capsys):
    from core.models.registry import default_model_name

    assert default_model_name() == "comi"                      # shipped weights come first
    path, roi, region = blurred_field
    out = tmp_path / "o.tif"
    assert main(["predict", str(path), "-o", str(out), "--roi", str(roi), "--device", "cpu", "-q"]) == 0
    assert _sharper_inside_untouched_outside(read_image(path), read_image(out), region) > 1.2


def test_corrupt_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    out = tmp_path / "out.tif"
    rc = main(["predict", str(bad), "-o", str(out), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "broken.tif" in err[0] and err[0].startswith("deblur: error:")
    assert list(tmp_path.iterdir()) == [bad]


def test_a_fault_inside_a_run_gives_one_plain_line_a_report_and_no_partial_file(
        blurred_field, tmp_path, capsys, monkeypatch):
    """A bug is not the user's fault: one line that says so and where the details are (no
    traceback on screen), exit 1, and nothing half-written beside the input."""
    from core.models.classical import RichardsonLucy

    path, roi, _ = blurred_field
    calls = []

    def broken(self, batch):
        calls.append(1)
        if len(calls) > 1:                      # the first tiles succeed, then a fault
            raise RuntimeError("tile index out of range\nsecond line")
        return batch

    monkeypatch.setattr(RichardsonLucy, "forward_tiles", broken)
    out = tmp_path / "restored.tif"
    before = sorted(p.name for p in tmp_path.iterdir())
    rc = main(["predict", str(path), "-o", str(out), "--roi", str(roi), "--model", "richardson-lucy",
               "--param", "psf_radius=4", "--tile", "64", "--overlap", "16", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "Traceback" not in err[0]
    assert err[0].startswith("deblur: internal error (RuntimeError: tile index out of range)")
    assert "not a problem with your data" in err[0] and "no partial file" in err[0]
    assert len(calls) > 1 and sorted(p.name for p in tmp_path.iterdir()) == before
    report = Path(err[0].split("The details are in ")[1].split("; please")[0])
    text = report.read_text()
    assert "Traceback" in text and "tile index out of range" in text and "predict" in text


def test_a_fault_with_traceback_env_also_prints_it(tmp_path, capsys, monkeypatch):
    import core.cli.models as models_cli

    def broken(args):
        raise KeyError("weights")

    monkeypatch.setattr(models_cli, "run", broken)
    monkeypatch.setenv("DEBLUR_TRACEBACK", "1")
    assert main(["models"]) == 1
    err = capsys.readouterr().err
    assert "internal error (KeyError: 'weights')" in err and "Traceback" in err


def test_running_out_of_memory_is_advice_not_a_bug_report(capsys, monkeypatch):
    import core.cli.models as models_cli

    def greedy(args):
        raise MemoryError()

    monkeypatch.setattr(models_cli, "run", greedy)
    assert main(["models"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not enough memory" in err[0] and "internal error" not in err[0]


def test_existing_output_is_not_replaced(blurred_field, tmp_path, capsys):
    path, roi, _ = blurred_field
    out = tmp_path / "exists.tif"
    out.write_bytes(b"keep me")
    assert main(["predict", str(path), "-o", str(out), "--roi", str(roi), "-q"]) == 2
    assert out.read_bytes() == b"keep me"
    assert main(["predict", str(path), "-o", str(path), "--roi", str(roi), "-q", "--overwrite"]) == 2
    assert "never overwrites" in capsys.readouterr().err


def test_several_inputs_go_to_a_folder(blurred_field, tmp_path):
    path, roi, _ = blurred_field
    second = tmp_path / "second.tif"
    tifffile.imwrite(second, read_image(path).data)
    outdir = tmp_path / "restored"
    assert main(["predict", str(path), str(second), "-o", str(outdir), "--roi", str(roi), "-q"]) == 0
    assert sorted(p.name for p in outdir.iterdir()) == ["field_deblurred.tif", "second_deblurred.tif"]


@pytest.mark.parametrize("args,words", [
    (["--model", "nosuch"], "unknown model"),
    (["--roi", "1,2,3"], "x,y,w,h"),
    (["--model", "richardson-lucy", "--param", "psf_radius=-1"], "at least"),
    (["--steps", "5"], "no setting 'steps'"),
    (["--device", "cuda:7"] if not __import__("torch").cuda.is_available() else ["--device", "tpu"], "cuda|device"),
])
def test_bad_options_exit_2(blurred_field, tmp_path, capsys, args, words):
    path, _, _ = blurred_field
    rc = main(["predict", str(path), "-o", str(tmp_path / "x.tif"), "-q", *args])
    err = capsys.readouterr().err
    assert rc == 2 and any(w.lower() in err.lower() for w in words.split("|"))
    assert not (tmp_path / "x.tif").exists()


def test_models_json_lists_the_catalog(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in rows]
    assert "richardson-lucy" in names
    assert all({"name", "display_name", "kind", "weights", "about", "details"} <= set(r) for r in rows)


def test_models_shows_what_the_shipped_weights_were_trained_on_and_score(tmp_path, monkeypatch, capsys):
    from dataclasses import replace

    from core.models import registry
    from core.models.generators import make_generator
    from core.models.registry import make_card
    from core.models.weights import save_weights

    net = make_generator(kind="unet", ngf=4, n_down=1)
    stage1 = {"data": "synthetic", "steps": 6800, "wall_time_s": 4380.0}
    card = make_card("comi", net, training={"data": "simulated specimens", "steps": 4000,
                                            "wall_time_s": 2880.0, "device": "cpu",
                                            "started_from": {"training": stage1}},
                     bench={"gain_db": 3.21, "gain_over_rl_true_psf_db": 1.62, "images": 10})
    path = save_weights(tmp_path / "comi.safetensors", net.state_dict(), card)
    entry = registry.get_entry("comi")
    monkeypatch.setitem(registry._REGISTRY, "comi", replace(entry, default_weights=path))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    block = out[out.index("COMI"):].split("\n\n")[0]
    lines = block.splitlines()
    # plain words first: what it is good for, what it may do wrong, the test, the training data
    assert lines[1].strip().startswith("Good for:") and lines[2].strip().startswith("Watch out:")
    assert "Trained on simulated specimens" in block
    assert "+3.2 dB closer to the sharp original" in block and "+1.6 dB against classical" in block
    assert "Training:" not in block                              # the technical record: --details
    assert main(["models", "--details"]) == 0
    block = capsys.readouterr().out.split("COMI")[1].split("\n\n")[0]
    # a fine-tuned model counts the training it started from too
    assert "Training: 10800 steps in 2 runs, 2.0 h, on cpu" in block


@pytest.mark.parametrize("command", ["predict", "simulate", "bench", "models"])
def test_help_says_each_default_once_and_never_none(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text and "(default: False)" not in text and "(default: [])" not in text
    assert not re.search(r"\(default[ :][^)]*\)\s*\(default", text)
    if command == "predict":
        assert "(default: 0)" in text                          # --seed keeps its real default


def test_output_records_model_weights_settings_regions_and_seed(blurred_field, tmp_path, capsys):
    """`deblur info` tells how a file was made, down to the checksum of the weights."""
    import hashlib

    from core.models.registry import get_entry

    path, roi, _ = blurred_field
    out = tmp_path / "o.tif"
    assert main(["predict", str(path), "-o", str(out), "--roi", str(roi), "--seed", "7", "-q",
                 "--param", "orientations=1"]) == 0
    rec = read_image(out).metadata["provenance"]
    shipped = get_entry("comi").default_weights
    assert rec["model"] == "comi" and rec["seed"] == 7 and rec["settings"] == {"orientations": 1,
                                                                        "brightness_px": 0.0,
                                                                        "match_steps": 0}
    assert rec["weights"]["sha256"] == hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert rec["regions"]["rois"] and rec["source"] == str(path)
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "model: comi, comi.safetensors (shipped weights" in text and "seed 7" in text
    assert main(["info", str(path)]) == 2                      # not written by deblur: says so
    assert "no deblur record" in capsys.readouterr().err
