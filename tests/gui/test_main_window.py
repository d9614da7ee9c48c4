"""Open, view, mark regions, errors: the main window as a user drives it."""

from __future__ import annotations


import numpy as np
from PySide6 import QtCore, QtWidgets

from core.io import Image, write_image
from core.roi import Ellipse, Polygon, Rect, load_rois
from deblur_gui.roi_layer import RectRoiItem
from deblur_gui.roi_tools import Tool
from tests.gui.conftest import mouse_drag, view_to_widget


def test_open_file_shows_image(window, small_tif):
    assert window.open_file(small_tif)
    assert window.state.image is not None and window.state.image.data.shape == (128, 128)
    assert window.viewer.data.shape == (128, 128)
    lo, hi = window.viewer.levels()
    assert lo < hi
    assert "cells.tif" in window.windowTitle()
    assert window.settings.recent_files()[0] == str(small_tif.resolve())
    assert window.viewer.scale_bar.isVisible()  # the file has a pixel size
    info = window.viewer.value_at(5.5, 7.2)
    assert info == (5, 7, window.state.image.data[7, 5])


def test_corrupt_file_shows_message_and_app_stays_usable(window, tmp_path, small_tif):
    bad = tmp_path / "nuclei.tif"
    good = small_tif.read_bytes()
    bad.write_bytes(good[: len(good) // 3])  # truncated
    assert not window.open_file(bad)
    assert window.last_error is not None and window.last_error.isVisible()
    assert "nuclei.tif" in window.last_error.text()
    assert "Traceback" not in window.last_error.text()
    assert window.state.image is None
    window.last_error.close()
    assert window.open_file(small_tif)  # still works afterwards


def test_drawn_rectangle_becomes_roi(window, small_tif, qtbot):
    window.open_file(small_tif)
    window.set_tool(Tool.RECT)
    mouse_drag(qtbot, window.viewer.viewport(), [view_to_widget(window, 20 + 40 * t, 30 + 60 * t)
                                                 for t in np.linspace(0.0, 1.0, 7)])
    assert len(window.state.rois) == 1
    shape = window.state.rois[0].shape
    assert isinstance(shape, Rect)
    assert abs(shape.x - 20) <= 1 and abs(shape.y - 30) <= 1
    assert abs(shape.w - 40) <= 2 and abs(shape.h - 60) <= 2
    assert window.roi_panel.list.count() == 1


def test_roi_items_follow_state_and_edits_flow_back(window, small_tif):
    window.open_file(small_tif)
    rid = window.state.add_roi(Rect(10, 10, 30, 20))
    window.state.add_roi(Ellipse(50, 50, 20, 30))
    window.state.add_roi(Polygon([(5, 100), (40, 95), (20, 120)]))
    assert len(window.roi_layer.items) == 3
    item = window.roi_layer.items[rid]
    assert isinstance(item, RectRoiItem)
    item.setPos((12, 14))  # as if dragged: finishes the change
    assert window.state.rois[0].shape == Rect(12, 14, 30, 20)
    window.state.select_roi(rid)
    window.act_delete.trigger()
    assert rid not in window.roi_layer.items and len(window.state.rois) == 2
    window.state.set_feather(7)
    assert window.roi_panel.feather.value() == 7


def test_roi_file_save_and_load(window, small_tif, tmp_path):
    window.open_file(small_tif)
    window.state.add_roi(Rect(10, 10, 30, 20))
    window.state.add_roi(Polygon([(5, 100), (40, 95), (20, 120)]))
    window.state.set_feather(5)
    path = tmp_path / "marks.roi.json"
    assert window.save_rois(path)
    saved = load_rois(path)
    assert len(saved) == 2 and saved.feather == 5
    window.state.clear_rois()
    assert window.load_rois(path)
    assert [type(e.shape) for e in window.state.rois] == [Rect, Polygon]
    bad = tmp_path / "bad.roi.json"
    bad.write_text("{not json")
    assert not window.load_rois(bad)
    assert "bad.roi.json" in window.last_error.text()
    assert len(window.state.rois) == 2  # a bad file changes nothing


def test_sidecar_regions_load_with_image(window, small_tif):
    small_tif.with_name("cells.roi.json").write_text('{"rois": [{"type": "rect", "x": 1, "y": 2, "w": 30, "h": 40}]}')
    window.open_file(small_tif)
    assert [e.shape for e in window.state.rois] == [Rect(1, 2, 30, 40)]


def test_regions_of_a_simulated_ome_image_are_found(window, tmp_path, small_tif, capsys):
    """`deblur simulate` writes x.roi.json beside x.ome.tif; the app finds it (it looked for
    x.ome.roi.json) and suggests the same name when saving."""
    from core.cli import main

    out = tmp_path / "sim.ome.tif"
    assert main(["simulate", str(small_tif), "-o", str(out), "--defocus-um", "2", "--seed", "1"]) == 0
    assert (tmp_path / "sim.roi.json").is_file() and not (tmp_path / "sim.ome.roi.json").exists()
    assert window.open_file(out)
    assert window.state.rois and window.sidecar_rois == tmp_path / "sim.roi.json"
    assert [e.shape for e in window.state.rois] == load_rois(tmp_path / "sim.roi.json").rois


def test_stack_plane_and_channel_selectors(window, tmp_path):
    data = (np.arange(3 * 2 * 32 * 40) % 1000).astype(np.uint16).reshape(3, 2, 32, 40)
    data[2, 1] = 7
    path = write_image(tmp_path / "stack.tif", Image(data, "ZCYX", metadata={"channel_names": ["DAPI", "GFP"]}))
    assert window.open_file(path)
    assert window.plane_bar.isVisible()
    assert window.plane_bar.controls["C"].itemText(1).endswith("GFP")
    window.plane_bar.controls["Z"].setValue(2)
    window.plane_bar.controls["C"].setCurrentIndex(1)
    assert window.state.plane == {"Z": 2, "C": 1}
    assert np.all(window.viewer.data == 7)
    assert window.plane_bar.controls["Z_spin"].value() == 3


def test_colormap_and_auto_contrast(window, small_tif):
    window.open_file(small_tif)
    window.set_colormap("Magma")
    assert window.cmap_combo.currentText() == "Magma" and window.settings.colormap() == "Magma"
    window.viewer.set_levels(0, 10)
    lo, hi = window.auto_contrast() or window.viewer.levels()
    assert hi > 10


def test_every_menu_entry_is_connected(window):
    """No stubs: every menu action does something (has a receiver, a submenu, or is a toggle)."""
    def walk(menu):
        for a in menu.actions():
            if a.isSeparator():
                continue
            if a.menu() is not None:
                yield from walk(a.menu())
            else:
                yield a

    for top in window.menuBar().actions():
        for a in walk(top.menu()):
            if not a.isEnabled() and a.text() in ("No recent files", "No samples installed"):
                continue
            wired = a.receivers("2triggered(bool)") > 0 or a.receivers("2toggled(bool)") > 0
            assert wired, f"menu entry {a.text()!r} does nothing"


def test_detect_blurred_regions_become_editable_rois(window, tmp_path):
    from tests.gui.conftest import make_specimen

    path = write_image(tmp_path / "patchy.tif", Image(make_specimen((256, 256), seed=2), "YX"))
    window.open_file(path)
    dlg = window.detect_dialog()
    assert dlg is not None and dlg.mask_item.scene() is not None
    assert dlg.threshold() is None  # automatic first
    n_auto = len(dlg.rois)
    dlg.slider.setValue(dlg.slider.maximum())  # everything with structure counts as blurred
    dlg.update_detection()
    assert dlg.threshold() == 1.0 and len(dlg.rois) >= 1
    dlg.slider.setValue(dlg.slider.maximum() // 2)  # log scale: the middle is a focus of ~0.045
    assert 0.03 < dlg.threshold() < 0.06
    dlg.automatic.setChecked(True)
    dlg.update_detection()
    assert len(dlg.rois) == n_auto
    dlg.slider.setValue(dlg.slider.maximum())
    dlg.update_detection()
    dlg.replace_btn.click()
    assert len(window.state.rois) == len(dlg.rois) >= 1
    assert all(isinstance(e.shape, Polygon) for e in window.state.rois)
    assert len(window.roi_layer.items) == len(window.state.rois)
    assert dlg.mask_item.scene() is None  # overlay removed with the dialog




def test_polygon_by_clicks_and_freehand_outline(window, small_tif, qtbot):
    window.open_file(small_tif)
    vp = window.viewer.viewport()
    window.set_tool(Tool.POLYGON)
    for x, y in [(10, 10), (60, 12), (40, 70)]:
        qtbot.mouseClick(vp, QtCore.Qt.MouseButton.LeftButton, pos=view_to_widget(window, x, y))
    qtbot.mouseClick(vp, QtCore.Qt.MouseButton.RightButton, pos=view_to_widget(window, 40, 70))
    assert len(window.state.rois) == 1
    poly = window.state.rois[0].shape
    assert isinstance(poly, Polygon) and len(poly.points) == 3
    assert abs(poly.points[1][0] - 60) <= 1 and abs(poly.points[1][1] - 12) <= 1

    window.set_tool(Tool.FREEHAND)
    qtbot.wait(QtWidgets.QApplication.doubleClickInterval() + 50)  # not a double click
    centre, radius = (80, 80), 25
    path = [(centre[0] + radius * np.cos(t), centre[1] + radius * np.sin(t)) for t in np.linspace(0, 6.0, 40)]
    mouse_drag(qtbot, vp, [view_to_widget(window, *p) for p in path])
    assert len(window.state.rois) == 2
    lasso = window.state.rois[1].shape
    assert isinstance(lasso, Polygon) and 5 <= len(lasso.points) < 40  # simplified outline
    x0, y0, x1, y1 = lasso.bounds()
    assert abs(x0 - 55) <= 3 and abs(x1 - 105) <= 3

    window.set_tool(Tool.PAN)  # Esc / Move: drawing tools off, regions editable again
    assert all(item.isEnabled() for item in window.roi_layer.items.values())


def test_settings_are_remembered(qtbot, settings, small_tif):
    from deblur_gui.main_window import MainWindow

    first = MainWindow(settings, confirm_close=False)
    qtbot.addWidget(first)
    first.open_file(small_tif)
    first.set_colormap("Green")
    first.select_model("richardson-lucy")              # not the default (the shipped COMI)
    first.model_panel.set_param("iterations", 7)
    first.model_panel.tile.setValue(128)
    first.state.set_feather(9)
    first.resize(700, 560)  # inside the 800 x 800 offscreen screen
    first.close()

    second = MainWindow(settings, confirm_close=False)
    qtbot.addWidget(second)
    assert second.size() == QtCore.QSize(700, 560)
    assert second.cmap_combo.currentText() == "Green"
    assert second.state.model_name == "richardson-lucy"
    assert second.model_panel.current_params()["iterations"] == 7
    assert second.state.tile == 128 and second.state.feather == 9
    assert second.settings.recent_files() == [str(small_tif.resolve())]
    assert second.settings.last_folder() == str(small_tif.parent)
    second.close()


def test_the_shipped_comi_is_chosen_and_its_card_says_what_it_was_trained_on_and_how_it_scores(window):
    assert window.state.model_name == "comi"
    panel = window.model_panel
    text = panel.card.text()
    assert text.index("Good for") < text.index("Watch out") < text.index("Tested on")
    assert "simulated specimens" in text and "dB" in text and "COMI" in text
    assert "PatchGAN" not in text and "warm_start_steps" not in text   # programmers' words: Details
    assert not panel.details.isVisible()
    panel.details_btn.click()
    assert panel.details.isVisible() and "PatchGAN" in panel.details.text()
    assert "orientations=2" in panel.details.text()      # the settings the score was measured with


def test_a_fine_tuned_cards_training_counts_every_run():
    from core.models.plain import technical_lines as describe_card

    card = {"training": {"data": "synthetic", "steps": 4000, "wall_time_s": 2880.0, "device": "cpu",
                         "started_from": {"training": {"steps": 6800, "wall_time_s": 4380.0}}}}
    assert "Training: 10800 steps in 2 runs, 2.0 h, on cpu" in describe_card(card)


def test_fiji_roi_sets_load_and_save(window, small_tif, tmp_path):
    from roifile import ROI_TYPE, ImagejRoi, roiread, roiwrite

    window.open_file(small_tif)
    roiwrite(tmp_path / "RoiSet.zip", [ImagejRoi(roitype=ROI_TYPE.OVAL, left=5, top=6, right=45, bottom=36),
                                      ImagejRoi(roitype=ROI_TYPE.POINT, name="spot")])
    assert window.load_rois(tmp_path / "RoiSet.zip")
    assert [e.shape for e in window.state.rois] == [Ellipse(5, 6, 40, 30)]
    assert "skipped 1" in window.statusBar().currentMessage()
    window.state.add_roi(Rect(50, 50, 20, 20))
    assert window.save_rois(tmp_path / "out.zip")
    assert [r.roitype for r in roiread(tmp_path / "out.zip")] == [ROI_TYPE.OVAL, ROI_TYPE.RECT]


def test_an_image_far_from_the_training_data_gets_a_warning_not_a_refusal(window, tmp_path):
    rgb = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    path = write_image(tmp_path / "he.tif", Image(rgb, "YXS", pixel_size=(2.5, 2.5)))
    window.select_model("comi")
    assert window.open_file(path)
    text = window.model_panel.card.text()
    assert "are 5x larger than any the model was trained on" in text
    assert "colour (RGB) picture" in text and "mostly on fluorescence" in text
    window.state.add_roi(Rect(4, 4, 30, 30))
    assert window.model_panel.can_run()[0]                # a warning, not a refusal
