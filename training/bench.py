"""`deblur bench`: quality and speed of every model against the blurred input and RL baselines.

Quality: sharp images that training never saw (``training.bench_cases``: held-out seeds of the
specimen generator, scikit-image's bundled microscopy images, the user's own folder) get one
locally defocused region with a known widefield PSF and camera noise. Every model restores that region (given
as a ROI); we score PSNR/SSIM inside it against the sharp original, the gain over the blurred
input, the gain over Richardson-Lucy with the TRUE PSF (an oracle no user has, its iteration
count also picked by oracle), and the largest change outside the ROI, which must be 0.

Empty regions: a ROI over a patch of plain background (dark, as in fluorescence; mid-grey, as
in brightfield and phase contrast) in an otherwise ordinary held-out field, defocused and noisy
like the quality cases. There is nothing to restore: whatever a model draws there (blotches,
rings, texture) is invented, and we report how large it gets against the input's own noise.

Speed: a 2048x2048 uint16 frame restored full-field and with one 512x512 ROI: seconds,
megapixels per second and peak resident memory.

This lives in `training/` because it uses the specimen generator; `deblur` finds it through
the `deblur.commands` entry point, so `core` never imports `training`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core import defocus
from core.adaptation import ADAPTABLE, AdaptSettings
from core.blur_estimate import forget_measurements
from core.cli import HelpFormatter, UserError
from core.defaults import DEFAULT_FEATHER, DEFAULT_OVERLAP, DEFAULT_TILE
from core.engine import restore
from core.metrics import psnr, ssim
from core.models.classical import RichardsonLucy
from core.models.registry import ModelEntry, check_params, list_entries, load_model
from core.roi import Rect, RoiSet, roi_mask
from training.bench_cases import (BENCH_SEED_BASE, BenchCase, case_group, make_cases, make_empty_cases,
                                  make_real_cases)
from training.bench_checks import adapt_row, check_row, checks_markdown, summarise_checks

__all__ = ["run_quality", "run_empty", "run_speed", "markdown_report", "model_settings",
           "invented_structure", "rl_oracle", "summarise", "summarise_groups", "case_group",
           "HARM_DB", "add_parser", "run"]

#: Richardson-Lucy iteration counts tried for the true-PSF oracle (the best is kept)
RL_ITERATIONS = (2, 5, 10, 30, 100)
#: scale (px) at which invented structure is measured: pixel noise averages away, blotches stay
BLOTCH_SIGMA = 2.0
#: timed runs per speed case (the best is reported; fewer when one run takes over ~20 s)
SPEED_REPEATS = 3


def _peak_rss_reset() -> bool:
    """Reset the kernel's peak-RSS counter (Linux), so each run's peak is its own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None

def invented_structure(case: BenchCase, out: np.ndarray) -> dict:
    """How far `out` strays from the flat truth inside an empty region, next to the input's error.

    ``rms_ratio``: RMS error of the output over that of the input (below 1: noise removed, above
    1: something added). ``blotch_pct``: the largest deviation once smoothed at `BLOTCH_SIGMA`
    px (pixel noise averages away, a drawn blob does not), in % of the image's intensity range.
    """
    from scipy import ndimage

    inner = ndimage.binary_erosion(case.region, iterations=16)
    rng_ = float(case.sharp.max() - case.sharp.min()) or 1.0

    def err(x: np.ndarray) -> tuple[float, float]:
        d = x.astype(np.float32) - case.sharp
        return (float(np.sqrt(np.mean(d[inner] ** 2))),
                float(np.abs(ndimage.gaussian_filter(d, BLOTCH_SIGMA)[inner]).max() / rng_ * 100))

    rms_in, blotch_in = err(case.blurred)
    rms_out, blotch_out = err(out)
    return {"rms_ratio": rms_out / rms_in if rms_in > 0 else float("inf"),
            "blotch_pct": blotch_out, "blotch_pct_input": blotch_in}


def _score(case: BenchCase, out: np.ndarray) -> dict:
    r = case.region
    ys, xs = np.nonzero(r)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    rng_ = float(case.sharp.max() - case.sharp.min()) or 1.0
    outside = ~(roi_mask(case.rois, r.shape) > 0)
    return {
        "psnr": psnr(out, case.sharp, rng_, mask=r),
        "ssim": ssim(np.where(r, out, case.sharp)[box], case.sharp[box], rng_),
        "outside_max_change": float(np.abs(out[outside] - case.blurred[outside]).max())
        if outside.any() else 0.0,
    }


