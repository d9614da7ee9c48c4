"""Copy a training run's exported weights into resources/weights/ with its bench numbers.

    python benchmarks/ship_weights.py RUN_DIR [--synthetic 8] [--steps 20]

Runs `deblur bench` on the run's weights (the same held-out cases as docs/BENCHMARKS.md),
adds the summary to the model card as "bench", and writes resources/weights/<model>.safetensors
and <model>.json atomically (the card also goes into the safetensors metadata).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from core.models.registry import get_entry
from core.models.weights import load_weights, save_weights
from resources import WEIGHTS
from training.bench_cases import make_cases, make_empty_cases
from training.bench import (model_settings, run_empty, run_quality,
                            summarise)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="training run folder holding <model>.safetensors")
    p.add_argument("--synthetic", type=int, default=8, help="held-out simulated specimens")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps for the DDPM")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)

    exported = sorted(args.run.glob("*.safetensors"))
    if len(exported) != 1:
        print(f"{args.run}: expected one exported .safetensors file, found {len(exported)}", file=sys.stderr)
        return 2
    state, card = load_weights(exported[0])
    model = card["model"]
    entry = get_entry(model)

    params = {"steps": args.steps} if args.steps else None
    t0 = time.time()
    cases = make_cases(args.synthetic, 256, 0, None, True)
    rows = run_quality(cases, [entry], device=args.device,
                       params=params,
                       weights={model: exported[0]}, log=lambda s: print(s, file=sys.stderr))
    (summary,) = summarise(rows)
    empty = run_empty(make_empty_cases(), [entry], device=args.device,
                      params=params,
                      weights={model: exported[0]}, log=lambda s: print(s, file=sys.stderr))
    card["bench"] = {
        "command": f"deblur bench --models {model} --synthetic {args.synthetic}"
                   + (f" --steps {args.steps}" if args.steps else ""),
        "settings": model_settings([entry], params)[model],     # what the numbers hold for
        "images": summary["images"],
        "psnr_blurred": round(summary["psnr_blurred"], 2),
        "psnr_rl_true_psf": round(summary["psnr_rl_oracle"], 2),
        "psnr": round(summary["psnr"], 2),
        "gain_db": round(summary["gain_db"], 2),
        "gain_over_rl_true_psf_db": round(summary["gain_over_rl_oracle_db"], 2),
        "ssim_blurred": round(summary["ssim_blurred"], 3),
        "ssim": round(summary["ssim"], 3),
        "outside_max_change": summary["outside_max_change"],
        "per_image": [{"image": r["image"], "radius_px": r["radius_px"], "gain_db": round(r["gain_db"], 2)}
                      for r in rows],
        # what it draws over plain background: RMS error as a multiple of the input's, and
        # the largest smoothed blotch in % of the image's range (training.bench.invented_structure)
        "empty_regions": [{"image": r["image"], "rms_ratio": round(r["rms_ratio"], 3),
                           "blotch_pct": round(r["blotch_pct"], 2)} for r in empty],
        "wall_time_s": round(time.time() - t0, 1),
    }
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    dest = save_weights(WEIGHTS / f"{model}.safetensors", state, card)
    print(f"{exported[0]} -> {dest}: bench gain {summary['gain_db']:+.2f} dB over blurred, "
          f"{summary['gain_over_rl_oracle_db']:+.2f} dB over RL with the true PSF")
    return 0


if __name__ == "__main__":
    sys.exit(main())
