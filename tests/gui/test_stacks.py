"""Stacks in Compare: its own plane/channel selectors (shared with the image tab), a results
table per plane after "All planes", channel names from the file, a merged-channel view."""

from __future__ import annotations

import numpy as np
from PySide6 import QtWidgets

from core.io import Image, write_image
from core.roi import Rect
from tests.gui.conftest import make_specimen


def _stack(tmp_path):
    planes = [make_specimen((64, 64), seed=s) for s in range(6)]
    data = np.stack(planes).reshape(3, 2, 64, 64)
    return write_image(tmp_path / "zc.tif", Image(data, "ZCYX", metadata={"channel_names": ["DAPI", "GFP"]}))


def test_compare_has_plane_and_channel_selectors_in_step_with_the_image_tab(window, tmp_path):
    assert window.open_file(_stack(tmp_path))
    bar = window.compare.plane_bar
    assert bar.isVisibleTo(window.compare) and bar.controls["C"].itemText(1).endswith("GFP")
    bar.controls["C"].setCurrentIndex(1)
    bar.controls["Z"].setValue(2)
    assert window.state.plane == {"Z": 2, "C": 1}
    assert window.plane_bar.controls["C"].currentIndex() == 1          # the image tab follows
    assert window.plane_bar.controls["Z"].value() == 2
    assert window.state.plane_description() == "Z 3, GFP"


def test_all_planes_run_reports_every_plane_by_name(window, tmp_path, qtbot):
    assert window.open_file(_stack(tmp_path))
    window.state.add_roi(Rect(8, 8, 40, 40))
    window.select_model("richardson-lucy")
    window.model_panel.set_param("iterations", 3)
    window.model_panel.all_planes.setChecked(True)
    with qtbot.waitSignal(window.run_finished, timeout=60000) as sig:
        assert window.start_run()
    assert sig.args == ["done"], window.last_error_text
    rows = [r[0] for r in window.state.result().checks]
    assert len(rows) == 6 and rows[0].startswith("Z 1, DAPI") and rows[-1].startswith("Z 3, GFP")
    table = window.compare.table
    assert table.rowCount() == 6 and table.item(3, 0).text().startswith("Z 2, GFP")


def test_merged_channel_view(window, tmp_path):
    assert window.open_file(_stack(tmp_path))
    merge = window.plane_bar.merge
    assert isinstance(merge, QtWidgets.QCheckBox)
    merge.setChecked(True)
    shown = window.viewer.data
    assert shown.shape == (64, 64, 3) and shown.dtype == np.uint8
    assert shown[..., 1].max() > 0 and shown[..., 0].max() > 0        # green DAPI, magenta GFP
    assert window.compare.plane_bar.merge.isChecked()                # both bars show it
    merge.setChecked(False)
    assert window.viewer.data.shape == (64, 64)
