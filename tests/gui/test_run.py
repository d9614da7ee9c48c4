"""Restoring from the window: runs to completion, cancels, stays responsive, reports errors."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore

from core.io import Image, read_image, write_image
from core.roi import Rect
from tests.gui.conftest import make_specimen


def _quick_rl(window) -> None:
    window.select_model("richardson-lucy")
    window.model_panel.set_param("iterations", 3)
    window.model_panel.set_param("psf_radius", 2.0)


@pytest.fixture
def big_tif(tmp_path):
    """Big enough, with small tiles, that a run lasts long enough to be watched and cancelled."""
    return write_image(tmp_path / "big.tif", Image(make_specimen((1536, 1536), seed=3), "YX"))


def _slow_setup(window, big_tif) -> None:
    window.open_file(big_tif)
    window.select_model("richardson-lucy")
    window.model_panel.set_param("iterations", 5)
    window.model_panel.set_param("psf_radius", 1.0)
    window.model_panel.tile.setValue(64)  # ~2200 small tiles: long run, quick cancel


def test_run_to_completion_shows_result_in_compare(window, small_tif, qtbot):
    window.open_file(small_tif)
    window.state.add_roi(Rect(32, 32, 64, 64))
    _quick_rl(window)
    with qtbot.waitSignal(window.run_finished, timeout=30000) as blocker:
        assert window.start_run()
        assert window.state.busy and window.progress.isVisible()
    assert blocker.args == ["done"]
    assert not window.state.busy and window.job is None
    result = window.state.result()
    assert result is not None and result.model == "richardson-lucy"
    original = window.state.image.data
    restored = result.image.data
    assert restored.dtype == original.dtype and restored.shape == original.shape
    assert not np.array_equal(restored[40:90, 40:90], original[40:90, 40:90])
    np.testing.assert_array_equal(restored[:30], original[:30])  # outside the ROI: untouched
    assert window.tabs.currentIndex() == 1
    assert window.compare.right.data is not None and window.compare.left.data is not None
    assert window.compare.table.rowCount() == 1
    assert window.compare.results.count() == 1
    assert window.act_save.isEnabled()


def test_save_and_reopen_keeps_dtype_shape_and_never_overwrites(window, small_tif, qtbot, tmp_path):
    window.open_file(small_tif)
    window.state.add_roi(Rect(10, 10, 50, 50))
    _quick_rl(window)
    with qtbot.waitSignal(window.run_finished, timeout=30000):
        window.start_run()
    default = window.default_save_path()
    assert default.name == "cells_deblurred.tif"
    saved = window.save_result(default)
    assert saved == default
    back = read_image(saved)
    assert back.data.dtype == np.uint16 and back.data.shape == (128, 128)
    np.testing.assert_array_equal(back.data, window.state.result().image.data)
    assert back.pixel_size == pytest.approx((0.2, 0.2))
    before = small_tif.read_bytes()
    assert window.save_result(small_tif, overwrite=True) is None  # the original: refused
    assert "original" in window.last_error_text
    assert small_tif.read_bytes() == before
    assert window.save_result(default) is None  # exists, no overwrite confirmed
    png = window.export_comparison(tmp_path / "side_by_side.png")
    assert png is not None and png.stat().st_size > 1000


def test_saved_result_records_how_it_was_made_and_save_remembers_the_folder(window, small_tif,
                                                                            qtbot, tmp_path, capsys):
    from core.cli import main

    window.open_file(small_tif)
    window.state.add_roi(Rect(10, 10, 50, 50))
    _quick_rl(window)
    with qtbot.waitSignal(window.run_finished, timeout=30000):
        window.start_run()
    elsewhere = tmp_path / "results"
    elsewhere.mkdir()
    saved = window.save_result(elsewhere / "mine.tif")
    rec = read_image(saved).metadata["provenance"]
    assert rec["model"] == "richardson-lucy" and rec["source"] == str(small_tif)
    assert rec["settings"]["iterations"] == window.state.model_params["iterations"]
    assert rec["regions"]["rois"] == [{"type": "rect", "x": 10, "y": 10, "w": 50, "h": 50}]
    assert main(["info", str(saved)]) == 0
    assert "model: richardson-lucy" in capsys.readouterr().out
    assert window.default_save_path() == elsewhere / "cells_deblurred.tif"   # remembered


def test_cancel_mid_run_changes_nothing(window, big_tif, qtbot):
    _slow_setup(window, big_tif)
    with qtbot.waitSignal(window.run_finished, timeout=60000) as blocker:
        window.start_run()
        qtbot.waitUntil(lambda: window.progress.maximum() > 0 and window.progress.value() >= 1, timeout=30000)
        assert window.progress.value() < window.progress.maximum()
        window.cancel_run()
    assert blocker.args == ["cancelled"]
    assert window.state.results == [] and not window.state.busy
    assert window.act_run.isEnabled()


def test_event_loop_keeps_running_during_a_run(window, big_tif, qtbot):
    _slow_setup(window, big_tif)
    ticks = []
    timer = QtCore.QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(window.state.busy))
    timer.start()
    window.start_run()
    # while the worker computes, the GUI thread goes on handling timers
    qtbot.waitUntil(lambda: sum(ticks) >= 10, timeout=20000)
    assert window.job is not None and window.job.isRunning()
    with qtbot.waitSignal(window.run_finished, timeout=30000):
        window.cancel_run()
    timer.stop()


def test_bad_setting_reports_error_and_window_stays_usable(window, small_tif, qtbot):
    window.open_file(small_tif)
    _quick_rl(window)
    window.state.model_params = {"psf_radius": -3.0, "iterations": 3}  # out of range
    with qtbot.waitSignal(window.run_finished, timeout=30000) as blocker:
        window.start_run()
    assert blocker.args == ["failed"]
    assert window.last_error is not None and "Blur radius (px)" in window.last_error.text()
    assert window.last_error.detailedText()  # the traceback is behind "Show Details"
    assert not window.state.busy
    window.last_error.close()
    _quick_rl(window)
    with qtbot.waitSignal(window.run_finished, timeout=30000) as blocker:
        window.start_run()
    assert blocker.args == ["done"]


def test_comi_with_eight_views_runs_from_the_settings_box(window, small_tif, qtbot):
    window.open_file(small_tif)
    window.state.add_roi(Rect(32, 32, 64, 64))
    window.select_model("comi")
    combo = window.model_panel.param_widgets["orientations"]
    assert [combo.itemData(i) for i in range(combo.count())] == [1, 2, 4, 8]
    assert combo.currentData() == 2                  # by default the image and its mirror
    with qtbot.waitSignal(window.run_finished, timeout=60000):
        assert window.start_run()
    estimate = window.model_panel.estimate
    assert estimate.text().startswith("Expected time on this computer")   # measured just now
    window.model_panel.set_param("orientations", 8)
    # 8 views take 4x as long as 2: the speed measured with 2 does not pretend to know
    assert not estimate.text().startswith("Expected time on this computer"), estimate.text()
    with qtbot.waitSignal(window.run_finished, timeout=60000) as blocker:
        assert window.start_run()
    assert blocker.args == ["done"]
    assert estimate.text().startswith("Expected time on this computer")
    result = window.state.result()
    assert result.model == "comi" and result.params["orientations"] == 8
    original, restored = window.state.image.data, result.image.data
    assert not np.array_equal(restored[40:90, 40:90], original[40:90, 40:90])
    np.testing.assert_array_equal(restored[:30], original[:30])


def test_running_out_of_memory_reads_as_advice_on_every_device():
    """The app's message for a failed run: memory trouble (host or GPU) is advice, anything
    else names the problem; neither is a traceback."""
    from deblur_gui.worker import plain_error

    for exc in (MemoryError(), RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")):
        assert plain_error(exc).startswith("There was not enough memory for this run")
    assert plain_error(RuntimeError("shapes differ")) == (
        "The restoration stopped because of an unexpected problem: shapes differ")
