"""Restoration off the GUI thread: load the model, call core.engine.restore, report progress.

The window must stay responsive during a run that can take minutes (a DDPM on a CPU), and Cancel
must take effect within one tile batch. A :class:`RestoreJob` runs in its own QThread; it never
touches the widgets or the state: progress, the result and errors travel back as Qt signals,
which Qt queues onto the GUI thread.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6 import QtCore

from core.trust import disagreement_map, region_checks
from core.provenance import attach, record
from core.roi import RoiSet, work_megapixels
from deblur_gui.state import describe_plane
from core.defaults import DEFAULT_OVERLAP, DEFAULT_TILE

__all__ = ["RunRequest", "RunOutput", "CancellableJob", "RestoreJob", "plain_error"]


@dataclass
class RunRequest:
    """Everything a run needs, copied from the state so later edits cannot change it mid-run."""

    image: Any                                  # core.io.Image
    model: str
    params: dict[str, Any]
    rois: RoiSet | None
    device: str = "auto"
    weights: Path | None = None
    tile: int = DEFAULT_TILE
    overlap: int = DEFAULT_OVERLAP
    seed: int = 0
    plane_index: tuple | None = None            # restore only this plane (None: every plane)
    plane_axes: str = "YX"                      # axes of one plane ("YX" or "YXS")
    plane_description: str = ""
    shown_index: tuple | None = None            # the plane on screen: the trust check runs there
    roi_labels: list[str] = field(default_factory=list)
    adapted: Any = None                         # core.adaptation.Adapted to run instead of the weights


@dataclass
class RunOutput:
    data: np.ndarray                            # the whole restored array, original shape and dtype
    image: Any                                  # core.io.Image with that data
    seconds: float                              # the whole run, loading the model included
    load_seconds: float                         # of which loading the model
    device_label: str
    megapixels: float                           # area actually computed, for the speed estimate
    checks: list[tuple[str, str, str]]          # per ROI on the shown plane: (label, blur, verdict)
    trust_map: np.ndarray | None = None         # bool (Y, X): where the input does not explain the result
    note: str = ""                              # what the model measured (RL: the blur radius)


def plain_error(exc: BaseException) -> str:
    """One short sentence for a biologist; the traceback goes to the Details box."""
    from core.crash_report import is_out_of_memory

    text = str(exc).strip() or exc.__class__.__name__
    if is_out_of_memory(exc):
        return ("There was not enough memory for this run. Try a smaller tile size, fewer regions, "
                "or the CPU.")
    if isinstance(exc, (ValueError, OSError, KeyError)):
        return text
    return f"The restoration stopped because of an unexpected problem: {text}"


class CancellableJob(QtCore.QThread):
    """Work on a worker thread that ends in exactly one of finished_ok(result),
    failed(message, details) or cancelled(); subclasses implement `_run` and check
    `cancel_event` (core's engine and adaptation take it as `cancel`)."""

    finished_ok = QtCore.Signal(object)
    failed = QtCore.Signal(str, str)
    cancelled = QtCore.Signal()

    def __init__(self, request: Any, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.request = request
        self.cancel_event = threading.Event()

    def cancel(self) -> None:
        """Ask the work to stop at its next check (a tile batch, a training step)."""
        self.cancel_event.set()

    def run(self) -> None:  # runs on the worker thread
        from core.engine import Cancelled

        try:
            output = self._run()
        except Cancelled:
            self.cancelled.emit()
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a message, never a crash
            if self.cancel_event.is_set():
                self.cancelled.emit()
            else:
                self.failed.emit(plain_error(exc), traceback.format_exc())
        else:
            if self.cancel_event.is_set():
                self.cancelled.emit()
            else:
                self.finished_ok.emit(output)

    def _run(self) -> Any:
        raise NotImplementedError


class RestoreJob(CancellableJob):
    """One restoration run on a worker thread.

    Signals: progress(done, total), status(text), and those of `CancellableJob`.
    """

    progress = QtCore.Signal(int, int)
    status = QtCore.Signal(str)

    def _run(self) -> RunOutput:
        from core import engine
        from core.devices import device_label
        from core.models.registry import load_model

        req = self.request
        t0 = time.perf_counter()
        self.status.emit(f"Loading {req.model}...")
        if req.adapted is not None:
            model = req.adapted.restorer(req.device, **req.params)
        else:
            model = load_model(req.model, weights=req.weights, device=req.device, **req.params)
        load_seconds = time.perf_counter() - t0
        if self.cancel_event.is_set():
            raise engine.Cancelled("cancelled by the user")
        self.status.emit(f"Restoring with {req.model}...")
        original = req.image.data

        def progress(done: int, total: int) -> None:
            self.progress.emit(int(done), int(total))

        common = dict(tile=req.tile, overlap=req.overlap, seed=req.seed, progress=progress,
                      cancel=self.cancel_event)
        if req.plane_index is None:
            restored = engine.restore(req.image, model, req.rois, **common)
            data = np.asarray(getattr(restored, "data", restored))
            n_planes = int(np.prod([n for a, n in zip(req.image.axes, original.shape)
                                    if a not in "YXS"] or [1]))
        else:
            plane = original[req.plane_index]
            new_plane = engine.restore(plane, model, req.rois, axes=req.plane_axes, **common)
            data = original.copy()
            data[req.plane_index] = new_plane
            n_planes = 1
        seconds = time.perf_counter() - t0

        checks, trust_map = _check_rows(req, original, data)

        h, w = original.shape[req.image.axes.index("Y")], original.shape[req.image.axes.index("X")]
        rec = record(model=req.model, weights=req.weights, params=req.params, rois=req.rois,
                     seed=req.seed, tile=req.tile, overlap=req.overlap, device=req.device,
                     source=req.image.path, planes=req.plane_description)
        if req.adapted is not None:
            rec["adapted"] = req.adapted.provenance()
        image = attach(_with_data(req.image, data), rec)
        return RunOutput(data=data, image=image, seconds=seconds, load_seconds=load_seconds,
                         device_label=device_label(model.device),
                         megapixels=work_megapixels(req.rois, (h, w)) * n_planes,
                         checks=checks, trust_map=trust_map, note=getattr(model, "psf_note", ""))


#: planes of a stack whose regions are checked after a run of every plane (each check measures
#: the blur, ~1 s per region)
MAX_CHECKED_PLANES = 8


def _rows(before: np.ndarray, after: np.ndarray, req: RunRequest, where: str = "",
          ) -> tuple[list[tuple[str, str, str]], np.ndarray]:
    reports = region_checks(before, after, req.rois, req.roi_labels)
    rows = [((f"{where} \u2014 " if where else "") + r.label, r.estimate.words(), r.check.words())
            for r in reports]
    return rows, disagreement_map(reports, before.shape[:2])


def _check_rows(req: RunRequest, original: np.ndarray, data: np.ndarray,
                ) -> tuple[list[tuple[str, str, str]], np.ndarray | None]:
    """Per region: the measured blur and the trust check (core.trust), on the restored plane,
    or, when every plane was restored, on the first planes (labelled 'Z 2, GFP \u2014 Region 1');
    and the map of what the input does not explain, on the plane shown."""
    axes = req.image.axes
    stack_axes = [(a, n) for a, n in zip(axes, original.shape) if a not in "YXS"]
    if req.plane_index is not None or not stack_axes:
        shown = req.plane_index or req.shown_index
        if shown is None:
            shown = tuple(0 if a not in "YXS" else slice(None) for a in axes)
        return _rows(original[shown], data[shown], req)
    names = req.image.metadata.get("channel_names")
    rows, shown_map = [], None
    for k, pos in enumerate(np.ndindex(*[n for _, n in stack_axes])):
        if k >= MAX_CHECKED_PLANES:
            break
        plane = dict(zip([a for a, _ in stack_axes], pos))
        index = tuple(plane.get(a, slice(None)) for a in axes)
        more, plane_map = _rows(original[index], data[index], req, describe_plane(plane, names))
        rows += more
        if req.shown_index is None and shown_map is None or index == req.shown_index:
            shown_map = plane_map
    return rows, shown_map


def _with_data(image: Any, data: np.ndarray) -> Any:
    """A copy of the Image record holding `data`.

    It keeps the original's path on purpose: core.io.write_image refuses to write onto that
    path, so a restored image can never replace the file it came from.
    """
    import dataclasses

    if hasattr(image, "with_data"):
        return image.with_data(data)
    return dataclasses.replace(image, data=data)
