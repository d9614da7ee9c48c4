"""core.batch: the path `deblur predict` and the app's folder restore share."""

from __future__ import annotations

import pytest

from core.batch import free_path, image_files, regions_for
from core.io import Image, read_image, write_image
from core.roi import Rect, RoiSet, save_rois
from tests.gui.conftest import make_specimen


def test_free_path_never_returns_an_existing_file(tmp_path):
    p = tmp_path / "x_deblurred.tif"
    assert free_path(p) == p
    p.write_bytes(b"1")
    (tmp_path / "x_deblurred-2.tif").write_bytes(b"2")
    assert free_path(p) == tmp_path / "x_deblurred-3.tif"


def test_image_files_skip_results_hidden_files_and_others(tmp_path):
    for name in ("b.tif", "a.png", "a_deblurred.tif", ".hidden.tif", "notes.txt", "a.roi.json"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in image_files(tmp_path)] == ["a.png", "b.tif"]


def test_region_rules(tmp_path):
    path = write_image(tmp_path / "a.tif", Image(make_specimen((64, 64)), "YX"))
    image = read_image(path)
    assert regions_for(image, path, "whole") == (None, "whole image")
    same = RoiSet([Rect(1, 1, 10, 10)])
    assert regions_for(image, path, "same", same) == (same, "the marked regions")
    with pytest.raises(ValueError, match="no regions are marked"):
        regions_for(image, path, "same", None)
    rois, where = regions_for(image, path, "sidecar_or_auto")
    assert where == "detected"
    save_rois(tmp_path / "a.roi.json", RoiSet([Rect(2, 2, 20, 20)]))
    rois, where = regions_for(image, path, "sidecar_or_auto")
    assert where == "a.roi.json" and rois.rois == [Rect(2, 2, 20, 20)]
    with pytest.raises(ValueError, match="unknown region rule"):
        regions_for(image, path, "everything")
