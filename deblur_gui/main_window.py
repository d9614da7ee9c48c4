"""The main window: menus, toolbar, the image and compare tabs, the side panels, the status bar.

It wires the widgets to the :class:`~deblur_gui.state.AppState` and runs the file, ROI and
restoration actions. Every action a menu shows works; every failure becomes a short message
(details on demand) and the window stays usable.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from core.io import same_file
from core.roi import ROI_SUFFIX, sidecar_path

from deblur_gui.compare import CompareView
from deblur_gui.dialogs import DetectDialog, choose_save_path, show_about, show_error
from deblur_gui.model_panel import ModelPanel
from deblur_gui.roi_tools import DrawingViewBox, RoiLayer, RoiPanel, Tool, roi_bounds, tool_icon
from deblur_gui.settings import Settings
from deblur_gui.state import AppState, describe_params, roi_label
from deblur_gui.viewer import COLORMAPS, ImageCanvas, format_value
from deblur_gui.worker import RestoreJob, RunOutput, RunRequest

__all__ = ["MainWindow", "IMAGE_FILTER"]

log = logging.getLogger("deblur.gui")

IMAGE_FILTER = "Images (*.tif *.tiff *.png *.jpg *.jpeg);;TIFF (*.tif *.tiff);;All files (*)"
ROI_FILTER = "Region files (*.roi.json *.json);;All files (*)"


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


class PlaneBar(QtWidgets.QWidget):
    """Plane and channel selectors: a slider per Z/T axis, a drop-down for channels."""

    def __init__(self, state: AppState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.layout_ = QtWidgets.QHBoxLayout(self)
        self.layout_.setContentsMargins(8, 2, 8, 2)
        self.controls: dict[str, QtWidgets.QWidget] = {}
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
        self.setVisible(bool(axes))
        self.sync()

    def sync(self) -> None:
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


class MainWindow(QtWidgets.QMainWindow):
    """deblur's window. Public methods are what menus, scripted starts and tests call.

    Signals: run_finished(outcome) with outcome "done", "failed" or "cancelled".
    """

    run_finished = QtCore.Signal(str)

    def __init__(self, settings: Settings | None = None, *, confirm_close: bool = True) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.confirm_close = confirm_close
        self.state = AppState()
        self.state.feather = self.settings.feather()
        self.job: RestoreJob | None = None
        self.last_error: QtWidgets.QMessageBox | None = None
        self.last_error_text = ""
        self.saved_results: set[int] = set()
        self.sidecar_rois: Path | None = None   # regions file loaded with the image, if any
        self._run_started = 0.0
        self._progress_started: float | None = None
        self._channel_levels: dict[Any, tuple[float, float]] = {}
        self._detect: DetectDialog | None = None

        self.setWindowTitle("deblur")
        self.setAcceptDrops(True)
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

    def _action(self, text: str, slot: Any = None, shortcut: Any = None, tip: str = "",
                icon: QtGui.QIcon | None = None, checkable: bool = False) -> QtGui.QAction:
        a = QtGui.QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QtGui.QKeySequence(shortcut))
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        if icon is not None:
            a.setIcon(icon)
        a.setCheckable(checkable)
        if slot is not None:
            a.triggered.connect(lambda checked=False, s=slot: s())
        return a

    def _build_actions(self) -> None:
        style = self.style()
        sp = QtWidgets.QStyle.StandardPixmap
        K = QtGui.QKeySequence.StandardKey
        self.act_open = self._action("&Open image\u2026", self.open_dialog, K.Open,
                                     "Open a microscopy image (TIFF, PNG, JPEG)", style.standardIcon(sp.SP_DialogOpenButton))
        self.act_save = self._action("&Save restored image\u2026", self.save_result_dialog, K.Save,
                                     "Save the restored image as a new file (the original is never changed)",
                                     style.standardIcon(sp.SP_DialogSaveButton))
        self.act_export = self._action("&Export comparison as PNG\u2026", self.export_dialog, "Ctrl+E",
                                       "Save the side-by-side comparison as a picture")
        self.act_load_rois = self._action("&Load regions\u2026", self.load_rois_dialog, "Ctrl+L",
                                          "Load marked regions from a region file (.roi.json)")
        self.act_save_rois = self._action("Save re&gions\u2026", self.save_rois_dialog, "Ctrl+Shift+S",
                                          "Save the marked regions to a region file (.roi.json)")
        self.act_quit = self._action("&Quit", self.close, K.Quit)

        self.act_delete = self._action("&Delete selected region", self.delete_selected_roi,
                                       QtGui.QKeySequence.StandardKey.Delete, "Remove the selected region")
        self.act_clear = self._action("&Clear all regions", self.state.clear_rois, None, "Remove every region")
        self.act_detect = self._action("Detect &blurred regions\u2026", self.detect_dialog, "Ctrl+D",
                                       "Find out-of-focus areas automatically and turn them into regions")

        self.tool_group = QtGui.QActionGroup(self)
        self.tool_actions: dict[str, QtGui.QAction] = {}
        keys = {Tool.PAN: "V", Tool.RECT: "R", Tool.ELLIPSE: "E", Tool.POLYGON: "P", Tool.FREEHAND: "F"}
        for tool in Tool.ALL:
            a = self._action(Tool.LABELS[tool], lambda t=tool: self.set_tool(t), keys[tool],
                             f"{Tool.LABELS[tool]} ({keys[tool]}): {Tool.TIPS[tool]}", tool_icon(tool), True)
            self.tool_group.addAction(a)
            self.tool_actions[tool] = a
        self.tool_actions[Tool.PAN].setChecked(True)
        self.act_escape = self._action("Stop drawing", lambda: self.set_tool(Tool.PAN), "Esc")

        self.act_fit = self._action("&Fit image to window", self.fit_view, "Ctrl+0", "Show the whole image")
        self.act_zoom_in = self._action("Zoom &in", lambda: self._zoom(1.25), K.ZoomIn)
        self.act_zoom_out = self._action("Zoom &out", lambda: self._zoom(0.8), K.ZoomOut)
        self.act_auto = self._action("&Auto contrast", self.auto_contrast, "Ctrl+Shift+A",
                                     "Stretch the contrast to the 0.35-99.65 percentiles of the shown plane")
        self.act_show_rois = self._action("Show &regions", None, "Ctrl+H", "Show or hide the region outlines",
                                          checkable=True)
        self.act_show_rois.setChecked(True)
        self.act_show_rois.toggled.connect(self.roi_layer.set_visible)
        self.act_show_rois.toggled.connect(self.compare.set_outlines_visible)
        self.act_tab_image = self._action("&Image", lambda: self.tabs.setCurrentIndex(0), "Ctrl+1")
        self.act_tab_compare = self._action("&Compare", lambda: self.tabs.setCurrentIndex(1), "Ctrl+2")
        self.cmap_group = QtGui.QActionGroup(self)
        self.cmap_actions: dict[str, QtGui.QAction] = {}
        for name in COLORMAPS:
            a = self._action(name, lambda n=name: self.set_colormap(n), checkable=True)
            self.cmap_group.addAction(a)
            self.cmap_actions[name] = a

        self.act_run = self._action("&Restore selected regions", self.start_run, "Ctrl+R",
                                    "Run the chosen model on the marked regions",
                                    style.standardIcon(sp.SP_MediaPlay))
        self.act_cancel = self._action("&Cancel restoration", self.cancel_run, "Ctrl+.",
                                       "Stop the running restoration; nothing is changed",
                                       style.standardIcon(sp.SP_MediaStop))
        self.act_weights = self._action("Load &weights\u2026", self.weights_dialog, None,
                                        "Use a model trained with deblur-train (.safetensors)")

        self.act_about = self._action("&About deblur", lambda: show_about(self))
        for a in self.findChildren(QtGui.QAction):
            self.addAction(a)  # shortcuts work even when a panel has focus

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.act_open)
        self.recent_menu = m.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self._fill_recent()
        self.sample_menu_file = m.addMenu("Open &sample")
        m.addSeparator()
        m.addAction(self.act_save)
        m.addAction(self.act_export)
        m.addSeparator()
        m.addAction(self.act_load_rois)
        m.addAction(self.act_save_rois)
        m.addSeparator()
        m.addAction(self.act_quit)

        m = mb.addMenu("&Regions")
        for tool in Tool.ALL:
            m.addAction(self.tool_actions[tool])
        m.addSeparator()
        m.addAction(self.act_detect)
        m.addAction(self.act_delete)
        m.addAction(self.act_clear)
        m.addSeparator()
        m.addAction(self.act_load_rois)
        m.addAction(self.act_save_rois)

        m = mb.addMenu("&View")
        m.addAction(self.act_tab_image)
        m.addAction(self.act_tab_compare)
        m.addSeparator()
        m.addAction(self.act_fit)
        m.addAction(self.act_zoom_in)
        m.addAction(self.act_zoom_out)
        m.addAction(self.act_auto)
        cm = m.addMenu("Colour &map")
        for a in self.cmap_actions.values():
            cm.addAction(a)
        m.addAction(self.act_show_rois)
        self.view_menu = m

        m = mb.addMenu("R&un")
        m.addAction(self.act_run)
        m.addAction(self.act_cancel)
        m.addSeparator()
        m.addAction(self.act_weights)

        m = mb.addMenu("&Help")
        self.sample_menu = m.addMenu("Open &sample")
        for menu in (self.sample_menu, self.sample_menu_file):
            menu.aboutToShow.connect(lambda menu=menu: self._fill_samples(menu))
            self._fill_samples(menu)
        m.addSeparator()
        m.addAction(self.act_about)

    def _build_toolbar(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("main_toolbar")
        tb.setMovable(False)
        tb.setIconSize(QtCore.QSize(22, 22))
        tb.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.addAction(self.act_open)
        tb.addAction(self.act_save)
        tb.addSeparator()
        for tool in Tool.ALL:
            tb.addAction(self.tool_actions[tool])
        tb.addSeparator()
        tb.addAction(self.act_detect)
        tb.addSeparator()
        tb.addAction(self.act_run)
        tb.addAction(self.act_cancel)
        tb.addSeparator()
        tb.addAction(self.act_fit)
        tb.addAction(self.act_auto)
        self.cmap_combo = QtWidgets.QComboBox()
        self.cmap_combo.addItems(list(COLORMAPS))
        self.cmap_combo.setToolTip("Colour map")
        self.cmap_combo.currentTextChanged.connect(self.set_colormap)
        tb.addWidget(self.cmap_combo)
        # short labels on the toolbar, full words in the menus
        for action, short in ((self.act_open, "Open"), (self.act_save, "Save"), (self.act_run, "Restore"),
                              (self.act_cancel, "Cancel"), (self.act_fit, "Fit"), (self.act_auto, "Auto contrast"),
                              (self.act_detect, "Detect blurred")):
            action.setIconText(short)
        for tool in Tool.ALL:
            self.tool_actions[tool].setIconText("" if tool != Tool.PAN else "Move")
        tb.widgetForAction(self.tool_actions[Tool.PAN])
        for tool in Tool.ALL:
            w = tb.widgetForAction(self.tool_actions[tool])
            if w is not None and tool != Tool.PAN:
                w.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.toolbar = tb

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
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        scroll.setWidget(self.model_panel)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        dock = QtWidgets.QDockWidget("Model", self)
        dock.setObjectName("model_dock")
        dock.setWidget(scroll)
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
        self.progress = QtWidgets.QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.eta = QtWidgets.QLabel("")
        self.cancel_btn = QtWidgets.QPushButton("Cancel")
        self.cancel_btn.clicked.connect(self.cancel_run)
        for w in (self.progress, self.eta, self.cancel_btn):
            sb.addPermanentWidget(w)
            w.setVisible(False)
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
    def open_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open image", self.settings.last_folder(),
                                                        IMAGE_FILTER)
        if path:
            self.open_file(path)

    def open_file(self, path: str | Path) -> bool:
        """Open an image; on failure show why and keep the current image. Returns success."""
        from core.io import ImageError, read_image

        path = Path(path)
        if self.state.busy:
            self.error(f"Cannot open {path.name} while a restoration is running. Cancel it first.")
            return False
        if not self._discard_unsaved_ok("open another image"):
            return False
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)
        try:
            image = read_image(path)
        except ImageError as exc:
            self.error(str(exc))
            if not path.exists():  # a recent file that was moved or deleted leaves the list
                self.settings.remove_recent_file(path.resolve())
            return False
        except Exception as exc:  # noqa: BLE001 - a damaged file must never crash the app
            import traceback

            self.error(f"Cannot open '{path.name}': the file could not be read", traceback.format_exc())
            return False
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        self._channel_levels.clear()
        self.saved_results.clear()
        self.state.set_image(image)
        self.settings.add_recent_file(path)
        self.settings.set_last_folder(path.parent)
        h, w = self.state.image_size
        px = f", {image.pixel_size[1]:.3g} \u00b5m/px" if image.pixel_size else ""
        log.info("Opened %s: %s, %s%s", path.name, " x ".join(str(n) for n in image.data.shape),
                 image.data.dtype, px)
        sidecar = self._sidecar_rois(path)
        self.sidecar_rois = sidecar
        if sidecar is not None:
            self.load_rois(sidecar)
        self.tabs.setCurrentIndex(0)
        return True

    def _sidecar_rois(self, path: Path) -> Path | None:
        """The region file beside an image (`core.roi.sidecar_path`), if there is one."""
        cand = sidecar_path(path)
        return cand if cand.is_file() else None

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
        return self.state.plane.get("C", 0)

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

    def load_rois_dialog(self) -> None:
        start = self.settings.last_folder()
        if self.state.image is not None and self.state.image.path is not None:
            start = str(self.state.image.path.parent)
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Load regions", start, ROI_FILTER)
        if path:
            self.load_rois(path)

    def load_rois(self, path: str | Path) -> bool:
        """Replace the regions with those in a ROI file (DESIGN §2). Returns success."""
        from core.roi import load_rois

        path = Path(path)
        if self.state.image is None:
            self.error("Open an image before loading regions.")
            return False
        try:
            rois = load_rois(path)
        except ValueError as exc:
            self.error(f"Could not load the regions: {exc}")
            return False
        h, w = self.state.image_size
        outside = [r for r in rois.rois if _outside(r, w, h)]
        self.state.set_roi_set(rois)
        msg = f"Loaded {len(rois.rois)} region{'s' if len(rois.rois) != 1 else ''} from {path.name}"
        if outside:
            msg += f" ({len(outside)} lie outside the image and will have no effect)"
        log.info(msg)
        self.statusBar().showMessage(msg, 6000)
        return True

    def save_rois_dialog(self) -> None:
        if self.state.image is None or not self.state.rois:
            return
        img = self.state.image.path
        suggested = (sidecar_path(img) if img is not None
                     else Path(self.settings.last_folder()) / f"regions{ROI_SUFFIX}")
        path = choose_save_path(self, "Save regions", suggested, ROI_FILTER, ".json", original=img)
        if path is not None:
            self.save_rois(path)

    def save_rois(self, path: str | Path) -> bool:
        from core.roi import save_rois

        path = Path(path)
        img = self.state.image.path if self.state.image is not None else None
        if same_file(path, img):
            self.error("That is the original image: regions are saved in a separate .roi.json file.")
            return False
        try:
            save_rois(path, self.state.roi_set())
        except (OSError, ValueError) as exc:
            self.error(f"Could not save the regions to {path.name}: {exc}")
            return False
        log.info("Saved %d regions to %s", len(self.state.rois), path)
        self.statusBar().showMessage(f"Regions saved to {path.name}", 6000)
        return True

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
        log.info("Added %d detected regions", len(rois.rois))

    # ================================================================== model
    def weights_dialog(self) -> None:
        from resources import WEIGHTS

        start = str(WEIGHTS) if WEIGHTS.is_dir() else self.settings.last_folder()
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Load weights", start,
                                                        "Model weights (*.safetensors);;All files (*)")
        if path:
            self.load_weights(path)

    def load_weights(self, path: str | Path) -> bool:
        path = Path(path)
        if path.suffix.lower() != ".safetensors":
            self.error(f"{path.name} is not a weights file: deblur loads .safetensors files made by "
                       "deblur-train (never pickled .pt/.pth files, which could run code).")
            return False
        if not path.is_file():
            self.error(f"Weights file not found: {path}")
            return False
        try:
            self.model_panel.use_weights(path)
        except ValueError as exc:
            self.error(f"Could not use {path.name}: {exc}")
            return False
        log.info("Using weights %s for %s", path.name, self.state.model_name)
        return True

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
    def start_run(self) -> bool:
        """Start restoring on a worker thread; False (with a message) if it cannot start."""
        ok, why = self.model_panel.can_run()
        if not ok:
            if self.state.image is not None and not self.state.busy:
                self.error(why)
            return False
        image = self.state.image
        stack = bool(self.state.plane_axes())
        only_plane = stack and not self.state.all_planes
        rois = self.state.roi_set() if self.state.rois else None
        req = RunRequest(
            image=image, model=self.state.model_name, params=dict(self.state.model_params),
            rois=rois, device=self.state.device, weights=self.state.weights,
            tile=self.state.tile, overlap=self.state.overlap,
            plane_index=self.state.plane_index() if only_plane else None,
            plane_axes=self.state.plane_axes_string(),
            plane_description=self.state.plane_description() if only_plane else "",
            shown_index=self.state.plane_index(),
            roi_labels=[f"{i}. {roi_label(e.shape)}" for i, e in enumerate(self.state.rois, 1)],
        )
        job = RestoreJob(req, self)
        job.progress.connect(self._on_progress)
        job.status.connect(lambda s: self.statusBar().showMessage(s))
        job.finished_ok.connect(self._on_run_done)
        job.failed.connect(self._on_run_failed)
        job.cancelled.connect(self._on_run_cancelled)
        self.job = job
        self._run_started = time.perf_counter()
        self._progress_started = None
        self.state.set_busy(True)
        self.progress.setRange(0, 0)
        self.progress.setFormat("Starting\u2026")
        self.eta.setText("")
        for w in (self.progress, self.eta, self.cancel_btn):
            w.setVisible(True)
        what = f"{len(rois.rois)} region(s)" if rois else "the whole image"
        where = req.plane_description or ("all planes" if stack else "")
        params = describe_params(req.model, req.params)
        log.info("Restoring %s%s with %s (%s) on %s", what, f" [{where}]" if where else "", req.model,
                 params or "defaults", self.state.device)
        job.start()
        return True

    def cancel_run(self) -> None:
        if self.job is not None and self.job.isRunning():
            self.job.cancel()
            self.progress.setFormat("Cancelling\u2026")
            self.cancel_btn.setEnabled(False)
            log.info("Cancelling\u2026")

    def _on_progress(self, done: int, total: int) -> None:
        if total <= 0:
            return
        now = time.perf_counter()
        if self._progress_started is None:
            self._progress_started = now
            self._progress_first_done = done
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat(f"%p %  ({done}/{total} tiles)")
        elapsed = now - self._progress_started
        did = done - self._progress_first_done
        if did > 0 and done < total:
            remaining = elapsed / did * (total - done)
            self.eta.setText(f"about {_fmt_eta(remaining)} left")
        elif done >= total:
            self.eta.setText("finishing\u2026")

    def _finish_run(self) -> None:
        self.state.set_busy(False)
        for w in (self.progress, self.eta, self.cancel_btn):
            w.setVisible(False)
        self.cancel_btn.setEnabled(True)
        if self.job is not None:
            self.job.wait(5000)
            self.job.deleteLater()
        self.job = None

    def _on_run_done(self, out: RunOutput) -> None:
        req = self.job.request if self.job is not None else None
        self._finish_run()
        if req is None or self.state.image is not req.image:
            return  # the image changed meanwhile (cannot happen through the UI, but be safe)
        scope = req.plane_description or ("all planes" if self.state.plane_axes() else "")
        result = self.state.add_result(model=req.model, params=req.params, device=out.device_label,
                                       image=out.image, seconds=out.seconds, scope=scope,
                                       rois=req.rois, weights=req.weights, sharpness=out.sharpness)
        if out.megapixels > 0 and out.seconds > 0:
            self.settings.set_speed(req.model, self.model_panel.resolved_device(),
                                    out.megapixels / out.seconds, req.params)
            self.model_panel.refresh_run()
        log.info("Done in %.1f s on %s: %s", out.seconds, out.device_label, result.label)
        for label, before, after in out.sharpness:
            log.info("  sharpness %s: %.4g -> %.4g", label, before, after)
        self.statusBar().showMessage(f"Restored in {out.seconds:.1f} s. Compare the result, then "
                                     "File \u203a Save restored image.", 10000)
        self.tabs.setCurrentIndex(1)
        self.compare.set_levels(*self.viewer.levels())
        self._match_compare_zoom()
        self.run_finished.emit("done")

    def _match_compare_zoom(self) -> None:
        """Zoomed in on the image tab: show the same area; otherwise show the whole image."""
        h, w = self.state.image_size
        x0, y0, vw, vh = _view_rect(self.viewer)
        if vw >= 0.95 * w and vh >= 0.95 * h:
            self.compare.right.fit()
        else:
            self.compare.right.vb.setRange(QtCore.QRectF(x0, y0, vw, vh), padding=0)

    def _on_run_failed(self, message: str, details: str) -> None:
        self._finish_run()
        message = self.model_panel.plain_names(message)
        log.error("Restoration failed: %s", message)
        self.error(message, details)
        self.run_finished.emit("failed")

    def _on_run_cancelled(self) -> None:
        self._finish_run()
        log.info("Restoration cancelled; nothing was changed.")
        self.statusBar().showMessage("Cancelled: nothing was changed.", 6000)
        self.run_finished.emit("cancelled")

    # ================================================================== save
    def default_save_path(self) -> Path:
        """`<name>_deblurred.tif` beside the original."""
        img = self.state.image
        if img is None or img.path is None:
            return Path(self.settings.last_folder()) / "restored_deblurred.tif"
        return img.path.with_name(f"{img.path.stem}_deblurred.tif")

    def save_result_dialog(self) -> None:
        if self.state.result() is None:
            return
        original = self.state.image.path if self.state.image is not None else None
        path = choose_save_path(self, "Save restored image", self.default_save_path(),
                                "TIFF (*.tif *.tiff);;PNG (*.png)", ".tif", original=original)
        if path is not None:
            self.save_result(path, overwrite=True)

    def save_result(self, path: str | Path, *, overwrite: bool = False) -> Path | None:
        """Write the current result (same dtype, shape, metadata) via core.io; never the original."""
        from core.io import ImageError, write_image

        result = self.state.result()
        if result is None:
            self.error("There is no restored image to save yet.")
            return None
        path = Path(path)
        original = self.state.image.path if self.state.image is not None else None
        if same_file(path, original):
            self.error(f"Cannot save '{path.name}': it is the original image. deblur never "
                       "overwrites the original; choose another name.")
            return None
        try:
            written = write_image(path, result.image, overwrite=overwrite)
        except ImageError as exc:
            self.error(str(exc))
            return None
        except Exception as exc:  # noqa: BLE001
            import traceback

            self.error(f"Cannot save '{path.name}': {exc}", traceback.format_exc())
            return None
        self.saved_results.add(result.id)
        self.settings.set_last_folder(path.parent)
        log.info("Saved %s", written)
        self.statusBar().showMessage(f"Saved {Path(written).name}", 8000)
        return Path(written)

    def export_dialog(self) -> None:
        if self.state.result() is None:
            return
        base = self.default_save_path()
        suggested = base.with_name(base.stem.replace("_deblurred", "") + "_comparison.png")
        original = self.state.image.path if self.state.image is not None else None
        path = choose_save_path(self, "Export comparison", suggested, "PNG image (*.png)", ".png",
                                original=original)
        if path is not None:
            self.export_comparison(path)

    def export_comparison(self, path: str | Path) -> Path | None:
        path = Path(path)
        original = self.state.image.path if self.state.image is not None else None
        if same_file(path, original):
            self.error("That is the original image; choose another name for the picture.")
            return None
        previous = self.tabs.currentIndex()
        self.tabs.setCurrentIndex(1)
        QtWidgets.QApplication.processEvents()
        try:
            written = self.compare.export_png(path)
        except OSError as exc:
            self.error(f"Could not export the comparison: {exc}")
            return None
        finally:
            self.tabs.setCurrentIndex(previous)
        log.info("Exported the comparison to %s", written)
        return written

    # ================================================================== recent files, samples
    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        files = self.settings.recent_files()
        for p in files:
            a = self.recent_menu.addAction(Path(p).name)
            a.setToolTip(p)
            a.setStatusTip(p)
            a.triggered.connect(lambda checked=False, p=p: self.open_file(p))
        if not files:
            a = self.recent_menu.addAction("No recent files")
            a.setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self.settings.clear_recent_files)

    def sample_files(self) -> list[Path]:
        from resources import SAMPLES

        if not SAMPLES.is_dir():
            return []
        files = [p for p in sorted(SAMPLES.iterdir())
                 if p.suffix.lower() in (".tif", ".tiff", ".png", ".jpg", ".jpeg")]
        # the blurred inputs first: they are what a sample is for
        return sorted(files, key=lambda p: ("blur" not in p.stem, p.name))

    def _fill_samples(self, menu: QtWidgets.QMenu) -> None:
        menu.clear()
        files = self.sample_files()
        for p in files:
            a = menu.addAction(p.name)
            a.triggered.connect(lambda checked=False, p=p: self.open_file(p))
        if not files:
            a = menu.addAction("No samples installed")
            a.setEnabled(False)

    # ================================================================== errors, drops, close
    def error(self, message: str, details: str = "") -> None:
        """Show a short message (details on demand) and note it in the log."""
        self.last_error_text = message
        log.warning(message)
        self.last_error = show_error(self, message, details)

    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:  # noqa: N802
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        event.acceptProposedAction()
        self.open_paths(paths)

    def open_paths(self, paths: list[Path]) -> None:
        """Dropped files: an image opens, a .json loads regions, a .safetensors loads weights."""
        images = [p for p in paths if not p.name.endswith(".json") and p.suffix != ".safetensors"]
        if images:
            self.open_file(images[0])
        for p in paths:
            if p.name.endswith(".json"):
                self.load_rois(p)
            elif p.suffix == ".safetensors":
                self.load_weights(p)

    def _discard_unsaved_ok(self, what: str) -> bool:
        unsaved = [r for r in self.state.results if r.id not in self.saved_results]
        if not unsaved or not self.confirm_close:
            return True
        answer = QtWidgets.QMessageBox.question(
            self, "Unsaved result",
            f"The restored image{'s' if len(unsaved) > 1 else ''} ha{'ve' if len(unsaved) > 1 else 's'} "
            f"not been saved. Discard and {what}?",
            QtWidgets.QMessageBox.StandardButton.Discard | QtWidgets.QMessageBox.StandardButton.Cancel,
            QtWidgets.QMessageBox.StandardButton.Cancel)
        return answer == QtWidgets.QMessageBox.StandardButton.Discard

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802
        if self.job is not None and self.job.isRunning():
            if self.confirm_close:
                answer = QtWidgets.QMessageBox.question(
                    self, "Restoration running", "A restoration is running. Stop it and quit?")
                if answer != QtWidgets.QMessageBox.StandardButton.Yes:
                    event.ignore()
                    return
            self.job.cancel()
            self.job.wait(10000)
        elif not self._discard_unsaved_ok("quit"):
            event.ignore()
            return
        if self._detect is not None:
            self._detect.close()
        self.settings.set_window(self.saveGeometry(), self.saveState())
        self.settings.sync()
        for name in ("deblur", "core"):
            logging.getLogger(name).removeHandler(self._log_handler)
        event.accept()


def _outside(roi: Any, w: int, h: int) -> bool:
    x0, y0, x1, y1 = roi.bounds()
    return x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h


def _view_rect(canvas: ImageCanvas) -> tuple[float, float, float, float]:
    (x0, x1), (y0, y1) = canvas.vb.viewRange()
    return x0, y0, x1 - x0, y1 - y0


def _fmt_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"

