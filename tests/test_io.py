"""core.io: round trips keep pixels, axes and metadata; every bad file gives a clear ImageError."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage

from core import io as cio
from core.io import Image, ImageError, finite_copy, put_back_nonfinite, read_image, write_image

SIZES = {"T": 2, "Z": 3, "C": 2, "Y": 24, "X": 20, "S": 3}


def _data(shape: tuple[int, ...], dtype: str, rng: np.random.Generator) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return (rng.standard_normal(shape) * 1000).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dt)


# --------------------------------------------------------------------------- TIFF round trips

TIFF_CASES = [
    # (axes, dtype, shape override, expected kind)
    ("YX", "uint8", None, "imagej"),
    ("YX", "uint16", None, "imagej"),
    ("YX", "int16", None, "ome"),
    ("YX", "uint32", None, "ome"),
    ("YX", "float32", None, "imagej"),
    ("YX", "float64", None, "ome"),
    ("YX", "int8", None, "ome"),
    ("YX", "int32", None, "ome"),
    ("ZYX", "uint16", None, "imagej"),
    ("ZYX", "float64", None, "ome"),
    ("CYX", "uint16", None, "imagej"),
    ("CYX", "int16", None, "ome"),
    ("YXS", "uint8", None, "imagej"),
    ("YXS", "uint16", None, "ome"),
    ("YXS", "uint8", (24, 20, 4), "ome"),       # RGBA
    ("TZCYX", "float32", None, "imagej"),
    ("CZYX", "uint8", None, "ome"),              # not ImageJ's order
    ("ZYX", "uint16", (1, 24, 20), "imagej"),   # a singleton dimension survives
    ("ZYXS", "uint8", None, "imagej"),           # RGB z stack
    ("CYXS", "uint8", None, "ome"),
    ("TYX", "float64", None, "ome"),
    ("YXS", "uint8", (24, 20, 2), "ome"),       # gray + alpha
]


@pytest.mark.parametrize("axes,dtype,shape,kind", TIFF_CASES)
def test_tiff_round_trip_keeps_everything(tmp_path, rng, axes, dtype, shape, kind):
    shape = shape or tuple(SIZES[a] for a in axes)
    data = _data(shape, dtype, rng)
    meta = {"z_step": 0.75, "t_step": 2.5, "note": "kept", "nested": {"a": [1, 2]}}
    if "C" in axes:
        meta["channel_names"] = ["DAPI", "GFP"]
    img = Image(data, axes, pixel_size=(0.325, 0.2), metadata=meta)
    out = write_image(tmp_path / "out.tif", img)
    back = read_image(out)
    assert back.axes == axes
    assert back.data.dtype == data.dtype
    assert back.data.shape == data.shape
    np.testing.assert_array_equal(back.data, data)
    assert back.pixel_size == pytest.approx((0.325, 0.2), rel=1e-6)
    assert back.metadata["z_step"] == pytest.approx(0.75)
    assert back.metadata["t_step"] == pytest.approx(2.5)
    assert back.metadata["note"] == "kept" and back.metadata["nested"] == {"a": [1, 2]}
    if "C" in axes:
        assert back.metadata["channel_names"] == ["DAPI", "GFP"]
    assert back.metadata["tiff_kind"] == kind
    assert "axes_guessed" not in back.metadata
    assert back.path == out


@pytest.mark.parametrize("axes,dtype,shape,kind", [c for c in TIFF_CASES if c[2] != (1, 24, 20)])
def test_tiff_standard_metadata_alone_gives_same_axes(tmp_path, rng, axes, dtype, shape, kind):
    """Fiji / Bio-Formats ignore our private tag: the ImageJ or OME metadata must agree on its own."""
    shape = shape or tuple(SIZES[a] for a in axes)
    img = Image(_data(shape, dtype, rng), axes, pixel_size=(0.5, 0.5))
    out = write_image(tmp_path / "out.tiff", img)
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == axes
        assert tif.is_imagej == (kind == "imagej") and tif.is_ome == (kind == "ome")
    img2 = read_image(out)
    assert img2.pixel_size == pytest.approx((0.5, 0.5))


def test_write_does_not_touch_the_callers_metadata(tmp_path, rng):
    img = Image(_data((16, 16), "uint8", rng), "YX", metadata={"nonfinite": 3, "x": np.float32(1.5)})
    before = dict(img.metadata)
    back = read_image(write_image(tmp_path / "a.tif", img))
    assert img.metadata == before
    assert back.metadata["x"] == pytest.approx(1.5)
    assert "nonfinite" not in back.metadata   # uint8: transient keys are recomputed, not stored


# --------------------------------------------------------------------------- files from other writers


@pytest.mark.parametrize("unit,factor", [("um", 1.0), ("micron", 1.0), ("\\u00B5m", 1.0),
                                         ("nm", 1e-3), ("mm", 1e3), ("cm", 1e4)])
def test_imagej_file_from_tifffile(tmp_path, rng, unit, factor):
    data = _data((4, 32, 32), "uint16", rng)
    p = tmp_path / "ij.tif"
    tifffile.imwrite(p, data, imagej=True, resolution=(1 / 0.2, 1 / 0.25),
                     metadata={"unit": unit, "axes": "ZYX", "spacing": 0.5})
    img = read_image(p)
    assert img.axes == "ZYX" and img.metadata["tiff_kind"] == "imagej"
    np.testing.assert_array_equal(img.data, data)
    assert img.pixel_size == pytest.approx((0.25 * factor, 0.2 * factor), rel=1e-6)
    assert img.metadata["z_step"] == pytest.approx(0.5 * factor)


def test_imagej_file_without_unit_has_no_pixel_size(tmp_path, rng):
    p = tmp_path / "ij.tif"
    tifffile.imwrite(p, _data((32, 32), "uint8", rng), imagej=True, resolution=(3.0, 3.0))
    assert read_image(p).pixel_size is None


def test_ome_file_from_tifffile(tmp_path, rng):
    data = _data((3, 32, 40), "uint16", rng)
    p = tmp_path / "ome.ome.tif"
    tifffile.imwrite(p, data, ome=True, photometric="minisblack",
                     metadata={"axes": "CYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.15,
                               "Channel": {"Name": ["a", "b", "c"]}})
    img = read_image(p)
    assert img.axes == "CYX" and img.metadata["tiff_kind"] == "ome"
    np.testing.assert_array_equal(img.data, data)
    assert img.pixel_size == pytest.approx((0.15, 0.1))
    assert img.metadata["channel_names"] == ["a", "b", "c"]


def test_ome_units_are_converted(tmp_path, rng):
    p = tmp_path / "ome.tif"
    tifffile.imwrite(p, _data((2, 32, 32), "float32", rng), ome=True, photometric="minisblack",
                     metadata={"axes": "ZYX", "PhysicalSizeX": 100, "PhysicalSizeXUnit": "nm",
                               "PhysicalSizeY": 100, "PhysicalSizeYUnit": "nm",
                               "PhysicalSizeZ": 0.002, "PhysicalSizeZUnit": "mm"})
    img = read_image(p)
    assert img.pixel_size == pytest.approx((0.1, 0.1))
    assert img.metadata["z_step"] == pytest.approx(2.0)


@pytest.mark.parametrize("unit,res,expected", [("CENTIMETER", 20000.0, 0.5), ("INCH", 25400.0, 1.0)])
def test_plain_tiff_resolution_units(tmp_path, rng, unit, res, expected):
    p = tmp_path / "plain.tif"
    tifffile.imwrite(p, _data((32, 32), "uint8", rng), resolution=(res, res), resolutionunit=unit)
    assert read_image(p).pixel_size == pytest.approx((expected, expected))


def test_plain_multipage_tiff_is_z_with_a_note(tmp_path, rng):
    data = _data((3, 32, 32), "uint16", rng)
    p = tmp_path / "pages.tif"
    with tifffile.TiffWriter(p) as w:
        for plane in data:
            w.write(plane, photometric="minisblack", metadata=None)
    img = read_image(p)
    assert img.axes == "ZYX" and img.metadata["axes_guessed"] is True
    assert "z" in img.metadata["axes_note"]
    np.testing.assert_array_equal(img.data, data)


def test_rgb_tiff_and_planar_rgb(tmp_path, rng):
    rgb = _data((32, 32, 3), "uint8", rng)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    img = read_image(tmp_path / "rgb.tif")
    assert img.axes == "YXS" and "axes_guessed" not in img.metadata
    planar = np.ascontiguousarray(np.moveaxis(rgb, -1, 0))
    tifffile.imwrite(tmp_path / "planar.tif", planar, photometric="rgb", planarconfig="separate")
    img = read_image(tmp_path / "planar.tif")
    assert img.axes == "CYX"        # colour planes become channels, data not moved
    np.testing.assert_array_equal(img.data, planar)


def test_big_endian_tiff_reads_native(tmp_path, rng):
    data = _data((32, 32), "uint16", rng)
    tifffile.imwrite(tmp_path / "be.tif", data, byteorder=">")
    img = read_image(tmp_path / "be.tif")
    assert img.data.dtype == np.dtype("uint16") and img.data.dtype.isnative
    np.testing.assert_array_equal(img.data, data)


# --------------------------------------------------------------------------- PNG / JPEG


@pytest.mark.parametrize("dtype,shape", [("uint8", (24, 20)), ("uint16", (24, 20)),
                                         ("uint8", (24, 20, 3)), ("uint8", (24, 20, 4)),
                                         ("uint16", (24, 20, 3))])
def test_png_round_trip(tmp_path, rng, dtype, shape):
    data = _data(shape, dtype, rng)
    axes = "YX" if len(shape) == 2 else "YXS"
    out = write_image(tmp_path / "a.png", Image(data, axes, pixel_size=(0.325, 0.325)))
    back = read_image(out)
    assert back.axes == axes and back.data.dtype == data.dtype
    np.testing.assert_array_equal(back.data, data)
    assert back.pixel_size == pytest.approx((0.325, 0.325), rel=1e-6)
    assert back.metadata["format"] == "png"


def test_png_from_pillow_16bit_palette_rgba(tmp_path, rng):
    g16 = _data((32, 32), "uint16", rng)
    PILImage.fromarray(g16).save(tmp_path / "g16.png")
    img = read_image(tmp_path / "g16.png")
    assert img.data.dtype == np.uint16 and img.axes == "YX"
    np.testing.assert_array_equal(img.data, g16)

    pal = PILImage.fromarray(_data((32, 32), "uint8", rng) % 4).convert("P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 12))
    pal.save(tmp_path / "pal.png")
    img = read_image(tmp_path / "pal.png")
    assert img.axes == "YXS" and img.data.shape == (32, 32, 3) and img.data.dtype == np.uint8

    rgba = _data((32, 32, 4), "uint8", rng)
    PILImage.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png").data, rgba)


def test_jpeg_write_and_read(tmp_path, rng):
    smooth = np.add.outer(np.arange(32), np.arange(32)).astype(np.uint8) * 3
    out = write_image(tmp_path / "a.jpg", Image(smooth, "YX"))
    back = read_image(out)
    assert back.axes == "YX" and back.data.dtype == np.uint8 and back.data.shape == smooth.shape
    assert np.abs(back.data.astype(int) - smooth).max() < 8       # lossy but close
    with pytest.raises(ImageError, match="b.jpg"):
        write_image(tmp_path / "b.jpg", Image(smooth.astype(np.uint16), "YX"))


@pytest.mark.parametrize("axes,dtype", [("ZYX", "uint8"), ("YX", "float32"), ("YX", "int16")])
def test_png_refuses_what_it_cannot_hold(tmp_path, rng, axes, dtype):
    data = _data(tuple(SIZES[a] for a in axes), dtype, rng)
    with pytest.raises(ImageError, match=r"out\.png.*|PNG"):
        write_image(tmp_path / "out.png", Image(data, axes))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- bad input


def _valid_tiff(path: Path, rng, **kw) -> Path:
    tifffile.imwrite(path, _data((4, 64, 64), "uint16", rng), photometric="minisblack", **kw)
    return path


def _bad_files(tmp: Path, rng) -> dict[str, Path]:
    files = {}
    files["missing"] = tmp / "missing.tif"
    (tmp / "empty.tif").write_bytes(b"")
    files["empty"] = tmp / "empty.tif"
    for kind, kw in (("plain", {}), ("imagej", {"imagej": True}), ("ome", {"ome": True})):
        full = _valid_tiff(tmp / f"full_{kind}.tif", rng, **kw).read_bytes()
        (tmp / f"half_{kind}.tif").write_bytes(full[: len(full) // 2])
        files[f"truncated_{kind}"] = tmp / f"half_{kind}.tif"
    (tmp / "noise.tif").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    files["corrupt"] = tmp / "noise.tif"
    (tmp / "notes.png").write_text("these are my notes, not a picture\n")
    files["text"] = tmp / "notes.png"
    tifffile.imwrite(tmp / "complex.tif", np.ones((32, 32), np.complex64))
    files["complex"] = tmp / "complex.tif"
    tifffile.imwrite(tmp / "bool.tif", np.ones((32, 32), bool))
    files["bool"] = tmp / "bool.tif"
    tifffile.imwrite(tmp / "tiny.tif", np.ones((5, 5), np.uint8))
    files["tiny"] = tmp / "tiny.tif"
    tifffile.imwrite(tmp / "ambiguous.tif", np.ones((2, 3, 32, 32), np.uint16), photometric="minisblack")
    files["ambiguous"] = tmp / "ambiguous.tif"
    tifffile.imwrite(tmp / "half_float.tif", np.ones((32, 32), np.float16))
    files["float16"] = tmp / "half_float.tif"
    (tmp / "folder.tif").mkdir()
    files["folder"] = tmp / "folder.tif"
    return files


EXPECTED_WORDS = {
    "missing": "does not exist", "empty": "empty", "truncated_plain": "truncated",
    "truncated_imagej": "truncated", "truncated_ome": "incomplete", "corrupt": "corrupt",
    "text": "text", "complex": "complex", "bool": "black-and-white", "tiny": "too small",
    "ambiguous": "which is time, z or channel", "float16": "not supported", "folder": "folder",
}


def test_every_bad_input_gives_a_plain_image_error(tmp_path, rng):
    files = _bad_files(tmp_path, rng)
    assert set(files) == set(EXPECTED_WORDS)
    for case, path in files.items():
        with pytest.raises(ImageError) as info:
            read_image(path)
        msg = str(info.value)
        assert path.name in msg, case
        assert EXPECTED_WORDS[case] in msg, (case, msg)
        assert isinstance(info.value, ValueError)
        assert "Traceback" not in msg and "\n" not in msg


def test_the_valid_originals_of_the_bad_files_read_fine(tmp_path, rng):
    """Guards the truncation check against false alarms on complete files."""
    for kind, kw in (("plain", {}), ("imagej", {"imagej": True}), ("ome", {"ome": True})):
        img = read_image(_valid_tiff(tmp_path / f"{kind}.tif", rng, **kw))
        assert img.data.shape == (4, 64, 64)


# --------------------------------------------------------------------------- safe writing


def test_never_overwrites_the_input(tmp_path, rng):
    src = _valid_tiff(tmp_path / "cells.tif", rng)
    original = src.read_bytes()
    img = read_image(src)
    doubled = img.with_data(img.data // 2)
    for target in (src, tmp_path / "sub" / ".." / "cells.tif", Path(os.path.relpath(src))):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(ImageError, match="cells.tif"):
            write_image(target, doubled, overwrite=True)
    link = tmp_path / "link.tif"
    link.symlink_to(src)
    with pytest.raises(ImageError, match="original"):
        write_image(link, doubled, overwrite=True)
    assert src.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.tif", "link.tif", "sub"]


def test_existing_file_needs_overwrite(tmp_path, rng):
    img = Image(_data((16, 16), "uint8", rng), "YX")
    target = tmp_path / "out.tif"
    target.write_bytes(b"keep me")
    with pytest.raises(ImageError, match="already exists"):
        write_image(target, img)
    assert target.read_bytes() == b"keep me"
    write_image(target, img, overwrite=True)
    np.testing.assert_array_equal(read_image(target).data, img.data)


def _partial_then_fail(exc: BaseException):
    def fake_imwrite(file, data, **kw):
        Path(file).write_bytes(b"II*\x00" + b"\x00" * 100)
        raise exc
    return fake_imwrite


def test_failed_write_leaves_nothing_behind(tmp_path, rng, monkeypatch):
    img = Image(_data((16, 16), "uint16", rng), "YX")
    monkeypatch.setattr(tifffile, "imwrite", _partial_then_fail(RuntimeError("disk on fire")))
    with pytest.raises(ImageError, match="out.tif") as info:
        write_image(tmp_path / "out.tif", img)
    assert "disk on fire" in str(info.value)
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setattr(tifffile, "imwrite", _partial_then_fail(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "out.tif", img)
    assert list(tmp_path.iterdir()) == []

    (tmp_path / "out.tif").write_bytes(b"previous result")
    monkeypatch.setattr(tifffile, "imwrite", _partial_then_fail(OSError(28, "No space left")))
    with pytest.raises(ImageError, match="full"):
        write_image(tmp_path / "out.tif", img, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"]
    assert (tmp_path / "out.tif").read_bytes() == b"previous result"


def test_atomic_write_and_permissions(tmp_path):
    target = tmp_path / "x.bin"
    with pytest.raises(ZeroDivisionError):
        with cio.atomic_write(target) as tmp:
            tmp.write_bytes(b"half")
            1 / 0
    assert list(tmp_path.iterdir()) == []
    old = os.umask(0o022)
    try:
        with cio.atomic_write(target) as tmp:
            assert tmp.parent == tmp_path
            tmp.write_bytes(b"done")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"done"
    assert target.stat().st_mode & 0o777 == 0o644


def test_write_errors_name_the_file(tmp_path, rng):
    img = Image(_data((16, 16), "uint8", rng), "YX")
    with pytest.raises(ImageError, match="a.bmp"):
        write_image(tmp_path / "a.bmp", img)
    with pytest.raises(ImageError, match="does not exist"):
        write_image(tmp_path / "nowhere" / "a.tif", img)
    with pytest.raises(ImageError, match="c.tif"):
        write_image(tmp_path / "c.tif", Image(np.ones((16, 16), np.complex64), "YX"))


# --------------------------------------------------------------------------- NaN / Inf and helpers


def test_nonfinite_are_counted_kept_and_handled(tmp_path, rng):
    data = _data((3, 32, 32), "float32", rng)
    data[0, 1, 2] = np.nan
    data[1, 5, 5] = np.inf
    data[2, 7, 9] = -np.inf
    data[2, 0, 0] = np.nan
    back = read_image(write_image(tmp_path / "nan.tif", Image(data, "ZYX")))
    assert back.metadata["nonfinite"] == 4
    np.testing.assert_array_equal(back.data, data)          # NaN positions equal too

    plane = back.data[2]
    filled, mask = finite_copy(plane)
    assert np.isfinite(filled).all() and mask.sum() == 2
    assert filled[0, 0] == pytest.approx(np.median(plane[np.isfinite(plane)]))
    assert np.isnan(plane[0, 0])                            # the input is not changed
    restored = put_back_nonfinite(filled * 1, plane, mask)
    np.testing.assert_array_equal(restored, plane)

    same, none = finite_copy(back.data[1][:, 6:])
    assert none is None and same.base is not None          # no copy when nothing to fix
    assert finite_copy(np.ones((4, 4), np.uint8))[1] is None
    all_nan, m = finite_copy(np.full((4, 4), np.nan, np.float32))
    assert (all_nan == 0).all() and m.all()


def test_image_helpers(rng):
    data = _data((2, 24, 20, 3), "uint8", rng)
    img = Image(data, "ZYXS", pixel_size=(1, 1), metadata={"z_step": 2.0, "list": [1]})
    assert img.shape_yx == (24, 20) and img.n_planes == 6
    seen = []
    out = np.zeros_like(data)
    for idx, plane in img.planes():
        assert plane.shape == (24, 20) and np.shares_memory(plane, data)
        seen.append(idx)
        out[idx] = plane
    assert len(set(map(str, seen))) == 6
    np.testing.assert_array_equal(out, data)

    other = img.with_data(data[::-1].copy())
    assert other.axes == "ZYXS" and other.pixel_size == (1.0, 1.0)
    assert other.metadata == img.metadata
    other.metadata["list"].append(2)
    assert img.metadata["list"] == [1]
    f = img.with_data(np.full(data.shape, np.nan, np.float32))
    assert f.metadata["nonfinite"] == data.size

    with pytest.raises(ValueError):
        Image(np.zeros((3, 16, 16)), "YXZ")
    with pytest.raises(ValueError):
        Image(np.zeros((16, 16)), "ZYX")
    with pytest.raises(ValueError):
        Image(np.zeros((16, 16)), "YX", pixel_size=(0, 1))


def test_screen_dpi_is_not_taken_for_a_microscope_pixel_size(tmp_path):
    """72 dpi would mean 352.8 um per pixel: a scale bar from it would be nonsense."""
    from PIL import Image as PILImage

    p = tmp_path / "screen.png"
    PILImage.fromarray(np.zeros((16, 16), np.uint8)).save(p, dpi=(72, 72))
    assert read_image(p).pixel_size is None
