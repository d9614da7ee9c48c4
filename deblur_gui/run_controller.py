"""Running a restoration from the window: the request, the worker thread, progress and time
left, cancel, and the bookkeeping when it ends (the result, the measured speed).

The window builds one `RunController`, puts its progress widgets in the status bar and listens
to two signals: `result_ready` (show the new result) and `finished` ("done", "failed" or
"cancelled"). The pixels are restored by ``deblur_gui.worker.RestoreJob`` over ``core``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

from PySide6 import QtCore, QtWidgets

from core.trust import region_line
from deblur_gui.model_panel import ModelPanel
from deblur_gui.settings import Settings
from deblur_gui.state import AppState, describe_params, format_duration, roi_label
from deblur_gui.worker import RestoreJob, RunOutput, RunRequest

__all__ = ["RunController", "time_left", "image_name"]

log = logging.getLogger("deblur.gui")


def time_left(done: int, total: int, did: int, elapsed: float, expected: float | None,
              since_start: float) -> float:
    """Seconds left: the progress so far (`did` tiles in `elapsed` s) extrapolated, blended with
    what this machine measured for the model and settings (`expected` s for the whole run,
    `since_start` s gone). Early ticks say little (a diffusion model's first pass is its
    cheapest), so the record counts most at first and the progress most near the end."""
    by_progress = elapsed / max(did, 1) * (total - done)
    if expected is None:
        return by_progress
    share = done / max(total, 1)
    return share * by_progress + (1 - share) * max(0.0, expected - since_start)


def image_name(image) -> str:
    """The image's file name, for messages and the adapted model's card."""
    path = getattr(image, "path", None)
    return Path(path).name if path else "the image"


class RunController(QtCore.QObject):
    """Starts, follows and ends restoration runs for the window.

    Parameters
    ----------
    state, settings, model_panel : what a run reads (image, regions, model, settings) and where
        its outcome goes (the result list, the measured speed, the panel's estimate).
    show_status : shows a short line in the status bar for a number of ms (0: until replaced).
    show_error : shows a message (and details on demand) to the user.
    """

    finished = QtCore.Signal(str)          # "done", "failed", "cancelled", or after learning
                                           # from the image "adapted" or "declined"
    result_ready = QtCore.Signal(object)   # the state's new Result
    adapt_declined = QtCore.Signal(str)    # why learning from the image did not start

    def __init__(self, state: AppState, settings: Settings, model_panel: ModelPanel,
                 show_status: Callable[[str, int], None], show_error: Callable[[str, str], None],
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.state, self.settings, self.model_panel = state, settings, model_panel
        self.show_status, self.show_error = show_status, show_error
        self.job: RestoreJob | None = None
        self._progress_started: float | None = None
        self._run_started = 0.0
        self._expected: float | None = None
        self._progress_first_done = 0
        self.progress = QtWidgets.QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.eta = QtWidgets.QLabel("")
        self.cancel_btn = QtWidgets.QPushButton("Cancel")
        self.cancel_btn.clicked.connect(self.cancel)
        for w in self.widgets():
            w.setVisible(False)

    def widgets(self) -> tuple[QtWidgets.QWidget, ...]:
        """The progress bar, the time-left label and the Cancel button (for the status bar)."""
        return self.progress, self.eta, self.cancel_btn

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.isRunning()

    # ------------------------------------------------------------------ start / cancel
    def start(self) -> bool:
        """Start restoring on a worker thread; False (with a message) if it cannot start."""
        ok, why = self.model_panel.can_run()
        if not ok:
            if self.state.image is not None and not self.state.busy:
                self.show_error(why, "")
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
            seed=self.state.seed, adapted=self._adapted(),
        )
        job = RestoreJob(req, self)
        job.progress.connect(self._on_progress)
        job.status.connect(lambda text: self.show_status(text, 0))
        job.finished_ok.connect(self._on_done)
        job.failed.connect(self._on_failed)
        job.cancelled.connect(self._on_cancelled)
        self.job = job
        self._progress_started = None
        self._run_started = time.perf_counter()
        self._expected = self.model_panel.expected_seconds()
        self.state.set_busy(True)
        self.progress.setRange(0, 0)
        self.progress.setFormat("Starting\u2026")
        self.eta.setText("")
        for w in self.widgets():
            w.setVisible(True)
        what = f"{len(rois.rois)} region(s)" if rois else "the whole image"
        where = req.plane_description or ("all planes" if stack else "")
        params = describe_params(req.model, req.params)
        log.info("Restoring %s%s with %s (%s) on %s", what, f" [{where}]" if where else "", req.model,
                 params or "defaults", self.state.device)
        job.start()
        return True

    def _adapted(self):
        """The adapted model Restore runs with (None: the model's own weights)."""
        a = self.state.adapted
        return a if a is not None and not a.kept_original and a.model == self.state.model_name \
            else None

    def start_adapt(self, seconds: float) -> bool:
        """Learn from the image's sharp areas on a worker thread (progress, Cancel)."""
        from deblur_gui.adapt_job import AdaptJob, AdaptRequest

        if self.running or self.state.image is None or not self.state.rois:
            return False
        image = self.state.image
        if self.state.plane_axes() and not self.state.all_planes:
            image = image.data[self.state.plane_index()]        # the plane that is restored
        name = image_name(self.state.image)
        req = AdaptRequest(image=image, image_name=name, rois=self.state.roi_set(),
                           model=self.state.model_name, weights=self.state.weights,
                           device=self.state.device, seconds=float(seconds), seed=self.state.seed)
        job = AdaptJob(req, self)
        job.progress.connect(self._on_adapt_progress)
        job.finished_ok.connect(self._on_adapted)
        job.failed.connect(self._on_failed)
        job.cancelled.connect(lambda: self._on_cancelled("Learning from the image cancelled; "
                                                         "the model is unchanged."))
        self.job = job
        self.state.set_busy(True)
        self.progress.setRange(0, 0)
        self.progress.setFormat("Learning\u2026")
        self.eta.setText("")
        for w in self.widgets():
            w.setVisible(True)
        log.info("Learning from the sharp areas of %s for about %.0f s", name, seconds)
        job.start()
        return True

    def _on_adapt_progress(self, done: float, total: float) -> None:
        if total <= 0:
            return
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(1000 * min(done, total) / total))
        self.progress.setFormat("Learning from the image\u2026 %p %")
        self.eta.setText(f"about {format_duration(max(0.0, total - done))} left")

    def _on_adapted(self, adapted) -> None:
        from deblur_gui.adapt_job import Declined

        self._finish()
        if isinstance(adapted, Declined):
            log.info("Not learned from the image: %s; Restore uses the shipped model",
                     adapted.reason)
            self.show_status("Not learned from this image: the shipped model is used.", 10000)
            self.adapt_declined.emit(adapted.reason)
            self.finished.emit("declined")
            return
        self.state.set_adapted(adapted)
        log.info("%s", adapted.words()[:1].upper() + adapted.words()[1:])
        self.show_status("Learned from the image: Restore now uses the adapted model."
                         if not adapted.kept_original else
                         "Learning did not help on this image: the shipped model is used.", 10000)
        self.finished.emit("adapted")

    def cancel(self) -> None:
        if self.running:
            self.job.cancel()
            self.progress.setFormat("Cancelling\u2026")
            self.cancel_btn.setEnabled(False)
            log.info("Cancelling\u2026")

    def stop_and_wait(self, ms: int = 10000) -> None:
        """Cancel a running job and wait for its thread (the window is closing)."""
        if self.running:
            self.job.cancel()
            self.job.wait(ms)

    # ------------------------------------------------------------------ while it runs
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
            remaining = time_left(done, total, did, elapsed, self._expected, now - self._run_started)
            self.eta.setText(f"about {format_duration(remaining)} left")
        elif done >= total:
            self.eta.setText("finishing\u2026")

    # ------------------------------------------------------------------ when it ends
    def _finish(self) -> None:
        self.state.set_busy(False)
        for w in self.widgets():
            w.setVisible(False)
        self.cancel_btn.setEnabled(True)
        if self.job is not None:
            self.job.wait(5000)
            self.job.deleteLater()
        self.job = None

    def _on_done(self, out: RunOutput) -> None:
        req = self.job.request if self.job is not None else None
        self._finish()
        if req is None or self.state.image is not req.image:
            return  # the image changed meanwhile (cannot happen through the UI, but be safe)
        scope = req.plane_description or ("all planes" if self.state.plane_axes() else "")
        result = self.state.add_result(model=req.model, params=req.params, device=out.device_label,
                                       image=out.image, seconds=out.seconds, scope=scope,
                                       rois=req.rois, weights=req.weights, checks=out.checks,
                                       trust_map=out.trust_map,
                                       adapted_on=req.adapted.image_name if req.adapted else "",
                                       seed=req.seed if self.model_panel.is_stochastic(req.model) else None)
        compute = out.seconds - out.load_seconds
        if out.megapixels > 0 and compute > 0:
            device = self.model_panel.resolved_device()
            self.settings.set_speed(req.model, device, out.megapixels / compute, req.params)
            self.settings.set_load_seconds(req.model, device, out.load_seconds)
            self.model_panel.refresh_run()
        log.info("Done in %.1f s on %s: %s", out.seconds, out.device_label, result.label)
        if out.note:
            note = f"{out.note[0].upper()}{out.note[1:]}"
            log.info("%s", note)
            self.show_status(f"Done. {note}.", 15000)
        for label, blur, verdict in out.checks:
            log.info("  %s: %s", label, region_line(blur, verdict))
        self.result_ready.emit(result)
        self.finished.emit("done")

    def _on_failed(self, message: str, details: str) -> None:
        self._finish()
        message = self.model_panel.plain_names(message)
        log.error("Stopped: %s", message)
        self.show_error(message, details)
        self.finished.emit("failed")

    def _on_cancelled(self, what: str = "Restoration cancelled; nothing was changed.") -> None:
        self._finish()
        log.info("%s", what)
        self.show_status("Cancelled: nothing was changed.", 6000)
        self.finished.emit("cancelled")
