"""Copy a training run's exported weights into resources/weights/ with its bench numbers.

    python benchmarks/ship_weights.py RUN_DIR|WEIGHTS.safetensors --real-cache CACHE [--synthetic 8] [--steps 20]

Runs the bench on the weights AFTER they were chosen (on the validation split): the real-image
TEST split (`deblur bench --split test`: other labs' images, never used for a decision) goes
into the card as "bench_real", the headline every user sees; the held-out simulated specimens
and the empty regions as "bench". Writes resources/weights/<model>.safetensors and <model>.json
atomically (the card also goes into the safetensors metadata). Given a shipped .safetensors
file, it re-measures it and rewrites only its card.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from core.models.registry import get_entry
from core.models.weights import load_weights, save_weights
from resources import WEIGHTS
from training.bench import model_settings, run_empty, run_quality, summarise
from training.bench_cases import make_cases, make_empty_cases, make_real_cases
from training.bench_checks import summarise_checks


def real_summary(rows: list[dict], command: str) -> dict:
    """The card's "bench_real": the real-image test figures and what the test images were."""
    (s,) = summarise(rows)
    (checks,) = summarise_checks(rows)["models"]
    sources = sorted({f"{r['package']} ({r['modality']})" for r in rows})
    kinds = sorted({r["modality"].split(" (")[0] for r in rows})     # without the details
    out = {"command": command, "split": "test", "images": s["images"],
           "sources": sources, "what": ", ".join(kinds),
           "gain_db": round(s["gain_db"], 2), "worst_gain_db": round(s["worst_gain_db"], 2),
           "harm_rate": round(s["harm_rate"], 3),
           "gain_over_rl_true_psf_db": round(s["gain_over_rl_oracle_db"], 2),
           "psnr_blurred": round(s["psnr_blurred"], 2), "psnr": round(s["psnr"], 2),
           "ssim_blurred": round(s["ssim_blurred"], 3), "ssim": round(s["ssim"], 3),
           "per_image": [{"image": r["image"], "source": r["source"], "radius_px": r["radius_px"],
                          "gain_db": round(r["gain_db"], 2)} for r in rows]}
    if "sharp_cases" in checks:
        out["sharp"] = {"cases": checks["sharp_cases"], "passed": checks["sharp_passed"],
                        "worst_psnr_smoothed": round(checks["sharp_worst_psnr_smoothed"], 1),
                        "worst_detail_ratio": round(checks["sharp_worst_detail_ratio"], 2)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="training run folder holding <model>.safetensors, or a "
                   "shipped .safetensors file to re-measure")
    p.add_argument("--real-cache", type=Path, required=True,
                   help="the cache of python -m training.real_images (its test split is measured)")
    p.add_argument("--synthetic", type=int, default=8, help="held-out simulated specimens")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps for the DDPM")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)

    exported = [args.run] if args.run.suffix == ".safetensors" else sorted(args.run.glob("*.safetensors"))
    if len(exported) != 1:
        print(f"{args.run}: expected one exported .safetensors file, found {len(exported)}", file=sys.stderr)
        return 2
    state, card = load_weights(exported[0])
    model = card["model"]
    entry = get_entry(model)

    params = {"steps": args.steps} if args.steps else None
    t0 = time.time()
    log = (lambda s: print(s, file=sys.stderr))
    real_rows = run_quality(make_real_cases("test", args.real_cache), [entry], device=args.device,
                            params=params, weights={model: exported[0]}, log=log)
    card["bench_real"] = real_summary(
        real_rows, f"deblur bench --split test --real-cache CACHE --models {model}"
                   + (f" --steps {args.steps}" if args.steps else ""))
    card["bench_real"]["settings"] = model_settings([entry], params)[model]
    cases = make_cases(args.synthetic, 256, 0, None, False)
    rows = run_quality(cases, [entry], device=args.device,
                       params=params,
                       weights={model: exported[0]}, log=log)
    (summary,) = summarise(rows)
    empty = run_empty(make_empty_cases(), [entry], device=args.device,
                      params=params,
                      weights={model: exported[0]}, log=lambda s: print(s, file=sys.stderr))
    card["bench"] = {
        "command": f"deblur bench --models {model} --synthetic {args.synthetic} --no-skimage"
                   + (f" --steps {args.steps}" if args.steps else ""),
        "group": "simulated specimens",
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
    real = card["bench_real"]
    print(f"{exported[0]} -> {dest}: real test images {real['gain_db']:+.2f} dB over blurred "
          f"(worst {real['worst_gain_db']:+.2f}, harm rate {100 * real['harm_rate']:.0f} %, "
          f"{real['gain_over_rl_true_psf_db']:+.2f} dB over RL with the true PSF); simulated "
          f"specimens {summary['gain_db']:+.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
