"""Restoring a folder from the app: regions from each image's file or detected, results beside
the images or in a chosen folder, never over a file, with a summary."""

from __future__ import annotations

import numpy as np

from core.io import Image, read_image, write_image
from core.roi import Rect, RoiSet, save_rois
from tests.gui.conftest import make_specimen


def _folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    a = write_image(src / "a.tif", Image(make_specimen((96, 96), seed=1), "YX"))
    b = write_image(src / "b.tif", Image(make_specimen((96, 96), seed=2), "YX"))
    save_rois(src / "a.roi.json", RoiSet([Rect(8, 8, 40, 40)]))
    return src, a, b


def test_a_folder_is_restored_beside_the_images_and_never_overwritten(window, tmp_path, qtbot):
    src, a, b = _folder(tmp_path)
    before = {p: p.read_bytes() for p in (a, b)}
    window.select_model("richardson-lucy")
    window.model_panel.set_param("iterations", 3)
    window.model_panel.set_param("psf_radius", 4.0)      # the region is sharp: auto would keep it
    dlg = window.batch_dialog()
    dlg.folder.setText(str(src))
    dlg.rule.setCurrentIndex(dlg.rule.findData("sidecar_or_auto"))
    assert dlg.start()
    qtbot.waitUntil(lambda: dlg.job is None, timeout=60000)
    items = {i.input.name: i for i in dlg.items}
    assert items["a.tif"].status == "restored" and "a.roi.json" in items["a.tif"].message
    assert items["b.tif"].status in ("restored", "unchanged")
    out_a = src / "a_deblurred.tif"
    assert out_a.is_file() and (src / "b_deblurred.tif").is_file()
    res, orig = read_image(out_a).data, read_image(a).data
    assert np.array_equal(res[60:], orig[60:]) and not np.array_equal(res[12:44, 12:44], orig[12:44, 12:44])
    assert read_image(out_a).metadata["provenance"]["regions"]["rois"][0]["w"] == 40
    assert "Done:" in dlg.summary.toPlainText()
    assert {p: p.read_bytes() for p in (a, b)} == before              # originals untouched
    # again: new names, nothing replaced; and the outputs are not taken as inputs
    assert dlg.start()
    qtbot.waitUntil(lambda: dlg.job is None, timeout=60000)
    assert (src / "a_deblurred-2.tif").is_file() and len(dlg.items) == 2
    dlg.close()


def test_results_into_a_chosen_folder_and_the_same_regions_for_all(window, tmp_path, qtbot, small_tif):
    src, a, b = _folder(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    window.open_file(small_tif)
    window.state.add_roi(Rect(4, 4, 30, 30))
    window.select_model("richardson-lucy")
    window.model_panel.set_param("iterations", 2)
    dlg = window.batch_dialog()
    dlg.folder.setText(str(src))
    dlg.rule.setCurrentIndex(dlg.rule.findData("same"))
    dlg.into.setChecked(True)
    dlg.out_folder.setText(str(out))
    assert dlg.start()
    qtbot.waitUntil(lambda: dlg.job is None, timeout=60000)
    assert sorted(p.name for p in out.iterdir()) == ["a_deblurred.tif", "b_deblurred.tif"]
    assert all(i.status == "restored" and "marked regions" in i.message for i in dlg.items)
    dlg.close()


def test_bad_choices_are_explained(window, tmp_path):
    dlg = window.batch_dialog()
    dlg.folder.setText(str(tmp_path / "nowhere"))
    assert not dlg.start() and "is not a folder" in dlg.summary.toPlainText()
    (tmp_path / "empty").mkdir()
    dlg.folder.setText(str(tmp_path / "empty"))
    assert not dlg.start() and "No images" in dlg.summary.toPlainText()
    dlg.close()
