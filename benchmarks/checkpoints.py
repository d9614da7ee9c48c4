"""Bench several exported weights files of one model on the same held-out cases, side by side.

    deblur-train --out RUN --export-only        # newest checkpoint -> RUN/<model>.safetensors
    python benchmarks/checkpoints.py A.safetensors B.safetensors ... [--synthetic 8] [--steps 20] [--param orientations=8]

For choosing and documenting which checkpoint of a run to ship: one markdown row per file
(mean ROI PSNR gain over the blurred input and over Richardson-Lucy with the true PSF, as
`deblur bench` reports them; the worst invented structure on the empty-region cases, as an RMS
error multiple of the input's and the largest blotch in % of range), then the gain per bench image. The cases are those of
docs/BENCHMARKS.md (seed 0); every file must hold the same model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.predict import model_params
from core.models.registry import get_entry
from core.models.weights import WeightsError, load_weights
from training.bench import run_empty, run_quality, summarise
from training.bench_cases import make_cases, make_empty_cases


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", type=Path, nargs="+", help="exported .safetensors files of one model")
    p.add_argument("--synthetic", type=int, default=8, help="held-out simulated specimens")
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
    cases = make_cases(args.synthetic, 256, 0, None, True)
    empty = make_empty_cases()
    print("| weights | trained steps | gain vs blurred | vs RL (true PSF) | empty: RMS x | empty: blotch % | "
          + " | ".join(c.name for c in cases) + " |")
    print("|---" * (6 + len(cases)) + "|")
    for path, card in zip(args.weights, cards):
        rows = run_quality(cases, [entry], device=args.device, params=params,
                           weights={entry.name: path}, log=lambda s: print(s, file=sys.stderr))
        (s,) = summarise(rows)
        e_rows = run_empty(empty, [entry], device=args.device, params=params,
                           weights={entry.name: path}, log=lambda s: print(s, file=sys.stderr))
        steps = card.get("training", {}).get("steps", "?")
        print(f"| {path.name} | {steps} | {s['gain_db']:+.2f} dB | {s['gain_over_rl_oracle_db']:+.2f} dB | "
              f"{max(r['rms_ratio'] for r in e_rows):.2f} | {max(r['blotch_pct'] for r in e_rows):.1f} | "
              + " | ".join(f"{r['gain_db']:+.2f}" for r in rows) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
