"""Fixtures for the GUI tests: offscreen Qt, private settings, small real images.

PySide6 6.12 + pyqtgraph 0.14 can crash at interpreter exit; the cure is pyqtgraph's
exitCleanup=False (set by deblur_gui.viewer), collecting Qt wrappers after every test, and the
top-level conftest ending the process with pytest's real exit status.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6 import QtCore, QtWidgets  # noqa: E402

import deblur_gui.viewer  # noqa: E402,F401  (pyqtgraph config before any widget exists)
from core.io import Image, write_image  # noqa: E402


@pytest.fixture(autouse=True)
def _qt_cleanup(qapp):
    """Delete Qt objects of a test before the next starts (no crash at interpreter exit).

    During a GUI test the cycle collector runs only here, on the GUI thread, as in the app
    (deblur_gui.app.collect_garbage_in_gui_thread): collected on a worker thread, a window's
    garbage deadlocked a test."""
    gc.collect()
    gc.disable()
    try:
        yield
        QtWidgets.QApplication.processEvents()
        gc.collect()
        for w in QtWidgets.QApplication.topLevelWidgets():
            if isinstance(w, QtWidgets.QMessageBox):
                w.close()
        QtWidgets.QApplication.processEvents()
        gc.collect()
        QtWidgets.QApplication.processEvents()
    finally:
        gc.enable()


def view_to_widget(window, x: float, y: float) -> QtCore.QPoint:
    """Image coordinates of the main viewer -> its viewport's widget coordinates."""
    return window.viewer.mapFromScene(window.view_box.mapViewToScene(QtCore.QPointF(x, y)))


def mouse_drag(qtbot, widget: QtWidgets.QWidget, points: list[QtCore.QPoint]) -> None:
    """Press at the first point, move through the rest, release at the last, like a hand does.

    pyqtgraph drops mouse moves closer than 10 ms apart (its mouseRateLimit); a test that moves
    faster than a hand could has its whole drag dropped when the machine is busy, so each move
    waits a little first.
    """
    qtbot.mousePress(widget, QtCore.Qt.MouseButton.LeftButton, pos=points[0])
    for p in points[1:]:
        qtbot.wait(12)
        qtbot.mouseMove(widget, p)
    qtbot.mouseRelease(widget, QtCore.Qt.MouseButton.LeftButton, pos=points[-1])


@pytest.fixture
def settings(tmp_path: Path):
    from deblur_gui.settings import Settings

    q = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    return Settings(q)


def make_specimen(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Bright round 'nuclei' on a dark background, uint16, with a blurred patch in the middle."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    h, w = shape
    img = np.zeros(shape, np.float32)
    yy, xx = np.mgrid[-10:11, -10:11]
    for _ in range(max(4, h * w // 1500)):
        cy, cx, r = int(rng.integers(10, h - 10)), int(rng.integers(10, w - 10)), rng.uniform(4, 10)
        img[cy - 10:cy + 11, cx - 10:cx + 11] += (yy ** 2 + xx ** 2 < r * r) * rng.uniform(0.5, 1.0)
    blurred = ndimage.gaussian_filter(img, 3)
    img[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = blurred[h // 4: 3 * h // 4, w // 4: 3 * w // 4]
    return (img * 3000 + 300 + rng.normal(0, 15, shape)).clip(0, 65535).astype(np.uint16)


@pytest.fixture
def small_tif(tmp_path: Path) -> Path:
    """A 128 x 128 uint16 TIFF with a pixel size."""
    return write_image(tmp_path / "cells.tif", Image(make_specimen((128, 128)), "YX", pixel_size=(0.2, 0.2)))


@pytest.fixture
def window(qtbot, settings):
    from deblur_gui.main_window import MainWindow

    win = MainWindow(settings, confirm_close=False)
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    yield win
    if win.job is not None:
        win.job.cancel()
        win.job.wait(10000)
    win.close()
