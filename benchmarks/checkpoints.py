"""Bench several exported weights files of one model on the same held-out cases, side by side.

    deblur-train --out RUN --export-only        # newest checkpoint -> RUN/<model>.safetensors
    python benchmarks/checkpoints.py A.safetensors B.safetensors ... --real-cache CACHE \
        [--synthetic 8] [--steps 20] [--param orientations=8]

For choosing which checkpoint of a run to ship, on the VALIDATION split only (the test split
is never used for a decision): one markdown row per file with, as `deblur bench --split val`
reports them, the real-image group (mean gain over the blurred input, worst case, harm rate),
the simulated-specimen group, fields like the shipped nuclei sample (`--sample-like`: the blur
varies inside their regions; the sample is the first thing a user restores), the gain over
Richardson-Lucy with the true PSF (real and simulated specimens), the "none"
cases (a sharp region marked as blurred: worst smoothed PSNR against the input, worst
fine-detail ratio), and the worst invented structure on the empty-region cases (RMS error
multiple of the input's, largest blotch in % of range); then the gain per case. Every file
must hold the same model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.predict import model_params
from core.models.registry import get_entry
from core.models.weights import WeightsError, load_weights
from training.bench import run_empty, run_quality, summarise, summarise_groups
from training.bench_cases import SAMPLE_LIKE, case_group, make_cases, make_empty_cases, \
    make_real_cases, make_sample_like_cases
from training.bench_checks import summarise_checks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", type=Path, nargs="+", help="exported .safetensors files of one model")
    p.add_argument("--real-cache", type=Path, help="the cache of python -m training.real_images "
                   "(its validation split); without it, simulated specimens only")
    p.add_argument("--synthetic", type=int, default=8, help="held-out simulated specimens")
    p.add_argument("--sample-like", type=int, default=8, metavar="N",
                   help="simulated fields like the shipped nuclei sample (its blur varies inside "
                        "the region); 0 = none")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps for diffusion models")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a model setting, e.g. orientations=8")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)

    try:
        cards = [load_weights(w)[1] for w in args.weights]
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    models = {c["model"] for c in cards}
    if len(models) != 1:
        print(f"error: the files hold different models ({', '.join(sorted(models))})", file=sys.stderr)
        return 2
    entry = get_entry(models.pop())
    params = model_params(args)
    # scikit-image's images belong to the test split: never here
    cases = make_cases(args.synthetic, 256, 0, None, False) + make_sample_like_cases(args.sample_like)
    if args.real_cache is not None:
        cases += make_real_cases("val", args.real_cache)
    empty = make_empty_cases()
    print("| weights | trained steps | real: gain | real: worst | real: harm | simulated: gain | "
          "sample-like: gain | vs RL (true PSF) | none: smoothed PSNR | none: detail x | "
          "empty: RMS x | empty: blotch % | " + " | ".join(c.name for c in cases) + " |")
    print("|---" * (12 + len(cases)) + "|")
    for path, card in zip(args.weights, cards):
        rows = run_quality(cases, [entry], device=args.device, params=params,
                           weights={entry.name: path}, log=lambda s: print(s, file=sys.stderr))
        # the older columns keep their cases: the sample-like fields are a group of their own
        main_rows = [r for r in rows if case_group(r["source"]) != SAMPLE_LIKE]
        (s,) = summarise(main_rows)
        groups = {g["group"]: g for g in summarise_groups(rows)}
        real, sim = groups.get("real microscopy"), groups.get("simulated specimens")
        like = groups.get(SAMPLE_LIKE)
        (c,) = summarise_checks(main_rows)["models"]
        e_rows = run_empty(empty, [entry], device=args.device, params=params,
                           weights={entry.name: path}, log=lambda s: print(s, file=sys.stderr))
        steps = card.get("training", {}).get("steps", "?")
        real_cols = (f"{real['gain_db']:+.2f} dB | {real['worst_gain_db']:+.2f} dB | "
                     f"{100 * real['harm_rate']:.0f} %" if real else "n/a | n/a | n/a")
        none_cols = (f"{c['sharp_worst_psnr_smoothed']:.1f} dB | {c['sharp_worst_detail_ratio']:.2f}"
                     if "sharp_cases" in c else "n/a | n/a")
        sim_col = f"{sim['gain_db']:+.2f} dB" if sim else "n/a"
        like_col = f"{like['gain_db']:+.2f} dB" if like else "n/a"
        print(f"| {path.name} | {steps} | {real_cols} | {sim_col} | {like_col} | "
              f"{s['gain_over_rl_oracle_db']:+.2f} dB | {none_cols} | "
              f"{max(r['rms_ratio'] for r in e_rows):.2f} | {max(r['blotch_pct'] for r in e_rows):.1f} | "
              + " | ".join(f"{r['gain_db']:+.2f}" for r in rows) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
