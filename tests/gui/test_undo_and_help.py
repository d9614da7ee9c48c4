"""Undo and redo of the regions (Edit menu, Ctrl+Z / Ctrl+Shift+Z), and the offline help."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from core.roi import Ellipse, Rect, RoiSet
from deblur_gui.help import GUIDE_HTML, shortcut_rows
from deblur_gui.roi_tools import Tool
from tests.gui.conftest import mouse_drag, view_to_widget


def _drag_rect(window, qtbot, a, b):
    window.set_tool(Tool.RECT)
    mouse_drag(qtbot, window.viewer.viewport(), [view_to_widget(window, a[0] + (b[0] - a[0]) * t,
                                                                 a[1] + (b[1] - a[1]) * t)
                                                  for t in (0.0, 0.3, 0.6, 1.0)])


def test_undo_and_redo_with_the_keyboard(window, small_tif, qtbot):
    window.open_file(small_tif)
    assert not window.act_undo.isEnabled()
    _drag_rect(window, qtbot, (10, 10), (50, 60))
    _drag_rect(window, qtbot, (60, 60), (100, 110))
    assert len(window.state.rois) == 2 and window.act_undo.isEnabled()
    window.set_tool(Tool.PAN)
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert len(window.state.rois) == 1 and len(window.roi_layer.items) == 1
    assert window.act_redo.isEnabled()
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Z,
                   QtCore.Qt.KeyboardModifier.ControlModifier | QtCore.Qt.KeyboardModifier.ShiftModifier)
    assert len(window.state.rois) == 2 and len(window.roi_layer.items) == 2


def test_clear_all_edits_and_loading_are_undoable(window, small_tif):
    window.open_file(small_tif)
    s = window.state
    feather = s.feather
    s.set_roi_set(RoiSet([Rect(5, 5, 30, 30), Ellipse(40, 40, 20, 30)], feather=8))
    rid = s.rois[0].id
    s.update_roi(rid, Rect(6, 6, 40, 40))
    window.act_clear.trigger()
    assert s.rois == []
    assert s.undo() and [e.shape for e in s.rois] == [Rect(6, 6, 40, 40), Ellipse(40, 40, 20, 30)]
    assert s.undo() and s.rois[0].shape == Rect(5, 5, 30, 30)
    assert s.undo() and s.rois == [] and s.feather == feather != 8
    assert not s.undo()                               # nothing before the first change
    assert s.redo() and s.redo() and s.redo() and s.rois == []
    assert not s.redo()
    s.add_roi(Rect(1, 1, 20, 20))                      # a new change ends the redo history
    assert not s.can_redo()


def test_a_new_image_starts_a_fresh_history(window, small_tif):
    window.open_file(small_tif)
    window.state.add_roi(Rect(1, 1, 20, 20))
    window.saved_results.clear()
    window.open_file(small_tif)
    assert not window.state.can_undo() and not window.act_undo.isEnabled()


def test_help_menu_has_a_guide_and_the_shortcuts(window, qtbot):
    titles = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert titles[:2] == ["File", "Edit"]
    window.act_guide.trigger()
    guide = next(w for w in QtWidgets.QApplication.topLevelWidgets()
                 if w.windowTitle() == "deblur user guide" and w.isVisible())
    assert "Undo" in guide.findChild(QtWidgets.QTextBrowser).toPlainText()
    guide.close()
    rows = dict(shortcut_rows(window))
    assert rows["Undo"] == "Ctrl+Z" and "Ctrl+Shift+Z" in rows["Redo"]
    assert rows["Restore selected regions"] == "Ctrl+R" and "Rectangle" in rows
    window.act_shortcuts.trigger()
    table = next(w for w in QtWidgets.QApplication.topLevelWidgets()
                 if w.windowTitle() == "Keyboard shortcuts" and w.isVisible())
    assert table.findChild(QtWidgets.QTableWidget).rowCount() == len(rows)
    table.close()
    assert "never changed" in GUIDE_HTML

