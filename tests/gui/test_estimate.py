"""The time a run will take: estimated from what this machine measured for the model, device and
settings (loading included), and a time left that does not jump when a run's passes differ."""

from __future__ import annotations

import pytest

from core.roi import Rect, RoiSet, work_megapixels
from deblur_gui.run_controller import time_left


def test_expected_time_is_load_plus_work_at_the_measured_speed(window, small_tif):
    window.open_file(small_tif)
    window.select_model("richardson-lucy")
    panel = window.model_panel
    assert panel.expected_seconds() is None                 # never run here: no number is made up
    window.state.add_roi(Rect(0, 0, 64, 32))
    device = panel.resolved_device()
    window.settings.set_speed("richardson-lucy", device, 0.5, panel.current_params())
    window.settings.set_load_seconds("richardson-lucy", device, 2.0)
    mpix = work_megapixels(window.state.roi_set(), (128, 128))
    assert mpix == pytest.approx(64 * 32 / 1e6)
    assert panel.expected_seconds() == pytest.approx(2.0 + mpix / 0.5)
    panel.refresh_run()
    assert "Expected time on this computer" in panel.estimate.text()


def test_a_run_records_speed_without_the_loading_time(window, small_tif, qtbot):
    window.open_file(small_tif)
    window.select_model("richardson-lucy")
    window.model_panel.set_param("iterations", 3)
    window.state.add_roi(Rect(10, 10, 40, 40))
    with qtbot.waitSignal(window.run_finished, timeout=30000):
        window.start_run()
    device = window.model_panel.resolved_device()
    assert window.settings.load_seconds("richardson-lucy", device) is not None
    speed = window.settings.speed("richardson-lucy", device, window.model_panel.current_params())
    assert speed and speed > 0
    assert window.model_panel.expected_seconds() is not None


def test_time_left_blends_the_record_and_the_progress():
    # a 100 s run by the record; the first pass (10 of 110 tiles) took only 1 s
    assert time_left(0 + 10, 110, 10, 1.0, 100.0, 1.0) > 80          # the record dominates early
    no_record = time_left(10, 110, 10, 1.0, None, 1.0)
    assert no_record == pytest.approx(10.0)                          # what used to be shown
    # near the end the progress decides
    assert time_left(105, 110, 95, 95.0, 50.0, 96.0) == pytest.approx(
        105 / 110 * 5.0 + 5 / 110 * 0.0)
    # smooth: consecutive ticks never jump by more than a few times the tick
    eta = [time_left(d, 110, d, d * 0.9 + 0.1, 100.0, d * 0.9 + 0.1) for d in range(1, 110)]
    assert max(abs(a - b) for a, b in zip(eta, eta[1:])) < 5.0


def test_work_megapixels_counts_each_box_inside_the_plane():
    rois = RoiSet([Rect(-10, -10, 20, 20), Rect(90, 90, 50, 50)])
    assert work_megapixels(rois, (100, 100)) == pytest.approx((10 * 10 + 10 * 10) / 1e6)
    assert work_megapixels(None, (100, 100)) == pytest.approx(0.01)