def rl_oracle(case: BenchCase, device: str) -> tuple[np.ndarray, int]:
    """RL with the true PSF and the iteration count that scores best (an oracle no user has)."""
    best, best_out, best_it = -np.inf, case.blurred, 0
    for it in RL_ITERATIONS:
        model = RichardsonLucy(case.psf, iterations=it, device=torch.device(device))
        out = restore(case.blurred, model, case.rois, tile=256, overlap=32)
        p = psnr(out, case.sharp, float(case.sharp.max() - case.sharp.min()) or 1.0, mask=case.region)
        if p > best:
            best, best_out, best_it = p, out, it
    return best_out, best_it


def bench_entries(names: list[str] | None) -> list[ModelEntry]:
    """Models to benchmark: the requested ones, else every model that can run (has weights)."""
    entries = list_entries()
    if names:
        known = {e.name: e for e in entries}
        missing = [n for n in names if n not in known]
        if missing:
            raise ValueError(f"unknown model(s): {', '.join(missing)} (available: {', '.join(known)})")
        return [known[n] for n in names]
    return [e for e in entries if not e.needs_weights or e.has_weights()]


def _own(entry: ModelEntry, params: dict[str, Any] | None) -> dict[str, Any]:
    """Those of `params` that the model has (--steps applies to the DDPM only, and so on)."""
    return {k: v for k, v in (params or {}).items() if k in entry.params}


def _load(entry: ModelEntry, device: str, params: dict[str, Any] | None,
          weights: dict[str, Path] | None = None) -> Any:
    return load_model(entry.name, weights=(weights or {}).get(entry.name), device=device,
                      **_own(entry, params))


def model_settings(entries: list[ModelEntry], params: dict[str, Any] | None) -> dict[str, dict]:
    """Every setting each model runs with here (its defaults unless given): the numbers of a
    report hold for these, so the report names them."""
    return {e.name: check_params(e, _own(e, params)) for e in entries}


def run_quality(cases: list[BenchCase], entries: list[ModelEntry], *, device: str = "cpu",
                params: dict[str, Any] | None = None, weights: dict[str, Path] | None = None,
                log=print, adapt: AdaptSettings | None = None) -> list[dict]:
    """One row per (model, image) plus the blurred input and the RL oracle, the blur estimate
    and trust verdict (``training.bench_checks``), and with `adapt` the adapted model's PSNR."""
    rows = []
    for case in cases:
        base = _score(case, case.blurred)
        oracle_out, oracle_it = rl_oracle(case, device)
        oracle = _score(case, oracle_out)
        common = {"image": case.name, "source": case.source, "radius_px": case.radius_px,
                  "psnr_blurred": base["psnr"], "ssim_blurred": base["ssim"],
                  "psnr_rl_oracle": oracle["psnr"], "ssim_rl_oracle": oracle["ssim"],
                  "rl_oracle_iterations": oracle_it, **case.info}
        for e in entries:
            model = _load(e, device, params, weights)
            _peak_rss_reset()
            forget_measurements()           # timed as a first run of the image
            t0 = time.perf_counter()
            out = restore(case.blurred, model, case.rois, tile=256, overlap=32, seed=0)
            dt = time.perf_counter() - t0
            s = _score(case, out)
            rows.append({**common, "model": e.name, "psnr": s["psnr"], "ssim": s["ssim"],
                         "gain_db": s["psnr"] - base["psnr"],
                         "gain_over_rl_oracle_db": s["psnr"] - oracle["psnr"],
                         "outside_max_change": s["outside_max_change"],
                         "seconds": dt, "roi_megapixels": float(case.region.sum()) / 1e6,
                         "peak_rss_mb": _peak_rss_mb(), **check_row(case, out)})
            extra = ""
            if adapt is not None and e.name in ADAPTABLE:
                rows[-1].update(adapt_row(case, e.name, adapt, device, _score, _own(e, params),
                                          (weights or {}).get(e.name)))
                extra = (f"  adapted {rows[-1]['psnr_adapted']:6.2f} dB"
                         if "psnr_adapted" in rows[-1] else "  (not adapted)")
            log(f"{case.name:28s} {e.name:16s} blurred {base['psnr']:6.2f}  RL* {oracle['psnr']:6.2f}"
                f"  model {s['psnr']:6.2f} dB  ({dt:.1f} s){extra}  {rows[-1]['verdict']}")
    return rows


