"""`deblur bench`: reproducible cases, honest scores, a report people and machines can read."""

import json

import numpy as np

from core.cli import main
from training.bench import make_cases, markdown_report, run_quality


def test_cases_are_reproducible_and_blur_only_the_region():
    a = make_cases(n_synthetic=2, size=96, include_skimage=False)
    b = make_cases(n_synthetic=2, size=96, include_skimage=False)
    for ca, cb in zip(a, b):
        assert np.array_equal(ca.blurred, cb.blurred) and np.array_equal(ca.sharp, cb.sharp)
        assert ca.region.any() and not ca.region.all()
        assert abs(ca.psf.sum() - 1) < 1e-6
    # outside the region the input is the truth plus camera noise; inside it is also blurred:
    # once the noise is smoothed away, the error is larger inside
    from scipy import ndimage

    for c in a:
        err = np.abs(ndimage.gaussian_filter(c.blurred - c.sharp, 3))
        assert err[c.region].mean() > err[~c.region].mean()


def test_quality_rows_score_the_region_and_outside_is_untouched():
    from core.models.registry import get_entry

    cases = make_cases(n_synthetic=1, size=96, include_skimage=False)
    rows = run_quality(cases, [get_entry("richardson-lucy")], log=lambda s: None)
    (row,) = rows
    assert row["outside_max_change"] == 0
    assert np.isfinite(row["psnr"]) and np.isfinite(row["psnr_rl_oracle"])
    assert row["gain_db"] == row["psnr"] - row["psnr_blurred"]
    report = markdown_report(rows, [], "deblur bench")
    assert "| richardson-lucy | 1 |" in report


def test_cli_json_and_bad_folder(tmp_path, capsys):
    rc = main(["bench", "--models", "richardson-lucy", "--synthetic", "1", "--size", "96",
               "--no-skimage", "--json", "--out", str(tmp_path / "b.md")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["summary"][0]["model"] == "richardson-lucy"
    assert (tmp_path / "b.md").read_text().startswith("# Benchmarks")
    assert main(["bench", "--data", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
