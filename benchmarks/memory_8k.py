"""Peak memory of restoring an 8192 x 8192 uint16 field (DESIGN §3: a few copies at most).

    python benchmarks/memory_8k.py [--model richardson-lucy] [--roi]

Prints the image size, the peak resident memory of the process above what it held before
the run (Linux VmHWM, reset just before), and that peak in image copies.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from core.engine import restore
from core.roi import Rect, RoiSet
from training.bench import _peak_rss_mb, _peak_rss_reset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="richardson-lucy")
    p.add_argument("--size", type=int, default=8192)
    p.add_argument("--roi", action="store_true", help="one 2048x2048 ROI instead of the full field")
    p.add_argument("--param", action="append", default=["iterations=3"] , help="model setting NAME=VALUE")
    args = p.parse_args()
    params = dict(kv.split("=", 1) for kv in args.param) if args.model == "richardson-lucy" else {}

    rng = np.random.default_rng(0)
    img = rng.integers(100, 4000, (args.size, args.size), dtype=np.uint16)
    image_mb = img.nbytes / 2**20
    rois = RoiSet([Rect(1000, 1000, 2048, 2048)]) if args.roi else None
    _peak_rss_reset()
    base = _peak_rss_mb()
    t0 = time.perf_counter()
    out = restore(img, args.model, rois, device="cpu", **params)
    dt = time.perf_counter() - t0
    peak = _peak_rss_mb()
    assert out.shape == img.shape and out.dtype == img.dtype
    extra = peak - base
    print(f"{args.size}x{args.size} uint16 ({image_mb:.0f} MB), model {args.model}, "
          f"{'2048x2048 ROI' if args.roi else 'full field'}: {dt:.0f} s, peak RSS {peak:.0f} MB, "
          f"{extra:.0f} MB above the start = {extra / image_mb:.1f} image copies "
          f"(output + float32 working planes)")


if __name__ == "__main__":
    main()
