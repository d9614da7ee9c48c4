"""Adaptation settings compared on the bench's VALIDATION cases (decisions are made here; the
test split only reports): each variant adapts COMI to every case for a fixed number of steps
(so the figures do not depend on how busy the machine is) and is scored against the shipped
model.

    python benchmarks/adapt_variants.py --real-cache ~/.cache/deblur-real --steps 150 \
        --variant default --variant no_blur_share=0.05 --out runs/adapt_variants.json

`--split train` uses the cases cut from the real pool's TRAINING planes instead
(`training.bench_cases.make_train_cases`: about 80, at finer blur steps), for rules that need
more cases than validation holds; validation then checks them.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from core.adaptation import AdaptSettings
from core.models.registry import get_entry
from training.bench import run_quality
from training.bench_cases import make_cases, make_real_cases, make_train_cases
from training.bench_checks import summarise_checks


def _variant(text: str, steps: int) -> AdaptSettings:
    s = AdaptSettings(steps=steps)
    if text == "default":
        return s
    changes = {}
    for item in text.split(","):
        key, value = item.split("=", 1)
        kind = type(getattr(s, key))
        changes[key] = kind(value)
    return replace(s, **changes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real-cache", type=Path, required=True)
    ap.add_argument("--synthetic", type=int, default=4)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--variant", action="append", default=[])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--split", choices=("val", "train"), default="val")
    args = ap.parse_args()
    real = (make_train_cases(args.real_cache) if args.split == "train"
            else make_real_cases("val", args.real_cache))
    cases = make_cases(args.synthetic, 256, 0, None, False) + real
    results = {}
    for text in args.variant or ["default"]:
        rows = run_quality(cases, [get_entry("comi")], adapt=_variant(text, args.steps),
                           log=lambda line: print(f"[{text}] {line}", flush=True))
        results[text] = {"summary": summarise_checks(rows), "rows": rows}
        m = results[text]["summary"]["models"][0]
        print(f"== {text}: adapted - shipped {m.get('adapted_minus_shipped_db', float('nan')):+.2f} dB, "
              f"worst {m.get('worst_adapted_minus_shipped_db', float('nan')):+.2f} dB, "
              f"not adapted {m.get('adapt_failed')}", flush=True)
        args.out.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
