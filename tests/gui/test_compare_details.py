"""Compare and the small things around it: a swipe handle that is easy to grab, a legend for the
difference view, result numbers per image, the colour-map box's own label, region files named
.roi.json."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtWidgets

from core.io import Image, write_image
from core.roi import Rect, RoiSet
from tests.gui.conftest import make_specimen, mouse_drag


def _run(window, qtbot):
    window.select_model("richardson-lucy")
    with qtbot.waitSignal(window.run_finished, timeout=60000) as sig:
        assert window.start_run()
    assert sig.args == ["done"]


def test_swipe_handle_is_easy_to_grab(window, small_tif, qtbot):
    window.open_file(small_tif)
    _run(window, qtbot)
    cmp = window.compare
    cmp.set_mode("Swipe")
    qtbot.wait(50)
    line = cmp.swipe_line
    x0 = line.value()
    view = cmp.swipe
    scene_pt = cmp.swipe.vb.mapViewToScene(QtCore.QPointF(x0, 64))
    start = view.mapFromScene(scene_pt) + QtCore.QPoint(7, 0)        # 7 px beside the 2 px line
    vp = view.viewport()
    mouse_drag(qtbot, vp, [start + QtCore.QPoint(-dx, 0) for dx in range(0, 45, 5)])
    assert line.value() < x0 - 5


def test_difference_view_has_a_legend(window, small_tif, qtbot):
    window.open_file(small_tif)
    _run(window, qtbot)
    cmp = window.compare
    cmp.set_mode("Difference")
    assert cmp.diff_legend.isVisible() and "red: brighter after" in cmp.diff_legend.text()
    cmp.set_mode("Side by side")
    assert not cmp.diff_legend.isVisible()


def test_result_numbers_start_at_one_for_each_image(window, small_tif, tmp_path, qtbot):
    window.open_file(small_tif)
    _run(window, qtbot)
    _run(window, qtbot)
    assert [r.label.split()[0] for r in window.state.results] == ["#1", "#2"]
    other = write_image(tmp_path / "other.tif", Image(make_specimen((96, 96), seed=5), "YX"))
    window.saved_results.update(r.id for r in window.state.results)
    assert window.open_file(other)
    _run(window, qtbot)
    assert window.state.results[0].label.startswith("#1 ")


def test_colour_map_box_has_its_own_label(window):
    tb = window.toolbar
    widgets = [tb.widgetForAction(a) for a in tb.actions()]
    i = widgets.index(window.cmap_combo)
    assert isinstance(widgets[i - 1], QtWidgets.QLabel) and "Colours" in widgets[i - 1].text()


def test_saved_regions_get_the_roi_json_name(window, small_tif, monkeypatch):
    window.open_file(small_tif)
    window.state.set_roi_set(RoiSet([Rect(5, 5, 40, 40)]))
    chosen: list[str] = []

    def accept_typed_name(dlg):
        chosen.append(Path(dlg.selectedFiles()[0]).name)        # the suggestion
        dlg.selectFile("marks")                                  # the user types a bare name
        dlg.accept()
        return QtWidgets.QDialog.DialogCode.Accepted

    monkeypatch.setattr(QtWidgets.QFileDialog, "exec", accept_typed_name)
    window.save_rois_dialog()
    assert chosen == ["cells.roi.json"]
    assert (small_tif.parent / "marks.roi.json").is_file()
    assert not (small_tif.parent / "marks.json").exists()
