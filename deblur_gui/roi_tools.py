"""Marking blurred areas: drawing tools, editable ROI items on the view, and the ROI list panel.

The ROIs live in :class:`~deblur_gui.state.AppState` as core.roi shapes in image pixel coordinates
(x = column, y = row). :class:`RoiLayer` mirrors them as pyqtgraph ROI items the user can move,
resize and delete, and writes every finished edit back to the state; :class:`RoiPanel` lists them.
"""

from __future__ import annotations

import math
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from core.roi import Ellipse, Polygon, Rect, Roi, simplify_polygon
from deblur_gui.state import AppState, roi_label

__all__ = ["Tool", "DrawingViewBox", "RoiLayer", "RoiPanel", "tool_icon",
           "ROI_COLOR", "SELECTED_COLOR"]

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


def _add_box_handles(roi: pg.ROI) -> None:
    """Scale handles on corners and sides, each anchored at the opposite one (no rotation:
    core.roi shapes are axis-aligned)."""
    for pos, center in [((0, 0), (1, 1)), ((1, 1), (0, 0)), ((1, 0), (0, 1)), ((0, 1), (1, 0)),
                        ((0.5, 0), (0.5, 1)), ((0.5, 1), (0.5, 0)), ((0, 0.5), (1, 0.5)), ((1, 0.5), (0, 0.5))]:
        roi.addScaleHandle(pos, center)


_ITEM_KW = dict(removable=True, translateSnap=True, scaleSnap=True, snapSize=1.0)


class RectRoiItem(pg.ROI):
    """An editable rectangle."""

    def __init__(self, shape: Rect) -> None:
        super().__init__((shape.x, shape.y), (shape.w, shape.h), **_ITEM_KW)
        _add_box_handles(self)

    def to_shape(self) -> Rect:
        p, s = self.pos(), self.size()
        return Rect(_r(p.x()), _r(p.y()), _r(s.x()), _r(s.y()))

    def set_shape(self, shape: Rect) -> None:
        self.setPos((shape.x, shape.y), update=False, finish=False)
        self.setSize((shape.w, shape.h), finish=False)


class EllipseRoiItem(pg.EllipseROI):
    """An editable axis-aligned ellipse (no rotate handle)."""

    def __init__(self, shape: Ellipse) -> None:
        super().__init__((shape.x, shape.y), (shape.w, shape.h), **_ITEM_KW)

    def _addHandles(self) -> None:  # noqa: N802 (pyqtgraph hook)
        _add_box_handles(self)

    def to_shape(self) -> Ellipse:
        p, s = self.pos(), self.size()
        return Ellipse(_r(p.x()), _r(p.y()), _r(s.x()), _r(s.y()))

    def set_shape(self, shape: Ellipse) -> None:
        self.setPos((shape.x, shape.y), update=False, finish=False)
        self.setSize((shape.w, shape.h), finish=False)


class PolygonRoiItem(pg.PolyLineROI):
    """An editable closed polygon: drag corners, click an edge to add a corner."""

    def __init__(self, shape: Polygon) -> None:
        super().__init__([list(p) for p in shape.points], closed=True, **_ITEM_KW)

    def to_shape(self) -> Polygon:
        pts = []
        for h in self.getHandles():
            q = self.mapToParent(h.pos())
            pts.append((round(q.x(), 1), round(q.y(), 1)))
        return Polygon(pts)

    def set_shape(self, shape: Polygon) -> None:
        self.setPos((0, 0), update=False, finish=False)
        self.setPoints([list(p) for p in shape.points])


def _r(v: float) -> float:
    return float(round(v, 2))


def make_item(shape: Roi) -> pg.ROI:
    if isinstance(shape, Rect):
        return RectRoiItem(shape)
    if isinstance(shape, Ellipse):
        return EllipseRoiItem(shape)
    return PolygonRoiItem(shape)


def _same(a: Roi, b: Roi, tol: float = 0.05) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, Polygon):
        return len(a.points) == len(b.points) and all(
            abs(p[0] - q[0]) <= tol and abs(p[1] - q[1]) <= tol for p, q in zip(a.points, b.points))
    return all(abs(getattr(a, k) - getattr(b, k)) <= tol for k in "xywh")


