"""Screenshot of the deblur widget in napari and the exported package's cover (for the README).

Run under a virtual display: QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24"
.venv/bin/python docs/screenshots/napari_widget.py   (needs the napari and bioimageio extras)
"""

from __future__ import annotations

import sys
import tempfile
import zipfile
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

OUT = Path(__file__).resolve().parent


def main() -> int:
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 860)
    viewer.open_sample("deblur", "nuclei")
    _, widget = viewer.window.add_plugin_dock_widget("deblur", "deblur")
    widget.model_combo.setCurrentIndex(widget.model_combo.findData("comi"))
    widget.restore()
    app = QApplication.instance()
    while widget.worker is not None:
        app.processEvents()
    viewer.layers.selection.active = viewer.layers[-1]     # the restored layer, over the original
    for _ in range(20):
        app.processEvents()
    viewer.screenshot(str(OUT / "napari_widget.png"), canvas_only=False)

    from core.bioimageio.export import export_package

    with tempfile.TemporaryDirectory() as tmp:
        pkg = export_package("comi", Path(tmp) / "comi.zip")
        with zipfile.ZipFile(pkg) as zf:
            (OUT / "bioimageio_cover.png").write_bytes(zf.read("cover.png"))
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
