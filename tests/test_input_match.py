""""Match the input": after a learned model, a Richardson-Lucy step with each region's measured
blur (core.input_match). What a user relies on: it brings the blurred region closer to the sharp
original, it leaves pixels outside the regions, regions that look sharp and runs without regions
alone, it is off unless asked for, and cancel still stops the run."""

from __future__ import annotations

import numpy as np
import pytest

from core.engine import Cancelled, restore
from core.blur_estimate import BlurEstimate
from core.input_match import MATCH_KEY, InputMatch, _RegionBlur, _why_not
from core.io import read_image
from core.metrics import psnr
from core.models.registry import get_entry, load_model
from core.region_files import load_region_file
from core.roi import Rect, RoiSet, roi_mask
from resources import SAMPLES


@pytest.fixture(scope="module")
def nuclei():
    """The shipped sample: a synthetic widefield field with a ~11 px defocused region."""
    blurred = read_image(SAMPLES / "nuclei_blurred.tif").data[:256, :256]
    sharp = read_image(SAMPLES / "nuclei_sharp.tif").data[:256, :256]
    rois, _ = load_region_file(SAMPLES / "nuclei_blurred.roi.json")
    return blurred, sharp, rois


def _inside(rois: RoiSet, shape) -> np.ndarray:
    return roi_mask(RoiSet(rois.rois, feather=0), shape) > 0


def test_learned_models_offer_matching_off_by_default_and_classical_does_not_need_it():
    for name in ("comi", "cyclegan", "ddpm"):
        assert get_entry(name).params[MATCH_KEY].default == 0
        assert load_model(name, device="cpu").match_steps == 0
    assert load_model("comi", device="cpu", **{MATCH_KEY: 1}).match_steps == 1
    assert MATCH_KEY not in get_entry("richardson-lucy").params
    with pytest.raises(ValueError):
        load_model("richardson-lucy", **{MATCH_KEY: 1})


def test_matching_brings_the_blurred_region_closer_to_the_sharp_original(nuclei):
    blurred, sharp, rois = nuclei
    inside = _inside(rois, blurred.shape)
    assert inside.sum() > 2000, "the crop must hold a good part of the blurred region"
    rng_ = float(sharp.max() - sharp.min())
    plain = restore(blurred, load_model("comi", device="cpu"), rois)
    matched = restore(blurred, load_model("comi", device="cpu", **{MATCH_KEY: 1}), rois)
    p_plain = psnr(plain.astype(np.float32), sharp.astype(np.float32), rng_, mask=inside)
    p_matched = psnr(matched.astype(np.float32), sharp.astype(np.float32), rng_, mask=inside)
    assert p_matched > p_plain + 0.1, (p_plain, p_matched)
    # and nothing outside the regions moved, bit for bit
    outside = roi_mask(rois, blurred.shape) == 0
    assert np.array_equal(matched[outside], blurred[outside])
    assert matched.dtype == blurred.dtype


def test_a_region_that_looks_sharp_and_a_run_without_regions_are_left_as_the_model_made_them(nuclei):
    _, sharp, _ = nuclei
    on = load_model("comi", device="cpu", **{MATCH_KEY: 1})
    off = load_model("comi", device="cpu")
    # a sharp area of the field marked as if blurred
    rois = RoiSet([Rect(150.0, 10.0, 90.0, 90.0)], feather=8.0)
    matcher = InputMatch.measure(sharp, rois, 1)
    assert matcher is not None and not matcher.blurs and "did not match the input in region 1" in matcher.note
    assert InputMatch.measure(sharp, rois, 0) is None and InputMatch.measure(sharp, None, 1) is None
    assert np.array_equal(restore(sharp, on, rois), restore(sharp, off, rois))
    small = sharp[:96, :96]
    assert np.array_equal(restore(small, on, None), restore(small, off, None))


def test_only_a_blur_measured_with_confidence_is_matched():
    """A sharp region misread as mildly blurred has a range reaching under 2 px; a reading at
    the top of the range is a misread too: both would be sharpened into noise and rings."""
    assert _why_not(BlurEstimate(6.0, 4.5, 8.0, "high")) is None
    assert "under 2 px" in _why_not(BlurEstimate(3.1, 0.5, 4.3, "low"))
    assert "over 30 px" in _why_not(BlurEstimate(41.0, 34.0, 48.0, "high"))
    assert _why_not(BlurEstimate(0.0, 0.0, 0.0, "high")) == "looks sharp"
    assert _why_not(BlurEstimate(None, reason="too small")) == "blur not measured"


def test_matching_reports_which_regions_it_used(nuclei):
    blurred, _, rois = nuclei
    model = load_model("comi", device="cpu", **{MATCH_KEY: 1})
    restore(blurred, model, rois)
    assert "matched the input with the measured blur in region 1 (" in model.psf_note
    assert model.psf_note.startswith("used the measured blur of region 1 (")
    restore(blurred[:96, :96], model, None)          # the same model, next file: no regions
    assert model.psf_note == ""


def test_a_crop_takes_the_blur_of_the_region_that_covers_most_of_it():
    m = InputMatch(1, [_RegionBlur((0, 50, 0, 50), 3.0), _RegionBlur((40, 200, 40, 200), 9.0)],
                   device=None)
    assert m.radius_in(0, 60, 0, 60) == 3.0
    assert m.radius_in(30, 220, 30, 220) == 9.0
    assert m.radius_in(300, 400, 300, 400) is None


def test_cancel_stops_the_run_during_the_matching_step(nuclei, monkeypatch):
    blurred, _, rois = nuclei
    model = load_model("comi", device="cpu", **{MATCH_KEY: 1})
    state = {"matching": False, "finished": False}
    real_apply = InputMatch.apply

    def apply(self, *args, **kwargs):
        state["matching"] = True            # the user presses Cancel now
        out = real_apply(self, *args, **kwargs)
        state["finished"] = True
        return out

    monkeypatch.setattr(InputMatch, "apply", apply)
    with pytest.raises(Cancelled):
        restore(blurred, model, rois, cancel=lambda: state["matching"])
    assert state["matching"] and not state["finished"]
