"""One editor per model setting (a registry `Param`), shared by the app's model panel and the
napari plugin: choices -> combo box, bool -> check box, int/float -> spin box, else a line.

A setting that may be measured on the image (`Param.auto`) reads "auto (measured)" one step
below its smallest number; one whose smallest value turns it off (`Param.off`) reads "off"
there, so nobody has to know that 0 px means "not used".

The napari plugin runs under whichever Qt binding napari uses (qtpy), the app under PySide6,
so this module imports no binding (nor any other app module): `param_editor` is given the
binding's QtWidgets module, and the readers go by Qt class name (tests/test_architecture.py).
"""

from __future__ import annotations

from typing import Any, Callable

from core.models.spec import AUTO, Param

__all__ = ["AUTO_TEXT", "OFF_TEXT", "param_editor", "param_value", "set_param_value"]

AUTO_TEXT = "auto (measured)"
OFF_TEXT = "off"


def param_editor(p: Param, value: Any, on_change: Callable[..., None] | None = None, *,
                 qt: Any) -> Any:
    """A widget showing `value` of setting `p`; `on_change` is called when the user edits it.
    `qt`: the QtWidgets module of the binding in use."""
    QtWidgets = qt
    if p.choices:
        w = QtWidgets.QComboBox()
        for c in p.choices:
            w.addItem(str(c), c)
        w.setCurrentIndex(max(0, w.findData(value)))
        signal = w.currentIndexChanged
    elif p.type is bool:
        w = QtWidgets.QCheckBox()
        w.setChecked(bool(value))
        signal = w.toggled
    elif p.type is int:
        w = QtWidgets.QSpinBox()
        w.setRange(int(p.min) if p.min is not None else -10**9, int(p.max) if p.max is not None else 10**9)
        if _off_at_minimum(p):
            w.setSpecialValueText(OFF_TEXT)
        try:
            w.setValue(int(value))
        except (TypeError, ValueError):
            w.setValue(int(p.default))
        signal = w.valueChanged
    elif p.type is float:
        w = QtWidgets.QDoubleSpinBox()
        w.setDecimals(2)
        w.setRange(float(p.min) if p.min is not None else -1e9, float(p.max) if p.max is not None else 1e9)
        w.setSingleStep(0.5)
        if p.auto:   # one step below the smallest value reads "auto": measured on the image
            w.setMinimum(w.minimum() - 0.5)
            w.setSpecialValueText(AUTO_TEXT)
        elif _off_at_minimum(p):
            w.setSpecialValueText(OFF_TEXT)
        try:
            w.setValue(w.minimum() if value == AUTO else float(value))
        except (TypeError, ValueError):
            w.setValue(w.minimum() if p.default == AUTO else float(p.default))
        signal = w.valueChanged
    else:
        w = QtWidgets.QLineEdit(str(value))
        signal = w.editingFinished
    w.setToolTip(p.help[:1].upper() + p.help[1:] if p.help else "")
    if on_change is not None:
        signal.connect(on_change)
    return w


def _off_at_minimum(p: Param) -> bool:
    """Whether the smallest value of a number setting turns it off (then it reads "off")."""
    return p.off is not None and p.min is not None and float(p.off) == float(p.min)


def _kind(w: Any) -> str:
    return w.metaObject().className()


def param_value(w: Any) -> Any:
    """The value a `param_editor` widget holds (AUTO for "auto (measured)")."""
    kind = _kind(w)
    if kind == "QComboBox":
        return w.currentData()
    if kind == "QCheckBox":
        return w.isChecked()
    if kind in ("QSpinBox", "QDoubleSpinBox"):
        return AUTO if w.specialValueText() == AUTO_TEXT and w.value() == w.minimum() else w.value()
    return w.text()


def set_param_value(w: Any, value: Any) -> None:
    """Show `value` in a `param_editor` widget as if the user had set it."""
    kind = _kind(w)
    if kind == "QComboBox":
        w.setCurrentIndex(w.findData(value))
    elif kind == "QCheckBox":
        w.setChecked(bool(value))
    elif kind == "QSpinBox":
        w.setValue(int(value))
    elif kind == "QDoubleSpinBox":
        w.setValue(w.minimum() if value == AUTO else float(value))
    else:
        w.setText(str(value))
        w.editingFinished.emit()
