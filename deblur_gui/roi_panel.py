"""The list of marked regions beside the view: select, delete, clear, and how blurred each
region is (measured in the background, deblur_gui.blur_meter)."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from deblur_gui.blur_meter import BlurMeter
from deblur_gui.roi_tools import Tool
from deblur_gui.state import AppState, roi_label

__all__ = ["RoiPanel"]


class RoiPanel(QtWidgets.QWidget):
    """The list of marked regions with remove / clear, edge softness, and file buttons."""

    center_requested = QtCore.Signal(int)

    def __init__(self, state: AppState, tool_actions: dict[str, QtGui.QAction],
                 extra_actions: list[QtGui.QAction], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.meter = BlurMeter(state, self)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)

        tools = QtWidgets.QHBoxLayout()
        tools.setSpacing(2)
        for tool in Tool.ALL:
            btn = QtWidgets.QToolButton()
            btn.setDefaultAction(tool_actions[tool])
            btn.setIconSize(QtCore.QSize(22, 22))
            btn.setAutoRaise(True)
            tools.addWidget(btn)
        tools.addStretch(1)
        layout.addLayout(tools)

        self.list = QtWidgets.QListWidget()
        self.list.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setMinimumHeight(70)
        self.list.setMaximumHeight(150)
        self.list.setToolTip("Marked regions, with how far out of focus each looks (measured against "
                             "the image's in-focus areas). Double-click to centre the view on one; "
                             "Delete removes it.")
        layout.addWidget(self.list)
        self.empty_hint = QtWidgets.QLabel("No regions yet: pick a tool above and drag on the image, "
                                           "or use \u201cDetect blurred regions\u201d.")
        self.empty_hint.setWordWrap(True)
        self.empty_hint.setStyleSheet("color: #9aa0a6;")
        layout.addWidget(self.empty_hint)

        row = QtWidgets.QHBoxLayout()
        self.remove_btn = QtWidgets.QPushButton("Remove")
        self.remove_btn.setToolTip("Remove the selected region (Delete)")
        self.clear_btn = QtWidgets.QPushButton("Clear all")
        row.addWidget(self.remove_btn)
        row.addWidget(self.clear_btn)
        layout.addLayout(row)

        form = QtWidgets.QFormLayout()
        self.feather = QtWidgets.QDoubleSpinBox()
        self.feather.setRange(0, 256)
        self.feather.setDecimals(0)
        self.feather.setSingleStep(2)
        self.feather.setSuffix(" px")
        self.feather.setToolTip("How far inside each region the restored image fades into the original, "
                                "so no hard edge is visible. 0 = hard edge.")
        form.addRow("Edge softness (px)", self.feather)
        layout.addLayout(form)

        grid = QtWidgets.QGridLayout()
        for i, action in enumerate(extra_actions):
            btn = QtWidgets.QPushButton(action.text().replace("&", "").rstrip("."))
            btn.setToolTip(action.toolTip())
            btn.clicked.connect(action.trigger)
            action.changed.connect(lambda b=btn, a=action: b.setEnabled(a.isEnabled()))
            btn.setEnabled(action.isEnabled())
            grid.addWidget(btn, i // 2, i % 2, 1, 2 if (i == len(extra_actions) - 1 and i % 2 == 0) else 1)
        layout.addLayout(grid)
        layout.addStretch(1)

        self.list.currentRowChanged.connect(self._on_row)
        self.list.itemDoubleClicked.connect(self._on_double)
        self.remove_btn.clicked.connect(self.remove_selected)
        self.clear_btn.clicked.connect(state.clear_rois)
        self.feather.valueChanged.connect(lambda v: state.set_feather(v))
        state.rois_changed.connect(self.refresh)
        state.selection_changed.connect(self._select_row)
        state.feather_changed.connect(self._on_feather)
        state.image_changed.connect(self.refresh)
        self.meter.changed.connect(self.refresh)
        self._on_feather(state.feather)
        self.refresh()

    def refresh(self) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for i, e in enumerate(self.state.rois, 1):
            est = self.meter.estimates.get(e.id)
            blur = est.short() if est is not None else "measuring blur\u2026" if self.meter.measuring else ""
            item = QtWidgets.QListWidgetItem(f"{i}. {roi_label(e.shape)}" + (f" \u2014 {blur}" if blur else ""))
            if est is not None:
                item.setToolTip(f"Region {i}: {est.words()}")
            item.setData(QtCore.Qt.ItemDataRole.UserRole, e.id)
            self.list.addItem(item)
        self.list.blockSignals(False)
        self._select_row(self.state.selected_roi)
        has = bool(self.state.rois)
        self.empty_hint.setVisible(not has)
        self.clear_btn.setEnabled(has)
        self.remove_btn.setEnabled(self.state.selected_roi is not None)

    def _select_row(self, rid: int | None) -> None:
        self.list.blockSignals(True)
        self.list.clearSelection()
        for row in range(self.list.count()):
            if self.list.item(row).data(QtCore.Qt.ItemDataRole.UserRole) == rid:
                self.list.setCurrentRow(row)
                break
        else:
            self.list.setCurrentRow(-1)
        self.list.blockSignals(False)
        self.remove_btn.setEnabled(rid is not None)

    def _on_row(self, row: int) -> None:
        item = self.list.item(row) if row >= 0 else None
        self.state.select_roi(item.data(QtCore.Qt.ItemDataRole.UserRole) if item else None)

    def _on_double(self, item: QtWidgets.QListWidgetItem) -> None:
        self.center_requested.emit(item.data(QtCore.Qt.ItemDataRole.UserRole))

    def _on_feather(self, value: float) -> None:
        if self.feather.value() != value:
            self.feather.blockSignals(True)
            self.feather.setValue(value)
            self.feather.blockSignals(False)

    def remove_selected(self) -> None:
        if self.state.selected_roi is not None:
            self.state.remove_roi(self.state.selected_roi)
