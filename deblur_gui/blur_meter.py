"""How blurred each marked region is, measured in the background while the user marks them.

The list of regions shows "about 6 px blur" or "looks sharp" beside each region before any run,
so a user sees at once that a region they marked is in fact sharp, or how far out of focus it is
(core.blur_estimate: each region against the image's own in-focus areas). Measuring takes about
a second per region, so it runs on a worker thread, a moment after the last edit; results for a
set of regions that has changed since are dropped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6 import QtCore

from deblur_gui.state import AppState
from deblur_gui.worker import CancellableJob

__all__ = ["BlurMeter", "MeasureJob"]

#: wait this long after the last change of the regions before measuring (ms)
DELAY_MS = 600


class MeasureJob(CancellableJob):
    """Blur estimates of a set of regions on one plane: request (plane, RoiSet, ids)."""

    def _run(self) -> dict[int, Any]:
        from core.blur_estimate import estimate_regions

        plane, rois, ids = self.request
        return dict(zip(ids, estimate_regions(plane, rois)))


class BlurMeter(QtCore.QObject):
    """Keeps `estimates` (region id -> core BlurEstimate) up to date with the state's regions
    and shown plane; `changed` is emitted when they change (also when they are cleared)."""

    changed = QtCore.Signal()

    def __init__(self, state: AppState, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.estimates: dict[int, Any] = {}
        self.measuring = False
        self._job: MeasureJob | None = None
        self._key: tuple | None = None          # what the current estimates were measured for
        self._image_gen = 0
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DELAY_MS)
        self._timer.timeout.connect(self._start)
        state.rois_changed.connect(self.schedule)
        state.plane_changed.connect(self.schedule)
        state.image_changed.connect(self._on_image)

    def _on_image(self, *_: Any) -> None:
        self._image_gen += 1
        self.schedule()

    def _wanted(self) -> tuple | None:
        s = self.state
        if s.image is None or not s.rois:
            return None
        return (self._image_gen, s.plane_index(), s.merge_channels,
                tuple((e.id, repr(e.shape)) for e in s.rois))

    def schedule(self, *_: Any) -> None:
        """The regions or the plane changed: forget what no longer applies, measure soon.
        An estimate stays while its region's shape and the plane stay (another region moving
        changes it little), until the new measurement replaces it."""
        wanted = self._wanted()
        if wanted is None:
            self._timer.stop()
            if self.estimates or self.measuring:
                self.estimates, self.measuring = {}, False
                self.changed.emit()
            return
        if wanted == self._key:
            return
        same = self._key is not None and wanted[:3] == self._key[:3]
        now, before = dict(wanted[3]), dict(self._key[3]) if same else {}
        self.estimates = {rid: est for rid, est in self.estimates.items()
                          if same and rid in now and now[rid] == before.get(rid)}
        self.measuring = True
        self.changed.emit()
        self._timer.start()

    def _start(self) -> None:
        wanted = self._wanted()
        if wanted is None:
            return
        if self._job is not None:              # one at a time; the newest request follows it
            self._timer.start()
            return
        plane = np.asarray(self.state.current_plane())
        job = MeasureJob((plane, self.state.roi_set(), [e.id for e in self.state.rois]), self)
        job.finished_ok.connect(lambda result, key=wanted: self._done(key, result))
        job.failed.connect(lambda *_a, key=wanted: self._done(key, {}))
        job.finished.connect(self._job_ended)
        self._job = job
        job.start()

    def _job_ended(self) -> None:
        if self._job is not None:
            self._job.deleteLater()
        self._job = None

    def _done(self, key: tuple, result: dict[int, Any]) -> None:
        if key != self._wanted():              # the regions changed while measuring: the
            return                             # timer started by that change measures again
        self._key = key
        self.estimates = result
        self.measuring = False
        self.changed.emit()

    def wait(self, msecs: int = 30000) -> bool:
        """Finish any measuring now (a test, or closing the window); True when idle."""
        if self._timer.isActive():
            self._timer.stop()
            self._start()
        if self._job is not None:
            ok = self._job.wait(msecs)
            QtCore.QCoreApplication.processEvents()
            return ok
        return True

    def shutdown(self) -> None:
        """Stop measuring for good (the window closes): no thread outlives it."""
        self._timer.stop()
        self.state.rois_changed.disconnect(self.schedule)
        self.state.plane_changed.disconnect(self.schedule)
        self.state.image_changed.disconnect(self._on_image)
        if self._job is not None:
            self._job.cancel()
            self._job.wait()
