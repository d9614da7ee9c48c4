"""The window's file and region I/O: opening images (menu, recent files, samples, drag and drop),
loading and saving regions and weights, saving the result and exporting a comparison picture.

A mixin of :class:`~deblur_gui.main_window.MainWindow`: it reads and writes through ``core``
(never onto the original: ``core.io.same_file``), reports problems with ``self.error`` and uses
the window's ``state``, ``settings``, ``model_panel``, ``compare``, ``tabs``,
``_channel_levels``, ``saved_results`` and ``sidecar_rois``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from core.bioimageio.package_files import is_model_package
from core.defaults import OUT_SUFFIX
from core.io import READ_SUFFIXES, same_file
from core.region_files import IMAGEJ_SUFFIXES
from core.roi import ROI_SUFFIX, sidecar_path
from deblur_gui.dialogs import choose_save_path

__all__ = ["FileIO", "IMAGE_FILTER", "ROI_FILTER"]

log = logging.getLogger("deblur.gui")

IMAGE_FILTER = "Images (*.tif *.tiff *.png *.jpg *.jpeg);;TIFF (*.tif *.tiff);;All files (*)"
ROI_FILTER = ("Region files (*.roi.json *.json *.roi *.zip);;deblur regions (*.roi.json *.json);;"
              "ImageJ/Fiji ROIs (*.roi *.zip);;All files (*)")


def _outside(roi: Any, w: int, h: int) -> bool:
    x0, y0, x1, y1 = roi.bounds()
    return x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h


def _is_weights_file(path: Path) -> bool:
    """deblur weights, or a bioimage.io model package (a .zip with an rdf.yaml)."""
    return path.suffix.lower() == ".safetensors" or (path.suffix.lower() == ".zip"
                                                     and is_model_package(path))


def _is_region_file(path: Path) -> bool:
    return (path.name.endswith(".json") or path.suffix.lower() in IMAGEJ_SUFFIXES) \
        and not _is_weights_file(path)


class FileIO:
    """Open, load, save and export for the main window (see the module docstring)."""

    # ------------------------------------------------------------------ images

    def open_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open image", self.settings.last_folder(),
                                                        IMAGE_FILTER)
        if path:
            self.open_file(path)

    def open_file(self, path: str | Path) -> bool:
        """Open an image; on failure show why and keep the current image. Returns success."""
        from core.io import ImageError, read_image

        path = Path(path)
        if self.state.busy:
            self.error(f"Cannot open {path.name} while a restoration is running. Cancel it first.")
            return False
        if not self._discard_unsaved_ok("open another image"):
            return False
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)
        try:
            image = read_image(path)
        except ImageError as exc:
            self.error(str(exc))
            if not path.exists():  # a recent file that was moved or deleted leaves the list
                self.settings.remove_recent_file(path.resolve())
            return False
        except Exception:  # noqa: BLE001 - a damaged file must never crash the app
            import traceback

            self.error(f"Cannot open '{path.name}': the file could not be read", traceback.format_exc())
            return False
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        self._channel_levels.clear()
        self.saved_results.clear()
        self.state.set_image(image)
        self.settings.add_recent_file(path)
        self.settings.set_last_folder(path.parent)
        h, w = self.state.image_size
        px = f", {image.pixel_size[1]:.3g} \u00b5m/px" if image.pixel_size else ""
        log.info("Opened %s: %s, %s%s", path.name, " x ".join(str(n) for n in image.data.shape),
                 image.data.dtype, px)
        sidecar = self._sidecar_rois(path)
        self.sidecar_rois = sidecar
        if sidecar is not None:
            self.load_rois(sidecar)
        self.tabs.setCurrentIndex(0)
        return True

    def _sidecar_rois(self, path: Path) -> Path | None:
        """The region file beside an image (`core.roi.sidecar_path`), if there is one."""
        cand = sidecar_path(path)
        return cand if cand.is_file() else None

    # ------------------------------------------------------------------ regions

    def load_rois_dialog(self) -> None:
        start = self.settings.last_folder()
        if self.state.image is not None and self.state.image.path is not None:
            start = str(self.state.image.path.parent)
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Load regions", start, ROI_FILTER)
        if path:
            self.load_rois(path)

    def load_rois(self, path: str | Path) -> bool:
        """Replace the regions with those in a ROI file (DESIGN §2). Returns success."""
        from core.region_files import load_region_file

        path = Path(path)
        if self.state.image is None:
            self.error("Open an image before loading regions.")
            return False
        try:
            rois, skipped = load_region_file(path)
        except ValueError as exc:
            self.error(f"Could not load the regions: {exc}")
            return False
        h, w = self.state.image_size
        outside = [r for r in rois.rois if _outside(r, w, h)]
        self.state.set_roi_set(rois)
        msg = f"Loaded {len(rois.rois)} region{'s' if len(rois.rois) != 1 else ''} from {path.name}"
        if outside:
            msg += f" ({len(outside)} lie outside the image and will have no effect)"
        if skipped:
            msg += f"; skipped {len(skipped)} that are not areas ({'; '.join(skipped)})"
        log.info(msg)
        self.statusBar().showMessage(msg, 6000)
        return True

    def save_rois_dialog(self) -> None:
        if self.state.image is None or not self.state.rois:
            return
        img = self.state.image.path
        suggested = (sidecar_path(img) if img is not None
                     else Path(self.settings.last_folder()) / f"regions{ROI_SUFFIX}")
        path = choose_save_path(self, "Save regions", suggested, ROI_FILTER, ROI_SUFFIX, original=img)
        if path is not None:
            self.save_rois(path)

    def save_rois(self, path: str | Path) -> bool:
        from core.region_files import save_region_file

        path = Path(path)
        img = self.state.image.path if self.state.image is not None else None
        if same_file(path, img):
            self.error("That is the original image: regions are saved in a separate .roi.json file.")
            return False
        try:
            save_region_file(path, self.state.roi_set())
        except (OSError, ValueError) as exc:
            self.error(f"Could not save the regions to {path.name}: {exc}")
            return False
        log.info("Saved %d regions to %s", len(self.state.rois), path)
        self.statusBar().showMessage(f"Regions saved to {path.name}", 6000)
        return True

    # ------------------------------------------------------------------ weights

    def weights_dialog(self) -> None:
        from resources import WEIGHTS

        start = str(WEIGHTS) if WEIGHTS.is_dir() else self.settings.last_folder()
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Load weights", start,
                                                        "Model weights (*.safetensors *.zip);;All files (*)")
        if path:
            self.load_weights(path)

    def load_weights(self, path: str | Path) -> bool:
        path = Path(path)
        if path.suffix.lower() not in (".safetensors", ".zip"):
            self.error(f"{path.name} is not a weights file: deblur loads .safetensors files made by "
                       "deblur-train, or bioimage.io packages (.zip) that deblur exported (never "
                       "pickled .pt/.pth files, which could run code).")
            return False
        if not path.is_file():
            self.error(f"Weights file not found: {path}")
            return False
        try:
            what = self.model_panel.use_weights(path)
        except ValueError as exc:
            reason = str(exc).replace(f"weights file {path} ", "it ").replace(str(path), path.name)
            self.error(f"Could not use {path.name}: {reason}. The model and weights in use did not "
                       "change.", getattr(exc, "detail", ""))
            return False
        log.info(what)
        return True

    def save_adapted_dialog(self) -> None:
        adapted = self.state.adapted
        if adapted is None:
            return
        stem = Path(adapted.image_name).stem or "image"
        suggested = self.default_save_path().with_name(f"{adapted.model}_adapted_{stem}.safetensors")
        path = choose_save_path(self, "Save adapted model", suggested,
                                "Model weights (*.safetensors)", ".safetensors")
        if path is not None:
            self.save_adapted(path)

    def save_adapted(self, path: str | Path) -> Path | None:
        """Write the adapted model and its card (how it was adapted) as a weights file that
        Load weights, a batch and ``deblur predict --weights`` take."""
        adapted = self.state.adapted
        if adapted is None:
            self.error("No model has been adapted to an image yet.")
            return None
        path = Path(path)
        if path.suffix.lower() != ".safetensors":
            path = path.with_suffix(".safetensors")
        try:
            written = adapted.save(path)
        except (OSError, ValueError) as exc:
            self.error(f"Cannot save '{path.name}': {exc}")
            return None
        log.info("Saved the adapted model to %s", written)
        self.statusBar().showMessage(f"Saved {Path(written).name}", 8000)
        return Path(written)

    # ------------------------------------------------------------------ results

    def default_save_path(self) -> Path:
        """`<name>_deblurred.tif` in the folder the user last saved a result to, else beside
        the original."""
        img = self.state.image
        name = f"{img.path.stem}{OUT_SUFFIX}.tif" if img is not None and img.path is not None \
            else f"restored{OUT_SUFFIX}.tif"
        folder = self.settings.last_save_folder()
        if folder is None:
            folder = img.path.parent if img is not None and img.path is not None \
                else Path(self.settings.last_folder())
        return folder / name

    def save_result_dialog(self) -> None:
        if self.state.result() is None:
            return
        original = self.state.image.path if self.state.image is not None else None
        path = choose_save_path(self, "Save restored image", self.default_save_path(),
                                "TIFF (*.tif *.tiff);;PNG (*.png)", ".tif", original=original)
        if path is not None:
            self.save_result(path, overwrite=True)

    def save_result(self, path: str | Path, *, overwrite: bool = False) -> Path | None:
        """Write the current result (same dtype, shape, metadata) via core.io; never the original."""
        from core.io import ImageError, write_image

        result = self.state.result()
        if result is None:
            self.error("There is no restored image to save yet.")
            return None
        path = Path(path)
        original = self.state.image.path if self.state.image is not None else None
        if same_file(path, original):
            self.error(f"Cannot save '{path.name}': it is the original image. deblur never "
                       "overwrites the original; choose another name.")
            return None
        try:
            written = write_image(path, result.image, overwrite=overwrite)
        except ImageError as exc:
            self.error(str(exc))
            return None
        except Exception as exc:  # noqa: BLE001
            import traceback

            self.error(f"Cannot save '{path.name}': {exc}", traceback.format_exc())
            return None
        self.saved_results.add(result.id)
        self.settings.set_last_save_folder(path.parent)
        log.info("Saved %s", written)
        self.statusBar().showMessage(f"Saved {Path(written).name}", 8000)
        return Path(written)

    def export_dialog(self) -> None:
        if self.state.result() is None:
            return
        base = self.default_save_path()
        suggested = base.with_name(base.stem.replace(OUT_SUFFIX, "") + "_comparison.png")
        original = self.state.image.path if self.state.image is not None else None
        path = choose_save_path(self, "Export comparison", suggested, "PNG image (*.png)", ".png",
                                original=original)
        if path is not None:
            self.export_comparison(path)

    def export_comparison(self, path: str | Path) -> Path | None:
        path = Path(path)
        original = self.state.image.path if self.state.image is not None else None
        if same_file(path, original):
            self.error("That is the original image; choose another name for the picture.")
            return None
        previous = self.tabs.currentIndex()
        self.tabs.setCurrentIndex(1)
        QtWidgets.QApplication.processEvents()
        try:
            written = self.compare.export_png(path)
        except OSError as exc:
            self.error(f"Could not export the comparison: {exc}")
            return None
        finally:
            self.tabs.setCurrentIndex(previous)
        log.info("Exported the comparison to %s", written)
        return written

    def batch_dialog(self) -> "QtWidgets.QDialog":
        """File > Restore a folder: the batch dialog (non-modal)."""
        from deblur_gui.batch_dialog import BatchDialog

        start = self.settings.last_folder()
        if self.state.image is not None and self.state.image.path is not None:
            start = str(self.state.image.path.parent)
        dlg = BatchDialog(self.state, start, self)
        dlg.show()
        self._batch = dlg
        return dlg

    # ------------------------------------------------------------------ recent files, samples, drops

    def _fill_recent(self, menu: QtWidgets.QMenu) -> None:
        menu.clear()
        files = self.settings.recent_files()
        for p in files:
            a = menu.addAction(Path(p).name)
            a.setToolTip(p)
            a.setStatusTip(p)
            a.triggered.connect(lambda checked=False, p=p: self.open_file(p))
        if not files:
            a = menu.addAction("No recent files")
            a.setEnabled(False)
        else:
            menu.addSeparator()
            menu.addAction("Clear list", self.settings.clear_recent_files)

    def sample_files(self) -> list[Path]:
        from resources import SAMPLES

        if not SAMPLES.is_dir():
            return []
        files = [p for p in sorted(SAMPLES.iterdir())
                 if p.suffix.lower() in READ_SUFFIXES]
        # the blurred inputs first: they are what a sample is for
        return sorted(files, key=lambda p: ("blur" not in p.stem, p.name))

    def _fill_samples(self, menu: QtWidgets.QMenu) -> None:
        menu.clear()
        files = self.sample_files()
        for p in files:
            a = menu.addAction(p.name)
            a.triggered.connect(lambda checked=False, p=p: self.open_file(p))
        if not files:
            a = menu.addAction("No samples installed")
            a.setEnabled(False)

    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:  # noqa: N802
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        event.acceptProposedAction()
        self.open_paths(paths)

    def open_paths(self, paths: list[Path]) -> None:
        """Dropped files: an image opens, a region file (.json, ImageJ .roi/.zip) loads regions,
        a .safetensors or a bioimage.io package (.zip) loads weights."""
        images = [p for p in paths if not _is_region_file(p) and not _is_weights_file(p)]
        if images:
            self.open_file(images[0])
        for p in paths:
            if _is_region_file(p):
                self.load_rois(p)
            elif _is_weights_file(p):
                self.load_weights(p)

    def _discard_unsaved_ok(self, what: str) -> bool:
        unsaved = [r for r in self.state.results if r.id not in self.saved_results]
        if not unsaved or not self.confirm_close:
            return True
        answer = QtWidgets.QMessageBox.question(
            self, "Unsaved result",
            f"The restored image{'s' if len(unsaved) > 1 else ''} ha{'ve' if len(unsaved) > 1 else 's'} "
            f"not been saved. Discard and {what}?",
            QtWidgets.QMessageBox.StandardButton.Discard | QtWidgets.QMessageBox.StandardButton.Cancel,
            QtWidgets.QMessageBox.StandardButton.Cancel)
        return answer == QtWidgets.QMessageBox.StandardButton.Discard
