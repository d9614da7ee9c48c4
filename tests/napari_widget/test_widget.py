"""The deblur dock widget in a real napari viewer (make_napari_viewer, napari's own fixture).

napari draws with OpenGL, which Qt's offscreen platform lacks, so these tests run in their
own process on a virtual display: tests/test_napari_plugin.py starts them (xvfb-run).
"""

from __future__ import annotations

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from core.cli import main as deblur                                    # noqa: E402
from core.io import read_image                                         # noqa: E402
from deblur_gui.napari_plugin.widget import WHOLE_IMAGE, DeblurWidget  # noqa: E402
from resources import SAMPLES                                          # noqa: E402

NUCLEI = SAMPLES / "nuclei_blurred.tif"


@pytest.fixture
def viewer_and_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("deblur", "deblur")   # through the manifest
    assert isinstance(widget, DeblurWidget)
    return viewer, widget


def _run(qtbot, widget) -> None:
    widget.restore()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=180_000)


def test_restoring_the_nuclei_sample_gives_the_pixels_of_deblur_predict(viewer_and_widget, qtbot, tmp_path):
    viewer, widget = viewer_and_widget
    viewer.open_sample("deblur", "nuclei")
    widget.image_combo.setCurrentText("nuclei")
    widget.regions_combo.setCurrentText("nuclei: blurred region")
    assert widget.feather.value() == 40                  # the sample's own edge softness
    widget.model_combo.setCurrentIndex(widget.model_combo.findData("comi"))
    _run(qtbot, widget)
    assert widget.last_result is not None, widget.status.text()
    out = tmp_path / "predict.tif"
    assert deblur(["predict", str(NUCLEI), "--roi", str(SAMPLES / "nuclei_blurred.roi.json"),
                   "--model", "comi", "-o", str(out), "-q"]) == 0
    assert np.array_equal(widget.last_result.data, read_image(out).data)
    original = viewer.layers["nuclei"]
    assert np.array_equal(original.data, read_image(NUCLEI).data)       # untouched
    assert tuple(widget.last_result.scale) == tuple(original.scale)
    assert widget.last_result.metadata["deblur"]["model"] == "comi"      # provenance


def test_detect_adds_a_regions_layer_that_restore_then_uses(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    viewer.add_image(read_image(NUCLEI).data, name="cells")
    widget.detect()
    shapes = viewer.layers["cells: blurred regions"]
    assert len(shapes.data) >= 1 and widget.regions_combo.currentText() == shapes.name
    widget.model_combo.setCurrentIndex(widget.model_combo.findData("richardson-lucy"))
    _run(qtbot, widget)
    assert widget.last_result is not None


def test_a_colour_picture_from_a_dask_array_is_restored(viewer_and_widget, qtbot):
    da = pytest.importorskip("dask.array")
    viewer, widget = viewer_and_widget
    rgb = read_image(SAMPLES / "tissue_blurred.png").data[:128, :128]
    viewer.add_image(da.from_array(rgb, chunks=64), name="tissue", rgb=True)
    widget.regions_combo.setCurrentText(WHOLE_IMAGE)
    widget.model_combo.setCurrentIndex(widget.model_combo.findData("richardson-lucy"))
    _run(qtbot, widget)
    assert widget.last_result.data.shape == rgb.shape and widget.last_result.data.dtype == rgb.dtype


@pytest.mark.parametrize("case, words", [
    ("stack", "one 2-D plane at a time"),
    ("lines", "no area to restore"),
    ("empty", "is empty"),
    ("no image", "Open an image first"),
])
def test_bad_layers_give_one_plain_message_and_add_nothing(viewer_and_widget, case, words):
    viewer, widget = viewer_and_widget
    if case == "stack":
        viewer.add_image(np.zeros((3, 64, 64), np.float32), name="stack")
    elif case != "no image":
        viewer.add_image(np.zeros((64, 64), np.float32), name="plane")
        shapes = viewer.add_shapes(name="marks")
        if case == "lines":
            shapes.add_lines(np.array([[5, 5], [40, 40]]))
        widget.regions_combo.setCurrentText("marks")
    before = len(viewer.layers)
    widget.restore()
    assert widget.worker is None and words in widget.status.text()
    assert len(viewer.layers) == before


def test_cancel_stops_the_run_and_adds_no_layer(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    viewer.add_image(read_image(NUCLEI).data, name="cells")
    widget.regions_combo.setCurrentText(WHOLE_IMAGE)
    widget.model_combo.setCurrentIndex(widget.model_combo.findData("ddpm"))
    widget.restore()
    widget.cancel()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=180_000)
    assert widget.last_result is None and "Cancelled" in widget.status.text()
    assert [layer.name for layer in viewer.layers] == ["cells"]


def test_model_settings_use_the_apps_editors(viewer_and_widget):
    """The same editors as the app: Keep brightness reads "off" at 0 and gives 0, not auto."""
    from deblur_gui.param_widgets import set_param_value

    _, widget = viewer_and_widget
    widget.model_combo.setCurrentIndex(widget.model_combo.findData("cyclegan"))
    assert widget.settings()["brightness_px"] == 8.0
    box = widget.param_widgets["brightness_px"]
    set_param_value(box, 0.0)
    assert box.text() == "off" and widget.settings()["brightness_px"] == 0.0
    widget.model_combo.setCurrentIndex(widget.model_combo.findData("richardson-lucy"))
    assert widget.settings()["psf_radius"] == "auto"
