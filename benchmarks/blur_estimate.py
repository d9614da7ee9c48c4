"""How well `core.blur_estimate` finds the true blur, and Richardson-Lucy with psf_radius=auto
against Richardson-Lucy told the true radius, on the bench's cases.

    python benchmarks/blur_estimate.py --split val --real-cache ~/.cache/deblur-real [--size 256]
    python benchmarks/blur_estimate.py --synthetic 12 --seed 5
    python benchmarks/blur_estimate.py --split train --real-cache ~/.cache/deblur-real --no-rl
    python benchmarks/blur_estimate.py --split train-sharp --real-cache ~/.cache/deblur-real --no-rl

Settings are tuned on `--split train` (cases cut from the real pool's training split: more
cases, finer blur steps) and simulated cases, checked on `--split val`; the test split is for
reporting (docs/BENCHMARKS.md). `--split train-sharp`: only sharp regions, every training plane
at each bench magnification, for how often a sharp region is read as blurred.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from core.blur_estimate import estimate_blur, in_focus_reference
from core.engine import restore
from core.metrics import psnr
from core.models.registry import load_model
from core.normalize import normalize, percentile_params


def _rl_psnr(case, **params) -> float:
    model = load_model("richardson-lucy", device="cpu", **params)
    out = restore(case.blurred, model, case.rois, axes="YX")
    ref = percentile_params(case.sharp)
    return psnr(normalize(out, ref), normalize(case.sharp, ref), data_range=1.0, mask=case.region)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("train", "train-sharp", "val", "test"), default=None)
    ap.add_argument("--real-cache", type=Path, default=None)
    ap.add_argument("--synthetic", type=int, default=0, help="simulated cases (no scikit-image)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-rl", action="store_true", help="skip Richardson-Lucy (estimates only)")
    args = ap.parse_args()
    from training.bench_cases import (make_cases, make_real_cases, make_train_cases,
                                      make_train_sharp_cases)

    cases = []
    if args.split == "train-sharp":
        cases += make_train_sharp_cases(args.real_cache, size=args.size)
    elif args.split == "train":
        cases += make_train_cases(args.real_cache, size=args.size, seed=args.seed)
    elif args.split:
        cases += make_real_cases(args.split, args.real_cache, size=args.size, seed=args.seed)
    if args.synthetic:
        cases += make_cases(args.synthetic, args.size, seed=args.seed, include_skimage=False)
    print("| case | true radius (px) | estimate (px) | range | confidence | RL auto dB | RL true dB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    errors, sharp_ok, sharp_n, gains = [], 0, 0, []
    by_radius: dict[float, list[float]] = {}
    for c in cases:
        e = estimate_blur(c.blurred, c.region, in_focus_reference(c.blurred, c.rois))
        shown = "-" if e.radius_px is None else f"{e.radius_px:.1f}"
        span = "-" if e.low_px is None else f"{e.low_px:.1f}-{e.high_px:.1f}"
        auto = told = float("nan")
        if c.radius_px > 0:
            errors.append(np.nan if e.radius_px is None else abs(e.radius_px - c.radius_px) / c.radius_px)
            if not args.no_rl:
                auto, told = _rl_psnr(c), _rl_psnr(c, psf_radius=c.radius_px)
                gains.append(auto - told)
            by_radius.setdefault(c.radius_px, []).append(errors[-1])
        else:
            sharp_n += 1
            sharp_ok += int(e.radius_px is None or e.looks_sharp)
        print(f"| {c.name} | {c.radius_px:g} | {shown} | {span} | {e.confidence} | {auto:.2f} | {told:.2f} |")
    err = np.array(errors)
    if (~np.isnan(err)).any():
        print(f"\nblurred cases: {len(err)}, no estimate: {int(np.isnan(err).sum())}, relative error "
              f"median {np.nanmedian(err):.2f}, 90th percentile {np.nanpercentile(err, 90):.2f}, "
              f"worst {np.nanmax(err):.2f}")
    print(f"sharp cases called sharp (or not judged): {sharp_ok}/{sharp_n}")
    for r, errs in sorted(by_radius.items()):
        e = np.array(errs)
        print(f"  true radius {r:g} px: {len(e)} cases, no estimate {int(np.isnan(e).sum())}, "
              f"median error {np.nanmedian(e) if (~np.isnan(e)).any() else np.nan:.2f}")
    if gains:
        print(f"RL with auto minus RL told the true radius: {np.mean(gains):+.2f} dB on average")


if __name__ == "__main__":
    main()
