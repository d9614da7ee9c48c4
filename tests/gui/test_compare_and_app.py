"""Compare modes, several results, drag and drop, the scripted start and the crash dialog."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from core.roi import Rect
from deblur_gui.compare import MODES


def _run(window, qtbot, iterations: int) -> None:
    window.model_panel.set_param("iterations", iterations)
    window.model_panel.set_param("psf_radius", 2.0)
    with qtbot.waitSignal(window.run_finished, timeout=30000) as blocker:
        window.start_run()
    assert blocker.args == ["done"]


def test_compare_modes_and_several_results(window, small_tif, qtbot, tmp_path):
    window.open_file(small_tif)
    window.state.add_roi(Rect(20, 20, 80, 80))
    window.select_model("richardson-lucy")
    _run(window, qtbot, 2)
    _run(window, qtbot, 5)
    cmp = window.compare
    assert cmp.results.count() == 2 and window.state.current_result == window.state.results[1].id
    first = window.state.results[0]
    cmp.results.setCurrentIndex(0)
    assert window.state.current_result == first.id
    np.testing.assert_array_equal(cmp.right.data, first.image.data)

    # linked zoom and levels
    cmp.right.vb.setRange(QtCore.QRectF(10, 10, 30, 30), padding=0)
    assert np.allclose(cmp.left.vb.viewRange(), cmp.right.vb.viewRange())
    cmp.right.set_levels(100, 2000)
    assert np.allclose(np.asarray(cmp.left.image_item.getLevels(), float), [100, 2000])

    cmp.set_mode("Swipe")
    assert cmp.stack.currentWidget() is cmp.swipe
    cmp.swipe_line.setValue(64)
    assert cmp.swipe_top.image.shape == (128, 64)
    cmp.set_mode("Difference")
    expected = first.image.data.astype(np.float32) - window.state.image.data.astype(np.float32)
    np.testing.assert_allclose(cmp.diff.data, expected)
    png = window.export_comparison(tmp_path / "cmp.png")
    assert png.is_file() and cmp.mode == "Difference"  # export does not change the mode
    assert set(MODES) == set(cmp.mode_buttons)

    cmp.remove_btn.click()
    assert len(window.state.results) == 1 and cmp.results.count() == 1


def test_drop_opens_image_and_regions(window, small_tif, tmp_path, qtbot):
    roi = tmp_path / "marks.json"
    roi.write_text('{"rois": [{"type": "ellipse", "x": 5, "y": 5, "w": 20, "h": 20}], "feather": 4}')
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(small_tif)), QtCore.QUrl.fromLocalFile(str(roi))])
    pos = QtCore.QPointF(200, 200)
    enter = drag_event(QtCore.QEvent.Type.DragEnter, pos, mime)
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    window.dropEvent(drag_event(QtCore.QEvent.Type.Drop, pos, mime))
    assert window.state.image is not None and len(window.state.rois) == 1
    assert window.state.feather == 4


def drag_event(kind, pos, mime):
    """A drag-enter or drop event carrying `mime`, as the window receives from a file manager."""
    from PySide6 import QtGui

    if kind == QtCore.QEvent.Type.DragEnter:  # takes an integer QPoint in PySide6 < 6.11
        cls, pos = QtGui.QDragEnterEvent, pos.toPoint()
    else:
        cls = QtGui.QDropEvent
    return cls(pos, QtCore.Qt.DropAction.CopyAction, mime,
               QtCore.Qt.MouseButton.NoButton, QtCore.Qt.KeyboardModifier.NoModifier)


@pytest.fixture
def restore_hooks():
    import threading

    saved = sys.excepthook, threading.excepthook
    yield
    sys.excepthook, threading.excepthook = saved


def _script(window, argv):
    from deblur_gui.app import ScriptedStart, build_parser

    statuses = []
    script = ScriptedStart(window, build_parser().parse_args(argv), on_done=statuses.append)
    script.start()
    return script, statuses


def test_scripted_start_runs_and_saves_screenshot(window, small_tif, tmp_path, qtbot):
    roi = tmp_path / "r.roi.json"
    roi.write_text('{"rois": [{"type": "rect", "x": 30, "y": 30, "w": 60, "h": 50}]}')
    shot = tmp_path / "shot.png"
    script, statuses = _script(window, [str(small_tif), "--roi", str(roi), "--model", "richardson-lucy",
                                        "--param", "iterations=2", "--run", "--screenshot", str(shot), "--quit"])
    qtbot.waitUntil(lambda: script.done, timeout=30000)
    assert statuses == [0]
    assert window.state.result() is not None and window.tabs.currentIndex() == 1
    assert shot.is_file() and shot.stat().st_size > 5000


def test_scripted_start_reports_a_bad_file(window, tmp_path, qtbot, capsys):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00garbage")
    script, statuses = _script(window, [str(bad), "--model", "no-such-model", "--quit"])
    qtbot.waitUntil(lambda: script.done, timeout=10000)
    assert statuses == [1]
    err = capsys.readouterr().err
    assert "broken.tif" in err and "no-such-model" in err


def test_deblur_gui_command_exits_cleanly(small_tif, tmp_path):
    """The real entry point in its own process: runs, saves the picture, exits with status 0."""
    import os
    import subprocess

    shot = tmp_path / "cmd.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", "import sys; from deblur_gui.app import main; sys.exit(main())",
                           str(small_tif), "--screenshot", str(shot), "--size", "1000x700", "--quit"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.is_file()


def test_unexpected_error_shows_plain_dialog(window, restore_hooks):
    from deblur_gui.app import install_excepthook

    install_excepthook()
    window.activateWindow()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    boxes = [w for w in QtWidgets.QApplication.topLevelWidgets()
             if isinstance(w, QtWidgets.QMessageBox) and w.isVisible()]
    assert boxes and "Something went wrong: boom" in boxes[-1].text()
    assert "Traceback" in boxes[-1].detailedText() and "Traceback" not in boxes[-1].text()


def test_open_sample_from_help_menu(window):
    names = [a.text() for a in window.sample_menu.actions()]
    if names == ["No samples installed"]:
        pytest.skip("resources/samples is empty in this checkout")
    assert names[0].endswith(".tif") or names[0].endswith(".png")
    action = next(a for a in window.sample_menu.actions() if "blur" in a.text())
    action.trigger()
    assert window.state.image is not None and window.state.image.path.name == action.text()


def test_load_weights_trained_elsewhere_and_run(window, small_tif, tmp_path, qtbot):
    """A user's .safetensors (a tiny CycleGAN generator) is picked up with its card and runs."""
    import torch

    from core.models.resnet_generator import ResnetGenerator
    from core.models.registry import make_card
    from core.models.weights import save_weights

    torch.manual_seed(0)
    net = ResnetGenerator(ngf=4, n_down=1, n_blocks=1)
    card = make_card("cyclegan", net, training={"data": "synthetic nuclei (test)", "steps": 3},
                     validation={"psnr": 30.0, "psnr_blurred": 28.0, "ssim": 0.9})
    weights = save_weights(tmp_path / "mine.safetensors", net.state_dict(), card)
    window.open_file(small_tif)
    window.state.add_roi(Rect(16, 16, 64, 64))
    window.select_model("richardson-lucy")
    assert window.load_weights(weights)
    assert window.state.model_name == "cyclegan" and window.state.weights == weights
    notice = window.model_panel.notice
    assert notice.isVisible() and "Switched to CycleGAN" in notice.text() and "Richardson-Lucy" in notice.text()
    assert "synthetic nuclei (test)" in window.model_panel.card.text()
    assert "mine.safetensors" in window.model_panel.weights_label.text()
    with qtbot.waitSignal(window.run_finished, timeout=60000) as blocker:
        assert window.start_run()
    assert blocker.args == ["done"], window.last_error_text
    assert window.state.result().weights == weights
    assert not window.load_weights(tmp_path / "model.pth")  # pickles are refused with a reason
    assert "safetensors" in window.last_error_text


