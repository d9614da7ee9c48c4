"""The trust check: a restoration the blurred input explains passes; invented structure, or a
region that was sharp already, is called out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.blur_estimate import estimate_blur, in_focus_reference, psf_for_radius
from core.cli import main as deblur
from core.normalize import normalize, percentile_params
from core.trust import check_region, region_checks
from resources import SAMPLES


@pytest.fixture(scope="module")
def case():
    from training.bench_cases import make_cases

    return make_cases(2, 256, seed=5, include_skimage=False)[1]        # 6 px of defocus


def _check(case, restored):
    p = percentile_params(case.blurred)
    est = estimate_blur(case.blurred, case.region, in_focus_reference(case.blurred, case.rois))
    return check_region(normalize(case.blurred, p), normalize(restored, p), case.region, est)


def test_the_true_sharp_image_is_consistent_with_its_blurred_input(case):
    result = _check(case, case.sharp)
    assert result.verdict == "consistent with the input" and result.disagree < 0.03


def test_invented_structure_is_flagged(case, rng):
    fake = case.sharp.copy()
    ys, xs = np.nonzero(case.region)
    span = float(np.percentile(case.sharp, 99.8) - np.percentile(case.sharp, 1))
    for k in rng.choice(len(ys), 40, replace=False):         # bright dots the input never showed
        fake[max(0, ys[k] - 2):ys[k] + 3, max(0, xs[k] - 2):xs[k] + 3] += 0.8 * span
    result = _check(case, fake)
    assert result.verdict == "check" and result.disagree > 0.03
    assert "disagrees with the input" in result.words()


def test_a_region_that_was_sharp_already_is_said_to_be(case):
    rows = region_checks(case.sharp, case.sharp, case.rois)
    assert rows[0].check.verdict == "already looks sharp" and "already looks sharp" in rows[0].check.words()


def test_predict_report_has_blur_and_verdict_per_region(tmp_path, capsys):
    report = tmp_path / "report.json"
    args = ["predict", str(SAMPLES / "nuclei_blurred.tif"), "--roi",
            str(SAMPLES / "nuclei_blurred.roi.json"), "-o", str(tmp_path / "out.tif"),
            "--model", "comi", "--report", str(report)]
    assert deblur(args) == 0
    assert "Region 1: about " in capsys.readouterr().err
    region = json.loads(report.read_text())["images"][0]["regions"][0]
    assert region["radius_px"] > 5 and region["verdict"] in ("consistent with the input", "check")
    assert set(region) >= {"blur", "verdict_words", "disagree_share", "confidence"}


def test_predict_says_once_that_a_sharp_region_already_looks_sharp(tmp_path, capsys):
    args = ["predict", str(SAMPLES / "nuclei_sharp.tif"), "--roi",
            str(SAMPLES / "nuclei_blurred.roi.json"), "-o", str(tmp_path / "out.tif"),
            "--model", "comi", "--report", str(tmp_path / "report.json")]
    assert deblur(args) == 0
    line = next(x for x in capsys.readouterr().err.splitlines() if "Region 1:" in x)
    assert line.count("already looks sharp") == 1, line


def test_one_line_per_region_joins_blur_and_verdict_and_says_sharp_once(case):
    from core.trust import region_line

    sharp = region_checks(case.sharp, case.sharp, case.rois)[0]
    line = region_line(sharp.estimate.words(), sharp.check.words())
    assert line.count("already looks sharp") == 1 and line == sharp.check.words()
    assert region_line("about 6 px out of focus", "consistent with the input") == \
        "about 6 px out of focus; consistent with the input"


def test_the_noise_model_grows_with_the_signal_as_photon_noise_does(rng):
    """Camera noise is Poisson-Gaussian: variance a * intensity + b. The fit recovers both from
    one noisy ramp, and says 'no slope' for flat noise."""
    from core.trust import noise_model

    ramp = np.repeat(np.linspace(0, 1, 256)[:, None], 256, axis=1)
    noisy = ramp + rng.normal(0, 1, ramp.shape) * np.sqrt(0.01 * ramp + 1e-4)
    a, b = noise_model(noisy, np.ones(ramp.shape, bool))
    assert a == pytest.approx(0.01, rel=0.15) and b < 5e-4
    a, b = noise_model(0.5 + rng.normal(0, 0.02, ramp.shape), np.ones(ramp.shape, bool))
    assert a < 1e-3 and np.sqrt(b) == pytest.approx(0.02, rel=0.15)
