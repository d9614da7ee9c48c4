"""Which plane of a stack is shown: a slider per Z/T axis, a drop-down for channels."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from deblur_gui.state import AppState

__all__ = ["PlaneBar"]


class PlaneBar(QtWidgets.QWidget):
    """Plane and channel selectors: a slider per Z/T axis, a drop-down for channels."""

    def __init__(self, state: AppState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.layout_ = QtWidgets.QHBoxLayout(self)
        self.layout_.setContentsMargins(8, 2, 8, 2)
        self.controls: dict[str, QtWidgets.QWidget] = {}
        self.merge: QtWidgets.QCheckBox | None = None
        state.image_changed.connect(self.rebuild)
        state.plane_changed.connect(self.sync)
        self.rebuild()

    def rebuild(self) -> None:
        while self.layout_.count():
            item = self.layout_.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.controls = {}
        axes = self.state.plane_axes()
        names = {"Z": "Focal plane (Z)", "T": "Time point (T)", "C": "Channel"}
        for axis, size in axes:
            self.layout_.addWidget(QtWidgets.QLabel(names.get(axis, axis)))
            if axis == "C":
                combo = QtWidgets.QComboBox()
                labels = list(self.state.image.metadata.get("channel_names") or [])
                for i in range(size):
                    name = labels[i] if i < len(labels) and labels[i] else ""
                    combo.addItem(f"{i + 1}: {name}" if name else f"Channel {i + 1}")
                combo.currentIndexChanged.connect(lambda i, a=axis: self.state.set_plane(a, i))
                self.layout_.addWidget(combo)
                self.controls[axis] = combo
            else:
                slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
                slider.setRange(0, size - 1)
                slider.setMinimumWidth(160)
                spin = QtWidgets.QSpinBox()
                spin.setRange(1, size)
                spin.setSuffix(f" / {size}")
                slider.valueChanged.connect(lambda v, a=axis: self.state.set_plane(a, v))
                spin.valueChanged.connect(lambda v, a=axis: self.state.set_plane(a, v - 1))
                self.layout_.addWidget(slider, 1)
                self.layout_.addWidget(spin)
                self.controls[axis] = slider
                self.controls[axis + "_spin"] = spin
            self.layout_.addSpacing(16)
        self.merge = None
        if self.state.can_merge_channels():
            self.merge = QtWidgets.QCheckBox("Merge channels")
            self.merge.setToolTip("Show all channels at once, each in its colour (the run still "
                                  "restores the channel chosen, or all with \u201cAll planes\u201d)")
            self.merge.toggled.connect(self.state.set_merge_channels)
            self.layout_.addWidget(self.merge)
        self.layout_.addStretch(1)
        self.setVisible(bool(axes))
        self.sync()

    def sync(self) -> None:
        if self.merge is not None and self.merge.isChecked() != self.state.merge_channels:
            self.merge.blockSignals(True)
            self.merge.setChecked(self.state.merge_channels)
            self.merge.blockSignals(False)
        for axis, index in self.state.plane.items():
            w = self.controls.get(axis)
            if isinstance(w, QtWidgets.QComboBox) and w.currentIndex() != index:
                w.blockSignals(True)
                w.setCurrentIndex(index)
                w.blockSignals(False)
            elif isinstance(w, QtWidgets.QSlider):
                for ctl, val in ((w, index), (self.controls[axis + "_spin"], index + 1)):
                    if ctl.value() != val:
                        ctl.blockSignals(True)
                        ctl.setValue(val)
                        ctl.blockSignals(False)
