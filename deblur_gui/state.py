"""The viewer's state as plain Python objects that the Qt widgets observe (DESIGN §6).

Nothing here imports Qt: the state can be built, changed and checked in a test without a window,
and every widget reads from and writes to it instead of to each other. Changes are announced
through tiny :class:`Signal` objects (a list of callbacks), so a widget that shows the ROIs and the
panel that lists them stay in step without knowing about one another.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from core.models.registry import default_model_name
from core.roi import Polygon, Rect, Roi, RoiSet, rois_to_dict
from core.defaults import DEFAULT_FEATHER, DEFAULT_OVERLAP, DEFAULT_TILE

if TYPE_CHECKING:  # pragma: no cover - typing only
    from core.io import Image

__all__ = ["Signal", "RoiEntry", "Result", "AppState", "roi_label", "plane_axes", "describe_params",
           "format_duration"]


# axes of one displayed plane: Y, X and, for RGB(A) images, the samples axis
_PLANE_AXES = "YXS"


class Signal:
    """A minimal observer list: ``connect(fn)``, ``emit(*args)``.

    Plain callbacks keep the state free of Qt; the widgets that connect are all on the GUI thread,
    and the worker thread never touches the state (its results arrive through Qt signals first).
    """

    def __init__(self) -> None:
        self._slots: list[Callable[..., Any]] = []

    def connect(self, slot: Callable[..., Any]) -> None:
        if slot not in self._slots:
            self._slots.append(slot)

    def disconnect(self, slot: Callable[..., Any]) -> None:
        if slot in self._slots:
            self._slots.remove(slot)

    def emit(self, *args: Any) -> None:
        for slot in list(self._slots):
            slot(*args)


@dataclass
class RoiEntry:
    """One region the user marked; `id` stays fixed while the shape is moved or resized."""

    id: int
    shape: Roi


@dataclass
class Result:
    """One finished restoration, kept so several models or settings can be compared."""

    id: int
    model: str
    params: dict[str, Any]
    device: str
    image: "Image"                      # full image, same shape and dtype as the original
    seconds: float
    scope: str                          # "all planes" or a description of the plane restored
    rois: RoiSet
    weights: Path | None = None
    checks: list[tuple[str, str, str]] = field(default_factory=list)  # (roi, blur, trust verdict)
    trust_map: Any = None      # bool (Y, X) of the checked plane: what the input does not explain
    seed: int | None = None             # the sampling seed of a stochastic model (DDPM)
    adapted_on: str = ""                # the image the model was adapted to ("": not adapted)

    @property
    def label(self) -> str:
        """Short name for the result list, e.g. '#1 richardson-lucy (blur radius 3) - 1.2 s'."""
        shown = describe_params(self.model, self.params)
        base = f"#{self.id} {self.model}"
        if self.weights is not None:
            base += f" [{self.weights.name}]"
        if self.adapted_on:
            base += f" adapted to {self.adapted_on}"
        if shown:
            base += f" ({shown})"
        if self.seed is not None:
            base += f" seed {self.seed}"
        return f"{base} - {self.seconds:.1f} s"

    def same_run_as(self, other: "Result") -> bool:
        """Same model, weights, settings and regions: two results that differ only by chance
        (a diffusion model's seed), whose spread shows where its samples disagree."""
        return (self.model == other.model and self.weights == other.weights
                and self.adapted_on == other.adapted_on and self.params == other.params
                and self.scope == other.scope
                and rois_key(self.rois) == rois_key(other.rois))


def describe_params(model: str, params: dict[str, Any]) -> str:
    """Settings in the words of the Settings box: 'views averaged 8', 'blur radius 3, ...'."""
    from core.models.registry import get_entry

    try:
        specs = get_entry(model).params
    except ValueError:                 # a model that is no longer registered
        specs = {}

    def name(key: str) -> str:
        label = specs[key].label if key in specs and specs[key].label else key.replace("_", " ")
        return label.split(" (")[0].lower()

    def value(key: str, v: Any) -> str:
        off = specs[key].off if key in specs else None
        return "off" if off is not None and v == off else _fmt(v)

    return ", ".join(f"{name(k).removesuffix(' above') if value(k, v) == 'off' else name(k)} "
                     f"{value(k, v)}" for k, v in params.items())


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def format_duration(seconds: float, *, rough: bool = False) -> str:
    """A duration in words that read at a glance: exact for time left ("45 s", "3 min 05 s",
    "1 h 02 min"), rounded for an estimate made before a run (``rough``: "about 3 min")."""
    if rough:
        if seconds < 1:
            return "under a second"
        if seconds < 90:
            return f"about {seconds:.0f} s"
        if seconds < 5400:
            return f"about {seconds / 60:.0f} min"
        return f"about {seconds / 3600:.1f} h"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def roi_label(shape: Roi) -> str:
    """Plain description for the ROI list: 'Rectangle 40 x 30 at (10, 20)'."""
    if isinstance(shape, Polygon):
        x0, y0, x1, y1 = shape.bounds()
        return f"Polygon, {len(shape.points)} points, {x1 - x0:.0f} x {y1 - y0:.0f} at ({x0:.0f}, {y0:.0f})"
    kind = "Rectangle" if isinstance(shape, Rect) else "Ellipse"
    return f"{kind} {shape.w:.0f} x {shape.h:.0f} at ({shape.x:.0f}, {shape.y:.0f})"


#: how many changes of the regions can be undone
_UNDO_DEPTH = 200


def _copy_shape(shape: Roi) -> Roi:
    return Polygon(list(shape.points)) if isinstance(shape, Polygon) else replace(shape)


#: colours of merged channels, in the usual order (green, magenta, cyan, yellow)
MERGE_COLOURS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=np.float32)


