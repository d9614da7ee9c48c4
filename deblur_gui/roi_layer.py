"""The marked regions on the view: editable pyqtgraph items mirroring the state's ROIs.

:class:`RoiLayer` shows every ROI of :class:`~deblur_gui.state.AppState` as an item the user can
move, resize and delete, and writes every finished edit back to the state.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from core.roi import Ellipse, Polygon, Rect, Roi
from deblur_gui.state import AppState
from deblur_gui.roi_tools import ROI_COLOR, SELECTED_COLOR, DrawingViewBox

__all__ = ["RoiLayer", "RectRoiItem", "EllipseRoiItem", "PolygonRoiItem", "make_item",
           "outline_item", "roi_bounds"]


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
