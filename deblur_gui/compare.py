"""Comparing original and restored: side by side, swipe, difference, and per region the
measured blur and the trust check.

The two sides share zoom, pan, levels and colour map so that any difference seen is in the
pixels, not in the display. Several results (one per model or setting) are kept in the state and
can be switched here. Sharpness numbers are computed by core.metrics in the worker; this module
only displays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from core.metrics import sample_spread
from deblur_gui.plane_bar import PlaneBar
from deblur_gui.roi_layer import outline_item
from deblur_gui.state import AppState, Result
from deblur_gui.viewer import DIFFERENCE_CMAP, ImageCanvas, colormap

__all__ = ["CompareView", "MODES"]

MODES = ("Side by side", "Swipe", "Difference", "Spread", "Trust")
#: colour of the pixels the trust check says the input does not explain (RGBA)
DISAGREE_RGBA = (255, 140, 0, 150)


class CompareView(QtWidgets.QWidget):
    """Original | restored for the current result, on the plane the main view shows."""

    hovered = QtCore.Signal(object)

    def __init__(self, state: AppState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._syncing = False
        self._outlines: list[tuple[pg.ViewBox, QtWidgets.QGraphicsItem]] = []
        self.show_outlines = True
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)

        bar = QtWidgets.QHBoxLayout()
        bar.setContentsMargins(6, 4, 6, 0)
        bar.addWidget(QtWidgets.QLabel("Result"))
        self.results = QtWidgets.QComboBox()
        self.results.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.results.setToolTip("Every run is kept; pick one to compare it with the original")
        bar.addWidget(self.results)
        self.remove_btn = QtWidgets.QPushButton("Discard")
        self.remove_btn.setToolTip("Forget this result (it was not saved)")
        bar.addWidget(self.remove_btn)
        bar.addStretch(1)
        self.mode_buttons: dict[str, QtWidgets.QToolButton] = {}
        group = QtWidgets.QButtonGroup(self)
        for mode in MODES:
            b = QtWidgets.QToolButton()
            b.setText(mode)
            b.setCheckable(True)
            group.addButton(b)
            bar.addWidget(b)
            self.mode_buttons[mode] = b
            b.clicked.connect(lambda _=False, m=mode: self.set_mode(m))
        layout.addLayout(bar)
        # the same plane and channel selectors as the image tab (they share the state)
        self.plane_bar = PlaneBar(state)
        layout.addWidget(self.plane_bar)

        self.stack = QtWidgets.QStackedWidget()
        # side by side: the restored side carries the histogram that drives both
        self.side = QtWidgets.QWidget()
        side_l = QtWidgets.QHBoxLayout(self.side)
        side_l.setContentsMargins(0, 0, 0, 0)
        side_l.setSpacing(2)
        self.left = ImageCanvas(histogram=False, title="Original")
        self.right = ImageCanvas(histogram=False, title="Restored")
        # one histogram for both, outside the two views so they get exactly the same size
        # (pyqtgraph links views by screen position: equal sizes mean equal areas shown)
        self.side_hist = pg.HistogramLUTWidget(image=self.right.image_item, gradientPosition="right")
        self.side_hist.setFixedWidth(110)
        self.right.hist = self.side_hist.item
        side_l.addWidget(self.left, 1)
        side_l.addWidget(self.right, 1)
        side_l.addWidget(self.side_hist)
        self.left.link_views(self.right)
        self.right.hist.sigLevelsChanged.connect(self._levels_from_right)
        self.right.hist.gradient.sigGradientChanged.connect(self._lut_from_right)
        self.stack.addWidget(self.side)

        # swipe: the restored image covers the original right of a draggable line
        self.swipe = ImageCanvas(histogram=True, title="Original | Restored")
        self.swipe_top = pg.ImageItem(autoDownsample=True)
        self.swipe_top.setZValue(1)
        self.swipe.vb.addItem(self.swipe_top)
        self.swipe_line = pg.InfiniteLine(angle=90, movable=True,
                                          pen=pg.mkPen("#ffffff", width=2),
                                          hoverPen=pg.mkPen("#4dd0e1", width=3))
        # a handle in the middle, which also widens the grab zone along the whole line (the
        # 2 px line alone was hard to catch)
        self.swipe_line.addMarker("<|>", position=0.5, size=26)
        self.swipe_line.setToolTip("Drag to move the boundary between original and restored")
        self.swipe_line.setZValue(5)
        self.swipe.vb.addItem(self.swipe_line, ignoreBounds=True)
        self.swipe_line.sigPositionChanged.connect(self._update_swipe)
        self.swipe.hist.sigLevelsChanged.connect(self._levels_from_swipe)
        self.swipe.hist.gradient.sigGradientChanged.connect(self._lut_from_swipe)
        self.stack.addWidget(self.swipe)

        # difference: restored - original on a diverging map, zero in the middle
        self.diff = ImageCanvas(histogram=True, title="Restored \u2212 original")
        self.stack.addWidget(self.diff)
        layout.addWidget(self.stack, 1)
        self.diff_legend = QtWidgets.QLabel(
            "<span style='color:#e53935'>\u25a0</span> red: brighter after restoring &nbsp; "
            "<span style='color:#1e88e5'>\u25a0</span> blue: darker &nbsp; white: unchanged")
        self.diff_legend.setVisible(False)
        layout.addWidget(self.diff_legend)
        # spread: where several samples of a diffusion model (other seeds) disagree
        self.spread = ImageCanvas(histogram=True, title="Spread between samples")
        self.stack.addWidget(self.spread)
        self.spread_legend = QtWidgets.QLabel(
            "Bright: the samples disagree (the model is guessing there); dark: they agree. "
            "Use \u201cSample again\u201d to add samples.")
        self.spread_legend.setWordWrap(True)
        self.spread_legend.setVisible(False)
        layout.addWidget(self.spread_legend)

        # trust: the restored plane with what the blurred input does not explain in orange
        self.trust = ImageCanvas(histogram=True, title="Restored; orange: not explained by the input")
        self.trust_overlay = pg.ImageItem(autoDownsample=False)
        self.trust_overlay.setZValue(2)
        self.trust.vb.addItem(self.trust_overlay)
        self.stack.addWidget(self.trust)
        self.trust_legend = QtWidgets.QLabel(
            "<span style='color:#ff8c00'>\u25a0</span> orange: blurring the result again by the "
            "measured blur does not give back the input there: the model added or removed "
            "structure. Check those places against the original.")
        self.trust_legend.setWordWrap(True)
        self.trust_legend.setVisible(False)
        layout.addWidget(self.trust_legend)

        self.table = QtWidgets.QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Region", "Blur (measured)", "Trust check"])
        self.table.horizontalHeader().setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(2, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setMaximumHeight(120)
        self.table.setToolTip("Blur: how far out of focus each region was, measured against the "
                              "image's in-focus areas. Trust check: blurring the result again by "
                              "that much must give back the input; where it does not, the model "
                              "added or removed structure the input does not support.")
        layout.addWidget(self.table)

        self.empty = QtWidgets.QLabel("No results yet. Mark the blurred regions and press "
                                      "\u201cRestore selected regions\u201d.")
        self.empty.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color: #9aa0a6; font-size: 13pt;")
        layout.addWidget(self.empty)

        for canvas in (self.left, self.right, self.swipe, self.diff, self.spread, self.trust):
            canvas.hovered.connect(self.hovered)
        self.results.currentIndexChanged.connect(self._on_result_chosen)
        self.remove_btn.clicked.connect(self._remove_current)
        state.results_changed.connect(self._refresh_results)
        state.current_result_changed.connect(lambda rid: self.refresh())
        state.plane_changed.connect(self.refresh)
        state.image_changed.connect(self.refresh)
        self.mode = MODES[0]
        self.set_mode(MODES[0])
        self._refresh_results()

    # ------------------------------------------------------------------ results
    def _refresh_results(self) -> None:
        self.results.blockSignals(True)
        self.results.clear()
        for r in self.state.results:
            self.results.addItem(r.label, r.id)
        idx = self.results.findData(self.state.current_result)
        self.results.setCurrentIndex(idx)
        self.results.blockSignals(False)
        self.refresh()

    def _on_result_chosen(self, index: int) -> None:
        if index >= 0:
            self.state.select_result(self.results.itemData(index))

    def _remove_current(self) -> None:
        if self.state.current_result is not None:
            self.state.remove_result(self.state.current_result)

    # ------------------------------------------------------------------ modes
    def set_mode(self, mode: str) -> None:
        """Switch between side by side, swipe and difference, keeping the zoom."""
        if mode not in MODES:
            raise ValueError(f"unknown compare mode {mode!r}")
        old = self._active_canvas()
        self.mode = mode
        self.mode_buttons[mode].setChecked(True)
        self.stack.setCurrentIndex(MODES.index(mode))
        self.diff_legend.setVisible(mode == "Difference")
        self.spread_legend.setVisible(mode == "Spread")
        self.trust_legend.setVisible(mode == "Trust")
        new = self._active_canvas()
        if old is not new and old.data is not None:
            new.vb.setRange(QtCore.QRectF(*_range_rect(old.vb)), padding=0)

    def _active_canvas(self) -> ImageCanvas:
        return {"Side by side": self.right, "Swipe": self.swipe, "Difference": self.diff,
                "Spread": self.spread, "Trust": self.trust}[self.mode]

    # ------------------------------------------------------------------ content
    def current(self) -> Result | None:
        return self.state.result()

    def refresh(self, *args: object) -> None:
        """Show the current result on the current plane (or the empty hint)."""
        result = self.current()
        has = result is not None and self.state.image is not None
        self.stack.setVisible(has)
        self.table.setVisible(has)
        self.empty.setVisible(not has)
        self.remove_btn.setEnabled(has)
        for b in self.mode_buttons.values():
            b.setEnabled(has)
        idx = self.results.findData(self.state.current_result)
        if idx != self.results.currentIndex():
            self.results.blockSignals(True)
            self.results.setCurrentIndex(idx)
            self.results.blockSignals(False)
        if not has:
            for c in (self.left, self.right, self.swipe, self.diff, self.spread, self.trust):
                c.set_data(None)
            self.trust_overlay.clear()
            self.swipe_top.clear()
            self.table.setRowCount(0)
            self._draw_outlines(None)
            return
        before = self.state.current_plane()
        after = self.state.current_plane(result.image.data)
        first = self.right.data is None
        levels = self.right.levels() if not first else None
        for c, data in ((self.left, before), (self.right, after), (self.swipe, before)):
            c.set_data(data, levels=levels)
        pix = self.state.image.pixel_size
        for c in (self.left, self.right, self.swipe, self.diff, self.spread, self.trust):
            c.set_pixel_size(pix[1] if pix else None)
        self._sync_levels(self.right.levels())
        self.swipe_top.setImage(after, autoLevels=False, levels=self.right.levels())
        if first:
            self.swipe_line.setValue(before.shape[1] / 2)
        self._update_swipe()
        self._show_difference(before, after)
        self._show_spread(result)
        self._show_trust(result, after, levels=self.right.levels())
        self._fill_table(result)
        self._draw_outlines(result)

    def samples_of(self, result: Result) -> list[Result]:
        """The results that differ from `result` only by their seed (itself included)."""
        if result.seed is None:
            return [result]
        return [r for r in self.state.results if r.seed is not None and r.same_run_as(result)]

    def _show_spread(self, result: Result) -> None:
        samples = self.samples_of(result)
        button = self.mode_buttons["Spread"]
        button.setEnabled(len(samples) >= 2)
        button.setText(f"Spread ({len(samples)} samples)" if len(samples) >= 2 else "Spread")
        button.setToolTip("Where samples with other seeds disagree (diffusion models; use "
                          "\u201cSample again\u201d)")
        if len(samples) < 2:
            self.spread.set_data(None)
            if self.mode == "Spread":
                self.set_mode("Side by side")
            return
        spread = sample_spread([self.state.current_plane(r.image.data) for r in samples])
        top = float(np.percentile(spread, 99.8)) or 1.0
        self.spread.set_data(spread, levels=(0.0, top))

    def _show_trust(self, result: Result, after: np.ndarray, levels: tuple[float, float]) -> None:
        """The restored plane with the trust check's disagreement on top (when it was checked
        on the plane shown)."""
        button = self.mode_buttons["Trust"]
        shown = result.trust_map is not None and result.trust_map.shape == after.shape[:2]
        button.setEnabled(shown)
        button.setToolTip("Where the result is not explained by the blurred input (the trust "
                          "check)" if shown else "The trust check ran on another plane, or "
                          "there were no regions to check")
        if not shown:
            self.trust.set_data(None)
            self.trust_overlay.clear()
            if self.mode == "Trust":
                self.set_mode("Side by side")
            return
        self.trust.set_data(after, levels=levels)
        rgba = np.zeros(after.shape[:2] + (4,), np.uint8)
        rgba[result.trust_map] = DISAGREE_RGBA
        self.trust_overlay.setImage(rgba, autoLevels=False, levels=(0, 255))

    def _draw_outlines(self, result: Result | None) -> None:
        """Dashed outlines of the regions the result was computed for, on every view."""
        for vb, item in self._outlines:
            vb.removeItem(item)
        self._outlines = []
        if result is None or result.rois is None or not self.show_outlines:
            return
        for canvas in (self.left, self.right, self.swipe, self.diff, self.spread, self.trust):
            for shape in result.rois.rois:
                item = outline_item(shape)
                canvas.vb.addItem(item, ignoreBounds=True)
                self._outlines.append((canvas.vb, item))

    def set_outlines_visible(self, visible: bool) -> None:
        self.show_outlines = visible
        self._draw_outlines(self.current() if visible else None)

    def _show_difference(self, before: np.ndarray, after: np.ndarray) -> None:
        d = after.astype(np.float32) - before.astype(np.float32)
        if d.ndim == 3:
            d = d.mean(axis=-1)
        step = max(1, int(np.sqrt(d.size / 1_000_000)))
        sub = np.abs(d[::step, ::step])
        span = float(np.percentile(sub, 99.8)) if sub.size else 1.0
        span = span if span > 0 else 1.0
        self.diff.set_data(d, levels=(-span, span))
        self.diff.hist.gradient.setColorMap(DIFFERENCE_CMAP)

    def _fill_table(self, result: Result) -> None:
        self.table.setRowCount(len(result.checks))
        for row, cells in enumerate(result.checks):
            for col, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                item.setToolTip(text)
                if col == 2 and not text.startswith("consistent"):
                    item.setForeground(QtGui.QColor("#b35900"))     # a verdict to look at
                self.table.setItem(row, col, item)
        note = f" ({result.scope})" if result.scope else ""
        self.table.setHorizontalHeaderLabels([f"Region{note}", "Blur (measured)", "Trust check"])

    # ------------------------------------------------------------------ linked levels
    def set_levels(self, lo: float, hi: float) -> None:
        self.right.set_levels(lo, hi)
        self._sync_levels((lo, hi))

    def set_colormap(self, name: str) -> None:
        self.right.set_colormap(name)
        self.swipe.set_colormap(name)
        self.left.image_item.setColorMap(colormap(name))
        self.swipe_top.setColorMap(colormap(name))

    def _sync_levels(self, levels: tuple[float, float]) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            self.left.image_item.setLevels(levels)
            self.swipe.set_levels(*levels)
            self.swipe_top.setLevels(levels)
        finally:
            self._syncing = False

    def _levels_from_right(self, *args: object) -> None:
        self._sync_levels(self.right.levels())

    def _levels_from_swipe(self, *args: object) -> None:
        if self._syncing:
            return
        lv = self.swipe.levels()
        self.swipe_top.setLevels(lv)
        self._syncing = True
        try:
            self.right.set_levels(*lv)
            self.left.image_item.setLevels(lv)
        finally:
            self._syncing = False

    def _lut_from_right(self, *args: object) -> None:
        cmap = self.right.hist.gradient.colorMap()
        self.left.image_item.setColorMap(cmap)
        if not self._syncing:
            self._syncing = True
            try:
                self.swipe.hist.gradient.setColorMap(cmap)
            finally:
                self._syncing = False
        self.swipe_top.setColorMap(cmap)

    def _lut_from_swipe(self, *args: object) -> None:
        cmap = self.swipe.hist.gradient.colorMap()
        self.swipe_top.setColorMap(cmap)
        if not self._syncing:
            self._syncing = True
            try:
                self.right.hist.gradient.setColorMap(cmap)
                self.left.image_item.setColorMap(cmap)
            finally:
                self._syncing = False

    def _update_swipe(self, *args: object) -> None:
        result = self.current()
        if result is None or self.state.image is None:
            return
        after = self.state.current_plane(result.image.data)
        w = after.shape[1]
        x = int(np.clip(round(self.swipe_line.value()), 0, w))
        if x >= w:
            self.swipe_top.setVisible(False)
            return
        self.swipe_top.setVisible(True)
        self.swipe_top.setImage(after[:, x:], autoLevels=False, levels=self.swipe.levels())
        self.swipe_top.setRect(QtCore.QRectF(x, 0, w - x, after.shape[0]))

    # ------------------------------------------------------------------ export
    def export_png(self, path: str | Path) -> Path:
        """Save the side-by-side view as shown (same zoom and levels) as a PNG."""
        path = Path(path)
        if path.suffix.lower() != ".png":
            path = path.with_suffix(".png")
        previous = self.mode
        if previous != MODES[0]:
            self.set_mode(MODES[0])
            QtWidgets.QApplication.processEvents()
        try:
            pix = self.side.grab()
            if pix.isNull() or not pix.save(str(path), "PNG"):
                raise OSError(f"could not write {path}")
        finally:
            if previous != MODES[0]:
                self.set_mode(previous)
        return path


def _range_rect(vb: pg.ViewBox) -> tuple[float, float, float, float]:
    (x0, x1), (y0, y1) = vb.viewRange()
    return x0, y0, x1 - x0, y1 - y0