def merge_channels(stack: np.ndarray) -> np.ndarray:
    """(C, H, W) channels -> (H, W, 3) uint8 picture, each channel scaled to its own 0.35-99.65
    percentiles and added in its colour (display only)."""
    out = np.zeros(stack.shape[1:] + (3,), np.float32)
    for c, plane in enumerate(stack):
        p = np.asarray(plane, np.float32)
        step = max(1, int(np.sqrt(p.size / 250_000)))
        lo, hi = np.percentile(p[::step, ::step], [0.35, 99.65])
        out += np.clip((p - lo) / max(hi - lo, 1e-12), 0, 1)[..., None] * MERGE_COLOURS[c % 4]
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def describe_plane(plane: dict[str, int], channel_names: Any = None) -> str:
    """'Z 3, GFP': a plane in words, 1-based as the selectors show it, channels by their names
    from the file's metadata where it has them; '' for a single-plane image."""
    names = list(channel_names or [])
    return ", ".join(str(names[i]) if a == "C" and i < len(names) and names[i] else f"{a} {i + 1}"
                     for a, i in plane.items())


def rois_key(rois: RoiSet | None) -> str:
    """A comparable fingerprint of a region set (None and empty: the whole image)."""
    return "whole" if rois is None or not rois.rois else repr(rois_to_dict(rois))


def plane_axes(axes: str, shape: tuple[int, ...]) -> list[tuple[str, int]]:
    """The axes a user steps through (T, Z, C...) with their sizes; Y, X and RGB samples excluded."""
    return [(a, n) for a, n in zip(axes, shape) if a not in _PLANE_AXES]


