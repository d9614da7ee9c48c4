"""Choosing a model: the registry as a picker, its card in plain words, its settings, the device.

Everything shown comes from core.models.registry (models, parameters with their labels, ranges
and help, model cards) and core.devices, so a model added to the registry appears here with its
settings and nothing in the GUI changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtWidgets

from deblur_gui.settings import Settings
from core.models.plain import kind_words
from core.roi import work_megapixels
from deblur_gui.model_card import ModelCard
from deblur_gui.param_widgets import param_editor, param_value, set_param_value
from deblur_gui.state import AppState, format_duration

__all__ = ["ModelPanel"]


# rough speed before anything was measured on this computer, per kind, in plain words
# (docs/BENCHMARKS.md: a 2-core CPU, and an NVIDIA H200 with --device cuda)
_GUESS = {
    "classical": "a few seconds per megapixel on a CPU",
    "gan": "under two seconds per megapixel on a CPU; a small fraction of a second on a GPU",
    "diffusion": "15 to 40 seconds per megapixel on a CPU at 2 steps (longer with more "
                 "steps); a GPU is much faster",
}


class ModelPanel(QtWidgets.QWidget):
    """Model picker, model card, parameters, tile size, device and weights.

    Signals: run_requested() when the big button is pressed; weights_requested() for Load weights.
    """

    run_requested = QtCore.Signal()
    weights_requested = QtCore.Signal()

    def __init__(self, state: AppState, settings: Settings, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.settings = settings
        self.entries: dict[str, Any] = {}
        self.param_widgets: dict[str, QtWidgets.QWidget] = {}
        self.seed_box: QtWidgets.QSpinBox | None = None
        self.sample_again_btn: QtWidgets.QPushButton | None = None
        self._loading = False

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        form = QtWidgets.QFormLayout()
        form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.combo = QtWidgets.QComboBox()
        self.combo.setToolTip("The restoration method. Each is described below.")
        self.combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(14)
        form.addRow("Model", self.combo)
        layout.addLayout(form)

        self.model_card = ModelCard()
        self.card, self.details_btn, self.details = self.model_card, self.model_card.details_btn, \
            self.model_card.details
        layout.addWidget(self.model_card)

        weights_row = QtWidgets.QHBoxLayout()
        self.weights_label = QtWidgets.QLabel()
        self.weights_label.setWordWrap(True)
        self.weights_label.setMinimumWidth(80)
        self.weights_btn = QtWidgets.QPushButton("Load weights\u2026")
        self.weights_btn.setToolTip("Use a model you trained with deblur-train (a .safetensors file) "
                                    "or a bioimage.io package that deblur exported (.zip)")
        self.builtin_btn = QtWidgets.QPushButton("Built-in")
        self.builtin_btn.setToolTip("Go back to the weights shipped with deblur")
        weights_row.addWidget(self.weights_label, 1)
        weights_row.addWidget(self.weights_btn)
        weights_row.addWidget(self.builtin_btn)
        layout.addLayout(weights_row)
        self.notice = QtWidgets.QLabel()
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("QLabel { color: #fdd663; }")
        self.notice.setVisible(False)
        layout.addWidget(self.notice)

        self.params_box = QtWidgets.QGroupBox("Settings")
        self.params_form = QtWidgets.QFormLayout(self.params_box)
        self.params_form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        layout.addWidget(self.params_box)

        run_box = QtWidgets.QGroupBox("Run")
        run_form = QtWidgets.QFormLayout(run_box)
        run_form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.device = QtWidgets.QComboBox()
        self.device.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.device.setToolTip("Where the computation runs. Auto uses a GPU when there is one.")
        run_form.addRow("Device", self.device)
        self.device_in_use = QtWidgets.QLabel()
        self.device_in_use.setStyleSheet("color: #9aa0a6;")
        run_form.addRow("", self.device_in_use)
        self.tile = QtWidgets.QSpinBox()
        self.tile.setRange(64, 4096)
        self.tile.setSingleStep(64)
        self.tile.setSuffix(" px")
        self.tile.setToolTip("The image is processed in tiles of this size. Smaller tiles need less "
                             "memory; larger ones are a little faster.")
        run_form.addRow("Tile size", self.tile)
        self.all_planes = QtWidgets.QCheckBox("All planes of the stack")
        self.all_planes.setToolTip("Restore the marked regions in every plane/channel, not only the one shown")
        run_form.addRow("", self.all_planes)
        layout.addWidget(run_box)

        # the time estimate and the Restore button: `footer`, which the window keeps in view
        # below the scrolling panel (at the default window size it was below the fold)
        self.footer = QtWidgets.QWidget()
        footer = QtWidgets.QVBoxLayout(self.footer)
        footer.setContentsMargins(6, 4, 6, 6)
        self.estimate = QtWidgets.QLabel()
        self.estimate.setWordWrap(True)
        self.estimate.setStyleSheet("color: #9aa0a6;")
        footer.addWidget(self.estimate)

        self.run_btn = QtWidgets.QPushButton("Restore selected regions")
        self.run_btn.setMinimumHeight(34)
        f = self.run_btn.font()
        f.setBold(True)
        self.run_btn.setFont(f)
        self.run_btn.setStyleSheet("QPushButton { background: #1a73e8; color: white; border-radius: 4px; }"
                                   "QPushButton:disabled { background: #3c4043; color: #80868b; }"
                                   "QPushButton:hover:!disabled { background: #4285f4; }")
        footer.addWidget(self.run_btn)
        layout.addStretch(1)

        self.combo.currentIndexChanged.connect(self._on_model_chosen)
        self.device.currentIndexChanged.connect(self._on_device)
        self.tile.valueChanged.connect(self._on_tile)
        self.all_planes.toggled.connect(self._on_all_planes)
        self.weights_btn.clicked.connect(self.weights_requested)
        self.builtin_btn.clicked.connect(self.use_builtin_weights)
        self.run_btn.clicked.connect(self.run_requested)
        state.image_changed.connect(self.refresh_run)
        state.image_changed.connect(self._update_card)      # fit warnings depend on the image
        state.rois_changed.connect(self.refresh_run)
        state.busy_changed.connect(lambda busy: self.refresh_run())

        self.populate()

    # ------------------------------------------------------------------ models
    def populate(self) -> None:
        """(Re)read the registry; keep the chosen model when it is still there."""
        from core.devices import available_devices
        from core.models.registry import list_entries

        self._loading = True
        try:
            self.entries = {e.name: e for e in list_entries()}
            self.combo.clear()
            for name, e in self.entries.items():
                self.combo.addItem(f"{e.display_name}  \u2014  {kind_words(e)}", name)
            self.device.clear()
            labels = {"auto": "Auto", "cpu": "CPU", "cuda": "GPU (CUDA)", "mps": "GPU (Apple)"}
            for dev in available_devices():
                self.device.addItem(labels.get(dev, dev), dev)
            dev = self.settings.device()
            idx = self.device.findData(dev)
            self.device.setCurrentIndex(max(0, idx))
            self.state.device = self.device.currentData()
            self.tile.setValue(self.settings.tile())
            self.state.tile = self.tile.value()
            self.state.overlap = self.settings.overlap()
        finally:
            self._loading = False
        wanted = self.settings.model()
        self.select_model(wanted if wanted in self.entries else next(iter(self.entries), ""))
        self._update_device_label()

    def select_model(self, name: str, weights: Path | None = None) -> None:
        """Show `name` with its remembered settings (and optional user weights)."""
        if name not in self.entries:
            raise ValueError(f"unknown model {name!r} (available: {', '.join(self.entries) or 'none'})")
        self._pending_weights = weights
        idx = self.combo.findData(name)
        if idx == self.combo.currentIndex():
            self._on_model_chosen(idx)
        else:
            self.combo.setCurrentIndex(idx)

    def _on_model_chosen(self, index: int) -> None:
        if self._loading or index < 0:
            return
        name = self.combo.itemData(index)
        entry = self.entries[name]
        weights = getattr(self, "_pending_weights", None)
        self._pending_weights = None
        self.show_notice("")
        self._build_params(entry)
        self.state.set_model(name, self.current_params(), weights)
        self.settings.set_model(name)
        self._update_card()
        self.refresh_run()

    def _build_params(self, entry: Any) -> None:
        while self.params_form.rowCount():
            self.params_form.removeRow(0)
        self.param_widgets = {}
        saved = self.settings.model_params(entry.name)
        for key, p in entry.params.items():
            value = saved.get(key, p.default)
            widget = param_editor(p, value, self._on_param, qt=QtWidgets)
            label = p.label or key.replace("_", " ").capitalize()
            self.param_widgets[key] = widget
            self.params_form.addRow(label, widget)
        if entry.kind == "diffusion":
            # a diffusion model draws one of many plausible results: the seed picks which, the
            # same seed gives the same result, "Sample again" draws another one to compare
            self.seed_box = QtWidgets.QSpinBox()
            self.seed_box.setRange(0, 2**31 - 1)
            self.seed_box.setValue(self.state.seed)
            self.seed_box.setToolTip("The same seed gives the same result; another seed, another "
                                     "plausible sample")
            self.seed_box.valueChanged.connect(self.state.set_seed)
            self.sample_again_btn = QtWidgets.QPushButton("Sample again")
            self.sample_again_btn.setToolTip("Run again with a new seed; Compare > Spread then "
                                             "shows where the samples disagree")
            self.sample_again_btn.clicked.connect(self.sample_again)
            row = QtWidgets.QHBoxLayout()
            row.addWidget(self.seed_box, 1)
            row.addWidget(self.sample_again_btn)
            self.params_form.addRow("Seed", row)
        else:
            self.seed_box = self.sample_again_btn = None
        self.params_box.setVisible(bool(entry.params) or entry.kind == "diffusion")

    def current_params(self) -> dict[str, Any]:
        return {key: param_value(w) for key, w in self.param_widgets.items()}

    def set_param(self, key: str, value: Any) -> None:
        """Set one model setting as if the user had typed it (scripted starts and tests)."""
        set_param_value(self.param_widgets[key], value)

    def _on_param(self, *args: Any) -> None:
        params = self.current_params()
        self.state.model_params = params
        self.settings.set_model_params(self.state.model_name, params)
        self.state.model_changed.emit()
        self.refresh_run()

    def plain_names(self, message: str) -> str:
        """Put the labels the user sees ("Blur radius (px)") in place of setting names in a message."""
        import re

        entry = self.entries.get(self.state.model_name)
        if entry is not None:
            for key, p in entry.params.items():
                if p.label:
                    message = re.sub(rf"\b{re.escape(key)}\b", f"\u201c{p.label}\u201d", message)
        return message[:1].upper() + message[1:]

    # ------------------------------------------------------------------ weights
    def use_weights(self, path: Path) -> str:
        """Run with a user's weights file, checked first (a WeightsError in plain words if it
        cannot be used); if it was trained for another model, switch to that model. Returns
        what happened, in plain words, also shown in the panel."""
        from core.models.registry import load_network

        path = Path(path)
        net, card = load_network(path)                  # the whole file: damaged or foreign fails here
        del net
        name = card["model"]
        entry = self.entries.get(name)
        if entry is None:
            raise ValueError(f"{path.name} holds a {name!r} model, which this installation "
                             "does not have")
        before = self.entries.get(self.state.model_name)
        if name != self.state.model_name:
            self.select_model(name, weights=path)
            what = (f"Switched to {entry.display_name}: {path.name} was trained for that model, "
                    f"not for {before.display_name if before else self.state.model_name}.")
        else:
            self.state.set_model(self.state.model_name, self.current_params(), path)
            self._update_card()
            self.refresh_run()
            what = f"Using your weights {path.name} for {entry.display_name}."
        self.show_notice(what)
        return what

    def is_stochastic(self, name: str) -> bool:
        """Whether a model's result depends on the seed (a diffusion model samples)."""
        entry = self.entries.get(name)
        return entry is not None and entry.kind == "diffusion"

    def sample_again(self) -> None:
        """A new seed (the next one), then Restore."""
        if self.seed_box is not None:
            self.seed_box.setValue(self.seed_box.value() + 1)
        self.run_requested.emit()

    def show_notice(self, text: str) -> None:
        """A plain sentence about what just changed in the panel (cleared by the next one)."""
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    def use_builtin_weights(self) -> None:
        self.show_notice("")
        self.state.set_model(self.state.model_name, self.current_params(), None)
        self._update_card()
        self.refresh_run()

    # ------------------------------------------------------------------ card, device, estimate
    def _update_card(self) -> None:
        entry = self.entries.get(self.state.model_name)
        weights = None
        if entry is not None:
            weights = self.state.weights or (entry.default_weights if entry.needs_weights else None)
        speed = (self.settings.speed(entry.name, self.resolved_device(), self.current_params())
                 if entry is not None else None)
        self.model_card.show_entry(entry, weights, self.state.image, speed)
        if entry is None:
            return

        needs = entry.needs_weights
        self.weights_btn.setVisible(needs)
        self.builtin_btn.setVisible(needs and self.state.weights is not None)
        if not needs:
            self.weights_label.setText("")
            self.weights_label.setVisible(False)
        else:
            self.weights_label.setVisible(True)
            if self.state.weights is not None:
                self.weights_label.setText(f"Weights: {Path(self.state.weights).name}")
            elif entry.has_weights():
                self.weights_label.setText("Weights: built-in")
            else:
                self.weights_label.setText("<span style='color:#fdd663'>No trained weights shipped: "
                                           "load a file trained with deblur-train.</span>")

    def _on_device(self, index: int) -> None:
        if self._loading or index < 0:
            return
        self.state.device = self.device.currentData()
        self.settings.set_device(self.state.device)
        self._update_device_label()
        self.refresh_run()

    def _update_device_label(self) -> None:
        from core.devices import device_label, pick_device

        try:
            self.device_in_use.setText("In use: " + device_label(pick_device(self.state.device)))
        except ValueError as exc:
            self.device_in_use.setText(str(exc))

    def resolved_device(self) -> str:
        from core.devices import pick_device

        try:
            return pick_device(self.state.device).type
        except ValueError:
            return "cpu"

    def _on_tile(self, value: int) -> None:
        self.state.tile = int(value)
        if not self._loading:
            self.settings.set_tile(int(value))

    def _on_all_planes(self, checked: bool) -> None:
        self.state.all_planes = bool(checked)
        self.refresh_run()

    def can_run(self) -> tuple[bool, str]:
        """Whether Restore can start now, and if not, why (shown as the button's tooltip)."""
        if self.state.busy:
            return False, "A restoration is running."
        if self.state.image is None:
            return False, "Open an image first."
        entry = self.entries.get(self.state.model_name)
        if entry is None:
            return False, "No model is selected."
        if entry.needs_weights and self.state.weights is None and not entry.has_weights():
            return False, "This model has no trained weights yet: use Load weights\u2026"
        return True, ""

    def refresh_run(self) -> None:
        ok, why = self.can_run()
        has_rois = bool(self.state.rois)
        self.run_btn.setText("Restore selected regions" if has_rois or self.state.image is None
                             else "Restore whole image")
        self.run_btn.setEnabled(ok)
        self.run_btn.setToolTip(why or "Run the chosen model on the marked regions (Ctrl+R)")
        stack = bool(self.state.image is not None and self.state.plane_axes())
        self.all_planes.setVisible(stack)
        self.estimate.setText(self._estimate_text())

    def _estimate_text(self) -> str:
        """Expected run time on this machine: measured speed if there is one, else a rough guess."""
        entry = self.entries.get(self.state.model_name)
        if entry is None or self.state.image is None:
            return ""
        mpix = self._work_megapixels()
        seconds = self.expected_seconds()
        if seconds is not None:
            return (f"Expected time on this computer: {format_duration(seconds, rough=True)} "
                    f"({mpix:.2f} megapixels).")
        return f"Expected speed: {_GUESS.get(entry.kind, 'unknown')} ({mpix:.2f} megapixels to do)."

    def _work_megapixels(self) -> float:
        planes = 1
        if self.state.all_planes:
            for _, n in self.state.plane_axes():
                planes *= n
        rois = self.state.roi_set() if self.state.rois else None
        return work_megapixels(rois, self.state.image_size) * planes

    def expected_seconds(self) -> float | None:
        """The run's expected time from what this machine measured for this model, device and
        settings: loading the model, then the megapixels at the measured speed (None: never run)."""
        if self.state.image is None:
            return None
        device = self.resolved_device()
        speed = self.settings.speed(self.state.model_name, device, self.current_params())
        if not speed:
            return None
        load = self.settings.load_seconds(self.state.model_name, device) or 0.0
        return load + self._work_megapixels() / speed
