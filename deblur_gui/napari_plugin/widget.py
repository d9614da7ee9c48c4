"""The "deblur" dock widget: pick an image layer and a regions (shapes) layer, a model and its
settings, and restore; the result is a new layer over the original, which is never changed.

All the work is core's: `core.engine.restore` in a napari worker thread (progress, cancel
within a tile), `core.blurred_regions.auto_rois` for Detect, `core.shape_layers` for the
regions. Qt through qtpy, as napari itself, so the plugin runs on napari's Qt binding.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from qtpy import QtCore, QtWidgets

from core.defaults import DEFAULT_FEATHER, DEFAULT_OVERLAP, DEFAULT_TILE
from core.models.registry import check_params, default_model_name, get_entry, list_entries
from core.models.spec import ModelEntry
from deblur_gui.param_widgets import param_editor, param_value
from deblur_gui.napari_plugin.layers import FEATHER_KEY, LayerError, image_array, layer_rois, result_kwargs

__all__ = ["DeblurWidget", "WHOLE_IMAGE"]

WHOLE_IMAGE = "Whole image"


@dataclass
class Job:
    """One restoration, everything read from the layers before the worker starts."""

    data: np.ndarray
    axes: str
    rois: Any
    model: str
    params: dict
    seed: int
    source: Any            # the image layer
    source_path: str


class _Progress(QtCore.QObject):
    """Carries the engine's progress from the worker thread to the progress bar."""

    changed = QtCore.Signal(int, int)