def run_empty(cases: list[BenchCase], entries: list[ModelEntry], *, device: str = "cpu",
              params: dict[str, Any] | None = None, weights: dict[str, Path] | None = None,
              log=print) -> list[dict]:
    """One row per (model, empty-region case): see `invented_structure`."""
    rows = []
    for case in cases:
        for e in entries:
            model = _load(e, device, params, weights)
            out = restore(case.blurred, model, case.rois, tile=256, overlap=32, seed=0)
            s = invented_structure(case, out)
            rows.append({"image": case.name, "background": case.info["background"],
                         "model": e.name, **s})
            log(f"{case.name:28s} {e.name:16s} RMS error x{s['rms_ratio']:.2f} of the input's, "
                f"largest blotch {s['blotch_pct']:.1f} % (input {s['blotch_pct_input']:.1f} %)")
    return rows


def run_speed(entries: list[ModelEntry], *, device: str = "cpu", size: int = 2048, roi: int = 512,
              params: dict[str, Any] | None = None, full_field: bool = True, log=print) -> list[dict]:
    """Seconds, MP/s and peak memory on a uint16 frame, full-field and with one centred ROI
    (diffusion models: the ROI only)."""
    from training import synth

    rng = np.random.default_rng(BENCH_SEED_BASE - 1)
    spec = synth.random_specimen(rng, size)
    frame = (defocus.relative_intensity(spec) * 30000 + 500).clip(0, 65535).astype(np.uint16)
    c = (size - roi) // 2
    roi_set = RoiSet([Rect(c, c, roi, roi)], feather=DEFAULT_FEATHER)
    rows = []
    for e in entries:
        model = _load(e, device, params)
        restore(frame[:128, :128], model, None)                               # warm-up
        cases = [(f"{roi}x{roi} ROI", roi_set, DEFAULT_TILE, roi * roi)]
        # a diffusion model runs its network once per sampling step: a 2048^2 full field at 20
        # steps takes a quarter of an hour on a laptop CPU, and nobody restores whole fields with it
        if full_field and e.kind != "diffusion":
            cases = [(f"full-field, tiles {DEFAULT_TILE}", None, DEFAULT_TILE, size * size),
                     ("full-field, one tile", None, size, size * size)] + cases
        for label, rois, tile, px in cases:
            _peak_rss_reset()
            # best of up to 3 runs (single runs of 1-2 s vary by +-10 % here), within ~20 s
            times: list[float] = []
            while len(times) < SPEED_REPEATS and sum(times) < 20.0:
                forget_measurements()       # each run measures the regions' blur, as a first one does
                t0 = time.perf_counter()
                restore(frame, model, rois, tile=tile, overlap=DEFAULT_OVERLAP)
                times.append(time.perf_counter() - t0)
            dt = min(times)
            rows.append({"model": e.name, "case": label, "frame": f"{size}x{size} uint16",
                         "seconds": dt, "megapixels_per_s": px / 1e6 / dt,
                         "peak_rss_mb": _peak_rss_mb()})
            log(f"{e.name:16s} {label:24s} {dt:8.2f} s  {px / 1e6 / dt:6.2f} MP/s")
    return rows


#: a case counts as made worse when the model loses more than this (dB) against the input
HARM_DB = 0.5


def summarise(rows: list[dict]) -> list[dict]:
    """Per model over all images: means, the worst case and the harm rate (share of cases made
    worse by more than `HARM_DB`): a mean can hide a model that damages some images."""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == model]
        gains = np.array([r["gain_db"] for r in rs])
        out.append({"model": model, "images": len(rs),
                    **{k: float(np.mean([r[k] for r in rs])) for k in
                       ("psnr_blurred", "psnr_rl_oracle", "psnr", "ssim_blurred", "ssim", "gain_db",
                        "gain_over_rl_oracle_db", "seconds")},
                    "worst_gain_db": float(gains.min()),
                    "harm_rate": float(np.mean(gains < -HARM_DB)),
                    "outside_max_change": float(max(r["outside_max_change"] for r in rs))})
    return out


def summarise_groups(rows: list[dict]) -> list[dict]:
    """`summarise` per group of cases (simulated specimens, real microscopy), group first."""
    out = []
    for group in dict.fromkeys(case_group(r["source"]) for r in rows):
        out += [{"group": group, **s}
                for s in summarise([r for r in rows if case_group(r["source"]) == group])]
    return out


def machine_line() -> str:
    """What the timings hold for: whether the CPU computes bf16 decides whether the models that
    use autocast run in bf16 or float32 on it (2-3x apart), so it is part of the machine."""
    from core.devices import cpu_has_bf16

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"CPU bf16 {'yes' if cpu_has_bf16() else 'no (float32)'}, "
            f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}")


