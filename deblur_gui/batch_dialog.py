"""Restore a folder of images from the app: the current model and settings, each image's regions
from its region file, detected, the same for all, or the whole image; written beside the images
or into a chosen folder, never over a file; progress, cancel and a summary at the end.

The work is ``core.batch`` (the same path as `deblur predict`) on a worker thread.
"""

from __future__ import annotations

import threading
import traceback
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from core.batch import REGION_RULES, BatchItem, free_path, image_files, regions_for, restore_file
from core.defaults import OUT_SUFFIX
from deblur_gui.state import AppState, describe_params

__all__ = ["BatchDialog", "BatchJob"]


class BatchJob(QtCore.QThread):
    """Restores `files` one by one; signals per file and at the end (on the GUI thread)."""

    file_started = QtCore.Signal(int, int, str)     # index, count, name
    item_done = QtCore.Signal(object)               # BatchItem
    all_done = QtCore.Signal(list)                  # [BatchItem]

    def __init__(self, files: list[Path], out_dir: Path | None, rule: str, state: AppState,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.files, self.out_dir, self.rule = files, out_dir, rule
        self.model_name, self.weights = state.model_name, state.weights
        self.params, self.device = dict(state.model_params), state.device
        self.tile, self.overlap, self.seed = state.tile, state.overlap, state.seed
        self.same = state.roi_set() if state.rois else None
        a = state.adapted           # the model adapted to an image this session: the batch uses it
        self.adapted = a if a is not None and not a.kept_original and a.model == state.model_name \
            else None
        self.cancel_event = threading.Event()

    def cancel(self) -> None:
        self.cancel_event.set()

    def run(self) -> None:  # noqa: D401 (QThread entry point)
        from core.engine import Cancelled
        from core.io import read_image
        from core.models.registry import check_params, get_entry, load_model

        items = [BatchItem(p) for p in self.files]
        try:
            settings = check_params(get_entry(self.model_name), self.params)
            if self.adapted is not None:
                model = self.adapted.restorer(self.device, **settings)
            else:
                model = load_model(self.model_name, weights=self.weights, device=self.device,
                                   **settings)
        except Exception as exc:  # noqa: BLE001 - reported in the summary, never a crash
            for item in items:
                item.status, item.message = "failed", f"the model could not be loaded: {exc}"
            self.all_done.emit(items)
            return
        for i, item in enumerate(items):
            if self.cancel_event.is_set():
                item.status, item.message = "cancelled", "not started"
                continue
            self.file_started.emit(i, len(items), item.input.name)
            folder = self.out_dir or item.input.parent
            dest = free_path(folder / f"{item.input.stem}{OUT_SUFFIX}.tif")
            try:
                image = read_image(item.input)
                rois, source = regions_for(image, item.input, self.rule, self.same)
                item.regions = 0 if rois is None else len(rois.rois)
                item.output = restore_file(item.input, dest, model, model_name=self.model_name,
                                           weights=self.weights, settings=settings, rois=rois,
                                           image=image, tile=self.tile, overlap=self.overlap,
                                           seed=self.seed, device=self.device,
                                           cancel=self.cancel_event,
                                           provenance_extra=None if self.adapted is None else
                                           {"adapted": self.adapted.provenance()})
                if rois is not None and not rois.rois:
                    item.status, item.message = "unchanged", "no blurred region found: an unchanged copy"
                else:
                    what = "whole image" if rois is None else f"{item.regions} region(s) ({source})"
                    item.status, item.message = "restored", what
            except Cancelled:
                item.status, item.message = "cancelled", "stopped; nothing was written"
            except (ValueError, OSError) as exc:
                item.status, item.message = "failed", str(exc)
            except Exception as exc:  # noqa: BLE001
                item.status, item.message = "failed", f"{exc}"
                item.extra["details"] = traceback.format_exc()
            self.item_done.emit(item)
        self.all_done.emit(items)


class BatchDialog(QtWidgets.QDialog):
    """Choose a folder, where the regions come from and where the results go; run; read the summary."""

    def __init__(self, state: AppState, start_folder: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.job: BatchJob | None = None
        self.items: list[BatchItem] = []
        self.setWindowTitle("Restore a folder of images")
        layout = QtWidgets.QVBoxLayout(self)
        form = QtWidgets.QFormLayout()
        self.folder = QtWidgets.QLineEdit(start_folder)
        browse = QtWidgets.QPushButton("Choose\u2026")
        browse.clicked.connect(lambda: self._choose(self.folder))
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        form.addRow("Images in", row)
        self.rule = QtWidgets.QComboBox()
        for key, words in REGION_RULES.items():
            self.rule.addItem(words[:1].upper() + words[1:], key)
        same = self.rule.findData("same")
        self.rule.model().item(same).setEnabled(bool(state.rois))
        form.addRow("Regions", self.rule)
        self.beside = QtWidgets.QRadioButton("Beside each image")
        self.into = QtWidgets.QRadioButton("Into the folder:")
        self.beside.setChecked(True)
        self.out_folder = QtWidgets.QLineEdit()
        out_browse = QtWidgets.QPushButton("Choose\u2026")
        out_browse.clicked.connect(lambda: (self._choose(self.out_folder), self.into.setChecked(True)))
        out_row = QtWidgets.QHBoxLayout()
        out_row.addWidget(self.into)
        out_row.addWidget(self.out_folder, 1)
        out_row.addWidget(out_browse)
        out_box = QtWidgets.QVBoxLayout()
        out_box.addWidget(self.beside)
        out_box.addLayout(out_row)
        form.addRow("Write results", out_box)
        shown = describe_params(state.model_name, state.model_params)
        a = state.adapted
        adapted = (f", adapted to {a.image_name}" if a is not None and not a.kept_original
                   and a.model == state.model_name else "")
        form.addRow("Model", QtWidgets.QLabel(f"{state.model_name}{adapted}"
                                              + (f" ({shown})" if shown else "")
                                              + " \u2014 as set in the Model panel"))
        layout.addLayout(form)
        note = QtWidgets.QLabel(f"Each result is saved as <i>name</i>{OUT_SUFFIX}.tif; an existing "
                                "file is never replaced (a free name is chosen) and the originals "
                                "are never changed.")
        note.setWordWrap(True)
        layout.addWidget(note)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        self.summary = QtWidgets.QPlainTextEdit()
        self.summary.setReadOnly(True)
        self.summary.setMinimumHeight(140)
        layout.addWidget(self.summary)
        buttons = QtWidgets.QDialogButtonBox()
        self.start_btn = buttons.addButton("Restore all", QtWidgets.QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_btn = buttons.addButton("Cancel", QtWidgets.QDialogButtonBox.ButtonRole.ActionRole)
        self.close_btn = buttons.addButton(QtWidgets.QDialogButtonBox.StandardButton.Close)
        self.cancel_btn.setEnabled(False)
        self.start_btn.clicked.connect(self.start)
        self.cancel_btn.clicked.connect(self.cancel)
        self.close_btn.clicked.connect(self.close)
        layout.addWidget(buttons)
        self.resize(640, 480)

    def _choose(self, edit: QtWidgets.QLineEdit) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Choose a folder", edit.text())
        if folder:
            edit.setText(folder)

    def start(self) -> bool:
        """Check the choices and start; False (with the reason in the summary) if it cannot."""
        folder = Path(self.folder.text().strip())
        if not folder.is_dir():
            self.summary.setPlainText(f"{folder} is not a folder.")
            return False
        files = image_files(folder)
        if not files:
            self.summary.setPlainText(f"No images (TIFF, PNG, JPEG) in {folder}.")
            return False
        out_dir = None
        if self.into.isChecked():
            out_dir = Path(self.out_folder.text().strip())
            if not out_dir.is_dir():
                self.summary.setPlainText(f"The results folder {out_dir} does not exist.")
                return False
        job = BatchJob(files, out_dir, self.rule.currentData(), self.state, self)
        job.file_started.connect(self._on_file)
        job.item_done.connect(self._on_item)
        job.all_done.connect(self._on_done)
        self.job, self.items = job, []
        self.progress.setRange(0, len(files))
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.summary.setPlainText(f"Restoring {len(files)} image(s) from {folder}\u2026")
        self.start_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        job.start()
        return True

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.cancel_btn.setEnabled(False)

    def _on_file(self, index: int, count: int, name: str) -> None:
        self.progress.setValue(index)
        self.progress.setFormat(f"{index + 1} / {count}: {name}")

    def _on_item(self, item: BatchItem) -> None:
        out = f" -> {item.output.name}" if item.output is not None else ""
        self.summary.appendPlainText(f"{item.input.name}: {item.status}{out} ({item.message})")

    def _on_done(self, items: list[BatchItem]) -> None:
        self.items = items
        self.progress.setValue(self.progress.maximum())
        counts: dict[str, int] = {}
        for item in items:
            counts[item.status] = counts.get(item.status, 0) + 1
        self.summary.appendPlainText("\nDone: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
        self.start_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)
        if self.job is not None:
            self.job.wait(5000)
            self.job.deleteLater()
        self.job = None

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.job is not None and self.job.isRunning():
            self.job.cancel()
            self.job.wait(10000)
        super().closeEvent(event)
