"""Learning from the image's sharp areas, off the GUI thread.

An :class:`AdaptJob` calls ``core.adaptation.adapt`` in its own QThread with a cancel event,
and reports progress (seconds of the time budget), the adapted model, a plain failure or the
cancel as Qt signals. The box that starts it (:class:`AdaptBox`) sits above Restore: the
button, how long to learn, what the adapted model did on areas it did not train on, and
Save / Use the shipped model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6 import QtCore, QtWidgets

from deblur_gui.state import AppState
from deblur_gui.worker import CancellableJob

__all__ = ["AdaptRequest", "AdaptJob", "AdaptBox", "Declined"]


@dataclass
class AdaptRequest:
    """What an adaptation needs, copied from the state when it starts."""

    image: Any                  # core.io.Image, or one plane (ndarray, YX or YXS)
    image_name: str
    rois: Any                   # RoiSet
    model: str
    weights: Any
    device: str
    seconds: float
    seed: int = 0


@dataclass
class Declined:
    """Learning did not start because this image offers nothing sure to learn (the regions look
    sharp or are only slightly blurred, too little is in focus): not an error, the shipped model
    restores. `reason` says why in plain words."""

    reason: str


class AdaptJob(CancellableJob):
    """One adaptation. Signals: progress(done_s, total_s), finished_ok(Adapted or Declined),
    failed, cancelled (`CancellableJob`); a cancel stops after the training step in progress."""

    progress = QtCore.Signal(float, float)

    def _run(self) -> Any:
        from core.adaptation import AdaptError, AdaptSettings, adapt

        req = self.request
        try:
            return adapt(req.image, req.rois, model=req.model, weights=req.weights,
                         settings=AdaptSettings(seconds=req.seconds, seed=req.seed),
                         image_name=req.image_name, device=req.device,
                         progress=lambda d, t: self.progress.emit(float(d), float(t)),
                         cancel=self.cancel_event)
        except AdaptError as exc:
            return Declined(str(exc))


class AdaptBox(QtWidgets.QWidget):
    """The "Learn from this image's sharp areas" action and what it left.

    Signals: adapt_requested(seconds), save_requested().
    """

    adapt_requested = QtCore.Signal(float)
    save_requested = QtCore.Signal()
    HELP = ("Fine-tune the model on the in-focus parts of this image (outside the marked "
            "regions), blurred the way the regions are blurred, then restore with it. The "
            "original image is not changed. It learns only for regions blurred by 6 px or more "
            "(on milder blur it made results worse in our tests), and on our test images it was "
            "no better than the shipped COMI on average: compare with the plain result before "
            "you keep it.")

    def __init__(self, state: AppState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 4)
        row = QtWidgets.QHBoxLayout()
        self.button = QtWidgets.QPushButton("Learn from this image's sharp areas")
        self.button.setToolTip(self.HELP)
        self.seconds = QtWidgets.QSpinBox()
        self.seconds.setRange(15, 900)
        self.seconds.setSingleStep(15)
        self.seconds.setValue(75)
        self.seconds.setSuffix(" s")
        self.seconds.setToolTip("How long to learn (longer can help a little more)")
        row.addWidget(self.button, 1)
        row.addWidget(self.seconds)
        lay.addLayout(row)
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: #9aa0a6;")
        lay.addWidget(self.status)
        row2 = QtWidgets.QHBoxLayout()
        self.save_btn = QtWidgets.QPushButton("Save adapted model\u2026")
        self.forget_btn = QtWidgets.QPushButton("Use the shipped model")
        row2.addWidget(self.save_btn)
        row2.addWidget(self.forget_btn)
        lay.addLayout(row2)
        self.note = ""               # why the last try did not learn (until something changes)
        self.button.clicked.connect(lambda: self.adapt_requested.emit(float(self.seconds.value())))
        self.save_btn.clicked.connect(self.save_requested)
        self.forget_btn.clicked.connect(lambda: self.state.set_adapted(None))
        for sig in (state.image_changed, state.rois_changed, state.model_changed,
                    state.adapted_changed):
            sig.connect(self._changed)
        state.busy_changed.connect(lambda busy: self.refresh())
        self.refresh()

    def show_declined(self, reason: str) -> None:
        """Say under the button why nothing was learned (until the image, regions or model
        change)."""
        self.note = f"Not learned: {reason}. Restore uses the shipped model."
        self.refresh()

    def _changed(self, *args: object) -> None:
        self.note = ""
        self.refresh()

    def can_adapt(self) -> tuple[bool, str]:
        """Whether learning can start now, and if not why (the button's tooltip)."""
        from core.adaptation import ADAPTABLE

        if self.state.busy:
            return False, "A run is in progress."
        if self.state.image is None:
            return False, "Open an image first."
        if self.state.model_name not in ADAPTABLE:
            return False, "Learning from the image is available for COMI."
        if not self.state.rois:
            return False, ("Mark the blurred regions first: the model learns from the sharp "
                           "areas outside them.")
        return True, ""

    def refresh(self, *args: object) -> None:
        from core.adaptation import ADAPTABLE

        shown = self.state.model_name in ADAPTABLE
        self.setVisible(shown)
        ok, why = self.can_adapt()
        self.button.setEnabled(ok)
        self.seconds.setEnabled(ok)
        self.button.setToolTip(why or self.HELP)
        adapted = self.state.adapted
        self.save_btn.setVisible(adapted is not None and not adapted.kept_original)
        self.forget_btn.setVisible(adapted is not None)
        self.save_btn.setEnabled(not self.state.busy)
        self.forget_btn.setEnabled(not self.state.busy)
        if adapted is None:
            self.status.setText(self.note)
        elif adapted.kept_original:
            self.status.setText(f"Learning from {adapted.image_name} did not help on its sharp "
                                "areas it did not train on: the shipped model is used.")
        else:
            self.status.setText(
                f"Restore uses the model adapted to {adapted.image_name} ({adapted.steps} "
                f"steps). On sharp areas it did not train on: {adapted.held_out_before_db:.1f} "
                f"dB before, {adapted.held_out_after_db:.1f} dB after.")
        self.status.setVisible(bool(self.status.text()))