def markdown_report(quality: list[dict], speed: list[dict], command: str,
                    empty: list[dict] | None = None, settings: dict[str, dict] | None = None) -> str:
    lines = ["# Benchmarks", "", f"Machine: {machine_line()}", "", f"Command: `{command}`", ""]
    if settings:
        shown = "; ".join(f"{name} {', '.join(f'{k}={v}' for k, v in values.items())}"
                          for name, values in settings.items() if values)
        if shown:
            lines += [f"Settings (each model's defaults unless `--param` says otherwise): {shown}", ""]
    if quality:
        lines += ["## Quality inside the blurred region (mean over images)", "",
                  "| model | images | PSNR blurred | PSNR RL (true PSF) | PSNR model | gain vs blurred | "
                  "gain vs RL oracle | SSIM blurred | SSIM model | max change outside ROI | s / image |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for s in summarise(quality):
            lines.append(f"| {s['model']} | {s['images']} | {s['psnr_blurred']:.2f} | {s['psnr_rl_oracle']:.2f} | "
                         f"{s['psnr']:.2f} | {s['gain_db']:+.2f} dB | {s['gain_over_rl_oracle_db']:+.2f} dB | "
                         f"{s['ssim_blurred']:.3f} | {s['ssim']:.3f} | {s['outside_max_change']:g} | "
                         f"{s['seconds']:.1f} |")
        lines += ["", "## By group: mean, worst case, harm rate", "",
                  f"Harm rate: the share of images a model made worse by more than {HARM_DB} dB.", "",
                  "| group | model | images | gain vs blurred | worst | harm rate | SSIM blurred | SSIM model |",
                  "|---|---|---|---|---|---|---|---|"]
        for s in summarise_groups(quality):
            lines.append(f"| {s['group']} | {s['model']} | {s['images']} | {s['gain_db']:+.2f} dB | "
                         f"{s['worst_gain_db']:+.2f} dB | {100 * s['harm_rate']:.0f} % | "
                         f"{s['ssim_blurred']:.3f} | {s['ssim']:.3f} |")
        lines += ["", "## Per image", "",
                  "| image | source | blur radius px | model | PSNR blurred | PSNR RL oracle | PSNR model | gain |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in quality:
            lines.append(f"| {r['image']} | {r['source']} | {r['radius_px']:.0f} | {r['model']} | "
                         f"{r['psnr_blurred']:.2f} | {r['psnr_rl_oracle']:.2f} | {r['psnr']:.2f} | "
                         f"{r['gain_db']:+.2f} |")
        lines += checks_markdown(quality)
    if empty:
        lines += ["", "## Empty regions: what a model invents where there is nothing to restore", "",
                  f"RMS error against the flat truth, as a multiple of the input's (below 1: noise removed); "
                  f"largest blotch: the biggest deviation after smoothing at {BLOTCH_SIGMA:g} px, in % of "
                  "the image's range (the input's own, from noise and blurred edges, in brackets).", "",
                  "| image | background | model | RMS error vs input | largest blotch % |",
                  "|---|---|---|---|---|"]
        for r in empty:
            lines.append(f"| {r['image']} | {r['background']:g} | {r['model']} | {r['rms_ratio']:.2f} | "
                         f"{r['blotch_pct']:.1f} ({r['blotch_pct_input']:.1f}) |")
    if speed:
        lines += ["", "## Speed", "", "| model | case | frame | seconds | MP/s | peak RSS MB |",
                  "|---|---|---|---|---|---|"]
        for r in speed:
            mem = f"{r['peak_rss_mb']:.0f}" if r["peak_rss_mb"] else "n/a"
            lines.append(f"| {r['model']} | {r['case']} | {r['frame']} | {r['seconds']:.2f} | "
                         f"{r['megapixels_per_s']:.2f} | {mem} |")
        lines += ["", "| model | tiled / one-tile time | ROI / full-field time |", "|---|---|---|"]
        for model in dict.fromkeys(r["model"] for r in speed):
            t = {r["case"].split(",")[-1].strip(): r["seconds"] for r in speed if r["model"] == model}
            tiled, whole = t.get(f"tiles {DEFAULT_TILE}"), t.get("one tile")
            roi = next((v for k, v in t.items() if k.endswith("ROI")), None)
            ratio = f"{tiled / whole:.2f}" if tiled and whole else "n/a"
            share = f"{roi / tiled:.3f}" if roi and tiled else "n/a"
            lines.append(f"| {model} | {ratio} | {share} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- CLI

def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="measure quality and speed of the models",
        description="Benchmark every model on locally defocused images with a known sharp original "
                    "(held-out simulated specimens, scikit-image's microscopy images, your --data "
                    "folder) and, with --speed, on a 2048x2048 16-bit frame.",
        formatter_class=HelpFormatter)
    p.add_argument("--models", default=None, help="comma-separated model names (default: all with weights)")
    p.add_argument("--data", default=None, metavar="DIR", help="a folder of your own SHARP images to add")
    p.add_argument("--synthetic", type=int, default=8, help="number of held-out simulated specimens")
    p.add_argument("--size", type=int, default=256, help="size of the simulated specimens (px)")
    p.add_argument("--no-skimage", action="store_true", help="leave out scikit-image's images")
    p.add_argument("--seed", type=int, default=0, help="benchmark seed")
    p.add_argument("--split", choices=("val", "test"), default=None,
                   help="real-image cases of this split (by source package): val for choosing "
                        "checkpoints and settings, test only to report")
    p.add_argument("--real-cache", default=None, metavar="DIR",
                   help="the cache of python -m training.real_images (with --split)")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps for diffusion models")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a model setting for the models that have it, e.g. orientations=8")
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda or mps")
    p.add_argument("--speed", action="store_true", help="also time a 2048x2048 uint16 frame")
    p.add_argument("--speed-only", action="store_true", help="only the speed benchmark")
    p.add_argument("--speed-size", type=int, default=2048, help="frame size for --speed")
    p.add_argument("--adapt", action="store_true",
                   help="also adapt each adaptable model to each case's own in-focus areas "
                        "(deblur predict --adapt) and report adapted against shipped")
    p.add_argument("--adapt-seconds", type=float, default=AdaptSettings.seconds,
                   help="adaptation time per case, seconds")
    p.add_argument("--adapt-steps", type=int, default=None,
                   help="adapt for exactly this many steps per case instead (figures that do not "
                        "depend on how busy the machine is)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--out", default=None, metavar="FILE.md", help="also write the markdown report here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from core.cli.predict import model_params

    try:
        entries = bench_entries(args.models.split(",") if args.models else None)
        if not entries:
            raise UserError("no model can run: none has weights")
        params = model_params(args)
        unused = [k for k in params if not any(k in e.params for e in entries)]
        if unused:
            raise UserError(f"no model benchmarked here has the setting {', '.join(unused)} "
                            "(see `deblur models`)")
        log = (lambda s: print(s, file=sys.stderr))
        quality: list[dict] = []
        empty: list[dict] = []
        if not args.speed_only:
            data = Path(args.data) if args.data else None
            if data is not None and not data.is_dir():
                raise UserError(f"{data}: no such folder")
            if args.split:
                cache = Path(args.real_cache) if args.real_cache else None
                if cache is not None and not (cache / "manifest.json").is_file():
                    raise UserError(f"{cache}: no manifest.json; fetch the real images first: "
                                    f"python -m training.real_images {cache}")
                real = make_real_cases(args.split, cache, args.size, args.seed)
                if not real:
                    raise UserError(f"no real image of the {args.split} split is available "
                                    "(pass --real-cache)")
                # the real images of the split decide; the simulated specimens are their own group
                cases = make_cases(args.synthetic, args.size, args.seed, data, False) + real
            else:
                cases = make_cases(args.synthetic, args.size, args.seed, data, not args.no_skimage)
            adapting = (AdaptSettings(seconds=args.adapt_seconds, steps=args.adapt_steps)
                        if args.adapt else None)
            quality = run_quality(cases, entries, device=args.device, params=params, log=log,
                                  adapt=adapting)
            empty = run_empty(make_empty_cases(args.size, args.seed), entries, device=args.device,
                              params=params, log=log)
        speed = []
        if args.speed or args.speed_only:
            speed = run_speed(entries, device=args.device, size=args.speed_size, params=params, log=log)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    command = "deblur bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 1 else "deblur bench"
    settings = model_settings(entries, params)
    report = markdown_report(quality, speed, command, empty, settings)
    if args.out:
        from core.io import atomic_write

        with atomic_write(args.out) as tmp:
            Path(tmp).write_text(report, encoding="utf-8")
    if args.json:
        print(json.dumps({"machine": machine_line(), "settings": settings, "quality": quality,
                          "empty": empty, "speed": speed,
                          "summary": summarise(quality) if quality else [],
                          "groups": summarise_groups(quality) if quality else [],
                          "checks": summarise_checks(quality) if quality else {}}, indent=1))
    else:
        print(report)
    return 0
