"""napari shapes <-> deblur regions: the same pixels whichever front end drew them."""

from __future__ import annotations

import numpy as np

from core.roi import Ellipse, Polygon, Rect, RoiSet, load_rois, roi_mask
from core.shape_layers import rois_from_shapes, shapes_from_rois
from resources import SAMPLES


def test_a_napari_rectangle_covers_the_pixels_between_its_corners():
    """napari puts pixel centres on integers: a rectangle from (10, 20) to (30, 60) covers
    rows 10..29 and columns 20..59, as the app's rectangle over those pixels does."""
    rois, skipped = rois_from_shapes([np.array([[10, 20], [10, 60], [30, 60], [30, 20]])],
                                     ["rectangle"], feather=0)
    assert not skipped and rois.rois == [Rect(20.5, 10.5, 40, 20)]
    inside = np.argwhere(roi_mask(rois, (64, 80)) > 0)
    assert inside.min(axis=0).tolist() == [10, 20] and inside.max(axis=0).tolist() == [29, 59]


def test_regions_survive_the_round_trip_through_napari_shapes():
    rois = RoiSet([Rect(3, 4, 20, 10), Ellipse(30.5, 8, 12, 22),
                   Polygon([(50, 5), (70, 9), (64, 30), (52, 25)])], feather=5)
    data, types = shapes_from_rois(rois)
    assert types == ["rectangle", "ellipse", "polygon"]
    back, skipped = rois_from_shapes(data, types, feather=5)
    assert not skipped and back.rois == rois.rois
    assert np.array_equal(roi_mask(back, (48, 80)), roi_mask(rois, (48, 80)))


def test_the_nuclei_samples_region_is_unchanged_by_the_trip():
    rois = load_rois(SAMPLES / "nuclei_blurred.roi.json")
    back, _ = rois_from_shapes(*shapes_from_rois(rois), feather=rois.feather)
    assert np.array_equal(roi_mask(back, (512, 512)), roi_mask(rois, (512, 512)))


def test_lines_and_paths_are_skipped_with_a_reason_and_rotated_shapes_become_polygons():
    diamond = np.array([[0, 10], [10, 20], [20, 10], [10, 0]], float)
    rois, skipped = rois_from_shapes(
        [np.array([[0, 0], [5, 5]]), np.array([[0, 0], [5, 5], [9, 2]]), diamond, diamond],
        ["line", "path", "rectangle", "ellipse"])
    assert [s.split(" is ")[0] for s in skipped] == ["shape 1", "shape 2"]
    assert "encloses no area" in skipped[0]
    assert all(isinstance(r, Polygon) for r in rois.rois) and len(rois.rois) == 2
    ellipse = roi_mask(RoiSet([rois.rois[1]], feather=0), (24, 24))
    # the ellipse inscribed in the diamond: a disc of radius ~7 px around (10, 10)
    assert ellipse[10, 10] == 1 and ellipse[10, 3] == 1 and ellipse[1, 1] == 0
    assert 130 < ellipse.sum() < 170
