"""The viewer state is plain Python: it works and notifies without any widget."""

from __future__ import annotations

import numpy as np
import pytest

from core.io import Image
from core.roi import Ellipse, Polygon, Rect, RoiSet
from deblur_gui.state import AppState, roi_label


def _calls(signal):
    seen = []
    signal.connect(lambda *a: seen.append(a))
    return seen


def test_rois_add_update_remove_notify():
    s = AppState()
    s.set_image(Image(np.zeros((20, 30), np.uint16), "YX"))
    changed = _calls(s.rois_changed)
    rid = s.add_roi(Rect(1, 2, 5, 6))
    assert s.selected_roi == rid and len(changed) == 1
    s.update_roi(rid, Rect(2, 2, 5, 6))
    s.update_roi(rid, Rect(2, 2, 5, 6))  # no change, no signal
    assert len(changed) == 2
    s.add_roi(Polygon([(0, 0), (5, 0), (0, 5)]))
    rs = s.roi_set()
    assert isinstance(rs, RoiSet) and rs.feather == s.feather and len(rs) == 2
    rs.rois[0].x = 99  # a copy: the state is not changed under a running job
    assert s.rois[0].shape.x == 2
    s.remove_roi(rid)
    assert [type(e.shape) for e in s.rois] == [Polygon] and s.selected_roi != rid


def test_planes_of_a_stack():
    data = np.arange(2 * 3 * 8 * 9, dtype=np.uint16).reshape(2, 3, 8, 9)
    s = AppState()
    s.set_image(Image(data, "ZCYX"))
    assert s.plane_axes() == [("Z", 2), ("C", 3)]
    moved = _calls(s.plane_changed)
    s.set_plane("C", 2)
    s.set_plane("Z", 5)  # clipped to the last plane
    assert s.plane == {"Z": 1, "C": 2} and len(moved) == 2
    np.testing.assert_array_equal(s.current_plane(), data[1, 2])
    assert s.plane_description() == "Z 2, C 3" and s.image_size == (8, 9)


def test_new_image_forgets_rois_and_results():
    s = AppState()
    img = Image(np.zeros((10, 10), np.uint8), "YX")
    s.set_image(img)
    s.add_roi(Ellipse(1, 1, 4, 4))
    s.add_result(model="m", params={}, device="cpu", image=img, seconds=0.1, scope="", rois=s.roi_set())
    s.set_image(Image(np.ones((10, 10), np.uint8), "YX"))
    assert s.rois == [] and s.results == [] and s.current_result is None


def test_labels_are_plain_words():
    assert roi_label(Rect(10, 20, 40, 30)) == "Rectangle 40 x 30 at (10, 20)"
    assert roi_label(Ellipse(0, 0, 5, 6)).startswith("Ellipse 5 x 6")
    assert "3 points" in roi_label(Polygon([(0, 0), (4, 0), (0, 4)]))


def test_set_plane_rejects_unknown_axis():
    s = AppState()
    s.set_image(Image(np.zeros((4, 4), np.uint8), "YX"))
    with pytest.raises(KeyError):
        s.set_plane("Z", 0)


def test_result_labels_name_settings_as_the_settings_box_does():
    from deblur_gui.state import describe_params

    assert describe_params("comi", {"orientations": 8}) == "views averaged 8"
    assert describe_params("richardson-lucy", {"psf_radius": 3.0, "iterations": 30}) == \
        "blur radius 3, iterations 30"
    assert describe_params("no-such-model", {"some_setting": 1}) == "some setting 1"
