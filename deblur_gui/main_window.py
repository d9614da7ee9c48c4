"""The main window: menus, toolbar, the image and compare tabs, the side panels, the status bar.

It wires the widgets to the :class:`~deblur_gui.state.AppState`; file and region I/O live in
``deblur_gui.file_io`` (a mixin of the window), runs in ``deblur_gui.run_controller``. Every action a menu shows works; every failure becomes a short message
(details on demand) and the window stays usable.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from deblur_gui.adapt_job import AdaptBox
from deblur_gui.compare import CompareView
from deblur_gui.dialogs import DetectDialog, show_error
from deblur_gui.file_io import IMAGE_FILTER, FileIO
from deblur_gui.model_panel import ModelPanel
from deblur_gui.plane_bar import PlaneBar
from deblur_gui.roi_layer import RoiLayer, roi_bounds
from deblur_gui.roi_panel import RoiPanel
from deblur_gui.roi_tools import DrawingViewBox, Tool
from deblur_gui.run_controller import RunController
from deblur_gui.settings import Settings
from deblur_gui.state import AppState, Result
from deblur_gui.viewer import COLORMAPS, ImageCanvas, format_value
from deblur_gui.wheel_guard import install_wheel_guard
from deblur_gui.window_actions import WindowActions
from deblur_gui.worker import RestoreJob

__all__ = ["MainWindow", "IMAGE_FILTER"]

log = logging.getLogger("deblur.gui")



class _LogBridge(QtCore.QObject):
    """Carries log records from any thread to the log panel on the GUI thread."""

    message = QtCore.Signal(str)


class _PanelLogHandler(logging.Handler):
    def __init__(self, bridge: _LogBridge) -> None:
        super().__init__(logging.INFO)
        self.bridge = bridge
        self.setFormatter(logging.Formatter("%(asctime)s  %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.bridge.message.emit(self.format(record))
        except RuntimeError:  # the panel is gone (window closed)
            pass


class MainWindow(FileIO, WindowActions, QtWidgets.QMainWindow):
    """deblur's window. Public methods are what menus, scripted starts and tests call.

    Signals: run_finished(outcome) with outcome "done", "failed" or "cancelled" (after
    learning from the image: "adapted" or "declined").
    """

    run_finished = QtCore.Signal(str)

    def __init__(self, settings: Settings | None = None, *, confirm_close: bool = True) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.confirm_close = confirm_close
        self.state = AppState()
        self.state.feather = self.settings.feather()
        self.last_error: QtWidgets.QMessageBox | None = None
        self.last_error_text = ""
        self.saved_results: set[int] = set()
        self.sidecar_rois: Path | None = None   # regions file loaded with the image, if any
        self._channel_levels: dict[Any, tuple[float, float]] = {}
        self._detect: DetectDialog | None = None

        self.setWindowTitle("deblur")
        self.setAcceptDrops(True)
        install_wheel_guard(QtWidgets.QApplication.instance())
        self.setDockOptions(QtWidgets.QMainWindow.DockOption.AnimatedDocks)
        # the side panels run the full height; the log sits under the image only
        self.setCorner(QtCore.Qt.Corner.BottomRightCorner, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)

        self._build_views()
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_docks()
        self.resizeDocks([self.regions_dock], [380], QtCore.Qt.Orientation.Horizontal)
        self._build_statusbar()
        self._connect_state()
        self._restore_window()
        self._update_enabled()
        log.info("deblur ready. Open an image with File > Open, drag one onto the window, "
                 "or try Help > Open sample.")

    # ================================================================== construction
    def _build_views(self) -> None:
        self.view_box = DrawingViewBox()
        self.viewer = ImageCanvas(viewbox=self.view_box, histogram=True)
        self.viewer.setAcceptDrops(False)
        self.roi_layer = RoiLayer(self.state, self.view_box, self)
        self.plane_bar = PlaneBar(self.state)
        self.hint = QtWidgets.QLabel(
            "<div style='font-size:15pt; color:#bdc1c6'>Open a microscopy image to start</div>"
            "<div style='color:#9aa0a6; margin-top:8px'>File \u203a Open (Ctrl+O), drag a TIFF onto "
            "this window, or Help \u203a Open sample</div>")
        self.hint.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        image_page = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(image_page)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.plane_bar)
        self.image_stack = QtWidgets.QStackedWidget()
        self.image_stack.addWidget(self.hint)
        self.image_stack.addWidget(self.viewer)
        lay.addWidget(self.image_stack, 1)

        self.compare = CompareView(self.state)
        self.compare.setAcceptDrops(False)
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(image_page, "Image")
        self.tabs.addTab(self.compare, "Compare")
        self.setCentralWidget(self.tabs)

    def _build_docks(self) -> None:
        self.roi_panel = RoiPanel(self.state, self.tool_actions,
                                  [self.act_detect, self.act_load_rois, self.act_save_rois])
        self.roi_panel.center_requested.connect(self.center_on_roi)
        dock = QtWidgets.QDockWidget("Blurred regions", self)
        dock.setObjectName("regions_dock")
        dock.setWidget(self.roi_panel)
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.regions_dock = dock

        self.model_panel = ModelPanel(self.state, self.settings)
        self.model_panel.run_requested.connect(self.start_run)
        self.model_panel.weights_requested.connect(self.weights_dialog)
        self.adapt_box = AdaptBox(self.state)
        self.model_panel.footer.layout().insertWidget(1, self.adapt_box)   # just above Restore
        self.adapt_box.save_requested.connect(self.save_adapted_dialog)
        scroll = self.model_scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        scroll.setWidget(self.model_panel)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        holder = QtWidgets.QWidget()
        column = QtWidgets.QVBoxLayout(holder)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(scroll, 1)
        column.addWidget(self.model_panel.footer)      # Restore stays in view, whatever scrolls
        dock = QtWidgets.QDockWidget("Model", self)
        dock.setObjectName("model_dock")
        dock.setWidget(holder)
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.model_dock = dock
        for d in (self.regions_dock, self.model_dock):
            d.setMinimumWidth(360)
        self.resizeDocks([self.regions_dock, self.model_dock], [300, 560], QtCore.Qt.Orientation.Vertical)

        self.log_view = QtWidgets.QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(2000)
        self.log_view.setStyleSheet("font-family: monospace; font-size: 9pt;")
        dock = QtWidgets.QDockWidget("Log", self)
        dock.setObjectName("log_dock")
        dock.setWidget(self.log_view)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        self.resizeDocks([dock], [110], QtCore.Qt.Orientation.Vertical)
        self.log_dock = dock
        self.view_menu.addSeparator()
        self.view_menu.addAction(self.log_dock.toggleViewAction())
        self._log_bridge = _LogBridge(self)
        self._log_bridge.message.connect(self.log_view.appendPlainText)
        self._log_handler = _PanelLogHandler(self._log_bridge)
        for name in ("deblur", "core"):
            lg = logging.getLogger(name)
            lg.addHandler(self._log_handler)
            if lg.level == logging.NOTSET or lg.level > logging.INFO:
                lg.setLevel(logging.INFO)

    def _build_statusbar(self) -> None:
        sb = self.statusBar()
        self.readout = QtWidgets.QLabel("")
        self.readout.setMinimumWidth(320)
        sb.addWidget(self.readout, 1)
        self.runner = RunController(self.state, self.settings, self.model_panel,
                                    lambda text, ms: self.statusBar().showMessage(text, ms),
                                    self.error, self)
        self.runner.result_ready.connect(self._show_result)
        self.runner.finished.connect(self.run_finished)
        self.adapt_box.adapt_requested.connect(self.runner.start_adapt)
        self.runner.adapt_declined.connect(self.adapt_box.show_declined)
        self.progress = self.runner.progress
        for w in self.runner.widgets():
            sb.addPermanentWidget(w)
        self.device_label = QtWidgets.QLabel("")
        self.device_label.setStyleSheet("color: #9aa0a6; padding: 0 6px;")
        sb.addPermanentWidget(self.device_label)
        self._update_device_indicator()

    def _connect_state(self) -> None:
        s = self.state
        s.image_changed.connect(self._on_image_changed)
        s.plane_changed.connect(self._on_plane_changed)
        s.rois_changed.connect(self._update_enabled)
        s.selection_changed.connect(lambda rid: self._update_enabled())
        s.results_changed.connect(self._update_enabled)
        s.current_result_changed.connect(lambda rid: self._update_enabled())
        s.busy_changed.connect(lambda busy: self._update_enabled())
        s.undo_changed.connect(self._update_enabled)
        s.feather_changed.connect(self.settings.set_feather)
        s.model_changed.connect(self._update_device_indicator)
        self.viewer.hovered.connect(self._show_readout)
        self.compare.hovered.connect(self._show_readout)
        self.model_panel.device.currentIndexChanged.connect(lambda i: self._update_device_indicator())
        self.viewer.hist.gradient.sigGradientChanged.connect(self._sync_compare_cmap)

    def _restore_window(self) -> None:
        geometry = self.settings.geometry()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1500, 920)
        state = self.settings.window_state()
        if state is not None:
            self.restoreState(state)
        name = self.settings.colormap()
        self.set_colormap(name if name in COLORMAPS else "Grey")

    # ================================================================== enabling
    def _update_enabled(self, *args: object) -> None:
        has_image = self.state.image is not None
        busy = self.state.busy
        has_result = self.state.result() is not None
        for a in (self.act_load_rois, self.act_detect, self.act_fit, self.act_auto, self.act_zoom_in,
                  self.act_zoom_out):
            a.setEnabled(has_image)
        self.act_save_rois.setEnabled(has_image and bool(self.state.rois))
        self.act_clear.setEnabled(bool(self.state.rois))
        self.act_undo.setEnabled(self.state.can_undo())
        self.act_redo.setEnabled(self.state.can_redo())
        self.act_delete.setEnabled(self.state.selected_roi is not None)
        ok, why = self.model_panel.can_run()
        self.act_run.setEnabled(ok)
        self.act_run.setText("&Restore selected regions" if self.state.rois or not has_image
                             else "&Restore whole image")
        self.act_run.setIconText("Restore")
        self.act_cancel.setEnabled(busy)
        self.act_save.setEnabled(has_result)
        self.act_export.setEnabled(has_result)
        for a in self.tool_actions.values():
            a.setEnabled(has_image)
        self.image_stack.setCurrentIndex(1 if has_image else 0)

    # ================================================================== image



    def _on_image_changed(self) -> None:
        image = self.state.image
        if image is None:
            self.setWindowTitle("deblur")
            return
        plane = self.state.current_plane()
        self.viewer.set_data(plane, reset_view=True)
        self._channel_levels[self._channel_key()] = self.viewer.levels()
        self.viewer.set_pixel_size(image.pixel_size[1] if image.pixel_size else None)
        rgb = "S" in image.axes
        self.cmap_combo.setEnabled(not rgb)
        h, w = self.state.image_size
        name = image.path.name if image.path else "untitled"
        dims = f"{w} \u00d7 {h}"
        extra = ", ".join(f"{n} {a}" for a, n in self.state.plane_axes())
        self.setWindowTitle(f"{name} ({dims}{', ' + extra if extra else ''}, {image.data.dtype}) \u2014 deblur")
        self.set_tool(Tool.PAN)
        self._update_enabled()

    def _channel_key(self) -> Any:
        return "merged" if self.state.merge_channels else self.state.plane.get("C", 0)

    def _on_plane_changed(self) -> None:
        key = self._channel_key()
        old_key = getattr(self, "_shown_channel", key)
        self._channel_levels[old_key] = self.viewer.levels()
        plane = self.state.current_plane()
        levels = self._channel_levels.get(key) if key != old_key else self.viewer.levels()
        self.viewer.set_data(plane, levels=levels)
        self._channel_levels[key] = self.viewer.levels()
        self._shown_channel = key

    def auto_contrast(self) -> None:
        if self.state.image is None:
            return
        lo, hi = self.viewer.auto_contrast()
        self._channel_levels[self._channel_key()] = (lo, hi)
        if self.state.result() is not None:
            self.compare.set_levels(lo, hi)

    def set_colormap(self, name: str) -> None:
        if name not in COLORMAPS:
            return
        self.viewer.set_colormap(name)
        self.compare.set_colormap(name)
        self.settings.set_colormap(name)
        if self.cmap_combo.currentText() != name:
            self.cmap_combo.blockSignals(True)
            self.cmap_combo.setCurrentText(name)
            self.cmap_combo.blockSignals(False)
        self.cmap_actions[name].setChecked(True)

    def _sync_compare_cmap(self, *args: object) -> None:
        """A colour map edited in the histogram also applies in the compare view."""
        cmap = self.viewer.hist.gradient.colorMap()
        self.compare.right.hist.gradient.setColorMap(cmap)

    def fit_view(self) -> None:
        if self.tabs.currentIndex() == 1 and self.state.result() is not None:
            self.compare._active_canvas().fit()
        else:
            self.viewer.fit()

    def _zoom(self, factor: float) -> None:
        canvas = self.compare._active_canvas() if self.tabs.currentIndex() == 1 else self.viewer
        canvas.zoom(factor)

    def _show_readout(self, info: object) -> None:
        if info is None or self.state.image is None:
            self.readout.setText("")
            return
        col, row, value = info  # type: ignore[misc]
        text = f"x {col}   y {row}   value {format_value(value)}"
        ps = self.state.image.pixel_size
        if ps:
            text += f"    ({col * ps[1]:.2f} \u00b5m, {row * ps[0]:.2f} \u00b5m)"
        desc = self.state.plane_description()
        if desc:
            text += f"    [{desc}]"
        self.readout.setText(text)

    # ================================================================== ROIs
    def set_tool(self, tool: str) -> None:
        self.view_box.set_tool(tool)
        self.roi_layer.set_editable(tool == Tool.PAN)
        a = self.tool_actions[tool]
        if not a.isChecked():
            a.setChecked(True)
        if tool != Tool.PAN:
            self.tabs.setCurrentIndex(0)
            self.statusBar().showMessage(Tool.TIPS[tool], 6000)

    def delete_selected_roi(self) -> None:
        if self.state.selected_roi is not None:
            self.state.remove_roi(self.state.selected_roi)

    def center_on_roi(self, rid: int) -> None:
        for e in self.state.rois:
            if e.id == rid:
                r = roi_bounds(e.shape)
                pad = max(r.width(), r.height()) * 0.6
                self.viewer.vb.setRange(r.adjusted(-pad, -pad, pad, pad), padding=0)
                self.tabs.setCurrentIndex(0)





    def detect_dialog(self) -> DetectDialog | None:
        if self.state.image is None:
            return None
        try:
            dlg = DetectDialog(self.state.current_plane(), self.viewer.vb, self._add_detected, self)
        except Exception as exc:  # noqa: BLE001
            import traceback

            self.error(f"Could not detect blurred regions: {exc}", traceback.format_exc())
            return None
        self.tabs.setCurrentIndex(0)
        dlg.show()
        self._detect = dlg
        return dlg

    def _add_detected(self, rois: Any, replace: bool) -> None:
        from core.roi import RoiSet

        if not isinstance(rois, RoiSet):
            rois = RoiSet(list(rois), self.state.feather)
        rois = RoiSet(list(rois.rois), self.state.feather)
        self.state.set_roi_set(rois, append=not replace)
        n = len(rois.rois)
        what = f"{n} detected region{'s' if n != 1 else ''}"
        log.info("Replaced the regions by %s" if replace else "Added %s", what)

    # ================================================================== model


    def select_model(self, name: str) -> bool:
        try:
            self.model_panel.select_model(name)
        except ValueError as exc:
            self.error(str(exc))
            return False
        return True

    def _update_device_indicator(self, *args: object) -> None:
        from core.devices import device_label, pick_device

        try:
            text = device_label(pick_device(self.state.device))
        except ValueError as exc:
            text = str(exc)
        self.device_label.setText(f"Compute: {text}")

    # ================================================================== run
    @property
    def job(self) -> RestoreJob | None:
        """The restoration running now, if any."""
        return self.runner.job

    def start_run(self) -> bool:
        """Start restoring on a worker thread; False (with a message) if it cannot start."""
        return self.runner.start()

    def cancel_run(self) -> None:
        self.runner.cancel()

    def _show_result(self, result: Result) -> None:
        """A run is done: show it in Compare, on the same area as the image tab."""
        self.statusBar().showMessage(f"Restored in {result.seconds:.1f} s. Compare the result, then "
                                     "File \u203a Save restored image.", 10000)
        self.tabs.setCurrentIndex(1)
        self.compare.set_levels(*self.viewer.levels())
        self._match_compare_zoom()

    def _match_compare_zoom(self) -> None:
        """Zoomed in on the image tab: show the same area; otherwise show the whole image."""
        h, w = self.state.image_size
        x0, y0, vw, vh = _view_rect(self.viewer)
        if vw >= 0.95 * w and vh >= 0.95 * h:
            self.compare.right.fit()
        else:
            self.compare.right.vb.setRange(QtCore.QRectF(x0, y0, vw, vh), padding=0)



    # ================================================================== errors, close
    def error(self, message: str, details: str = "") -> None:
        """Show a short message (details on demand) and note it in the log."""
        self.last_error_text = message
        log.warning(message)
        self.last_error = show_error(self, message, details)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802
        if self.runner.running:
            if self.confirm_close:
                answer = QtWidgets.QMessageBox.question(
                    self, "Restoration running", "A restoration is running. Stop it and quit?")
                if answer != QtWidgets.QMessageBox.StandardButton.Yes:
                    event.ignore()
                    return
            self.runner.stop_and_wait()
        elif not self._discard_unsaved_ok("quit"):
            event.ignore()
            return
        if self._detect is not None:
            self._detect.close()
        self.roi_panel.meter.shutdown()
        self.settings.set_window(self.saveGeometry(), self.saveState())
        self.settings.sync()
        for name in ("deblur", "core"):
            logging.getLogger(name).removeHandler(self._log_handler)
        event.accept()


def _view_rect(canvas: ImageCanvas) -> tuple[float, float, float, float]:
    (x0, x1), (y0, y1) = canvas.vb.viewRange()
    return x0, y0, x1 - x0, y1 - y0
