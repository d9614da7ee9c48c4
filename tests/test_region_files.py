"""Regions move between Fiji and deblur: ImageJ .roi and ROI Manager .zip files are read and
written, through the app and `deblur predict --roi`."""

from __future__ import annotations

import numpy as np
import pytest
from roifile import ROI_TYPE, ImagejRoi, roiread, roiwrite

from core.region_files import load_region_file, read_imagej_rois, save_region_file
from core.roi import Ellipse, Polygon, Rect, RoiError, RoiSet, roi_mask


def test_fiji_shapes_come_in_unchanged(tmp_path):
    rect = ImagejRoi(roitype=ROI_TYPE.RECT, left=10, top=20, right=40, bottom=60, name="r")
    oval = ImagejRoi(roitype=ROI_TYPE.OVAL, left=5, top=6, right=25, bottom=16, name="o")
    poly = ImagejRoi.frompoints(np.array([[1, 1], [30, 2], [15, 40]], np.float32), name="p")
    path = tmp_path / "RoiSet.zip"
    roiwrite(path, [rect, oval, poly])
    rois, skipped = load_region_file(path)
    assert rois.rois == [Rect(10, 20, 30, 40), Ellipse(5, 6, 20, 10),
                         Polygon([(1.0, 1.0), (30.0, 2.0), (15.0, 40.0)])]
    assert skipped == []


def test_deblur_regions_round_trip_through_fiji_files(tmp_path):
    rs = RoiSet([Rect(10, 20, 30, 40), Ellipse(5.5, 6, 20, 10), Polygon([(1, 1), (30, 2.5), (15, 40)])])
    save_region_file(tmp_path / "mine.zip", rs)
    assert {r.name for r in roiread(tmp_path / "mine.zip")} == {"deblur-1", "deblur-2", "deblur-3"}
    back, _ = load_region_file(tmp_path / "mine.zip")
    assert np.array_equal(roi_mask(back, (80, 80)), roi_mask(rs, (80, 80)))
    save_region_file(tmp_path / "one.roi", RoiSet([Rect(1, 2, 3, 4)]))
    assert load_region_file(tmp_path / "one.roi")[0].rois == [Rect(1, 2, 3, 4)]
    with pytest.raises(RoiError, match="one region"):
        save_region_file(tmp_path / "two.roi", rs)


def test_lines_and_points_are_skipped_and_a_file_of_only_those_is_refused(tmp_path):
    line = ImagejRoi(roitype=ROI_TYPE.LINE, name="a line")
    rect = ImagejRoi(roitype=ROI_TYPE.RECT, left=0, top=0, right=8, bottom=8, name="box")
    roiwrite(tmp_path / "mixed.zip", [line, rect])
    rois, skipped = read_imagej_rois(tmp_path / "mixed.zip")
    assert rois.rois == [Rect(0, 0, 8, 8)] and skipped == ["a line (line: not an area)"]
    roiwrite(tmp_path / "lines.roi", line)
    with pytest.raises(RoiError, match="lines.roi: no region deblur can use"):
        load_region_file(tmp_path / "lines.roi")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(RoiError, match="junk.zip"):
        load_region_file(tmp_path / "junk.zip")


def test_predict_takes_a_fiji_roi_set(tmp_path, capsys):
    from core.cli import main
    from core.io import Image, read_image, write_image

    rng = np.random.default_rng(0)
    img = write_image(tmp_path / "f.tif", Image((rng.random((64, 64)) * 1000).astype(np.uint16), "YX"))
    roiwrite(tmp_path / "RoiSet.zip", [ImagejRoi(roitype=ROI_TYPE.RECT, left=8, top=8, right=40, bottom=40),
                                      ImagejRoi(roitype=ROI_TYPE.POINT, name="spot")])
    out = tmp_path / "o.tif"
    assert main(["predict", str(img), "-o", str(out), "--roi", str(tmp_path / "RoiSet.zip"),
                 "--model", "richardson-lucy", "-q"]) == 0
    assert "skipped 1 ImageJ ROI" in capsys.readouterr().err
    src, res = read_image(img).data, read_image(out).data
    assert np.array_equal(res[:8], src[:8]) and not np.array_equal(res[10:38, 10:38], src[10:38, 10:38])
