"""How blurred a region is, measured against the same image's in-focus areas."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.blur_estimate import estimate_blur, estimate_regions, in_focus_reference
from core.cli import main as deblur
from core.engine import restore
from core.models.classical import make_psf
from core.metrics import psnr
from core.models.registry import load_model
from core.normalize import normalize, percentile_params
from core.roi import Rect, RoiSet
from resources import SAMPLES


@pytest.fixture(scope="module")
def cases():
    from training.bench_cases import make_cases

    return make_cases(3, 256, seed=5, include_skimage=False)      # radii 3, 6, 10 px


def test_the_blur_of_a_defocused_region_is_found_within_a_third(cases):
    for c in cases:
        est = estimate_blur(c.blurred, c.region, in_focus_reference(c.blurred, c.rois))
        assert est.radius_px is not None and est.low_px <= est.radius_px <= est.high_px
        assert abs(est.radius_px - c.radius_px) <= 0.3 * c.radius_px, (c.name, c.radius_px, est)
        assert "out of focus" in est.words()
        assert est.short() == f"about {est.radius_px:.0f} px blur" + (
            " (uncertain)" if est.confidence == "low" else "")


def test_a_sharp_region_marked_as_blurred_is_called_sharp(cases):
    c = cases[0]
    est = estimate_blur(c.sharp, c.region, in_focus_reference(c.sharp, c.rois))
    assert est.looks_sharp and "already looks sharp" in est.words() and est.short() == "looks sharp"


def test_a_region_with_the_fine_detail_of_the_in_focus_areas_is_sharp_whatever_its_spectrum_reads(cases):
    """The spectrum's few px can be the specimen's own difference; fine detail as strong as
    the in-focus areas' (the focus map) settles it as sharp. Real blur keeps its reading, and
    beyond a few px (where the focus bands see nothing) the spectrum alone decides."""
    mild, strong = cases[0], cases[2]                                   # 3 px, 10 px
    ref = in_focus_reference(mild.blurred, mild.rois)
    measured = estimate_blur(mild.blurred, mild.region, ref)
    assert not measured.looks_sharp and measured.detail_ratio < 0.9     # the real focus map
    same_detail = np.full(mild.blurred.shape, 0.5, np.float32)          # region = in-focus areas
    est = estimate_blur(mild.blurred, mild.region, ref, focus=same_detail)
    assert est.looks_sharp and est.sharp_by_detail and est.radius_px == 0.0
    assert est.extra["radius"] == measured.radius_px                    # the fit's reading is kept
    assert est.words().startswith("already looks sharp")
    ref = in_focus_reference(strong.blurred, strong.rois)
    est = estimate_blur(strong.blurred, strong.region, ref, focus=same_detail)
    assert not est.looks_sharp and est.radius_px > 6


def test_an_rgb_plane_is_measured_on_its_mean_intensity(cases):
    c = cases[1]
    rgb = np.stack([c.blurred, c.blurred * 0.5, c.blurred * 0.25], axis=-1)
    grey = estimate_regions(c.blurred, c.rois)[0]
    colour = estimate_regions(rgb, c.rois)[0]
    assert colour.radius_px is not None and abs(colour.radius_px - grey.radius_px) <= 0.1 * grey.radius_px


def test_no_structure_or_too_little_image_gives_a_reason_not_a_number(rng):
    flat = rng.normal(100, 3, (256, 256)).astype(np.float32)
    est = estimate_regions(flat, RoiSet([Rect(64, 64, 128, 128)]))[0]
    assert est.radius_px is None and est.reason and est.short() == "blur not measured"
    tiny = rng.normal(100, 3, (64, 64)).astype(np.float32)
    est = estimate_regions(tiny, RoiSet([Rect(8, 8, 48, 48)]))[0]
    assert est.radius_px is None and "too small" in est.reason


def test_richardson_lucy_measures_its_blur_radius_by_default(cases):
    """psf_radius=auto: RL finds the radius itself and does about as well as when told it."""
    c = cases[1]
    ref = percentile_params(c.sharp)
    score = {}
    for label, params in (("auto", {}), ("told", {"psf_radius": c.radius_px})):
        model = load_model("richardson-lucy", device="cpu", **params)
        out = restore(c.blurred, model, c.rois, axes="YX")
        score[label] = psnr(normalize(out, ref), normalize(c.sharp, ref), data_range=1.0, mask=c.region)
        if label == "auto":
            assert "estimated from the image" in model.psf_note
    assert score["auto"] >= score["told"] - 0.5


def test_richardson_lucy_without_regions_falls_back_and_says_so():
    model = load_model("richardson-lucy", device="cpu")
    restore(np.random.default_rng(0).random((64, 64), dtype=np.float32), model, None)
    assert "no regions marked" in model.psf_note and "blur radius 3 px" in model.psf_note
    assert model.radius == make_psf(3.0).shape[0] // 2


def test_deblur_estimate_prints_each_region(capsys):
    args = ["estimate", str(SAMPLES / "tissue_blurred.png"), "--roi", str(SAMPLES / "tissue_blurred.roi.json")]
    assert deblur(args) == 0
    assert capsys.readouterr().out.startswith("region 1: about ")
    assert deblur([*args, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["region"] == 1 and rows[0]["radius_px"] > 2 and rows[0]["confidence"] in ("high", "medium", "low")
    assert deblur(["estimate", str(SAMPLES / "tissue_blurred.png")]) == 2
    assert "--roi" in capsys.readouterr().err


def test_richardson_lucy_at_its_defaults_restores_rather_than_harms():
    """The classical baseline at its defaults (measured radius, 5 iterations, a disk of 0.8x
    the radius) brings every simulated defocus back closer to the sharp specimen; 30
    iterations of the full disk, the old defaults, made the mildest of these 5.6 dB worse."""
    from training.bench_cases import make_cases

    for case in make_cases(4, 128, seed=3, include_skimage=False):
        rng = float(case.sharp.max() - case.sharp.min())
        out = restore(case.blurred, load_model("richardson-lucy", device="cpu"), case.rois)
        gain = psnr(out, case.sharp, rng, mask=case.region) - psnr(case.blurred, case.sharp, rng,
                                                                      mask=case.region)
        assert gain > 0.3, (case.name, case.radius_px, gain)


def test_a_small_region_of_a_large_frame_is_measured_against_its_neighbourhood(monkeypatch):
    """Memory and time follow the regions, not the frame: the focus map is computed on the
    regions' neighbourhood only, and the estimate is the one of that neighbourhood."""
    import core.focus as focus_module
    from core.blur_estimate import REFERENCE_REACH_PX, estimate_regions
    from core.roi import Rect, RoiSet
    from scipy import ndimage

    rng = np.random.default_rng(3)
    big = ndimage.gaussian_filter(rng.random((3000, 2500)), 1.0).astype(np.float32)
    big[1200:1400, 1000:1200] = ndimage.gaussian_filter(big[1150:1450, 950:1250], 4.0)[50:250, 50:250]
    rois = RoiSet([Rect(1000, 1200, 200, 200)], feather=0)
    shapes = []
    real = focus_module.focus_map
    monkeypatch.setattr(focus_module, "focus_map", lambda p, *a, **k: shapes.append(p.shape) or real(p, *a, **k))
    (est,) = estimate_regions(big, rois)
    assert shapes == [(200 + 2 * REFERENCE_REACH_PX, 200 + 2 * REFERENCE_REACH_PX)]
    crop = big[1200 - REFERENCE_REACH_PX:1400 + REFERENCE_REACH_PX, 1000 - REFERENCE_REACH_PX:1200 + REFERENCE_REACH_PX]
    # measured afresh (not from the cache of measurements) on that neighbourhood alone
    from core.blur_estimate import _measure_regions
    (same,) = _measure_regions(crop, RoiSet([Rect(REFERENCE_REACH_PX, REFERENCE_REACH_PX, 200, 200)], feather=0))
    assert est.radius_px == same.radius_px and est.radius_px > 2