class DeblurWidget(QtWidgets.QWidget):
    """napari dock widget (npe2 command ``deblur.restore_widget``)."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.entries: dict[str, ModelEntry] = {
            e.name: e for e in list_entries() if not e.needs_weights or e.has_weights()}
        self.param_widgets: dict[str, QtWidgets.QWidget] = {}
        self.worker = None
        self.cancel_event = threading.Event()
        self.progress_signal = _Progress()
        self.progress_signal.changed.connect(self._on_progress)
        self.last_result = None          # the layer the last run added (tests, scripts)

        form = QtWidgets.QFormLayout()
        self.image_combo = QtWidgets.QComboBox()
        self.regions_combo = QtWidgets.QComboBox()
        self.detect_btn = QtWidgets.QPushButton("Detect blurred regions")
        self.detect_btn.setToolTip("Find the out-of-focus areas of the image and draw them as a "
                                   "new regions layer (check and edit them before restoring)")
        self.model_combo = QtWidgets.QComboBox()
        for e in self.entries.values():
            self.model_combo.addItem(e.display_name, e.name)
        self.params_box = QtWidgets.QWidget()
        self.params_form = QtWidgets.QFormLayout(self.params_box)
        self.params_form.setContentsMargins(0, 0, 0, 0)
        self.feather = QtWidgets.QDoubleSpinBox()
        self.feather.setRange(0, 500)
        self.feather.setValue(DEFAULT_FEATHER)
        self.feather.setToolTip("How many pixels inside each region the restored image fades into "
                                "the original (pixels outside every region are never changed)")
        self.seed = QtWidgets.QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Random seed (the diffusion model samples; same seed, same result)")
        form.addRow("Image", self.image_combo)
        form.addRow("Regions", self.regions_combo)
        form.addRow("", self.detect_btn)
        form.addRow("Model", self.model_combo)
        form.addRow(self.params_box)
        form.addRow("Edge softness (px)", self.feather)
        form.addRow("Seed", self.seed)

        self.restore_btn = QtWidgets.QPushButton("Restore")
        self.cancel_btn = QtWidgets.QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.restore_btn)
        buttons.addWidget(self.cancel_btn)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)         # no "0 %" while nothing runs
        self.status = QtWidgets.QLabel("Choose an image and its blurred regions, then Restore.")
        self.status.setWordWrap(True)

        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.model_combo.currentIndexChanged.connect(self._model_changed)
        self.regions_combo.currentIndexChanged.connect(self._regions_changed)
        self.detect_btn.clicked.connect(self.detect)
        self.restore_btn.clicked.connect(self.restore)
        self.cancel_btn.clicked.connect(self.cancel)
        events = self.viewer.layers.events
        for ev in (events.inserted, events.removed, events.reordered):
            ev.connect(self._refresh_layers)
        default = default_model_name()
        index = self.model_combo.findData(default)
        self.model_combo.setCurrentIndex(max(0, index))
        self._model_changed()
        self._refresh_layers()

    # ------------------------------------------------------------------ layers and settings

    def _layers(self, kind: str) -> list[Any]:
        return [layer for layer in self.viewer.layers if type(layer).__name__ == kind]

    def _refresh_layers(self, *_: Any) -> None:
        for combo, kind, extra in ((self.image_combo, "Image", []),
                                   (self.regions_combo, "Shapes", [WHOLE_IMAGE])):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems([layer.name for layer in self._layers(kind)] + extra)
            if combo.findText(current) >= 0:
                combo.setCurrentText(current)
            combo.blockSignals(False)
        self._regions_changed()

    def _layer(self, kind: str, name: str) -> Any | None:
        return next((layer for layer in self._layers(kind) if layer.name == name), None)

    def _regions_changed(self, *_: Any) -> None:
        shapes = self._layer("Shapes", self.regions_combo.currentText())
        if shapes is not None and FEATHER_KEY in shapes.metadata:
            self.feather.setValue(float(shapes.metadata[FEATHER_KEY]))

    def _model_changed(self, *_: Any) -> None:
        while self.params_form.rowCount():
            self.params_form.removeRow(0)
        self.param_widgets = {}
        entry = self.entries.get(self.model_combo.currentData())
        if entry is None:
            return
        self.model_combo.setToolTip(entry.summary)
        for name, p in entry.params.items():
            w = param_editor(p, p.default, qt=QtWidgets)
            self.param_widgets[name] = w
            self.params_form.addRow(p.label or name.replace("_", " ").capitalize(), w)
        self.seed.setEnabled(entry.kind == "diffusion")

    def settings(self) -> dict:
        """The chosen model's settings, checked by the registry (ValueError in plain words)."""
        entry = get_entry(self.model_combo.currentData())
        return check_params(entry, {k: param_value(w) for k, w in self.param_widgets.items()})

    # ------------------------------------------------------------------ actions

    def _notify(self, kind: str, message: str) -> None:
        from napari.utils import notifications

        self.status.setText(message)
        {"error": notifications.show_error, "warning": notifications.show_warning,
         "info": notifications.show_info}[kind](message)

    def _image_layer(self) -> Any:
        layer = self._layer("Image", self.image_combo.currentText())
        if layer is None:
            raise LayerError("Open an image first (File > Open, or File > Open Sample > deblur).")
        return layer

    def detect(self) -> None:
        """Add a shapes layer with the blurred regions the focus map finds."""
        from core.blurred_regions import auto_rois
        from core.image import Image
        from core.shape_layers import shapes_from_rois

        try:
            layer = self._image_layer()
            data, axes = image_array(layer)
        except LayerError as exc:
            self._notify("error", str(exc))
            return
        rois = auto_rois(Image(data=data, axes=axes))
        if not rois.rois:
            self._notify("info", f"No blurred region found in '{layer.name}'.")
            return
        shapes, types = shapes_from_rois(rois)
        added = self.viewer.add_shapes(
            shapes, shape_type=types, name=f"{layer.name}: blurred regions", scale=layer.scale[-2:],
            translate=layer.translate[-2:], edge_color="yellow", face_color="transparent",
            edge_width=2, metadata={FEATHER_KEY: rois.feather})
        self.regions_combo.setCurrentText(added.name)
        self._notify("info", f"Found {len(rois.rois)} blurred region(s) in '{layer.name}': check "
                             "them, edit if needed, then Restore.")

    def make_job(self) -> Job:
        """Everything a run needs, read and checked on the main thread (LayerError/ValueError)."""
        layer = self._image_layer()
        data, axes = image_array(layer)
        rois = None
        regions = self.regions_combo.currentText()
        if regions != WHOLE_IMAGE:
            shapes = self._layer("Shapes", regions)
            if shapes is None:
                raise LayerError("Choose a regions layer, or Whole image.")
            rois, skipped = layer_rois(shapes, layer, feather=self.feather.value())
            if skipped:
                self._notify("warning", f"Skipped {len(skipped)} shape(s): " + "; ".join(skipped))
        return Job(data=data, axes=axes, rois=rois, model=self.model_combo.currentData(),
                   params=self.settings(), seed=self.seed.value(), source=layer,
                   source_path=str(layer.metadata.get("path") or layer.source.path or layer.name))

    def restore(self) -> None:
        """Start a restoration in a worker thread; the result arrives as a new layer."""
        from napari.qt.threading import create_worker

        if self.worker is not None:
            return
        try:
            job = self.make_job()
        except (LayerError, ValueError) as exc:
            self._notify("error", str(exc))
            return
        self.cancel_event.clear()
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(True)
        self.restore_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.status.setText(f"Restoring '{job.source.name}' with "
                            f"{self.entries[job.model].display_name}\u2026")
        self.worker = create_worker(self._run, job, _start_thread=False, _connect={
            "returned": lambda outcome: self._done(job, outcome),
            "errored": self._failed, "finished": self._finished})
        self.worker.start()

    def cancel(self) -> None:
        self.cancel_event.set()
        self.status.setText("Cancelling after the current tile\u2026")

    def _run(self, job: Job) -> tuple[str, Any]:
        """Worker thread: load the model and restore (core only). Expected endings (done,
        cancelled, a plain error) are returned, not raised: ("done", image), ("cancelled", None),
        ("error", message)."""
        from core.devices import DeviceError
        from core.engine import Cancelled, restore
        from core.models.registry import load_model

        try:
            model = load_model(job.model, device="auto", **job.params)
            out = restore(job.data, model, job.rois, axes=job.axes, seed=job.seed,
                          progress=lambda done, total: self.progress_signal.changed.emit(done, total),
                          cancel=self.cancel_event)
        except Cancelled:
            return "cancelled", None
        except (ValueError, DeviceError, MemoryError) as exc:
            return "error", f"Could not restore: {exc}"
        return "done", out

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    def _done(self, job: Job, outcome: tuple[str, Any]) -> None:
        from core.provenance import record

        kind, out = outcome
        if kind == "cancelled":
            self._notify("info", "Cancelled; no layer was added.")
            return
        if kind == "error":
            self._notify("error", out)
            return
        rec = record(model=job.model, weights=None, params=job.params, rois=job.rois,
                     seed=job.seed, tile=DEFAULT_TILE, overlap=DEFAULT_OVERLAP, device="auto", source=job.source_path)
        name = f"{job.source.name} (deblur {self.entries[job.model].display_name})"
        self.last_result = self.viewer.add_image(out, **result_kwargs(job.source, name, {"deblur": rec}))
        layers = self.viewer.layers
        if job.source in layers:     # just above the original: the regions stay drawn on top
            layers.move(layers.index(self.last_result), layers.index(job.source) + 1)
        self.status.setText(f"Done: '{name}' added; '{job.source.name}' is unchanged.")

    def _failed(self, exc: BaseException) -> None:
        """An unexpected failure (a bug): one message, the widget stays usable."""
        self._notify("error", f"Could not restore ({type(exc).__name__}: {exc}); no layer was added.")

    def _finished(self) -> None:
        self.worker = None
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.restore_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)
