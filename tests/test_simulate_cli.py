"""`deblur simulate` (core/cli/simulate.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.cli import main
from core.io import Image, read_image, write_image
from core.roi import load_rois, roi_mask
from training import synth


@pytest.fixture
def sharp_tif(tmp_path):
    img = (synth.nuclei(96, 1, pixel_um=0.3) * 30000 + 200).astype(np.uint16)
    path = tmp_path / "sharp.tif"
    write_image(path, Image(img, "YX", pixel_size=(0.3, 0.3)))
    return path


def run(args, capsys):
    rc = main(["simulate", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_simulate_keeps_dtype_and_writes_a_valid_roi_file(sharp_tif, tmp_path, capsys):
    out = tmp_path / "field.tif"
    rc, stdout, err = run([sharp_tif, "-o", out, "--seed", "3", "--defocus-um", "2"], capsys)
    assert rc == 0, err
    assert "blur radius" in stdout
    src, res = read_image(sharp_tif), read_image(out)
    assert res.data.dtype == np.uint16 and res.data.shape == src.data.shape
    assert res.axes == src.axes and res.pixel_size == pytest.approx(src.pixel_size)
    roi_file = tmp_path / "field.roi.json"
    rois = load_rois(roi_file)                       # valid DESIGN §2 file
    assert rois.rois and json.loads(roi_file.read_text())["rois"][0]["type"] == "polygon"
    mask = roi_mask(rois, src.shape_yx)
    assert 0.1 < (mask > 0).mean() < 0.6
    assert np.array_equal(res.data[mask == 0], src.data[mask == 0])        # untouched outside
    changed = res.data != src.data
    assert changed.any() and not changed[mask == 0].any()
    # same seed, same output; another seed, another region
    rc, _, _ = run([sharp_tif, "-o", tmp_path / "again.tif", "--seed", "3", "--defocus-um", "2"], capsys)
    assert rc == 0 and np.array_equal(read_image(tmp_path / "again.tif").data, res.data)
    rc, _, _ = run([sharp_tif, "-o", tmp_path / "other.tif", "--seed", "4", "--defocus-um", "2"], capsys)
    assert not np.array_equal(read_image(tmp_path / "other.tif").data, res.data)


def test_simulate_with_a_roi_file_blurs_only_there(sharp_tif, tmp_path, capsys):
    roi = tmp_path / "region.json"
    roi.write_text('{"rois": [{"type": "rect", "x": 20, "y": 30, "w": 50, "h": 40}], "feather": 6}')
    out = tmp_path / "r.tif"
    rc, _, err = run([sharp_tif, "-o", out, "--mask", roi, "--psf", "gaussian", "--photons", "500"], capsys)
    assert rc == 0, err
    src, res = read_image(sharp_tif).data, read_image(out).data
    diff = res != src
    ys, xs = np.nonzero(diff)
    assert ys.min() >= 30 and ys.max() < 70 and xs.min() >= 20 and xs.max() < 70
    assert load_rois(tmp_path / "r.roi.json").rois == load_rois(roi).rois


@pytest.mark.parametrize("dtype,axes,shape,suffix", [
    (np.float32, "YX", (64, 72), ".tif"),
    (np.uint8, "YXS", (64, 64, 3), ".png"),
    (np.uint16, "CYX", (2, 64, 64), ".tif"),
])
def test_simulate_keeps_dtype_for_other_layouts(tmp_path, capsys, dtype, axes, shape, suffix):
    rng = np.random.default_rng(0)
    base = synth.cells(shape[-2] if axes != "YXS" else shape[0], 2)
    if axes == "YXS":
        data = (np.stack([base] * 3, -1) * 255).astype(dtype)
    elif axes == "CYX":
        data = (np.stack([base, base[::-1]]) * 60000).astype(dtype)
    else:
        data = (synth.cells(shape, 2) * 3.5 + rng.normal(0, 0.01, shape)).astype(dtype)
    src = tmp_path / f"in{suffix}"
    write_image(src, Image(data, axes))
    out = tmp_path / f"out{suffix}"
    rc, _, err = run([src, "-o", out, "--pixel-um", "0.2", "--seed", "1"], capsys)
    assert rc == 0, err
    res = read_image(out)
    assert res.data.dtype == dtype and res.data.shape == data.shape and res.axes == axes
    assert (tmp_path / "out.roi.json").is_file()
    assert not np.array_equal(res.data, data)


def test_missing_pixel_size_is_noted_not_fatal(tmp_path, capsys):
    src = tmp_path / "nopx.tif"
    write_image(src, Image((synth.nuclei(64, 0) * 200).astype(np.uint8), "YX"))
    rc, _, err = run([src, "-o", tmp_path / "o.tif"], capsys)
    assert rc == 0 and "assuming" in err


@pytest.mark.parametrize("case", ["missing", "exists", "na", "defocus", "outside", "roi_missing", "roi_bad",
                                  "levels", "bool"])
def test_bad_inputs_exit_2_with_one_clear_line(sharp_tif, tmp_path, capsys, case):
    out = tmp_path / "o.tif"
    args = [sharp_tif, "-o", out]
    if case == "missing":
        args = [tmp_path / "nope.tif", "-o", out]
    elif case == "exists":
        out.write_bytes(b"x")
    elif case == "na":
        args += ["--na", "1.3", "--n-medium", "1.0"]
    elif case == "defocus":
        args += ["--defocus-um", "-1"]
    elif case == "outside":
        roi = tmp_path / "far.json"
        roi.write_text('{"rois": [{"type": "rect", "x": 500, "y": 500, "w": 10, "h": 10}]}')
        args += ["--mask", roi]
    elif case == "roi_missing":
        args += ["--mask", tmp_path / "nofile.json"]
    elif case == "roi_bad":
        roi = tmp_path / "bad.json"
        roi.write_text("{not json")
        args += ["--mask", roi]
    elif case == "levels":
        args += ["--levels", "0"]
    elif case == "bool":
        src = tmp_path / "mask.tif"
        import tifffile

        tifffile.imwrite(src, np.zeros((16, 16), bool))
        args = [src, "-o", out]
    rc, stdout, err = run(args, capsys)
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("deblur: error: "), err
    assert "Traceback" not in err
    if case != "exists":
        assert not out.exists()
    assert not (tmp_path / "o.roi.json").exists()
