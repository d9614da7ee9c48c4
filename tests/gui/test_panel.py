"""The side panel as a user meets it: the wheel scrolls it without touching a setting, and the
Restore button is in view at the default window size."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets


def _wheel(widget: QtWidgets.QWidget, notches: int = -3) -> None:
    pos = QtCore.QPointF(widget.rect().center())
    glob = QtCore.QPointF(widget.mapToGlobal(pos.toPoint()))
    ev = QtGui.QWheelEvent(pos, glob, QtCore.QPoint(0, 0), QtCore.QPoint(0, 120 * notches),
                           QtCore.Qt.MouseButton.NoButton, QtCore.Qt.KeyboardModifier.NoModifier,
                           QtCore.Qt.ScrollPhase.NoScrollPhase, False)
    QtWidgets.QApplication.sendEvent(widget, ev)


def test_wheel_over_the_panel_scrolls_it_and_changes_no_setting(window, small_tif, qtbot):
    window.resize(1100, 560)                        # small enough that the panel scrolls
    window.open_file(small_tif)
    qtbot.wait(50)
    panel = window.model_panel
    views = panel.param_widgets["orientations"]
    bar = window.model_scroll.verticalScrollBar()
    assert bar.maximum() > 0
    bar.setValue(0)
    before = (views.currentIndex(), panel.tile.value(), window.settings.model_params("comi"))
    for w in (views, panel.tile, panel.device):
        _wheel(w)
    assert (views.currentIndex(), panel.tile.value(), window.settings.model_params("comi")) == before
    assert bar.value() > 0                          # the wheel scrolled the panel instead
    # clicked into, a box does take the wheel (a deliberate change)
    panel.tile.setFocus()
    qtbot.waitUntil(panel.tile.hasFocus)
    _wheel(panel.tile, notches=1)
    assert panel.tile.value() != before[1]


def test_restore_button_is_in_view_at_the_default_size(window, small_tif, qtbot):
    window.resize(1500, 920)                        # the size a first start gets
    window.open_file(small_tif)
    qtbot.wait(50)
    btn = window.model_panel.run_btn
    assert btn.isVisible() and btn.isEnabled()
    top_left = btn.mapTo(window, QtCore.QPoint(0, 0))
    assert window.rect().contains(QtCore.QRect(top_left, btn.size()))
    window.model_scroll.verticalScrollBar().setValue(window.model_scroll.verticalScrollBar().maximum())
    assert btn.mapTo(window, QtCore.QPoint(0, 0)) == top_left     # it does not scroll away
