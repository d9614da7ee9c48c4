"""The image view: pyqtgraph ImageItem with histogram/levels, colour maps, scale bar and readout.

Arrays are shown row-major ([y, x], as numpy and core index them), so view coordinates are image
pixel coordinates: x = column, y = row, pixel (r, c) covering [c, c+1) x [r, r+1). ROIs drawn on
the view are therefore already in the coordinates of the ROI file. Big images are displayed
downsampled (autoDownsample) and their contrast is estimated from a subsample, so opening an
8k x 8k image stays smooth.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

__all__ = ["ImageCanvas", "ScaleBarItem", "COLORMAPS", "colormap", "percentile_levels",
           "configure_pyqtgraph"]


def configure_pyqtgraph() -> None:
    """Row-major arrays, no exit clean-up (it crashes PySide6 6.12 at interpreter exit)."""
    pg.setConfigOptions(imageAxisOrder="row-major", exitCleanup=False, antialias=True,
                        background="#202124", foreground="#e8eaed")


configure_pyqtgraph()


def _ramp(r: int, g: int, b: int) -> pg.ColorMap:
    return pg.ColorMap([0.0, 1.0], [(0, 0, 0), (r, g, b)])


# Colour maps a microscopist expects: a grey ramp, the usual fluorophore ramps, and two
# perceptually uniform maps for faint detail.
COLORMAPS: dict[str, pg.ColorMap] = {
    "Grey": _ramp(255, 255, 255),
    "Green": _ramp(0, 255, 0),
    "Magenta": _ramp(255, 0, 255),
    "Cyan": _ramp(0, 255, 255),
    "Red": _ramp(255, 0, 0),
    "Blue": _ramp(40, 100, 255),
    "Yellow": _ramp(255, 255, 0),
    "Fire": pg.colormap.get("CET-L3"),
    "Viridis": pg.colormap.get("viridis"),
    "Magma": pg.colormap.get("magma"),
}

DIFFERENCE_CMAP: pg.ColorMap = pg.colormap.get("CET-D1")


def colormap(name: str) -> pg.ColorMap:
    """The colour map called `name` (unknown names fall back to grey)."""
    return COLORMAPS.get(name, COLORMAPS["Grey"])


def percentile_levels(plane: np.ndarray, low: float = 0.35, high: float = 99.65) -> tuple[float, float]:
    """Display levels from percentiles of (a subsample of) the plane; never an empty range."""
    arr = np.asarray(plane)
    if arr.ndim == 3:  # RGB: one range for all samples
        arr = arr[..., :3]
    step = max(1, int(math.sqrt(arr.shape[0] * arr.shape[1] / 1_000_000)))
    sub = arr[::step, ::step].astype(np.float32, copy=False)
    finite = sub[np.isfinite(sub)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [low, high]))
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
        if hi <= lo:
            hi = lo + 1.0
    return lo, hi


def _nice_length(target: float) -> float:
    """The largest of 1, 2, 5 x 10^k not above `target` (scale bars read best at round values)."""
    if target <= 0:
        return 0.0
    exp = math.floor(math.log10(target))
    for m in (5, 2, 1):
        if m * 10 ** exp <= target:
            return m * 10 ** exp
    return 10 ** exp


def _format_um(um: float) -> str:
    if um >= 1000:
        return f"{um / 1000:g} mm"
    if um >= 1:
        return f"{um:g} µm"
    return f"{um * 1000:g} nm"


class ScaleBarItem(pg.GraphicsWidgetAnchor, pg.GraphicsObject):
    """A scale bar in the lower-right corner whose length is a round number of micrometres.

    It re-measures itself whenever the view is zoomed, so it always spans about a sixth of the
    visible width, and hides itself when the image has no pixel size.
    """

    def __init__(self) -> None:
        pg.GraphicsObject.__init__(self)
        pg.GraphicsWidgetAnchor.__init__(self)
        self.setFlag(self.GraphicsItemFlag.ItemHasNoContents)
        self.setAcceptedMouseButtons(QtCore.Qt.MouseButton.NoButton)
        self.pixel_size: float | None = None
        self.bar = QtWidgets.QGraphicsRectItem(self)
        self.bar.setPen(pg.mkPen(0, 0, 0, 160, width=1))  # visible on white brightfield too
        self.bar.setBrush(pg.mkBrush("#ffffff"))
        self.text = pg.TextItem("", color="#ffffff", anchor=(0.5, 1.0), fill=pg.mkBrush(0, 0, 0, 110))
        font = QtGui.QFont()
        font.setPointSize(9)
        self.text.setFont(font)
        self.text.setParentItem(self)
        self.setVisible(False)

    def boundingRect(self) -> QtCore.QRectF:
        return QtCore.QRectF()

    def attach(self, view: pg.ViewBox) -> None:
        self.setParentItem(view)
        self.anchor(itemPos=(1, 1), parentPos=(1, 1), offset=(-18, -14))
        view.sigRangeChanged.connect(self.update_bar)
        view.sigResized.connect(self.update_bar)

    def set_pixel_size(self, um_per_px: float | None) -> None:
        self.pixel_size = um_per_px if um_per_px and um_per_px > 0 else None
        self.update_bar()

    def update_bar(self, *args: object) -> None:
        view = self.parentItem()
        if view is None or self.pixel_size is None:
            self.setVisible(False)
            return
        (x0, x1), _ = view.viewRange()
        visible_um = (x1 - x0) * self.pixel_size
        length_um = _nice_length(visible_um / 6.0)
        if length_um <= 0:
            self.setVisible(False)
            return
        p1 = view.mapFromViewToItem(self, QtCore.QPointF(0, 0))
        p2 = view.mapFromViewToItem(self, QtCore.QPointF(length_um / self.pixel_size, 0))
        w = abs((p2 - p1).x())
        self.bar.setRect(QtCore.QRectF(-w, -6, w, 6))
        self.text.setText(_format_um(length_um))
        self.text.setPos(-w / 2.0, -8)
        self.setVisible(True)


class ImageCanvas(pg.GraphicsLayoutWidget):
    """One image in a zoomable, pannable view, with an optional histogram/levels panel.

    Signals
    -------
    hovered(object): (x, y, value) under the mouse in image pixels, or None off the image.
    """

    hovered = QtCore.Signal(object)

    def __init__(self, parent: QtWidgets.QWidget | None = None, *, viewbox: pg.ViewBox | None = None,
                 histogram: bool = True, title: str = "") -> None:
        super().__init__(parent)
        self.setMinimumSize(200, 200)
        self.vb = viewbox if viewbox is not None else pg.ViewBox()
        self.vb.setAspectLocked(True)
        self.vb.invertY(True)
        self.vb.setMenuEnabled(False)
        self.vb.setDefaultPadding(0.01)
        self.addItem(self.vb, row=0, col=0)
        self.image_item = pg.ImageItem(autoDownsample=True)
        self.vb.addItem(self.image_item)
        self.hist: pg.HistogramLUTItem | None = None
        if histogram:
            self.hist = pg.HistogramLUTItem(image=self.image_item, gradientPosition="right")
            self.hist.setMaximumWidth(110)
            self.addItem(self.hist, row=0, col=1)
        self.title = pg.TextItem(title, color="#e8eaed", anchor=(0, 0), fill=pg.mkBrush(0, 0, 0, 120))
        self.title.setParentItem(self.vb)
        self.title.setPos(6, 4)
        self.title.setVisible(bool(title))
        self.scale_bar = ScaleBarItem()
        self.scale_bar.attach(self.vb)
        self.data: np.ndarray | None = None
        self.cmap_name = "Grey"
        self.set_colormap("Grey")
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)

    # ------------------------------------------------------------------ content
    def set_title(self, text: str) -> None:
        self.title.setText(text)
        self.title.setVisible(bool(text))

    def set_data(self, plane: np.ndarray | None, *, levels: tuple[float, float] | None = None,
                 reset_view: bool = False) -> None:
        """Show `plane` ([y, x] or [y, x, rgb]); keep the zoom unless `reset_view`."""
        self.data = plane
        if plane is None:
            self.image_item.clear()
            return
        first = self.image_item.image is None
        if levels is None:
            levels = percentile_levels(plane)
        self.image_item.setImage(plane, autoLevels=False, levels=levels)
        if self.hist is not None:
            self.hist.setLevels(*levels)
            self.hist.autoHistogramRange()
        self.vb.setLimits(xMin=-0.5 * plane.shape[1], xMax=1.5 * plane.shape[1],
                          yMin=-0.5 * plane.shape[0], yMax=1.5 * plane.shape[0])
        if first or reset_view:
            self.fit()

    def levels(self) -> tuple[float, float]:
        lv = self.image_item.getLevels()
        if lv is None:
            return 0.0, 1.0
        lv = np.asarray(lv, dtype=float)
        if lv.ndim == 2:  # rgb levels
            return float(lv[:, 0].min()), float(lv[:, 1].max())
        return float(lv[0]), float(lv[1])

    def set_levels(self, lo: float, hi: float) -> None:
        if self.hist is not None:
            self.hist.setLevels(lo, hi)
        self.image_item.setLevels((lo, hi))

    def auto_contrast(self) -> tuple[float, float]:
        """Percentile contrast of the shown plane (0.35-99.65 %, ignores hot pixels)."""
        if self.data is None:
            return self.levels()
        lo, hi = percentile_levels(self.data)
        self.set_levels(lo, hi)
        return lo, hi

    def set_colormap(self, name: str) -> None:
        self.cmap_name = name if name in COLORMAPS else "Grey"
        cmap = colormap(self.cmap_name)
        if self.hist is not None:
            self.hist.gradient.setColorMap(cmap)
        else:
            self.image_item.setColorMap(cmap)

    def set_pixel_size(self, um_per_px: float | None) -> None:
        self.scale_bar.set_pixel_size(um_per_px)

    # ------------------------------------------------------------------ view
    def fit(self) -> None:
        """Show the whole image."""
        if self.data is not None:
            h, w = self.data.shape[:2]
            self.vb.setRange(QtCore.QRectF(0, 0, w, h), padding=0.01)

    def zoom(self, factor: float) -> None:
        """Zoom about the view centre (factor > 1 zooms in)."""
        self.vb.scaleBy((1.0 / factor, 1.0 / factor))

    def link_views(self, other: "ImageCanvas") -> None:
        """Share zoom and pan with `other`."""
        other.vb.setXLink(self.vb)
        other.vb.setYLink(self.vb)

    # ------------------------------------------------------------------ readout
    def value_at(self, x: float, y: float) -> tuple[int, int, object] | None:
        if self.data is None:
            return None
        col, row = int(math.floor(x)), int(math.floor(y))
        h, w = self.data.shape[:2]
        if not (0 <= row < h and 0 <= col < w):
            return None
        value = self.data[row, col]
        return col, row, value

    def _on_mouse_moved(self, pos: QtCore.QPointF) -> None:
        if not self.vb.sceneBoundingRect().contains(pos):
            self.hovered.emit(None)
            return
        p = self.vb.mapSceneToView(pos)
        self.hovered.emit(self.value_at(p.x(), p.y()))


def format_value(value: object) -> str:
    """A pixel value as a short string: integers plainly, floats to 4 significant digits, RGB as a tuple."""
    arr = np.asarray(value)
    if arr.ndim:
        return "(" + ", ".join(format_value(v) for v in arr) + ")"
    if np.issubdtype(arr.dtype, np.integer):
        return str(int(arr))
    return f"{float(arr):.4g}"
