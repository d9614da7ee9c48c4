"""Marking blurred areas: the drawing tools (rectangle, ellipse, polygon, freehand) on the view.

The ROIs live in :class:`~deblur_gui.state.AppState` as core.roi shapes in image pixel
coordinates (x = column, y = row). :class:`DrawingViewBox` turns mouse gestures into new shapes;
``deblur_gui.roi_layer`` shows them as editable items and ``deblur_gui.roi_panel`` lists them.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from core.roi import Ellipse, Polygon, Rect, Roi, simplify_polygon

__all__ = ["Tool", "DrawingViewBox", "tool_icon", "ROI_COLOR", "SELECTED_COLOR"]

ROI_COLOR = "#ffd54f"        # amber: visible on grey, green and magenta images alike
SELECTED_COLOR = "#4dd0e1"   # cyan for the selected region
PREVIEW_COLOR = "#ffffff"
FREEHAND_TOLERANCE = 0.75   # px: a freehand outline keeps the corners that matter, not every mouse move

class Tool:
    """The mouse tools (plain strings so they can be stored and compared easily)."""

    PAN = "pan"
    RECT = "rect"
    ELLIPSE = "ellipse"
    POLYGON = "polygon"
    FREEHAND = "freehand"
    ALL = (PAN, RECT, ELLIPSE, POLYGON, FREEHAND)
    LABELS = {PAN: "Move / select", RECT: "Rectangle", ELLIPSE: "Ellipse", POLYGON: "Polygon",
              FREEHAND: "Freehand"}
    TIPS = {
        PAN: "Drag to pan, wheel to zoom; click a region to select it, drag it or its handles to edit",
        RECT: "Drag on the image to mark a rectangular region",
        ELLIPSE: "Drag on the image to mark an elliptical region",
        POLYGON: "Click to place corners; double-click, right-click or click the first corner to close",
        FREEHAND: "Drag around the blurred area to outline it",
    }


def tool_icon(tool: str, size: int = 32) -> QtGui.QIcon:
    """A small drawn icon per tool, so the toolbar needs no image files."""
    pix = QtGui.QPixmap(size, size)
    pix.fill(QtCore.Qt.GlobalColor.transparent)
    p = QtGui.QPainter(pix)
    p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
    pen = QtGui.QPen(QtGui.QColor("#f9a825"), max(2.0, size / 14))
    p.setPen(pen)
    m = size * 0.2
    r = QtCore.QRectF(m, m * 1.4, size - 2 * m, size - 2.8 * m)
    if tool == Tool.RECT:
        p.drawRect(r)
    elif tool == Tool.ELLIPSE:
        p.drawEllipse(r)
    elif tool == Tool.POLYGON:
        poly = QtGui.QPolygonF([QtCore.QPointF(size * 0.2, size * 0.75), QtCore.QPointF(size * 0.35, size * 0.2),
                                QtCore.QPointF(size * 0.8, size * 0.3), QtCore.QPointF(size * 0.7, size * 0.8)])
        p.drawPolygon(poly)
        p.setBrush(QtGui.QColor("#f9a825"))
        for i in range(poly.size()):
            p.drawEllipse(poly.at(i), size / 14, size / 14)
    elif tool == Tool.FREEHAND:
        # a lasso: an irregular loop with a trailing cord
        path = QtGui.QPainterPath(QtCore.QPointF(size * 0.42, size * 0.62))
        path.cubicTo(size * 0.05, size * 0.6, size * 0.1, size * 0.15, size * 0.5, size * 0.18)
        path.cubicTo(size * 0.95, size * 0.2, size * 0.9, size * 0.6, size * 0.55, size * 0.6)
        path.cubicTo(size * 0.4, size * 0.62, size * 0.45, size * 0.75, size * 0.35, size * 0.9)
        p.drawPath(path)
    else:  # pan / select: an arrow
        p.setPen(QtGui.QPen(QtGui.QColor("#e0e0e0"), max(1.5, size / 20)))
        p.setBrush(QtGui.QColor("#e0e0e0"))
        arrow = QtGui.QPolygonF([QtCore.QPointF(size * 0.3, size * 0.15), QtCore.QPointF(size * 0.3, size * 0.8),
                                 QtCore.QPointF(size * 0.45, size * 0.65), QtCore.QPointF(size * 0.58, size * 0.9),
                                 QtCore.QPointF(size * 0.68, size * 0.85), QtCore.QPointF(size * 0.55, size * 0.6),
                                 QtCore.QPointF(size * 0.75, size * 0.6)])
        p.drawPolygon(arrow)
    p.end()
    return QtGui.QIcon(pix)


# ============================================================================ drawing


class DrawingViewBox(pg.ViewBox):
    """A ViewBox whose left mouse button draws the current tool's shape instead of panning.

    Emits ``shape_drawn(shape)`` with a core.roi shape in image pixels, clipped to the image.
    """

    shape_drawn = QtCore.Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.tool = Tool.PAN
        self.bounds: tuple[float, float] | None = None   # (width, height) of the image
        self._preview: QtWidgets.QGraphicsItem | None = None
        self._points: list[tuple[float, float]] = []
        self._hover: tuple[float, float] | None = None

    # ------------------------------------------------------------------ public
    def set_tool(self, tool: str) -> None:
        self.cancel_drawing()
        self.tool = tool
        cursor = QtCore.Qt.CursorShape.ArrowCursor if tool == Tool.PAN else QtCore.Qt.CursorShape.CrossCursor
        self.setCursor(cursor)

    def set_bounds(self, width: float, height: float) -> None:
        self.bounds = (float(width), float(height))

    def cancel_drawing(self) -> None:
        self._points = []
        self._hover = None
        self._remove_preview()

    @property
    def drawing(self) -> bool:
        return bool(self._points)

    # ------------------------------------------------------------------ helpers
    def _clip(self, p: QtCore.QPointF) -> tuple[float, float]:
        x, y = p.x(), p.y()
        if self.bounds is not None:
            w, h = self.bounds
            x, y = min(max(x, 0.0), w), min(max(y, 0.0), h)
        return x, y

    def _pen(self) -> QtGui.QPen:
        pen = pg.mkPen(PREVIEW_COLOR, width=1.5, style=QtCore.Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        return pen

    def _set_preview(self, item: QtWidgets.QGraphicsItem) -> None:
        self._remove_preview()
        item.setPen(self._pen())
        self._preview = item
        self.addItem(item, ignoreBounds=True)

    def _remove_preview(self) -> None:
        if self._preview is not None:
            self.removeItem(self._preview)
            self._preview = None

    def _path_item(self, points: list[tuple[float, float]], close: bool = False) -> QtWidgets.QGraphicsPathItem:
        path = QtGui.QPainterPath()
        if points:
            path.moveTo(*points[0])
            for pt in points[1:]:
                path.lineTo(*pt)
            if close:
                path.closeSubpath()
        return QtWidgets.QGraphicsPathItem(path)

    def _emit(self, shape: Roi | None) -> None:
        if shape is not None:
            self.shape_drawn.emit(shape)

    # ------------------------------------------------------------------ mouse
    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 (Qt naming)
        if self.tool not in (Tool.RECT, Tool.ELLIPSE, Tool.FREEHAND) or \
                ev.button() != QtCore.Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        start = self._clip(self.mapSceneToView(ev.buttonDownScenePos()))
        here = self._clip(self.mapSceneToView(ev.scenePos()))
        if self.tool == Tool.FREEHAND:
            if ev.isStart() or not self._points:
                self._points = [start]
            if math.dist(here, self._points[-1]) >= 0.5:
                self._points.append(here)
            self._set_preview(self._path_item(self._points))
            if ev.isFinish():
                pts = simplify_polygon(self._points, tolerance=FREEHAND_TOLERANCE)
                self.cancel_drawing()
                if len(pts) >= 3:
                    self._emit(Polygon([(round(x, 1), round(y, 1)) for x, y in pts]))
            return
        x0, x1 = sorted((round(start[0]), round(here[0])))
        y0, y1 = sorted((round(start[1]), round(here[1])))
        rect = QtCore.QRectF(x0, y0, x1 - x0, y1 - y0)
        item = QtWidgets.QGraphicsRectItem(rect) if self.tool == Tool.RECT else QtWidgets.QGraphicsEllipseItem(rect)
        self._set_preview(item)
        if ev.isFinish():
            self._remove_preview()
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                cls = Rect if self.tool == Tool.RECT else Ellipse
                self._emit(cls(float(x0), float(y0), float(x1 - x0), float(y1 - y0)))

    def mouseClickEvent(self, ev) -> None:  # noqa: N802
        if self.tool != Tool.POLYGON:
            super().mouseClickEvent(ev)
            return
        ev.accept()
        p = self._clip(self.mapSceneToView(ev.scenePos()))
        if ev.button() == QtCore.Qt.MouseButton.RightButton or ev.double():
            self.finish_polygon()
            return
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:
            return
        if len(self._points) >= 3 and self._near_first(ev.scenePos()):
            self.finish_polygon()
            return
        self._points.append(p)
        self._update_polygon_preview()

    def hoverEvent(self, ev) -> None:  # noqa: N802
        if self.tool == Tool.POLYGON and self._points and not ev.isExit():
            self._hover = self._clip(self.mapSceneToView(ev.scenePos()))
            self._update_polygon_preview()

    def _near_first(self, scene_pos: QtCore.QPointF) -> bool:
        first = self.mapViewToScene(QtCore.QPointF(*self._points[0]))
        return math.dist((first.x(), first.y()), (scene_pos.x(), scene_pos.y())) < 8

    def _update_polygon_preview(self) -> None:
        pts = list(self._points)
        if self._hover is not None:
            pts.append(self._hover)
        self._set_preview(self._path_item(pts))

    def finish_polygon(self) -> None:
        """Close the polygon being drawn (needs three corners; fewer is dropped)."""
        pts = self._points
        self.cancel_drawing()
        if len(pts) >= 3:
            self._emit(Polygon([(round(x, 1), round(y, 1)) for x, y in pts]))


# ============================================================================ ROI items
