"""Detect blurred regions as a user drives it: the slider over its whole range on both samples,
the focus map that shows sharp and blurred apart, and what Replace says."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from core.blurred_regions import blurred_regions
from core.io import read_image
from deblur_gui.dialogs import focus_colour_positions
from resources import SAMPLES


def _plane(name: str) -> np.ndarray:
    data = read_image(SAMPLES / name).data.astype(np.float32)
    return data.mean(axis=-1) if data.ndim == 3 else data


@pytest.mark.parametrize("name", ["nuclei_blurred.tif", "tissue_blurred.png"])
def test_coverage_follows_the_threshold_up_to_the_whole_image(name):
    """Past two thirds of the slider every step used to give one corner-to-corner triangle
    covering half the field; coverage must rise with the threshold up to the whole image."""
    plane = _plane(name)
    covered = []
    for t in np.geomspace(0.002, 1.0, 14):
        rois, mask = blurred_regions(plane, threshold=float(t))
        covered.append(mask.mean())
        assert all(len(r.points) >= 4 for r in rois if mask.mean() > 0.45), t
    assert all(b >= a - 0.02 for a, b in zip(covered, covered[1:])), covered
    assert covered[-1] > 0.99 and covered[0] < 0.5


@pytest.mark.parametrize("name", ["nuclei_blurred.tif", "tissue_blurred.png"])
def test_detect_dialog_slider_over_its_whole_range(window, name):
    assert window.open_file(SAMPLES / name)
    dlg = window.detect_dialog()
    fractions = []
    for v in range(0, dlg.slider.maximum() + 1, max(1, dlg.slider.maximum() // 12)):
        dlg.slider.setValue(v)
        dlg.update_detection()
        fractions.append(float(dlg.mask.mean()))
    assert fractions[-1] > 0.99 and "100 %" in dlg.summary.text()
    assert all(b >= a - 0.02 for a, b in zip(fractions, fractions[1:])), fractions
    dlg.close()


def test_focus_map_colours_tell_sharp_from_blurred(window):
    """The nuclei sample is blurred in a band across its top and sharp below: on the overlay the
    two must sit at opposite ends of the colour scale (it was purple everywhere), with a legend."""
    assert window.open_file(SAMPLES / "nuclei_blurred.tif")
    dlg = window.detect_dialog()
    pos = focus_colour_positions(dlg.focus_map)
    sharp, blurred = pos[400:500, 50:450], pos[100:180, 300:480]
    assert np.median(sharp[sharp >= 0]) > 0.6 and np.median(blurred[blurred >= 0]) < 0.3
    rgba = dlg.map_item.image
    assert rgba.shape[-1] == 4 and np.ptp(rgba[..., :3].reshape(-1, 3), axis=0).max() > 150
    dlg.show_map.setChecked(True)
    assert dlg.legend.isVisible() and dlg.map_item.isVisible()
    dlg.close()


def test_replace_says_replaced(window, caplog):
    assert window.open_file(SAMPLES / "nuclei_blurred.tif")   # its region file loads too
    dlg = window.detect_dialog()
    dlg.slider.setValue(dlg.slider.maximum())
    dlg.update_detection()
    with caplog.at_level(logging.INFO, logger="deblur.gui"):
        dlg.replace_btn.click()
    assert "Replaced the regions by 1 detected region" in caplog.text
    assert "Added" not in caplog.text
