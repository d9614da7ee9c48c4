"""Every command the window offers, in one place: its actions (with shortcuts and tips), the
menus and the toolbar.

A mixin of :class:`~deblur_gui.main_window.MainWindow`: the actions call the window's public
methods (``open_dialog``, ``start_run``, ``set_tool`` ...), so a menu entry and a scripted call
do the same thing.
"""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from deblur_gui.dialogs import show_about
from deblur_gui.help import show_guide, show_shortcuts
from deblur_gui.roi_tools import Tool, tool_icon
from deblur_gui.viewer import COLORMAPS

__all__ = ["WindowActions"]


class WindowActions:
    """Builds the window's actions, menus and toolbar (see the module docstring)."""

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
        self.act_batch = self._action("Restore a &folder\u2026", self.batch_dialog, "Ctrl+B",
                                      "Restore every image of a folder with the current model and "
                                      "settings (regions from their files, detected, or the same)")
        self.act_load_rois = self._action("&Load regions\u2026", self.load_rois_dialog, "Ctrl+L",
                                          "Load marked regions from a region file (.roi.json)")
        self.act_save_rois = self._action("Save re&gions\u2026", self.save_rois_dialog, "Ctrl+Shift+S",
                                          "Save the marked regions to a region file (.roi.json)")
        self.act_quit = self._action("&Quit", self.close, K.Quit)

        self.act_undo = self._action("&Undo", self.state.undo, K.Undo,
                                     "Undo the last change of the regions (drawing, editing, "
                                     "deleting, clearing, loading, detecting)")
        self.act_redo = self._action("&Redo", self.state.redo, "Ctrl+Shift+Z",
                                     "Redo the change just undone")
        self.act_redo.setShortcuts([QtGui.QKeySequence("Ctrl+Shift+Z"), QtGui.QKeySequence("Ctrl+Y")])
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
        self.act_guide = self._action("&User guide", lambda: show_guide(self), K.HelpContents,
                                      "How to use deblur, step by step (works offline)")
        self.act_shortcuts = self._action("&Keyboard shortcuts", lambda: show_shortcuts(self),
                                          None, "Every shortcut of the application")
        for a in self.findChildren(QtGui.QAction):
            self.addAction(a)  # shortcuts work even when a panel has focus

    def _menu(self, title: str, items: list) -> dict[str, QtWidgets.QMenu]:
        """A menu from a list: an action, None for a separator, or (title, fill) for a submenu
        whose `fill(menu)` runs now and each time it opens. Returns its submenus by title."""
        m = self.menuBar().addMenu(title)
        subs = {}
        for item in items:
            if item is None:
                m.addSeparator()
            elif isinstance(item, tuple):
                sub, fill = m.addMenu(item[0]), item[1]
                sub.aboutToShow.connect(lambda sub=sub, fill=fill: fill(sub))
                fill(sub)
                subs[item[0]] = sub
            else:
                m.addAction(item)
        subs[""] = m
        return subs

    def _fill_colour_menu(self, menu: QtWidgets.QMenu) -> None:
        if menu.isEmpty():                       # the actions stay; their check marks follow
            for a in self.cmap_actions.values():
                menu.addAction(a)

    def _build_menus(self) -> None:
        file_menus = self._menu("&File", [
            self.act_open, ("Open &recent", self._fill_recent),
            ("Open &sample", self._fill_samples), None,
            self.act_save, self.act_export, None, self.act_batch, None,
            self.act_load_rois, self.act_save_rois, None, self.act_quit])
        self.recent_menu = file_menus["Open &recent"]
        self.sample_menu_file = file_menus["Open &sample"]
        self.edit_menu = self._menu("&Edit", [self.act_undo, self.act_redo, None,
                                              self.act_delete, self.act_clear])[""]
        self._menu("&Regions", [*(self.tool_actions[t] for t in Tool.ALL), None, self.act_detect,
                                self.act_delete, self.act_clear, None,
                                self.act_load_rois, self.act_save_rois])
        self.view_menu = self._menu("&View", [
            self.act_tab_image, self.act_tab_compare, None, self.act_fit, self.act_zoom_in,
            self.act_zoom_out, self.act_auto,
            ("Colour &map", self._fill_colour_menu),
            self.act_show_rois])[""]
        self._menu("R&un", [self.act_run, self.act_cancel, None, self.act_weights])
        self.sample_menu = self._menu("&Help", [("Open &sample", self._fill_samples), None,
                                                self.act_guide, self.act_shortcuts, None,
                                                self.act_about])["Open &sample"]

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
        tb.addSeparator()
        colours = QtWidgets.QLabel(" Colours ")
        colours.setStyleSheet("color: #9aa0a6;")
        tb.addWidget(colours)          # the combo's own label, apart from "Auto contrast"
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