def test_a_damaged_weights_file_is_explained_and_changes_nothing(window, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\xff" * 64)                     # safetensors: "header too large"
    window.select_model("comi")
    assert not window.load_weights(bad)
    text = window.last_error_text
    assert "broken.safetensors" in text and "damaged, truncated or another format" in text
    assert "header" not in text and "deserializ" not in text    # the technical part: Details only
    assert "did not change" in text
    assert window.state.model_name == "comi" and window.state.weights is None
    assert not window.model_panel.notice.isVisible()


def test_a_bioimageio_package_deblur_exported_loads_as_weights(window, tmp_path):
    """Load weights (or a drop) takes the .zip that `deblur export-bioimageio` wrote; another
    project's package or an ImageJ ROI set is not taken for a model."""
    import json
    import zipfile

    from core.models.weights import resolve_weights

    src = resolve_weights("cyclegan", None)
    pkg = tmp_path / "cyclegan.zip"
    with zipfile.ZipFile(pkg, "w") as zf:
        zf.writestr("rdf.yaml", "type: model\n")
        zf.write(src, "cyclegan.safetensors")
        zf.write(src.with_suffix(".json"), "cyclegan.json")
        zf.writestr("deblur.json", json.dumps({"weights": "cyclegan.safetensors", "card": "cyclegan.json"}))
    window.select_model("comi")
    assert window.load_weights(pkg)
    assert window.state.model_name == "cyclegan" and window.state.weights == pkg
    foreign = tmp_path / "other.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("rdf.yaml", "type: model\n")
    assert not window.load_weights(foreign)
    assert "not of a deblur model" in window.last_error_text
    assert window.state.model_name == "cyclegan" and window.state.weights == pkg


def test_compare_shows_blur_verdict_and_where_the_input_disagrees(window, qtbot):
    """After a run the table says how blurred each region was and whether the input explains
    the result; the Trust view marks what it does not explain, inside the regions only."""
    from resources import SAMPLES

    window.open_file(SAMPLES / "nuclei_blurred.tif")
    window.load_rois(SAMPLES / "nuclei_blurred.roi.json")
    window.select_model("richardson-lucy")
    window.model_panel.set_param("iterations", 60)
    window.model_panel.set_param("psf_radius", 20.0)     # far too large: rings the input never had
    with qtbot.waitSignal(window.run_finished, timeout=120000) as sig:
        assert window.start_run()
    assert sig.args == ["done"], window.last_error_text
    result = window.state.result()
    label, blur, verdict = result.checks[0]
    assert "out of focus" in blur and verdict.startswith("check:")
    table = window.compare.table
    assert table.item(0, 2).text().startswith("check:")
    assert result.trust_map.any() and not result.trust_map[-40:].any()   # the region is the top
    window.compare.set_mode("Trust")
    assert window.compare.mode_buttons["Trust"].isEnabled() and window.compare.trust_legend.isVisible()
    assert window.compare.trust_overlay.image is not None


def test_the_app_collects_garbage_on_the_gui_thread_only(qapp):
    """Cycles holding Qt objects, collected on a worker thread, can deadlock the app."""
    import gc

    from deblur_gui.app import collect_garbage_in_gui_thread

    class App:
        pass

    app = App()
    try:
        collect_garbage_in_gui_thread(app)
        assert not gc.isenabled() and app._deblur_gc.timer.isActive()
        first = app._deblur_gc
        collect_garbage_in_gui_thread(app)                 # once per application
        assert app._deblur_gc is first
    finally:
        app._deblur_gc.timer.stop()
        gc.enable()