class RoiLayer(QtCore.QObject):
    """Keeps pyqtgraph ROI items on a view in step with the ROIs in the state (both ways)."""

    def __init__(self, state: AppState, view: DrawingViewBox, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.view = view
        self.items: dict[int, pg.ROI] = {}
        self._writing = False
        self._editable = True
        view.shape_drawn.connect(self._on_drawn)
        state.rois_changed.connect(self.sync)
        state.selection_changed.connect(self._on_selection)
        state.image_changed.connect(self._on_image)

    # ------------------------------------------------------------------ state -> items
    def _on_image(self) -> None:
        if self.state.image is not None:
            h, w = self.state.image_size
            self.view.set_bounds(w, h)
            for item in self.items.values():
                item.maxBounds = QtCore.QRectF(0, 0, w, h)

    def sync(self) -> None:
        if self._writing:
            return
        wanted = {e.id: e.shape for e in self.state.rois}
        for rid in [r for r in self.items if r not in wanted]:
            self.view.removeItem(self.items.pop(rid))
        for rid, shape in wanted.items():
            item = self.items.get(rid)
            if item is not None and type(item.to_shape()) is not type(shape):
                self.view.removeItem(self.items.pop(rid))
                item = None
            if item is None:
                self._add_item(rid, shape)
            elif not _same(item.to_shape(), shape):
                item.blockSignals(True)
                try:
                    item.set_shape(shape)
                finally:
                    item.blockSignals(False)
        self._on_selection(self.state.selected_roi)

    def _add_item(self, rid: int, shape: Roi) -> None:
        item = make_item(shape)
        if self.state.image is not None:
            h, w = self.state.image_size
            item.maxBounds = QtCore.QRectF(0, 0, w, h)
        item.setAcceptedMouseButtons(QtCore.Qt.MouseButton.LeftButton)
        item.setZValue(10)
        item.sigRegionChangeFinished.connect(lambda it, rid=rid: self._on_item_changed(rid, it))
        item.sigRegionChangeStarted.connect(lambda it, rid=rid: self.state.select_roi(rid))
        item.sigClicked.connect(lambda it, ev, rid=rid: self.state.select_roi(rid))
        item.sigRemoveRequested.connect(lambda it, rid=rid: self.state.remove_roi(rid))
        item.setEnabled(self._editable)
        self.items[rid] = item
        self.view.addItem(item)

    def _on_selection(self, rid: int | None) -> None:
        """The selected region is drawn in cyan with its handles; the others show only outlines
        (a detected polygon can have dozens of corners, and handles everywhere hide the image)."""
        for key, item in self.items.items():
            selected = key == rid
            color, width = (SELECTED_COLOR, 3) if selected else (ROI_COLOR, 2)
            item.setPen(pg.mkPen(color, width=width))
            for handle in item.getHandles():
                handle.setVisible(selected)

    # ------------------------------------------------------------------ items -> state
    def _on_item_changed(self, rid: int, item: pg.ROI) -> None:
        if not any(e.id == rid for e in self.state.rois):
            return
        self._writing = True
        try:
            self.state.update_roi(rid, item.to_shape())
        finally:
            self._writing = False
        # an edited region is the selected one (a click on a polygon edge adds a corner)
        self.state.select_roi(rid)
        self._on_selection(rid)

    def _on_drawn(self, shape: Roi) -> None:
        self.state.add_roi(shape)

    def set_editable(self, editable: bool) -> None:
        """While a drawing tool is active the existing ROIs ignore the mouse, so drags draw."""
        self._editable = editable
        for item in self.items.values():
            item.setEnabled(editable)

    def set_visible(self, visible: bool) -> None:
        for item in self.items.values():
            item.setVisible(visible)


# ============================================================================ panel


class RoiPanel(QtWidgets.QWidget):
    """The list of marked regions with remove / clear, edge softness, and file buttons."""

    center_requested = QtCore.Signal(int)

    def __init__(self, state: AppState, tool_actions: dict[str, QtGui.QAction],
                 extra_actions: list[QtGui.QAction], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
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
        self.list.setToolTip("Marked regions. Double-click to centre the view on one; Delete removes it.")
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
        self._on_feather(state.feather)
        self.refresh()

    def refresh(self) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for i, e in enumerate(self.state.rois, 1):
            item = QtWidgets.QListWidgetItem(f"{i}. {roi_label(e.shape)}")
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


def outline_item(shape: Roi, color: str = ROI_COLOR) -> QtWidgets.QGraphicsItem:
    """A thin dashed, non-interactive outline of a region (the compare view shows where it worked)."""
    if isinstance(shape, Polygon):
        path = QtGui.QPainterPath()
        path.addPolygon(QtGui.QPolygonF([QtCore.QPointF(x, y) for x, y in shape.points]))
        path.closeSubpath()
        item: QtWidgets.QAbstractGraphicsShapeItem = QtWidgets.QGraphicsPathItem(path)
    else:
        rect = QtCore.QRectF(shape.x, shape.y, shape.w, shape.h)
        item = QtWidgets.QGraphicsRectItem(rect) if isinstance(shape, Rect) else QtWidgets.QGraphicsEllipseItem(rect)
    pen = pg.mkPen(color, width=1.2, style=QtCore.Qt.PenStyle.DashLine)
    pen.setCosmetic(True)
    item.setPen(pen)
    item.setZValue(8)
    item.setAcceptedMouseButtons(QtCore.Qt.MouseButton.NoButton)
    return item


def roi_bounds(shape: Roi) -> QtCore.QRectF:
    x0, y0, x1, y1 = shape.bounds()
    return QtCore.QRectF(x0, y0, x1 - x0, y1 - y0)

