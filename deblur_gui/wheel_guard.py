"""The mouse wheel scrolls a panel; it changes a setting only in a box the user clicked into.

Qt's spin boxes and drop-downs take the wheel whenever the pointer passes over them, so scrolling
the side panel silently changed "Views averaged" and the tile size (and saved them as defaults).
`WheelGuard` hands such wheel events to the scroll area around the widget instead, unless the
widget has the keyboard focus (the user clicked it); the widgets themselves only take the focus
by click or Tab, never by the wheel.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

__all__ = ["WheelGuard", "install_wheel_guard"]

_GUARDED = (QtWidgets.QAbstractSpinBox, QtWidgets.QComboBox)


def _scroll_area(widget: QtWidgets.QWidget) -> QtWidgets.QAbstractScrollArea | None:
    w = widget.parentWidget()
    while w is not None:
        if isinstance(w, QtWidgets.QScrollArea):
            return w
        w = w.parentWidget()
    return None


class WheelGuard(QtCore.QObject):
    """Application-wide event filter; see the module docstring."""

    def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802
        if event.type() == QtCore.QEvent.Type.Wheel and isinstance(obj, _GUARDED):
            if obj.focusPolicy() == QtCore.Qt.FocusPolicy.WheelFocus:
                obj.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
            area = _scroll_area(obj)
            if area is not None and not obj.hasFocus():
                QtCore.QCoreApplication.sendEvent(area.verticalScrollBar(), event)
                return True
        return False


def install_wheel_guard(app: QtWidgets.QApplication) -> WheelGuard:
    """Install the guard once per application (later calls return the same one)."""
    guard = app.findChild(WheelGuard)
    if guard is None:
        guard = WheelGuard(app)
        app.installEventFilter(guard)
    return guard
