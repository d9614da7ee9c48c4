"""Dialogs: plain error messages with details on demand, safe save paths, blurred-region detection.

Errors reach a biologist as one sentence ("Cannot open 'nuclei.tif': the file is truncated or
damaged"), with the technical details behind a "Show Details" button, never as a stack trace.
Save dialogs refuse the original image's path, so nothing the user opened is ever lost.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from core.defaults import OUT_SUFFIX
from core.io import same_file

__all__ = ["show_error", "split_message", "choose_save_path", "DetectDialog",
           "show_about"]

_FILE_NOTE = re.compile(r"\s*\(file: [^)]*\)\s*$")


def split_message(message: str) -> tuple[str, str]:
    """Move a trailing '(file: /long/path)' from the short message into the details."""
    m = _FILE_NOTE.search(message)
    if not m:
        return message, ""
    return message[:m.start()].rstrip(), m.group(0).strip()[1:-1]


def show_error(parent: QtWidgets.QWidget | None, message: str, details: str = "",
               title: str = "deblur") -> QtWidgets.QMessageBox:
    """A short warning with optional details; non-blocking (window-modal), so scripts and tests go on."""
    short, note = split_message(message)
    if short and short[-1] not in ".!?":
        short += "."
    box = QtWidgets.QMessageBox(parent)
    box.setIcon(QtWidgets.QMessageBox.Icon.Warning)
    box.setWindowTitle(title)
    box.setText(short)
    full = "\n\n".join(s for s in (note, details.strip()) if s)
    if full:
        box.setDetailedText(full)
    box.setStandardButtons(QtWidgets.QMessageBox.StandardButton.Ok)
    box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


def choose_save_path(parent: QtWidgets.QWidget | None, title: str, suggested: Path, filters: str,
                     default_suffix: str, original: Path | None = None) -> Path | None:
    """Ask where to save; refuse the original's path, confirm before replacing another file.

    Returns None when the user cancels.
    """
    while True:
        dlg = QtWidgets.QFileDialog(parent, title, str(suggested), filters)
        dlg.setAcceptMode(QtWidgets.QFileDialog.AcceptMode.AcceptSave)
        dlg.setDefaultSuffix(default_suffix.lstrip("."))
        dlg.setOption(QtWidgets.QFileDialog.Option.DontConfirmOverwrite, True)
        dlg.selectFile(suggested.name)
        if dlg.exec() != QtWidgets.QDialog.DialogCode.Accepted or not dlg.selectedFiles():
            return None
        path = Path(dlg.selectedFiles()[0])
        if same_file(path, original):
            QtWidgets.QMessageBox.warning(
                parent, title, f"\u201c{path.name}\u201d is the original image. deblur never "
                "overwrites the original: please choose another name.")
            suggested = path.with_name(path.stem + OUT_SUFFIX + path.suffix)
            continue
        if path.exists():
            answer = QtWidgets.QMessageBox.question(
                parent, title, f"\u201c{path.name}\u201d already exists. Replace it?",
                QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
                QtWidgets.QMessageBox.StandardButton.No)
            if answer != QtWidgets.QMessageBox.StandardButton.Yes:
                suggested = path
                continue
        return path


def show_about(parent: QtWidgets.QWidget | None) -> None:
    from deblur_gui import __version__

    QtWidgets.QMessageBox.about(
        parent, "About deblur",
        f"<h3>deblur {__version__}</h3>"
        "<p>Repair out-of-focus regions of microscopy images: open an image, mark the blurred "
        "areas, choose a model, restore, compare and save.</p>"
        "<p>The original image is never overwritten. Pixels outside the marked regions are "
        "left exactly as they were.</p><p>BSD-3-Clause licence.</p>")


#: The slider is logarithmic in the focus value: blurred areas score ~0.005-0.05 and sharp ones
#: 0.1-0.9, so a linear scale would crowd every useful setting into its first few steps.
_SLIDER_STEPS = 200
_FOCUS_MIN, _FOCUS_MAX = 0.002, 1.0


def _slider_to_focus(value: int) -> float:
    t = value / _SLIDER_STEPS
    return float(_FOCUS_MIN * (_FOCUS_MAX / _FOCUS_MIN) ** t)


def _focus_to_slider(focus: float) -> int:
    f = float(np.clip(focus, _FOCUS_MIN, _FOCUS_MAX))
    return int(round(_SLIDER_STEPS * np.log(f / _FOCUS_MIN) / np.log(_FOCUS_MAX / _FOCUS_MIN)))


class DetectDialog(QtWidgets.QDialog):
    """Find blurred regions automatically: a focus-map overlay and a threshold slider.

    The detection itself is core.blurred_regions; this dialog shows its mask over the image
    while the slider moves and hands the regions to the caller, where they become ordinary,
    editable ROIs.
    """

    def __init__(self, plane: np.ndarray, view: pg.ViewBox, add_rois: Callable[[object, bool], None],
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        from core import blurred_regions, focus

        self.setWindowTitle("Detect blurred regions")
        self.setModal(False)
        self._focus = focus
        self._detect = blurred_regions.blurred_regions
        self.plane = plane.mean(axis=-1) if plane.ndim == 3 else plane
        self.view = view
        self.add_rois = add_rois
        self.rois = None
        self.mask: np.ndarray | None = None

        layout = QtWidgets.QVBoxLayout(self)
        info = QtWidgets.QLabel("Areas drawn in red look out of focus. Move the slider until they cover "
                                "the blurred parts, then add them as regions. You can still move, "
                                "resize or delete each region afterwards.")
        info.setWordWrap(True)
        layout.addWidget(info)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Fewer"))
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setRange(0, _SLIDER_STEPS)
        self.slider.setToolTip("Sensitivity: further right marks more of the image as blurred")
        row.addWidget(self.slider, 1)
        row.addWidget(QtWidgets.QLabel("More"))
        layout.addLayout(row)
        self.automatic = QtWidgets.QCheckBox("Automatic (compares with the sharpest parts of this image)")
        self.automatic.setChecked(True)
        layout.addWidget(self.automatic)
        self.show_map = QtWidgets.QCheckBox("Show the focus map")
        layout.addWidget(self.show_map)
        self.legend = _focus_legend()
        self.legend.setVisible(False)
        layout.addWidget(self.legend)
        self.summary = QtWidgets.QLabel()
        layout.addWidget(self.summary)
        buttons = QtWidgets.QDialogButtonBox()
        self.add_btn = buttons.addButton("Add as regions", QtWidgets.QDialogButtonBox.ButtonRole.AcceptRole)
        self.replace_btn = buttons.addButton("Replace my regions", QtWidgets.QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(QtWidgets.QDialogButtonBox.StandardButton.Close)
        layout.addWidget(buttons)
        self.add_btn.clicked.connect(lambda: self._accept(replace=False))
        self.replace_btn.clicked.connect(lambda: self._accept(replace=True))
        buttons.rejected.connect(self.reject)

        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)
        try:
            self.focus_map = np.asarray(focus.focus_map(self.plane), dtype=np.float32)
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        self.map_item = pg.ImageItem(autoDownsample=True)
        self.map_item.setZValue(5)
        self.map_item.setOpacity(0.6)
        self.map_item.setImage(focus_rgba(self.focus_map))
        self.map_item.setVisible(False)
        self.mask_item = pg.ImageItem(autoDownsample=True)
        self.mask_item.setZValue(6)
        self.mask_item.setOpacity(0.4)
        self.mask_item.setLookupTable(np.array([[0, 0, 0, 0], [244, 67, 54, 255]], dtype=np.ubyte))
        view.addItem(self.map_item)
        view.addItem(self.mask_item)

        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(120)
        self._timer.timeout.connect(self.update_detection)
        self.slider.valueChanged.connect(self._on_slider)
        self.automatic.toggled.connect(lambda _: self._timer.start())
        self.show_map.toggled.connect(self.map_item.setVisible)
        self.show_map.toggled.connect(self.legend.setVisible)
        self.finished.connect(self._cleanup)
        self.update_detection()
        self._place_slider()

    def _place_slider(self) -> None:
        """Put the slider where the automatic threshold landed, so moving it starts from there."""
        inside = self.focus_map[(self.mask if self.mask is not None else False) & (self.focus_map >= 0)]
        pos = float(np.percentile(inside, 90)) if inside.size else 0.3
        self.slider.blockSignals(True)
        self.slider.setValue(_focus_to_slider(pos))
        self.slider.blockSignals(False)

    def _on_slider(self, value: int) -> None:
        self.automatic.blockSignals(True)
        self.automatic.setChecked(False)
        self.automatic.blockSignals(False)
        self._timer.start()

    def threshold(self) -> float | None:
        """The focus value below which an area counts as blurred (None: automatic)."""
        return None if self.automatic.isChecked() else _slider_to_focus(self.slider.value())

    def update_detection(self) -> None:
        rois, mask = self._detect(self.plane, threshold=self.threshold())
        self.rois = list(getattr(rois, "rois", rois))
        self.mask = np.asarray(mask, dtype=bool)
        self.mask_item.setImage(self.mask.astype(np.uint8), autoLevels=False, levels=(0, 1))
        n = len(self.rois)
        frac = float(self.mask.mean()) * 100 if self.mask.size else 0.0
        if n:
            self.summary.setText(f"{n} region{'s' if n != 1 else ''} found, covering {frac:.0f} % of the image.")
        else:
            self.summary.setText("No clearly blurred region found at this setting.")
        self.add_btn.setEnabled(n > 0)
        self.replace_btn.setEnabled(n > 0)

    def _accept(self, replace: bool) -> None:
        if self.rois is not None:
            self.add_rois(self.rois, replace)
        self.accept()

    def _cleanup(self, *args: object) -> None:
        for item in (self.map_item, self.mask_item):
            if item.scene() is not None:
                self.view.removeItem(item)


_FOCUS_CMAP = "viridis"      # dark blue = blurred ... yellow = sharp


def focus_colour_positions(fmap: np.ndarray) -> np.ndarray:
    """Where each focus value sits on the colour scale, 0 (the most blurred parts of this image)
    to 1 (its sharpest parts): log focus between its 2nd and 98th percentile over the areas
    with structure. Focus values are ratios spanning decades and an image uses only part of
    0..1, so a linear 0..1 scale painted every sample the same purple; -1 (no structure) stays -1."""
    content = fmap >= 0
    logf = np.log(np.maximum(fmap, _FOCUS_MIN))
    if content.any():
        lo, hi = np.percentile(logf[content], [2, 98])
    else:
        lo, hi = np.log(_FOCUS_MIN), 0.0
    if not hi > lo:
        lo, hi = lo - 1.0, hi + 1.0
    pos = np.clip((logf - lo) / (hi - lo), 0.0, 1.0)
    return np.where(content, pos, -1.0).astype(np.float32)


def focus_rgba(fmap: np.ndarray) -> np.ndarray:
    """The focus map as an RGBA overlay (`focus_colour_positions` on viridis); areas without
    structure transparent."""
    lut = pg.colormap.get(_FOCUS_CMAP).getLookupTable(nPts=256, alpha=True)
    pos = focus_colour_positions(fmap)
    rgba = lut[(np.clip(pos, 0, 1) * 255).astype(np.uint8)]
    rgba[pos < 0, 3] = 0
    return rgba


def _focus_legend() -> QtWidgets.QWidget:
    """'blurred [colour bar] sharp', and what transparent means."""
    w = QtWidgets.QWidget()
    row = QtWidgets.QHBoxLayout(w)
    row.setContentsMargins(0, 0, 0, 0)
    lut = pg.colormap.get(_FOCUS_CMAP).getLookupTable(nPts=256, alpha=False).astype(np.uint8)
    bar = np.ascontiguousarray(np.repeat(lut[None], 14, axis=0))
    image = QtGui.QImage(bar.data, 256, 14, 3 * 256, QtGui.QImage.Format.Format_RGB888).copy()
    pic = QtWidgets.QLabel()
    pic.setPixmap(QtGui.QPixmap.fromImage(image).scaled(160, 14))
    row.addWidget(QtWidgets.QLabel("blurred"))
    row.addWidget(pic)
    row.addWidget(QtWidgets.QLabel("sharp (within this image); no colour: nothing to judge"))
    row.addStretch(1)
    return w
