"""Entry point `deblur-gui`: the Qt application, a friendly crash handler, and scripted starts.

``deblur-gui [FILE] [--roi FILE] [--model NAME] [--run] [--screenshot PNG] [--quit]`` opens the
file, loads the regions, picks the model, runs it, saves a screenshot of the window once the run
is done, and quits: the same path a user clicks through, usable for demos, docs and checks.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType
from typing import Sequence

__all__ = ["main", "build_parser", "install_excepthook", "make_app"]

log = logging.getLogger("deblur.gui")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deblur-gui",
        description="deblur: repair out-of-focus regions of microscopy images (desktop app).")
    p.add_argument("file", nargs="?", help="image to open (TIFF, PNG, JPEG)")
    p.add_argument("--roi", metavar="FILE", help="region file (.roi.json) to load after opening")
    p.add_argument("--model", metavar="NAME", help="model to select, e.g. richardson-lucy")
    p.add_argument("--param", metavar="KEY=VALUE", action="append", default=[],
                   help="set a model setting, e.g. --param psf_radius=3 (repeatable)")
    p.add_argument("--weights", metavar="FILE", help="weights file (.safetensors, or a bioimage.io .zip deblur exported) for the model")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="where to compute")
    p.add_argument("--adapt", type=float, metavar="SECONDS",
                   help="first learn from the image's sharp areas for this long (COMI)")
    p.add_argument("--run", action="store_true", help="restore as soon as the image is open")
    p.add_argument("--view", choices=["image", "compare"],
                   help="tab to show (default: compare after --run, else image)")
    p.add_argument("--screenshot", metavar="PNG", help="save a picture of the window when ready")
    p.add_argument("--size", metavar="WxH", default=None, help="window size, e.g. 1500x920")
    p.add_argument("--quit", action="store_true", help="quit when done (after the run/screenshot)")
    return p


def _format_exception(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> str:
    return "".join(traceback.format_exception(exc_type, exc, tb))


def install_excepthook() -> None:
    """Unexpected errors show a plain dialog with details on demand instead of a traceback.

    The app keeps running: a bug in one action must not cost the user the rest of their work.
    """
    from PySide6 import QtCore, QtWidgets

    from core.crash_report import save_traceback
    from deblur_gui.dialogs import show_error

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        details = _format_exception(exc_type, exc, tb)
        log.error("Unexpected error: %s: %s", exc_type.__name__, exc)
        sys.stderr.write(details)
        report = save_traceback("deblur-gui", exc)
        if report is not None:
            details = f"Saved to {report} (attach it to a bug report).\n\n{details}"
        app = QtWidgets.QApplication.instance()
        if app is None or QtCore.QThread.currentThread() is not app.thread():
            return
        parent = app.activeWindow()
        show_error(parent, f"Something went wrong: {exc}. Your image and regions are still open; "
                           "you can carry on or save your work.", details)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        details = _format_exception(args.exc_type, args.exc_value, args.exc_traceback)
        log.error("Unexpected error in a background thread: %s", args.exc_value)
        sys.stderr.write(details)
        if args.exc_value is not None:
            save_traceback("deblur-gui", args.exc_value)

    sys.excepthook = hook
    threading.excepthook = thread_hook


def make_app(argv: Sequence[str] | None = None):
    """The QApplication with high-DPI rounding, name and style (reuses a running one)."""
    from PySide6 import QtCore, QtGui, QtWidgets

    app = QtWidgets.QApplication.instance()
    if app is None:
        QtGui.QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            QtCore.Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QtWidgets.QApplication(list(argv) if argv is not None else sys.argv[:1])
        app.setApplicationName("deblur")
        app.setOrganizationName("deblur")
        app.setApplicationDisplayName("deblur")
        app.setStyle("Fusion")
        app.setPalette(dark_palette())
        collect_garbage_in_gui_thread(app)
    return app


def collect_garbage_in_gui_thread(app) -> None:
    """Python's cycle collector runs on whichever thread allocates when it is due; if that is a
    worker thread (restoring, learning, measuring blur) and the garbage holds Qt objects, their
    C++ destructors run there and can deadlock with the GUI thread (seen: a worker importing
    torch while the window painted). So automatic collection is off and the GUI thread
    collects once a second instead (pyqtgraph's GarbageCollector)."""
    from pyqtgraph.util.garbage_collector import GarbageCollector

    if getattr(app, "_deblur_gc", None) is None:
        app._deblur_gc = GarbageCollector(interval=1.0)


def dark_palette():
    """A dark theme: images read best on a dark surround, as in every microscopy viewer."""
    from PySide6 import QtGui

    pal = QtGui.QPalette()
    C = QtGui.QPalette.ColorRole
    colors = {
        C.Window: "#2b2d31", C.WindowText: "#e8eaed", C.Base: "#1f2023", C.AlternateBase: "#2b2d31",
        C.ToolTipBase: "#303134", C.ToolTipText: "#e8eaed", C.Text: "#e8eaed", C.Button: "#3c4043",
        C.ButtonText: "#e8eaed", C.BrightText: "#ffffff", C.Highlight: "#1a73e8",
        C.HighlightedText: "#ffffff", C.Link: "#8ab4f8", C.PlaceholderText: "#9aa0a6",
    }
    for role, color in colors.items():
        pal.setColor(role, QtGui.QColor(color))
    for role in (C.WindowText, C.Text, C.ButtonText):
        pal.setColor(QtGui.QPalette.ColorGroup.Disabled, role, QtGui.QColor("#80868b"))
    return pal


def _parse_params(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--param {item!r} must look like KEY=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


class ScriptedStart:
    """Carries out the command-line steps in order once the event loop runs.

    Exit status: 0 when every step worked, 1 when one failed (the reason is printed on stderr).
    """

    def __init__(self, window, args: argparse.Namespace, on_done=None) -> None:
        self.window = window
        self.args = args
        self.status = 0
        self.done = False
        # called with the exit status when --quit is given (main() passes QApplication.exit)
        self.on_done = on_done

    def fail(self, message: str) -> None:
        sys.stderr.write(f"deblur-gui: error: {message}\n")
        self.status = 1

    def start(self) -> None:
        from PySide6 import QtCore

        w, a = self.window, self.args
        try:
            if a.file:
                if not w.open_file(a.file):
                    self.fail(w.last_error_text)
            from core.io import same_file

            if a.roi and w.state.image is not None and not same_file(Path(a.roi), w.sidecar_rois):
                if not w.load_rois(a.roi):
                    self.fail(w.last_error_text)
            if a.model and not w.select_model(a.model):
                self.fail(w.last_error_text)
            if a.weights and not w.load_weights(a.weights):
                self.fail(w.last_error_text)
            if a.device:
                idx = w.model_panel.device.findData(a.device)
                if idx < 0:
                    self.fail(f"device {a.device} is not available on this computer")
                else:
                    w.model_panel.device.setCurrentIndex(idx)
            for key, value in _parse_params(a.param).items():
                if key not in w.model_panel.param_widgets:
                    self.fail(f"model {w.state.model_name} has no setting {key!r}")
                    continue
                p = w.model_panel.entries[w.state.model_name].params[key]
                w.model_panel.set_param(key, p.check(key, value))
        except ValueError as exc:
            self.fail(str(exc))
        if a.adapt and self.status == 0:
            w.run_finished.connect(self._after_adapt)
            if not w.runner.start_adapt(float(a.adapt)):
                self.fail("learning from the image could not start (open an image, mark "
                          "regions, choose COMI)")
                QtCore.QTimer.singleShot(300, self.finish)
            return
        self._run_or_finish()

    def _after_adapt(self, outcome: str) -> None:
        self.window.run_finished.disconnect(self._after_adapt)
        if outcome not in ("adapted", "declined"):     # declined: the shipped model restores
            self.fail(f"learning from the image {outcome}: {self.window.last_error_text}")
        self._run_or_finish()

    def _run_or_finish(self) -> None:
        from PySide6 import QtCore

        w, a = self.window, self.args
        if a.run and self.status == 0:
            w.run_finished.connect(self._after_run)
            if not w.start_run():
                self.fail(w.last_error_text or "the restoration could not start")
                QtCore.QTimer.singleShot(300, self.finish)
            return
        QtCore.QTimer.singleShot(600, self.finish)

    def _after_run(self, outcome: str) -> None:
        from PySide6 import QtCore

        if outcome != "done":
            self.fail(f"the restoration {outcome}: {self.window.last_error_text}")
        QtCore.QTimer.singleShot(600, self.finish)

    def finish(self) -> None:
        from PySide6 import QtWidgets

        w, a = self.window, self.args
        if a.view == "compare" or (a.view is None and a.run and w.state.result() is not None):
            w.tabs.setCurrentIndex(1)
        elif a.view == "image":
            w.tabs.setCurrentIndex(0)
        if w.last_error is not None and a.quit:
            w.last_error.close()
        if a.screenshot:
            for _ in range(5):
                QtWidgets.QApplication.processEvents()
            pix = w.grab()
            path = Path(a.screenshot)
            if not pix.save(str(path)):
                self.fail(f"could not write the screenshot {path}")
            else:
                print(f"deblur-gui: screenshot saved to {path}")
        self.done = True
        if a.quit:
            w.confirm_close = False
            w.close()
            if self.on_done is not None:
                self.on_done(self.status)


def main(argv: Sequence[str] | None = None, *, hard_exit: bool = True) -> int:
    """Run the app; the exit status is 0, or 1 when a scripted step failed.

    With `hard_exit` (the `deblur-gui` command) the process ends right after the window has
    closed and everything is saved: PySide6 6.12 with pyqtgraph 0.14 can crash while the
    interpreter tears Qt down (exit status 134/139 after a clean session), which would turn a
    good scripted run into a failure. Settings are synced on close and every file is written
    atomically, so nothing is lost by skipping that teardown.
    """
    status = _main(argv)
    if hard_exit:
        import os

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    # messages also go to the terminal; the handler lives only as long as this run of main()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    try:
        return _run(args)
    finally:
        root.removeHandler(handler)


def _run(args: argparse.Namespace) -> int:

    from PySide6 import QtCore

    app = make_app()
    from deblur_gui.main_window import MainWindow  # after QApplication: pyqtgraph needs it

    install_excepthook()
    settings = None
    if args.screenshot:
        # pictures for docs and checks show the default layout, not this user's saved one
        import tempfile

        from deblur_gui.settings import Settings

        tmp = tempfile.mkdtemp(prefix="deblur-gui-")
        settings = Settings(QtCore.QSettings(str(Path(tmp) / "settings.ini"), QtCore.QSettings.Format.IniFormat))
    window = MainWindow(settings, confirm_close=not args.quit)
    if args.size:
        try:
            width, height = (int(v) for v in args.size.lower().split("x"))
            window.resize(width, height)
        except ValueError:
            build_parser().error("--size must look like 1500x920")
    window.show()
    script = ScriptedStart(window, args, on_done=app.exit)
    QtCore.QTimer.singleShot(0, script.start)
    status = app.exec()
    return int(status or script.status)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
