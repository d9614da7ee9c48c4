"""Adapting a network to one image: fine-tune it on crops of the image's own in-focus areas.

``core.adaptation.adapt`` finds `adapt` here through the ``deblur.adapt`` entry point. The
crops come from where the focus map says the image is sharp, outside every region (by a
margin), from up to ``max_planes`` planes; each is blurred by the widefield defocus PSF of a
radius drawn around the blur measured in the regions (``core.blur_estimate``), and given the
camera noise measured inside the regions (``core.trust.noise_model``: photon noise grows with
the signal), so the network sees this specimen, this contrast and this camera with the blur and
noise it must remove. A share of crops stays sharp (only that noise added; the target is the
crop) so it keeps leaving sharp content alone. Why the regions' noise: the in-focus areas'
own noise, read from neighbour differences, is confused with fine texture, or reads 0 on
quantised dark background; with it, adapting taught the network to keep noise, and lost
0.67 dB on validation (docs/BENCHMARKS.md). Regions that already look sharp have no blur to
learn from: adapting declines. The training is the one trainer loop (``training.trainer``)
running COMI's content-only objective, budgeted by time; the networks start from the shipped
(or given) weights.

Held out: about a fifth of the image's in-focus windows, on one side of it, are never trained
on (no training crop comes within 8 px of them); the adapted network must beat the original on
them, blurred, by ``accept_margin_db`` and change them, unblurred, at most
``sharp_tolerance_db`` more than the original does, or the original is kept (say so).
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from core.adaptation import AdaptError, Adapted, AdaptSettings
from core.blur_estimate import estimate_regions, in_focus_reference, psf_for_radius
from core.blur_map import blur_value
from core.engine import Cancelled, cancel_check
from core.normalize import normalize, percentile_params
from core.roi import RoiSet, roi_mask
from core.image import finite_copy
from core.trust import noise_model, noise_sigma

__all__ = ["adapt", "InFocusCrops", "crop_corners", "blur_range"]

#: radii (px) tried when no region's blur could be measured: the simulator's usual range
DEFAULT_RANGE = (1.5, 10.0)
MIN_RADIUS, MAX_RADIUS = 0.75, 20.0
#: in-focus windows needed to learn anything (training + held out), and the smallest crop
MIN_WINDOWS = 6
MIN_PATCH = 48
#: held-out crops the adapted network is judged on (more: a steadier verdict, a slower check)
HELD_OUT_CROPS = 32


def blur_range(plane: np.ndarray, rois: RoiSet, image_name: str = "the image",
               min_blur_px: float = 0.0) -> tuple[float, float]:
    """The radii to simulate: from a little under the smallest region's lower bound to a
    little over the largest one's upper bound (defocus varies inside a region). Regions that
    already look sharp have no blur to learn. AdaptError when no region is blurred enough to
    learn for: all look sharp, or (with `min_blur_px`) the most blurred one measures less than
    that or could not be measured."""
    lows, highs = [], []
    estimates = [e for e in estimate_regions(plane, rois) if e.radius_px is not None]
    if estimates and all(e.looks_sharp for e in estimates):
        raise AdaptError(f"the marked regions of {image_name} already look as sharp as its "
                         "in-focus areas: there is no blur to learn to remove")
    blurred = [e for e in estimates if not e.looks_sharp]
    if min_blur_px > 0:
        if not blurred:
            raise AdaptError(f"the blur of the marked regions of {image_name} could not be "
                             "measured, so there is nothing sure to learn from")
        most = max(e.radius_px for e in blurred)
        if most < min_blur_px:
            raise AdaptError(f"the marked regions of {image_name} are only slightly out of focus "
                             f"(about {most:.0f} px); learning from the image is for blur of "
                             f"{min_blur_px:g} px or more (on milder blur it made results worse "
                             "in our tests)")
    for est in blurred:
        lows.append(est.low_px if est.low_px is not None else est.radius_px)
        highs.append(est.high_px if est.high_px is not None else est.radius_px)
    if not lows:
        return DEFAULT_RANGE
    lo = float(np.clip(0.6 * min(lows), MIN_RADIUS, MAX_RADIUS))
    hi = float(np.clip(1.3 * max(highs), lo + 0.5, MAX_RADIUS))
    return lo, hi


def _window_sums(mask: np.ndarray, corners_y: np.ndarray, corners_x: np.ndarray, patch: int
                 ) -> np.ndarray:
    """How many pixels of `mask` each `patch`-sized window (top-left corners) holds."""
    h, w = mask.shape
    s = np.zeros((h + 1, w + 1), np.int64)
    s[1:, 1:] = np.cumsum(np.cumsum(mask, 0), 1)
    y, x = corners_y, corners_x
    return s[y + patch, x + patch] - s[y, x + patch] - s[y + patch, x] + s[y, x]


def crop_corners(mask: np.ndarray, patch: int, stride: int, min_share: float = 0.9
                 ) -> np.ndarray:
    """(N, 2) top-left corners of `patch`-sized windows, on a `stride` grid, with at least
    `min_share` of their pixels in `mask`."""
    h, w = mask.shape
    if h < patch or w < patch:
        return np.zeros((0, 2), int)
    yy, xx = np.meshgrid(np.arange(0, h - patch + 1, stride), np.arange(0, w - patch + 1, stride),
                         indexing="ij")
    ok = _window_sums(mask, yy, xx, patch) >= min_share * patch * patch
    return np.stack([yy[ok], xx[ok]], axis=1)


class InFocusCrops(Dataset):
    """Pairs (blurred crop, sharp crop) from in-focus windows of normalised planes.

    Item `i` is a function of (seed, i) only: its plane and window, its radius (0 for the
    no-blur share), its noise and its flip/rotation.
    """

    def __init__(self, planes: list[np.ndarray], corners: list[np.ndarray],
                 noise: list[tuple[float, float]],
                 radii: tuple[float, float], patch: int, length: int, seed: int,
                 no_blur_share: float, augment: bool, noisy_sharp: bool = False) -> None:
        self.pad = psf_for_radius(radii[1]).shape[0] // 2 + 1
        self.planes = [np.pad(p, self.pad, mode="reflect") for p in planes]
        self.corners, self.noise, self.radii = corners, noise, radii
        self.patch, self.length, self.seed = patch, int(length), int(seed)
        self.no_blur_share, self.augment = float(no_blur_share), augment
        self.noisy_sharp = bool(noisy_sharp)
        counts = np.array([len(c) for c in corners], float)
        self.plane_p = counts / counts.sum()
        self._psfs: dict[float, np.ndarray] = {}

    def __len__(self) -> int:
        return self.length

    def _psf(self, r: float) -> np.ndarray:
        key = round(r * 4) / 4
        if key not in self._psfs:
            self._psfs[key] = psf_for_radius(key).astype(np.float32)
        return self._psfs[key]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, 0xADA, int(index)])
        k = int(rng.choice(len(self.planes), p=self.plane_p))
        y, x = self.corners[k][int(rng.integers(len(self.corners[k])))]
        p, q = self.patch, self.pad
        big = self.planes[k][y:y + p + 2 * q, x:x + p + 2 * q]
        sharp = big[q:q + p, q:q + p]
        told = 0.0                      # a network with a blur channel is told the crop's blur
        if rng.random() < self.no_blur_share:
            blurred = sharp
            if self.noisy_sharp:
                blurred = sharp + self._noise(rng, k, sharp, 1.0)
        else:
            lo, hi = self.radii
            told = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            psf = self._psf(told)
            blurred = _convolve(big, psf)[q:q + p, q:q + p]
            # the crop's own noise was mostly smoothed away with the blur: add the camera noise
            # (less the share of its variance that the blur kept)
            keep = float(np.sum(psf.astype(np.float64) ** 2))
            blurred = blurred + self._noise(rng, k, blurred, max(0.0, 1.0 - keep))
        pair = np.stack([blurred, sharp]).astype(np.float32)
        if self.augment:
            pair = np.rot90(pair, int(rng.integers(4)), axes=(1, 2))
            if rng.random() < 0.5:
                pair = pair[:, :, ::-1]
        pair = torch.from_numpy(np.ascontiguousarray(pair))
        return {"blurred": pair[0:1], "sharp": pair[1:2],
                "blur": torch.full_like(pair[0:1], float(blur_value(told)))}

    def _noise(self, rng: np.random.Generator, k: int, signal: np.ndarray, share: float
               ) -> np.ndarray:
        """Camera noise for `signal` from plane k's noise model (variance a * signal + b),
        `share` of its variance."""
        a, b = self.noise[k]
        var = share * np.maximum(0.0, a * np.clip(signal, 0.0, None) + b)
        return rng.standard_normal(signal.shape) * np.sqrt(var)


def _convolve(x: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """`x` convolved with a centred, odd-sized `psf` ('same' size; circular at the edges, which
    the caller's padding keeps away from the crop)."""
    shape = x.shape
    k = np.zeros(shape, np.float64)
    r = psf.shape[0] // 2
    k[:psf.shape[0], :psf.shape[1]] = psf
    k = np.roll(k, (-r, -r), (0, 1))
    return np.fft.irfft2(np.fft.rfft2(x) * np.fft.rfft2(k), s=shape)


def _apart(train: np.ndarray, held: np.ndarray, shape: tuple[int, int], patch: int, pad: int
           ) -> np.ndarray:
    """Which training windows share no pixel with any held-out window (grown by `pad`, the
    blur's reach): a held-out crop that overlaps training crops measures memory, not help."""
    near = np.zeros(shape, bool)
    for y, x in held:
        near[max(0, y - pad):y + patch + pad, max(0, x - pad):x + patch + pad] = True
    return _window_sums(near, train[:, 0], train[:, 1], patch) == 0


def _held_out(corners: np.ndarray, patch: int) -> np.ndarray:
    """Which windows are held out: about a fifth of them, on one side of the in-focus area (the
    last along the longer extent of the windows): one contiguous place, so keeping training
    crops off it (`_apart`) costs only one border's worth of windows."""
    if len(corners) < 2:
        return np.zeros(len(corners), bool)
    along = corners[:, int(np.argmax(np.ptp(corners, axis=0)))]
    return along > np.quantile(along, 0.8)


def _prepare(planes: list[np.ndarray], rois: RoiSet, s: AdaptSettings, patch: int
             ) -> tuple[list, list, list, list, list, float]:
    """Normalised planes (as the engine sees them), their train / held-out window corners,
    their camera noise models (variance = a * intensity + b), and the share of the image the
    crops come from."""
    chosen = np.unique(np.linspace(0, len(planes) - 1, min(len(planes), s.max_planes)).round()
                       ).astype(int)
    norm, train, held, noises = [], [], [], []
    area = 0.0
    for i in chosen:
        filled, _ = finite_copy(np.asarray(planes[i], np.float32))
        x = normalize(filled, percentile_params(filled)).astype(np.float32)
        mask = in_focus_reference(x, rois, margin=8)
        corners = crop_corners(mask, patch, stride=max(4, patch // 8))
        if len(corners) == 0:
            continue
        out = _held_out(corners, patch)
        if out.all() or not out.any():           # too few blocks to split: split the list
            out = np.zeros(len(corners), bool)
            out[::5] = True
        tr, ho = corners[~out], corners[out]
        tr = tr[_apart(tr, ho, x.shape, patch, pad=8)]
        if s.noise == "regions":
            model = noise_model(x, roi_mask(RoiSet(rois.rois, feather=0), x.shape) > 0)
        else:
            sigma = noise_sigma(x, mask)
            model = (0.0, 0.0 if not np.isfinite(sigma) else sigma ** 2)
        norm.append(x)
        train.append(tr)
        held.append(ho)
        noises.append(model)
        area = max(area, float(mask.mean()))
    return norm, train, held, noises, chosen.tolist(), area


def _sharp_psnr(steps: Any, crops: Dataset, device: Any) -> float:
    """Mean PSNR of the network's output against its input on sharp crops: how much it changes
    content that needs no help (a network that learned to over-sharpen scores lower)."""
    from core.metrics import psnr

    x = torch.stack([crops[i]["sharp"] for i in range(len(crops))])
    with steps.evaluating():
        y = torch.cat([steps.predict_batch(x[i:i + 16].to(device)).float().cpu()
                       for i in range(0, len(x), 16)])
    return float(np.mean([min(100.0, psnr(a, b, 1.0)) for a, b in zip(y.numpy(), x.numpy())]))


def _config(model: str, init: Path, s: AdaptSettings, patch: int, steps: int) -> dict[str, Any]:
    from training.cli import adopt_init_architecture
    from training.config import load_config

    cfg = load_config(model, overrides={
        "train": {"steps": steps, "batch_size": s.batch_size, "patch": patch, "seed": s.seed,
                  "num_workers": 0, "log_every": 10, "val_every": 0, "val_items": HELD_OUT_CROPS,
                  "val_batch": 16, "checkpoint_every": 0, "keep_checkpoints": 1,
                  "init": str(init)},
        "optim": {"lr": s.lr, "decay": "none", "warmup": 0},
        "loss": {"warm_start_steps": 10 ** 9},             # the content terms only
    })
    adopt_init_architecture(cfg, None)
    return cfg


def adapt(planes: list[np.ndarray], rois: RoiSet | None, *, model: str, weights: str | Path | None,
          settings: AdaptSettings, image_name: str, device: str = "auto",
          progress: Callable[[float, float], None] | None = None, cancel: Any = None) -> Adapted:
    """See ``core.adaptation.adapt``."""
    from core.devices import pick_device
    from core.models.weights import resolve_weights
    from training.steps import Precision, build_steps
    from training.trainer import Trainer, TrainingInterrupted

    t_start = time.monotonic()
    s = settings
    if rois is None or not rois.rois:
        raise AdaptError("restoring the whole image leaves no in-focus area to learn from: "
                         "mark the blurred regions first")
    if not planes:
        raise AdaptError(f"{image_name} has no image plane to learn from")
    h, w = np.asarray(planes[0]).shape[-2:]
    if min(h, w) < MIN_PATCH:
        raise AdaptError(f"{image_name} is too small ({w} x {h} px) to learn from its sharp "
                         f"areas: it needs at least {MIN_PATCH} x {MIN_PATCH} px in focus "
                         "outside the regions")
    # the largest crop size (down to MIN_PATCH) that finds enough in-focus windows
    for patch in sorted({int(min(s.patch, (min(h, w) // 16) * 16)), 64, MIN_PATCH}, reverse=True):
        if patch > min(s.patch, min(h, w)):
            continue
        norm, train, held, noises, used, area = _prepare(planes, rois, s, patch)
        n_train, n_held = sum(len(c) for c in train), sum(len(c) for c in held)
        if n_train + n_held >= MIN_WINDOWS and n_train > 0 and n_held > 0:
            break
    else:
        raise AdaptError(f"too little of {image_name} is in focus outside the regions to learn "
                         f"from ({area:.0%} of the image; it needs several {MIN_PATCH} x "
                         f"{MIN_PATCH} px areas)")
    radii = blur_range(norm[0], rois, image_name, s.min_blur_px)
    keep_tr = [i for i, c in enumerate(train) if len(c)]
    keep_ho = [i for i, c in enumerate(held) if len(c)]
    dev = pick_device(device)
    init = resolve_weights(model, weights)
    budget = None if s.steps is not None else max(1.0, s.seconds - (time.monotonic() - t_start))
    total_steps = s.steps if s.steps is not None else 10 ** 6
    cfg = _config(model, init, s, patch, total_steps)
    train_ds = InFocusCrops([norm[i] for i in keep_tr], [train[i] for i in keep_tr],
                            [noises[i] for i in keep_tr], radii, patch,
                            length=total_steps * s.batch_size, seed=s.seed,
                            no_blur_share=s.no_blur_share, augment=True,
                            noisy_sharp=s.noise == "regions")
    held_ds = InFocusCrops([norm[i] for i in keep_ho], [held[i] for i in keep_ho],
                           [noises[i] for i in keep_ho], radii, patch, length=HELD_OUT_CROPS,
                           seed=s.seed + 7919, no_blur_share=0.0, augment=False)
    steps = build_steps(model, cfg, dev, Precision(dev, bool(cfg["train"]["amp"])))
    card0 = steps.init_from(str(init))
    original = copy.deepcopy(steps.export_network()[0]).eval()
    is_cancelled = cancel_check(cancel)
    t_train = time.monotonic()

    def on_step(step: int, losses: dict[str, float]) -> None:
        if progress is not None:
            if s.steps is not None:
                progress(float(step), float(s.steps))
            else:
                progress(min(budget, time.monotonic() - t_train), float(budget))
        if is_cancelled():
            raise Cancelled("cancelled by the user")

    with tempfile.TemporaryDirectory(prefix="deblur-adapt-") as run:
        trainer = Trainer(steps, train_ds, held_ds, Path(run), cfg, quiet=True, on_step=on_step,
                          time_budget_s=budget)
        t_checks = time.monotonic()
        before = trainer.validate()
        sharp_before = _sharp_psnr(steps, held_ds, dev)
        if budget is not None:
            # the held-out checks run again after training: their time comes out of the
            # learning, so the whole adaptation keeps to the seconds the user gave
            checks = time.monotonic() - t_checks
            budget = max(1.0, s.seconds - (time.monotonic() - t_start) - checks)
            trainer.time_budget_s = budget
        try:
            result = trainer.fit()
        except TrainingInterrupted:
            raise Cancelled("cancelled by the user") from None
    after = result.validation
    sharp_after = _sharp_psnr(steps, held_ds, dev)
    # kept only if it restores held-out blur better AND leaves held-out sharp content about as
    # alone as the original did (the failure adapting showed on validation: sharp regions)
    no_gain = not after.get("psnr", -np.inf) > before["psnr"] + s.accept_margin_db
    alters_sharp = sharp_after < sharp_before - s.sharp_tolerance_db
    kept = no_gain or alters_sharp
    net = original if kept else copy.deepcopy(steps.export_network()[0]).eval()
    net = net.float().to(memory_format=torch.contiguous_format).cpu()
    record = {"image": image_name, "planes_used": used, "steps": int(result.steps),
              "seconds": round(time.monotonic() - t_start, 1), "patch": patch,
              "batch_size": s.batch_size, "lr": s.lr, "seed": s.seed,
              "blur_range_px": [round(radii[0], 2), round(radii[1], 2)],
              "no_blur_share": s.no_blur_share, "in_focus_share": round(area, 4),
              "train_windows": n_train, "held_out_windows": n_held,
              "held_out_psnr_db": {"before": round(before["psnr"], 2),
                                   "after": round(after.get("psnr", float("nan")), 2),
                                   "blurred": round(before["psnr_blurred"], 2),
                                   "sharp_before": round(sharp_before, 2),
                                   "sharp_after": round(sharp_after, 2)},
              "kept_original": bool(kept),
              "kept_because": ("no gain" if no_gain else "alters sharp areas") if kept else None,
              "device": str(dev)}
    card = _card(model, net, card0, init, record, kept)
    return Adapted(model=model, network=net, card=card, image_name=image_name,
                   steps=int(result.steps), seconds=time.monotonic() - t_start,
                   blur_range_px=radii, in_focus_share=area,
                   held_out_before_db=float(before["psnr"]),
                   held_out_after_db=float(after.get("psnr", float("nan"))),
                   kept_original=bool(kept), extra=record)


def _card(model: str, net: torch.nn.Module, card0: dict, init: Path, record: dict,
          kept: bool) -> dict:
    """The adapted network's card: where it started (that file's own training record) and
    how it was adapted; the original's test figures do not apply to it and are not copied."""
    from core.models.registry import make_card

    what = ("the original network, unchanged (adapting did not help on held-out areas)" if kept
            else "fine-tuned")
    notes = (f"Adapted to one image ({record['image']}): {what}, {record['steps']} steps "
             f"({record['seconds']} s) on crops of its in-focus areas blurred by the widefield "
             f"defocus PSF of {record['blur_range_px'][0]}-{record['blur_range_px'][1]} px "
             "radius (measured in its regions), with the image's own noise. Made for that image "
             "and images like it; its quality on other images was not measured.")
    training = {"command": "adaptation to one image (deblur predict --adapt / the app)",
                "started_from": {"file": Path(init).name, "model": card0.get("model"),
                                 "training": card0.get("training", {})},
                "adapted": record}
    validation = {"held_out_psnr_db": record["held_out_psnr_db"],
                  "reference": "crops of the image's own in-focus areas that adaptation never "
                               "trained on, blurred the same way"}
    return make_card(model, net, normalisation=card0.get("normalisation"), training=training,
                     validation=validation, notes=notes)
