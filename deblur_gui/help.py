"""Help that works offline: a short user guide and the keyboard shortcuts (read from the window's
own actions, so the list is never out of date)."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

__all__ = ["GUIDE_HTML", "show_guide", "show_shortcuts", "shortcut_rows"]

GUIDE_HTML = """
<h2>deblur: repairing out-of-focus regions</h2>
<p>deblur restores the parts of a microscopy image that are out of focus and leaves every other
pixel exactly as it was. Your original file is never changed.</p>

<h3>1. Open an image</h3>
<p><b>File &rsaquo; Open</b>, drag a file onto the window, or <b>Help &rsaquo; Open sample</b>.
TIFF (8/16/32-bit, float, RGB, stacks, ImageJ and OME metadata), PNG and JPEG are read.
Stacks get a plane and channel selector above the image. A region file saved next to the image
(<i>name</i>.roi.json) is loaded with it.</p>

<h3>2. Mark the blurred areas</h3>
<p>Draw rectangles (R), ellipses (E), polygons (P: click the corners, double-click to close) or
freehand outlines (F) over the blurred parts, or use <b>Detect blurred regions</b>: red shows
what counts as blurred; move the slider until it covers the blurred parts, then add them.
<b>Show the focus map</b> colours the image from its most blurred (dark blue) to its sharpest
parts (yellow). Every region can be moved, resized or deleted; <b>Edit &rsaquo; Undo</b>
(Ctrl+Z) takes back any change of the regions, <b>Redo</b> (Ctrl+Shift+Z) brings it back.
<b>Edge softness</b> blends the restored area smoothly into its surroundings. The list of
regions says how blurred each one looks ("about 6 px blur"), measured against the image's
in-focus areas a moment after you draw it; a region that "looks sharp" needs no restoring.</p>

<h3>3. Choose a model</h3>
<p>The card under the model picker says what each model is good for and how it was trained.
COMI is the default. Richardson-Lucy is classical deconvolution, a baseline. The mouse wheel
scrolls the panel; to change a setting, click into its box first.</p>

<h3>4. Restore</h3>
<p><b>Restore selected regions</b> (Ctrl+R) runs the model; the status bar shows the progress
and the time left, and <b>Cancel</b> stops within a tile without changing anything.</p>

<h3>5. Compare</h3>
<p>The Compare tab shows original and restored side by side with linked zoom and pan,
a <b>Swipe</b> view (drag the handle) and a <b>Difference</b> view (red: brighter after
restoring, blue: darker). Learned models can invent detail that looks plausible: compare with
the original before you measure anything in a restored region.</p>

<h3>6. Save</h3>
<p><b>File &rsaquo; Save restored image</b> writes a new file (<i>name</i>_deblurred.tif by
default) with the same bit depth, shape and metadata. deblur refuses to write over the
original.</p>

<h3>From the command line</h3>
<p><code>deblur predict IMAGE -o OUT.tif --roi IMAGE.roi.json</code> restores without the
window; <code>deblur --help</code> lists every command.</p>
"""


def _dialog(parent: QtWidgets.QWidget | None, title: str, body: QtWidgets.QWidget,
            size: tuple[int, int]) -> QtWidgets.QDialog:
    dlg = QtWidgets.QDialog(parent)
    dlg.setWindowTitle(title)
    layout = QtWidgets.QVBoxLayout(dlg)
    layout.addWidget(body)
    buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dlg.reject)
    layout.addWidget(buttons)
    dlg.resize(*size)
    dlg.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    dlg.show()
    return dlg


def show_guide(parent: QtWidgets.QWidget | None) -> QtWidgets.QDialog:
    """The user guide, in a window of its own."""
    text = QtWidgets.QTextBrowser()
    text.setOpenExternalLinks(False)
    text.setHtml(GUIDE_HTML)
    return _dialog(parent, "deblur user guide", text, (640, 720))


def shortcut_rows(window: QtWidgets.QWidget) -> list[tuple[str, str]]:
    """(what it does, keys) for every action of the window that has a shortcut, sorted."""
    rows = set()
    for action in window.findChildren(QtGui.QAction):
        keys = ", ".join(k.toString(QtGui.QKeySequence.SequenceFormat.NativeText)
                         for k in action.shortcuts() if not k.isEmpty())
        if keys:
            rows.add((action.text().replace("&", "").rstrip("\u2026"), keys))
    return sorted(rows, key=lambda r: r[0].lower())


def show_shortcuts(window: QtWidgets.QWidget) -> QtWidgets.QDialog:
    """A table of the window's keyboard shortcuts."""
    rows = shortcut_rows(window)
    table = QtWidgets.QTableWidget(len(rows), 2)
    table.setHorizontalHeaderLabels(["Action", "Keys"])
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
    for i, (what, keys) in enumerate(rows):
        table.setItem(i, 0, QtWidgets.QTableWidgetItem(what))
        table.setItem(i, 1, QtWidgets.QTableWidgetItem(keys))
    table.horizontalHeader().setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
    table.horizontalHeader().setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
    return _dialog(window, "Keyboard shortcuts", table, (460, 560))
