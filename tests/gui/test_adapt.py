"""'Learn from this image's sharp areas' in the window: progress, cancel, the adapted model used
by Restore and recorded, saved as weights."""

from __future__ import annotations

import numpy as np
import pytest

import core.adaptation
from core.io import Image, write_image
from core.roi import Rect
from tests.gui.conftest import make_specimen


@pytest.fixture
def quick_adapt(monkeypatch):
    """The window's adaptation, shortened to a few steps (the same code path), and always kept
    (two steps rarely pass the held-out check, which tests/test_adaptation.py covers): these
    tests are about what the window does with an adapted model."""
    real = core.adaptation.adapt

    def quick(*args, settings=None, **kwargs):
        from core.adaptation import AdaptSettings

        return real(*args, settings=AdaptSettings(steps=2, batch_size=2, patch=64,
                                                  accept_margin_db=-100.0,
                                                  sharp_tolerance_db=100.0), **kwargs)

    monkeypatch.setattr(core.adaptation, "adapt", quick)


@pytest.fixture
def field_tif(tmp_path):
    return write_image(tmp_path / "field.tif", Image(make_specimen((256, 256), seed=4), "YX"))


def test_the_action_needs_comi_and_marked_regions(window, field_tif):
    box = window.adapt_box
    window.open_file(field_tif)
    window.select_model("comi")
    window.state.clear_rois()
    assert not box.button.isEnabled() and "Mark the blurred regions" in box.button.toolTip()
    window.state.add_roi(Rect(80, 80, 96, 96))
    assert box.button.isEnabled()
    window.select_model("richardson-lucy")
    assert not box.isVisibleTo(window)


def test_learn_then_restore_uses_and_records_the_adapted_model(window, field_tif, qtbot,
                                                              quick_adapt, tmp_path):
    window.open_file(field_tif)
    window.select_model("comi")
    window.state.add_roi(Rect(80, 80, 96, 96))
    with qtbot.waitSignal(window.run_finished, timeout=120000) as done:
        window.adapt_box.button.click()
        assert window.state.busy and window.progress.isVisible()
    assert done.args == ["adapted"] and not window.state.busy
    adapted = window.state.adapted
    assert adapted is not None and adapted.image_name == "field.tif"
    assert "field.tif" in window.adapt_box.status.text()
    with qtbot.waitSignal(window.run_finished, timeout=60000) as done:
        assert window.start_run()
    assert done.args == ["done"]
    result = window.state.result()
    assert "adapted to field.tif" in result.label
    assert result.image.metadata["provenance"]["adapted"]["adapted_on"] == "field.tif"
    original = window.state.image.data
    np.testing.assert_array_equal(result.image.data[:70], original[:70])   # outside: untouched
    saved = window.save_adapted(tmp_path / "mine.safetensors")
    assert saved is not None and saved.is_file()
    # another model or weights: the adapted one is dropped
    window.select_model("richardson-lucy")
    assert window.state.adapted is None


def test_cancelling_keeps_the_model_unchanged_and_the_window_usable(window, field_tif, qtbot,
                                                                     monkeypatch):
    real = core.adaptation.adapt

    def slow(*args, settings=None, **kwargs):
        from core.adaptation import AdaptSettings

        return real(*args, settings=AdaptSettings(steps=10_000, batch_size=2, patch=64), **kwargs)

    monkeypatch.setattr(core.adaptation, "adapt", slow)
    window.open_file(field_tif)
    window.select_model("comi")
    window.state.add_roi(Rect(80, 80, 96, 96))
    with qtbot.waitSignal(window.run_finished, timeout=120000) as done:
        window.adapt_box.button.click()
        qtbot.waitUntil(lambda: window.progress.maximum() == 1000, timeout=60000)
        window.cancel_run()
    assert done.args == ["cancelled"]
    assert window.state.adapted is None and not window.state.busy
    assert window.adapt_box.button.isEnabled() and window.model_panel.run_btn.isEnabled()


def _scripted_adapt_and_run(window, image, qtbot, tmp_path) -> list[int]:
    """deblur-gui IMAGE --roi R --model comi --adapt 20 --run --quit; the exit statuses."""
    from deblur_gui.app import ScriptedStart, build_parser

    roi = tmp_path / "r.roi.json"
    roi.write_text('{"rois": [{"type": "rect", "x": 80, "y": 80, "w": 96, "h": 96}]}')
    statuses: list[int] = []
    args = build_parser().parse_args([str(image), "--roi", str(roi), "--model", "comi",
                                      "--adapt", "20", "--run", "--quit"])
    script = ScriptedStart(window, args, on_done=statuses.append)
    script.start()
    qtbot.waitUntil(lambda: script.done, timeout=120000)
    return statuses


def test_scripted_start_learns_then_restores(window, field_tif, qtbot, quick_adapt, tmp_path):
    """deblur-gui IMAGE --roi R --model comi --adapt S --run: the way the screenshots are made."""
    assert _scripted_adapt_and_run(window, field_tif, qtbot, tmp_path) == [0]
    assert "adapted to field.tif" in window.state.result().label


def test_a_mildly_blurred_region_is_not_learned_for_and_says_why(window, tmp_path, qtbot):
    """Learning declines for mild blur (as deblur predict does): no error box, the reason under
    the button until the regions change, the shipped model restores; a scripted --adapt --run
    goes on to restore."""
    from tests.test_adaptation import _mild_field

    src = write_image(tmp_path / "mild.tif", Image(_mild_field(), "YX"))
    window.open_file(src)
    window.select_model("comi")
    window.state.add_roi(Rect(80, 80, 96, 96))
    with qtbot.waitSignal(window.run_finished, timeout=120000) as done:
        window.adapt_box.button.click()
    assert done.args == ["declined"] and window.state.adapted is None
    note = window.adapt_box.status.text()
    assert "Not learned" in note and "about 3 px" in note and "shipped model" in note
    assert window.adapt_box.status.isVisibleTo(window)
    window.state.add_roi(Rect(10, 10, 40, 40))
    assert window.adapt_box.status.text() == ""
    window.state.clear_rois()
    assert _scripted_adapt_and_run(window, src, qtbot, tmp_path) == [0]
    assert "adapted" not in window.state.result().label