def test_the_same_pixels_and_regions_are_measured_once(monkeypatch):
    """One run asks for the same measurement several times (region list, engine, trust
    check): the focus map and fits run once; other pixels or regions are measured anew, and
    each caller gets its own copy."""
    import core.focus as focus_module
    from scipy import ndimage

    rng = np.random.default_rng(11)
    plane = ndimage.gaussian_filter(rng.random((256, 256)), 1.0).astype(np.float32)
    plane[64:160, 64:160] = ndimage.gaussian_filter(plane, 3.0)[64:160, 64:160]
    rois = RoiSet([Rect(64, 64, 96, 96)])
    calls = []
    real = focus_module.focus_map
    monkeypatch.setattr(focus_module, "focus_map", lambda p, *a, **k: calls.append(1) or real(p, *a, **k))
    first = estimate_regions(plane, rois)
    again = estimate_regions(plane.copy(), RoiSet([Rect(64, 64, 96, 96)], feather=3))
    assert len(calls) == 1 and again[0].radius_px == first[0].radius_px
    again[0].radius_px = -1.0                          # a caller's copy, not the stored one
    assert estimate_regions(plane, rois)[0].radius_px == first[0].radius_px
    changed = plane.copy()
    changed[0, 0] += 1.0
    estimate_regions(changed, rois)
    estimate_regions(plane, RoiSet([Rect(60, 64, 96, 96)]))
    assert len(calls) == 3