class AppState:
    """Everything the window shows and the run needs: image, plane, ROIs, results, model choice.

    Signals (all emitted on the GUI thread):
      image_changed(), plane_changed(), rois_changed(), selection_changed(id | None),
      feather_changed(float), results_changed(), current_result_changed(id | None),
      model_changed(), busy_changed(bool), undo_changed()

    Every change of the regions (add, edit, remove, clear, load, detect) can be undone and
    redone (`undo`, `redo`); opening another image starts a fresh history.
    """

    def __init__(self) -> None:
        self.image_changed = Signal()
        self.plane_changed = Signal()
        self.rois_changed = Signal()
        self.selection_changed = Signal()
        self.feather_changed = Signal()
        self.results_changed = Signal()
        self.current_result_changed = Signal()
        self.model_changed = Signal()
        self.adapted_changed = Signal()
        self.busy_changed = Signal()
        self.undo_changed = Signal()

        self.image: Image | None = None
        self.plane: dict[str, int] = {}
        self.rois: list[RoiEntry] = []
        self.feather: float = DEFAULT_FEATHER
        self.selected_roi: int | None = None
        self.results: list[Result] = []
        self.current_result: int | None = None
        self.model_name: str = default_model_name()
        self.model_params: dict[str, Any] = {}
        self.weights: Path | None = None
        # the chosen model adapted to an image's sharp areas (core.adaptation.Adapted), used by
        # Restore until the model or its weights change; kept across images for a session
        self.adapted: Any = None
        self.device: str = "auto"
        self.tile: int = DEFAULT_TILE
        self.overlap: int = DEFAULT_OVERLAP
        self.all_planes: bool = False
        self.merge_channels: bool = False   # display channels merged in colour
        self.seed: int = 0                  # sampling seed of stochastic models (DDPM)
        self.busy: bool = False
        self._ids = itertools.count(1)
        self._result_ids = itertools.count(1)
        self._undo: list[tuple[list[RoiEntry], float]] = []
        self._redo: list[tuple[list[RoiEntry], float]] = []

    # ------------------------------------------------------------------ image and plane
    def set_image(self, image: "Image") -> None:
        """A new image: ROIs and results of the previous one no longer apply."""
        self.image = image
        self.plane = {a: 0 for a, _ in plane_axes(image.axes, image.data.shape)}
        self.rois = []
        self.selected_roi = None
        self.merge_channels = False
        self._undo, self._redo = [], []
        self.undo_changed.emit()
        self.results = []
        self._result_ids = itertools.count(1)       # result numbers start at #1 per image
        self.current_result = None
        self.image_changed.emit()
        self.rois_changed.emit()
        self.results_changed.emit()
        self.current_result_changed.emit(None)

    def plane_axes(self) -> list[tuple[str, int]]:
        if self.image is None:
            return []
        return plane_axes(self.image.axes, self.image.data.shape)

    def set_plane(self, axis: str, index: int) -> None:
        if axis not in self.plane:
            raise KeyError(f"the image has no {axis} axis")
        size = dict(self.plane_axes())[axis]
        index = int(np.clip(index, 0, size - 1))
        if self.plane[axis] != index:
            self.plane[axis] = index
            self.plane_changed.emit()

    def plane_index(self) -> tuple:
        """Index into ``image.data`` that selects the displayed plane (Y, X[, S] kept)."""
        assert self.image is not None
        return tuple(self.plane[a] if a in self.plane else slice(None) for a in self.image.axes)

    def plane_description(self) -> str:
        """The shown plane in words ('Z 3, GFP'; see `describe_plane`)."""
        names = self.image.metadata.get("channel_names") if self.image is not None else None
        return describe_plane(self.plane, names)

    def can_merge_channels(self) -> bool:
        """A merged-colour view needs 2-4 channels (and no RGB samples)."""
        sizes = dict(self.plane_axes())
        return 2 <= sizes.get("C", 0) <= 4 and self.image is not None and "S" not in self.image.axes

    def set_merge_channels(self, merged: bool) -> None:
        """Show the channels merged in colour (display only: runs still use the chosen channel)."""
        merged = bool(merged) and self.can_merge_channels()
        if merged != self.merge_channels:
            self.merge_channels = merged
            self.plane_changed.emit()

    def current_plane(self, data: np.ndarray | None = None) -> np.ndarray:
        """The displayed plane of `data` (default: the original image), [y, x] or [y, x, s];
        with merged channels, an RGB picture of all channels at this Z/T."""
        assert self.image is not None
        arr = self.image.data if data is None else data
        if not self.merge_channels:
            return arr[self.plane_index()]
        index = tuple(slice(None) if a == "C" else i for a, i in zip(self.image.axes, self.plane_index()))
        return merge_channels(arr[index])          # C comes first: it precedes Y and X

    def plane_axes_string(self) -> str:
        """Axes of one displayed plane ('YX' or 'YXS')."""
        assert self.image is not None
        return "".join(a for a in self.image.axes if a in _PLANE_AXES)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the image plane."""
        assert self.image is not None
        shp = dict(zip(self.image.axes, self.image.data.shape))
        return shp["Y"], shp["X"]

    # ------------------------------------------------------------------ undo / redo
    def _snapshot(self) -> tuple[list[RoiEntry], float]:
        return [RoiEntry(e.id, _copy_shape(e.shape)) for e in self.rois], self.feather

    def _remember(self) -> None:
        """Called before every change of the regions: the state to go back to."""
        self._undo.append(self._snapshot())
        del self._undo[:-_UNDO_DEPTH]
        self._redo.clear()
        self.undo_changed.emit()

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> bool:
        """Back to the regions before the last change; False when there is nothing to undo."""
        return self._step(self._undo, self._redo)

    def redo(self) -> bool:
        """Forward again after an undo; False when there is nothing to redo."""
        return self._step(self._redo, self._undo)

    def _step(self, source: list, target: list) -> bool:
        if not source:
            return False
        target.append(self._snapshot())
        self.rois, feather = source.pop()
        self.set_feather(feather)
        if self.selected_roi not in {e.id for e in self.rois}:
            self.selected_roi = None
            self.selection_changed.emit(None)
        self.rois_changed.emit()
        self.undo_changed.emit()
        return True

    # ------------------------------------------------------------------ ROIs
    def add_roi(self, shape: Roi) -> int:
        self._remember()
        rid = next(self._ids)
        self.rois.append(RoiEntry(rid, shape))
        self.selected_roi = rid
        self.rois_changed.emit()
        self.selection_changed.emit(rid)
        return rid

    def update_roi(self, rid: int, shape: Roi) -> None:
        for entry in self.rois:
            if entry.id == rid:
                if entry.shape != shape:
                    self._remember()
                    entry.shape = shape
                    self.rois_changed.emit()
                return
        raise KeyError(rid)

    def remove_roi(self, rid: int) -> None:
        if all(e.id != rid for e in self.rois):
            return
        self._remember()
        before = len(self.rois)
        self.rois = [e for e in self.rois if e.id != rid]
        if len(self.rois) != before:
            if self.selected_roi == rid:
                self.selected_roi = None
                self.selection_changed.emit(None)
            self.rois_changed.emit()

    def clear_rois(self) -> None:
        if self.rois:
            self._remember()
            self.rois = []
            self.selected_roi = None
            self.selection_changed.emit(None)
            self.rois_changed.emit()

    def select_roi(self, rid: int | None) -> None:
        if rid != self.selected_roi:
            self.selected_roi = rid
            self.selection_changed.emit(rid)

    def set_feather(self, feather: float) -> None:
        feather = max(0.0, float(feather))
        if feather != self.feather:
            self.feather = feather
            self.feather_changed.emit(feather)

    def roi_set(self) -> RoiSet:
        """The ROIs as core.roi sees them (copies, so a running job is not changed under it)."""
        return RoiSet([_copy_shape(e.shape) for e in self.rois], self.feather)

    def set_roi_set(self, rois: RoiSet, *, append: bool = False) -> None:
        """Replace (or extend) the ROIs, e.g. from a ROI file or the blurred-region detector."""
        self._remember()
        if not append:
            self.rois = []
        for shape in rois.rois:
            self.rois.append(RoiEntry(next(self._ids), shape))
        self.selected_roi = None
        if not append:
            self.set_feather(rois.feather)
        self.selection_changed.emit(None)
        self.rois_changed.emit()

    # ------------------------------------------------------------------ results
    def add_result(self, **kwargs: Any) -> Result:
        result = Result(id=next(self._result_ids), **kwargs)
        self.results.append(result)
        self.current_result = result.id
        self.results_changed.emit()
        self.current_result_changed.emit(result.id)
        return result

    def result(self, rid: int | None = None) -> Result | None:
        rid = self.current_result if rid is None else rid
        return next((r for r in self.results if r.id == rid), None)

    def select_result(self, rid: int | None) -> None:
        if rid != self.current_result:
            self.current_result = rid
            self.current_result_changed.emit(rid)

    def remove_result(self, rid: int) -> None:
        self.results = [r for r in self.results if r.id != rid]
        if self.current_result == rid:
            self.current_result = self.results[-1].id if self.results else None
            self.current_result_changed.emit(self.current_result)
        self.results_changed.emit()

    # ------------------------------------------------------------------ model choice
    def set_model(self, name: str, params: dict[str, Any] | None = None,
                  weights: Path | None = None) -> None:
        if self.adapted is not None and (name != self.model_name or weights != self.weights):
            self.set_adapted(None)
        self.model_name = name
        self.model_params = dict(params or {})
        self.weights = weights
        self.model_changed.emit()

    def set_adapted(self, adapted: Any) -> None:
        """Use `adapted` (a `core.adaptation.Adapted` of the current model) for the next runs;
        None: the model as it was."""
        self.adapted = adapted
        self.adapted_changed.emit()

    def set_seed(self, seed: int) -> None:
        self.seed = int(seed)

    def set_busy(self, busy: bool) -> None:
        if busy != self.busy:
            self.busy = busy
            self.busy_changed.emit(busy)

