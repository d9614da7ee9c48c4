"""A picture of what the models do: blurred | RL (true PSF) | each model | sharp, per image.

    python benchmarks/gallery.py [--models comi ddpm] [--out docs/gallery.png]

Rows: the bench's real microscopy (scikit-image IHC brightfield, phase-contrast cell), a few
held-out simulated specimens, and the shipped samples (nuclei, H&E tissue: first channel).
Each panel is the bounding box of the blurred region, all panels of a row on one grey scale
(the sharp image's 0.5-99.5 percentiles), the ROI PSNR against the sharp image under it.
Numbers go to stdout. Uses the shipped weights unless --weights MODEL=FILE is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from core.engine import restore
from core.io import read_image
from core.metrics import psnr
from core.models.registry import load_model
from core.roi import RoiSet, load_rois, roi_mask
from resources import SAMPLES
from training.bench import rl_oracle
from training.bench_cases import BenchCase, make_cases


def _sample_cases() -> list[BenchCase]:
    out = []
    for name in ("nuclei", "tissue"):
        ext = ".tif" if name == "nuclei" else ".png"
        blurred = read_image(SAMPLES / f"{name}_blurred{ext}").data.astype(np.float32)
        sharp = read_image(SAMPLES / f"{name}_sharp{ext}").data.astype(np.float32)
        if blurred.ndim == 3:
            blurred, sharp = blurred[..., 0], sharp[..., 0]
        rois = load_rois(SAMPLES / f"{name}_blurred.roi.json")
        region = roi_mask(RoiSet(rois.rois, feather=0), blurred.shape) > 0
        out.append(BenchCase(f"sample-{name}", "shipped sample", sharp, blurred, region, rois,
                             np.ones((1, 1), np.float32), float("nan")))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["comi"])
    p.add_argument("--weights", nargs="*", default=[], help="MODEL=FILE overrides")
    p.add_argument("--synthetic", type=int, default=4)
    p.add_argument("--out", type=Path, default=Path("docs/gallery.png"))
    args = p.parse_args()
    weights = dict(w.split("=", 1) for w in args.weights)

    from skimage.io import imsave
    cases = make_cases(args.synthetic, 256, 0, None, True)
    cases = [c for c in cases if c.source != "held-out specimen"] + \
            [c for c in cases if c.source == "held-out specimen"] + _sample_cases()
    models = {m: load_model(m, weights=weights.get(m)) for m in args.models}
    rows = []
    for case in cases:
        rng_ = float(case.sharp.max() - case.sharp.min()) or 1.0
        panels = [("blurred", case.blurred)]
        if case.source != "shipped sample":
            panels.append(("RL true PSF", rl_oracle(case, "cpu")[0]))
        for name, model in models.items():
            panels.append((name, restore(case.blurred, model, case.rois, seed=0)))
        panels.append(("sharp", case.sharp))
        ys, xs = np.nonzero(case.region)
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        lo, hi = np.percentile(case.sharp[box], [0.5, 99.5])
        crops = []
        line = f"{case.name:26s}"
        for label, img in panels:
            if label != "sharp":
                line += f"  {label} {psnr(img, case.sharp, rng_, mask=case.region):6.2f}"
            crop = np.clip((img[box] - lo) / (hi - lo + 1e-12), 0, 1)
            crops.append(_fit(crop, 160))
        print(line, flush=True)
        while len(crops) < len(models) + 3:
            crops.insert(1, np.ones((160, 160)))                # samples have no RL column
        rows.append(np.concatenate([np.pad(c, 2, constant_values=1) for c in crops], 1))
    grid = np.concatenate(rows, 0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    imsave(args.out, (grid * 255).astype(np.uint8), check_contrast=False)
    print(f"columns: blurred | RL true PSF | {' | '.join(models)} | sharp  ->  {args.out}")


def _fit(crop: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of the longer side to `size` (pixels stay visible, aspect kept),
    padded with white to size x size."""
    h, w = crop.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    out = crop[(np.arange(nh) / scale).astype(int).clip(0, h - 1)][:, (np.arange(nw) / scale).astype(int).clip(0, w - 1)]
    return np.pad(out, ((0, size - nh), (0, size - nw)), constant_values=1.0)


if __name__ == "__main__":
    main()
