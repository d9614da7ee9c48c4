"""ROI files and masks: the DESIGN §2 format round-trips, masks never leak outside a ROI."""

import json
from pathlib import Path

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


# ----------------------------------------------------------------------------- one rule each

def test_region_file_beside_an_image_is_one_rule():
    from core.roi import sidecar_path

    assert sidecar_path(Path("/d/cells.tif")) == Path("/d/cells.roi.json")
    assert sidecar_path(Path("/d/cells.ome.tif")) == Path("/d/cells.roi.json")
    assert sidecar_path(Path("/d/Cells.OME.TIFF")) == Path("/d/Cells.roi.json")
    assert sidecar_path(Path("tissue.png")) == Path("tissue.roi.json")


def test_polygon_pixels_equal_skimage_bit_for_bit():
    """The scanline rasteriser gives skimage.draw.polygon's pixels (what every ROI mask used),
    also for vertices and edges exactly on pixel centres, where rounding decides."""
    from skimage.draw import polygon

    from core.roi import polygon_pixels

    rng = np.random.default_rng(7)
    for t in range(3000):
        n, (h, w) = int(rng.integers(3, 12)), rng.integers(1, 40, 2)
        pts = [rng.integers(-5, 50, (n, 2)) + 0.5,            # vertices on pixel centres
               rng.integers(-10, 100, (n, 2)) / 2.0,         # and between them
               np.round(rng.uniform(-5, 50, (n, 2)), 1),      # as the app rounds them
               rng.uniform(-5, 50, (n, 2))][t % 4].astype(float)
        rr, cc = polygon(pts[:, 1] - 0.5, pts[:, 0] - 0.5, shape=(h, w))
        want = np.zeros((h, w), bool)
        want[rr, cc] = True
        r0, c0, inside = polygon_pixels(pts, (h, w))
        got = np.zeros((h, w), bool)
        got[r0:r0 + inside.shape[0], c0:c0 + inside.shape[1]] = inside
        assert np.array_equal(got, want), pts.tolist()


def test_simplify_polygon_keeps_shape_and_drops_the_closing_point():
    from core.roi import simplify_polygon

    t = np.linspace(0, 2 * np.pi, 400)
    ring = np.stack([50 + 20 * np.cos(t), 50 + 20 * np.sin(t)], axis=1)
    ring[-1] = ring[0]
    out = simplify_polygon(ring, tolerance=0.5)
    assert 8 < len(out) < 60 and out[0] != out[-1]
    radii = np.hypot(*(np.asarray(out) - 50).T)
    assert np.allclose(radii, 20, atol=1e-9)                   # only original points are kept
    stroke = [(0.0, 0.0), (1.0, 0.01), (2.0, 0.0), (3.0, 5.0)]  # an open freehand path keeps its ends
    assert simplify_polygon(stroke, tolerance=0.1) == [(0.0, 0.0), (2.0, 0.0), (3.0, 5.0)]
