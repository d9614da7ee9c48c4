"""The list of regions says how blurred each region looks before any run (deblur_gui.blur_meter)."""

from __future__ import annotations

from pathlib import Path

from core.io import Image, write_image
from core.roi import Rect, RoiSet
from tests.gui.conftest import make_specimen


def _texts(window) -> list[str]:
    lst = window.roi_panel.list
    return [lst.item(i).text() for i in range(lst.count())]


def test_each_region_shows_its_blur_before_a_run(window, tmp_path: Path, qtbot):
    path = write_image(tmp_path / "field.tif", Image(make_specimen((256, 256), seed=3), "YX"))
    window.open_file(path)
    meter = window.roi_panel.meter
    # the middle half of the specimen is blurred (sigma 3 px), its corners are sharp
    window.state.set_roi_set(RoiSet([Rect(80, 80, 96, 96), Rect(8, 8, 48, 48)]))
    assert all("measuring blur" in t for t in _texts(window))
    assert meter.wait()
    blurred, sharp = (meter.estimates[e.id] for e in window.state.rois)
    assert blurred.radius_px is not None and blurred.radius_px >= 2
    assert sharp.radius_px is not None and sharp.radius_px < blurred.radius_px
    texts = _texts(window)
    assert texts[0].startswith("1. ") and "px blur" in texts[0]
    assert "out of focus" in window.roi_panel.list.item(0).toolTip()
    # moving one region measures it again; the other keeps its figure meanwhile
    first, second = (e.id for e in window.state.rois)
    window.state.update_roi(second, Rect(8, 200, 48, 48))
    assert "measuring blur" in _texts(window)[1] and second not in meter.estimates
    assert first in meter.estimates
    assert meter.wait() and second in meter.estimates
    window.state.clear_rois()
    assert meter.estimates == {} and not meter.measuring


def test_closing_the_window_while_measuring_leaves_no_thread(window, small_tif):
    window.open_file(small_tif)
    window.state.set_roi_set(RoiSet([Rect(30, 30, 60, 60)]))
    meter = window.roi_panel.meter
    meter._timer.stop()
    meter._start()                                   # measuring now, on its thread
    job = meter._job
    assert job is not None
    window.close()
    assert job.isFinished()
