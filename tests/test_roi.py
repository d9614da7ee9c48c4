"""ROI files and masks: the DESIGN §2 format round-trips, masks never leak outside a ROI."""

import json

import numpy as np
import pytest

from core.roi import Ellipse, Polygon, Rect, RoiError, RoiSet, load_rois, parse_rect, roi_mask, save_rois


def test_design_example_round_trips(tmp_path):
    doc = {"rois": [{"type": "rect", "x": 10, "y": 20, "w": 100, "h": 80},
                    {"type": "ellipse", "x": 200, "y": 40, "w": 60, "h": 60},
                    {"type": "polygon", "points": [[5, 5], [60, 8], [30, 70]]}],
           "feather": 16}
    src = tmp_path / "r.json"
    src.write_text(json.dumps(doc))
    rois = load_rois(src)
    assert [type(r) for r in rois] == [Rect, Ellipse, Polygon]
    save_rois(tmp_path / "s.json", rois)
    assert json.loads((tmp_path / "s.json").read_text()) == doc


@pytest.mark.parametrize("text,problem", [
    ("{", "JSON"), ('{"rois": 3}', "rois"), ('{"rois": [{"type": "star"}]}', "unknown type"),
    ('{"rois": [{"type": "rect", "x": 1, "y": 1, "w": 0, "h": 5}]}', "width"),
    ('{"rois": [{"type": "polygon", "points": [[1, 1], [2, 2]]}]}', "3 points"),
])
def test_bad_roi_files_name_the_file(tmp_path, text, problem):
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(RoiError, match=problem) as err:
        load_rois(p)
    assert "bad.json" in str(err.value)


def test_missing_roi_file(tmp_path):
    with pytest.raises(RoiError, match="not found"):
        load_rois(tmp_path / "nope.json")


def test_parse_rect():
    assert parse_rect("10,20,100,80") == Rect(10, 20, 100, 80)
    with pytest.raises(RoiError):
        parse_rect("10,20,100")


def test_mask_is_zero_outside_and_one_deep_inside():
    rois = RoiSet([Rect(20, 30, 60, 40)], feather=8)
    m = roi_mask(rois, (100, 120))
    assert m.dtype == np.float32
    inside = np.zeros((100, 120), bool)
    inside[30:70, 20:80] = True
    assert np.all(m[~inside] == 0)
    assert np.all(m[38:62, 28:72] == 1)
    assert 0 < m[30, 50] < 0.2           # feathered edge, inside the shape
    assert np.all(np.diff(m[50, 20:50]) >= 0)


def test_feather_is_not_applied_at_the_image_border():
    m = roi_mask(RoiSet([Rect(0, 0, 40, 40)], feather=8), (64, 64))
    assert m[0, 20] == 1 and m[20, 0] == 1 and m[20, 39] < 0.2


def test_ellipse_and_polygon_masks_match_their_area():
    m = roi_mask(RoiSet([Ellipse(10, 10, 80, 40)], feather=0), (100, 100))
    assert abs(m.sum() - np.pi * 40 * 20) / (np.pi * 40 * 20) < 0.03
    p = roi_mask(RoiSet([Polygon([(0, 0), (50, 0), (0, 50)])], feather=0), (100, 100))
    assert abs(p.sum() - 1250) < 60
