"""The one training loop shared by every model.

The Trainer owns everything that is the same for COMI, CycleGAN and the DDPM: devices and
autocast, a data order that is a pure function of (seed, step), DistributedDataParallel,
the progress bar, the CSV log and loss curve, validation with a PNG grid, atomic checkpoints,
exact resume and clean stops on SIGINT/SIGTERM. What differs per model lives in
`training.steps` (one `ModelSteps` object).

Exact resume
------------
Three things make a run resumed at step N equal to an uninterrupted one:
1. the batch for step s is ``items[perm(seed, epoch)[pos]]`` for the global sample positions of
   step s, so no iterator state has to survive;
2. before each step every global RNG is reseeded from (seed, step, rank) and every dataset item
   is fetched with the RNGs seeded from (seed, position) (random crops, simulated blur);
3. the checkpoint holds module, optimiser, scheduler, scaler and per-model extra state (image
   pools), plus the RNG states for completeness.
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from core.io import atomic_write
from core.metrics import batch_metrics, sharpness
from training.checkpoint import (load_latest, list_checkpoints, rng_state, save_checkpoint,
                                 set_rng_state)
from training.steps import ModelSteps

__all__ = ["Trainer", "TrainResult", "DistInfo", "TrainingInterrupted", "TrainingDiverged",
           "dist_info", "step_seed", "batch_positions", "save_grid", "plot_curves", "read_log"]


# ============================================================================ distributed

@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a torchrun job (world 1 when run directly)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK (defaults: one process)."""
    env = os.environ
    return DistInfo(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)),
                    int(env.get("LOCAL_RANK", 0)))


# ============================================================================ data order

def step_seed(seed: int, *keys: int) -> int:
    """A well-mixed 63-bit seed from (seed, keys...) -- neighbouring steps get unrelated streams."""
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *[int(k) & 0xFFFFFFFFFFFF for k in keys]])
    return int(ss.generate_state(1, dtype=np.uint64)[0] & np.uint64(0x7FFFFFFFFFFFFFFF))


def _seed_all(s: int) -> None:
    torch.manual_seed(s)
    random.seed(s)
    np.random.seed(s & 0xFFFFFFFF)


def _epoch_perm(ds: Dataset, n: int, seed: int, epoch: int, batch_size: int = 1,
                lanes: int = 1) -> torch.Tensor:
    """The item order of one epoch: a plain shuffle, or the dataset's own `epoch_order`, which
    keeps the patches cut from one simulated field close together so a worker makes the field
    once (training/data.py). Depends on (seed, epoch, batch size, lanes) only, never on the
    worker count, so --resume stays exact."""
    g = torch.Generator().manual_seed(step_seed(seed, 0x5EED, epoch))
    order = getattr(ds, "epoch_order", None)
    if order is not None:
        return order(g, batch_size=batch_size, lanes=lanes)
    return torch.randperm(n, generator=g)


def batch_positions(step: int, batch_size: int, rank: int, world_size: int) -> range:
    """Global sample positions this rank trains on at `step` (ranks take disjoint slices)."""
    start = (step * world_size + rank) * batch_size
    return range(start, start + batch_size)


class _Positions(Dataset):
    """Dataset view addressed by global sample position instead of index.

    Position p is item ``perm(seed, p // n)[p % n]`` (a fresh shuffle per epoch) fetched with all
    RNGs seeded from (seed, p): augmentation and simulated blur depend on the position only,
    not on which worker or which run fetched it.
    """

    def __init__(self, ds: Dataset, seed: int, batch_size: int = 1, lanes: int = 1) -> None:
        self.ds, self.seed, self.n = ds, int(seed), len(ds)  # type: ignore[arg-type]
        self.batch_size, self.lanes = int(batch_size), int(lanes)
        self._perm_epoch, self._perm = -1, torch.empty(0, dtype=torch.long)
        if self.n == 0:
            raise ValueError("the training set is empty")

    def __len__(self) -> int:
        return 2 ** 62

    def __getitem__(self, pos: int) -> dict[str, torch.Tensor]:
        epoch, i = divmod(int(pos), self.n)
        if epoch != self._perm_epoch:
            self._perm = _epoch_perm(self.ds, self.n, self.seed, epoch, self.batch_size, self.lanes)
            self._perm_epoch = epoch
        with _forked_rng():
            _seed_all(step_seed(self.seed, 0xDA7A, pos))
            return self.ds[int(self._perm[i])]


class _StepBatches(Sampler[list[int]]):
    """Batches of positions for steps [start, stop) of one rank."""

    def __init__(self, start: int, stop: int, batch_size: int, dist_: DistInfo) -> None:
        self.start, self.stop, self.bs, self.dist = start, stop, batch_size, dist_

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self):
        for s in range(self.start, self.stop):
            yield list(batch_positions(s, self.bs, self.dist.rank, self.dist.world_size))


class _forked_rng:
    """Save and restore the torch/numpy/python RNGs around a block (validation, data items)."""

    def __enter__(self) -> None:
        self.t, self.n, self.p = torch.get_rng_state(), np.random.get_state(), random.getstate()

    def __exit__(self, *exc: Any) -> None:
        torch.set_rng_state(self.t)
        np.random.set_state(self.n)
        random.setstate(self.p)


def _worker_init(_: int) -> None:
    """DataLoader workers ignore Ctrl-C and SIGTERM sent to the whole process group (the main
    process decides when to stop, and shuts them down) and use one thread each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(1)


def _collate(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([it[k] for it in items]) for k in items[0]
            if isinstance(items[0][k], torch.Tensor)}


# ============================================================================ plots and images

def _to_u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_grid(path: Path, columns: Sequence[np.ndarray], titles: Sequence[str]) -> Path:
    """A PNG with one row per item and one column per array (each (N, 1, H, W) in [0, 1]).

    Why PNG and not TIFF: it is for looking at during training, in any image viewer.
    """
    from PIL import Image, ImageDraw

    scale = max(1, math.ceil(96 / columns[0].shape[-1]))     # small patches: enlarge (nearest)
    columns = [np.repeat(np.repeat(c, scale, axis=-2), scale, axis=-1) for c in columns]
    n, _, h, w = columns[0].shape
    pad, head = 4, 16
    width = len(columns) * (w + pad) + pad
    height = head + n * (h + pad) + pad
    canvas = np.full((height, width), 255, np.uint8)
    for c, col in enumerate(columns):
        for r in range(n):
            y0, x0 = head + pad + r * (h + pad), pad + c * (w + pad)
            canvas[y0:y0 + h, x0:x0 + w] = _to_u8(col[r, 0])
    img = Image.fromarray(canvas, mode="L")
    draw = ImageDraw.Draw(img)
    for c, t in enumerate(titles):
        draw.text((pad + c * (w + pad) + 2, 2), t, fill=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        img.save(tmp, format="PNG")
    return path


_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _panel(draw, box: tuple[int, int, int, int], series: dict[str, tuple[np.ndarray, np.ndarray]],
           xlabel: str, ylabel: str, log_y: bool, x_range: tuple[float, float]) -> None:
    """One line chart with axes, ticks, labels and a legend, drawn with PIL."""
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline=(0, 0, 0))
    ys = [v for _, (_, y) in series.items() for v in y if np.isfinite(v) and (v > 0 or not log_y)]
    if not ys:
        draw.text((x0 + 8, y0 + 8), "no data yet", fill=(0, 0, 0))
        return
    tf = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    lo, hi = tf(min(ys)), tf(max(ys))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    span = hi - lo
    lo, hi = lo - 0.05 * span, hi + 0.05 * span
    xa, xb = x_range
    xb = xb if xb > xa else xa + 1

    def px(x: float, y: float) -> tuple[float, float]:
        return (x0 + (x - xa) / (xb - xa) * (x1 - x0), y1 - (tf(y) - lo) / (hi - lo) * (y1 - y0))

    for t in _nice_ticks(xa, xb):
        X = x0 + (t - xa) / (xb - xa) * (x1 - x0)
        draw.line([(X, y1), (X, y1 + 4)], fill=(0, 0, 0))
        draw.text((X - 10, y1 + 6), f"{t:g}", fill=(0, 0, 0))
    if log_y:                                  # one tick per decade (every 2nd if many)
        decades = list(range(math.ceil(lo), math.floor(hi) + 1))
        ticks = [float(d) for d in decades[::1 if len(decades) <= 6 else 2]]
        if len(ticks) < 2:                     # less than a decade: plain values, log-placed
            ticks = [math.log10(v) for v in _nice_ticks(10 ** lo, 10 ** hi, 4) if v > 0]
    else:
        ticks = _nice_ticks(lo, hi)
    for t in ticks:
        if not lo <= t <= hi:
            continue
        Y = y1 - (t - lo) / (hi - lo) * (y1 - y0)
        draw.line([(x0 - 4, Y), (x0, Y)], fill=(0, 0, 0))
        draw.line([(x0 + 1, Y), (x1 - 1, Y)], fill=(230, 230, 230))
        label = f"{10 ** t:.3g}" if log_y else f"{t:.3g}"
        draw.text((x0 - 8 - 6 * len(label), Y - 6), label, fill=(0, 0, 0))
    draw.text(((x0 + x1) // 2 - 3 * len(xlabel), y1 + 20), xlabel, fill=(0, 0, 0))
    draw.text((x0, y0 - 14), ylabel, fill=(0, 0, 0))
    for k, (name, (x, y)) in enumerate(series.items()):
        colour = _COLOURS[k % len(_COLOURS)]
        pts = [px(a, b) for a, b in zip(x, y) if np.isfinite(b) and (b > 0 or not log_y)]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        elif pts:
            draw.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=colour)
    draw.rectangle([x1 - 124, y0 + 3, x1 - 3, y0 + 9 + 13 * len(series)], fill=(255, 255, 255),
                   outline=(200, 200, 200))
    for k, name in enumerate(series):
        ly = y0 + 6 + 13 * k
        draw.line([(x1 - 120, ly + 6), (x1 - 104, ly + 6)], fill=_COLOURS[k % len(_COLOURS)],
                  width=3)
        draw.text((x1 - 100, ly), name, fill=(0, 0, 0))


def read_log(path: Path) -> list[dict[str, str]]:
    """Rows of a RUN/log.csv (empty list if there is none)."""
    if not Path(path).is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def plot_curves(rows: list[dict[str, str]], loss_names: Sequence[str], path: Path) -> Path:
    """RUN/loss.png: training losses (log scale) and validation PSNR against step.

    Drawn with PIL because matplotlib is not a dependency; axes, ticks, labels and a legend are
    enough to see whether a run is learning.
    """
    from PIL import Image, ImageDraw

    def col(name: str) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for r in rows:
            v = r.get(name, "")
            if v not in ("", None):
                xs.append(float(r["step"]))
                ys.append(float(v))
        return np.asarray(xs), np.asarray(ys)

    W, H = 900, 620
    img = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    steps = [float(r["step"]) for r in rows] or [0.0]
    xr = (0.0, max(steps))
    losses = {n: col(n) for n in loss_names}
    _panel(draw, (80, 30, W - 20, 330), losses, "step", "training loss (log scale)", True, xr)
    val = {"restored": col("val_psnr"), "blurred input": col("val_psnr_blurred")}
    _panel(draw, (80, 390, W - 20, H - 40), val, "step", "validation PSNR (dB)", False, xr)
    with atomic_write(path) as tmp:
        img.save(tmp, format="PNG")
    return path


# ============================================================================ the trainer

class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint was saved. `exit_code` is 128 + signal number."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None) -> None:
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_code = 128 + int(signum)
        name = signal.Signals(signum).name
        where = f", checkpoint {checkpoint}" if checkpoint else ""
        super().__init__(f"stopped by {name} at step {step}{where}; continue with --resume")


class TrainingDiverged(RuntimeError):
    """A loss became NaN/inf and the weights with it; nothing was saved from that point on."""

    def __init__(self, step: int, losses: dict[str, float], good: int | None) -> None:
        self.step, self.losses, self.good = step, losses, good
        bad = ", ".join(k for k, v in losses.items() if not math.isfinite(v))
        back = (f"the newest good checkpoint is step {good}: resume from it with a lower "
                f"learning rate or --no-amp" if good is not None else
                "no checkpoint was saved; start again with a lower learning rate or --no-amp")
        super().__init__(f"training diverged at step {step} (not finite: {bad}); {back}")


@dataclass
class TrainResult:
    """What a finished run reports (and the model card records)."""

    steps: int
    wall_time_s: float
    validation: dict[str, float] = field(default_factory=dict)
    checkpoint: Path | None = None
    steps_per_s: float = 0.0


class Trainer:
    """Runs a `ModelSteps` for ``cfg['train']['steps']`` steps with everything around it.

    Parameters
    ----------
    steps : ModelSteps
        The model being trained (networks, optimisers, the step).
    train_ds, val_ds : Dataset
        Items are dicts of float32 tensors ``{"blurred": (1,P,P), "sharp": (1,P,P), ...}``.
    run_dir : Path
        RUN: checkpoints/, val/, log.csv, loss.png live here.
    cfg : dict
        The resolved configuration (``training.config``); its ``train`` table drives the loop.
    dist_ : DistInfo
        Process placement; only rank 0 writes anything.
    quiet : bool
        No progress bar and no status lines.
    on_step : callable, optional
        Called as ``on_step(step, losses)`` after every step (tests, notebooks).
    val_paired : bool
        The validation items are aligned pairs, so PSNR/SSIM against "sharp" mean something;
        False for unpaired real folders, where only the no-reference sharpness is reported.
    """

    def __init__(self, steps: ModelSteps, train_ds: Dataset, val_ds: Dataset, run_dir: Path,
                 cfg: dict[str, Any], dist_: DistInfo | None = None, quiet: bool = False,
                 on_step: Callable[[int, dict[str, float]], None] | None = None,
                 val_paired: bool = True) -> None:
        self.steps = steps
        self.run = Path(run_dir)
        self.cfg = cfg
        self.t = cfg["train"]
        self.dist = dist_ or DistInfo()
        self.quiet = quiet
        self.on_step = on_step
        self.val_paired = val_paired
        self.device = steps.device
        self.train_ds, self.val_ds = train_ds, val_ds
        self.step = 0
        self.elapsed_prev = 0.0
        self.last_val: dict[str, float] = {}
        self.last_val_step: int | None = None
        self._stop_signal: int | None = None
        self._val_cache: dict[str, torch.Tensor] | None = None
        self.total = int(self.t["steps"])

    # ------------------------------------------------------------------ state
    def state_dict(self, elapsed: float) -> dict[str, Any]:
        return {"format": 1, "step": self.step, "model": self.steps.name, "config": self.cfg,
                "steps": self.steps.state_dict(), "rng": rng_state(), "elapsed_s": elapsed,
                "world_size": self.dist.world_size, "validation": dict(self.last_val),
                "validation_step": self.last_val_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("model") != self.steps.name:
            raise ValueError(f"the checkpoint is for model {state.get('model')!r}, "
                             f"not {self.steps.name!r}")
        self.steps.load_state_dict(state["steps"])
        self.step = int(state["step"])
        self.elapsed_prev = float(state.get("elapsed_s", 0.0))
        self.last_val = dict(state.get("validation", {}))
        self.last_val_step = state.get("validation_step")
        set_rng_state(state["rng"])

    def resume(self) -> int | None:
        """Load the newest readable checkpoint of RUN; returns its step or None if there is none."""
        found = load_latest(self.run, map_location=self.device)
        self._barrier()                          # every rank has read before rank 0 renames
        if found is None:
            return None
        self.load_state_dict(found[1])
        if self.dist.is_main:      # set skipped (unreadable) newer files aside, out of keep-last-K
            for step, path in list_checkpoints(self.run):
                if step > self.step:
                    path.replace(path.with_name(path.name + ".damaged"))
        return self.step

    def save(self, elapsed: float) -> Path | None:
        """Checkpoint now (rank 0 only); every rank must call it (it synchronises)."""
        path = None
        if self.dist.is_main:
            path = save_checkpoint(self.run, self.step, self.state_dict(elapsed),
                                   keep=int(self.t["keep_checkpoints"]))
        self._barrier()
        return path

    # ------------------------------------------------------------------ helpers
    def _barrier(self) -> None:
        if self.dist.distributed and dist.is_initialized():
            dist.barrier()

    def _loader(self, start: int) -> DataLoader:
        nw = int(self.t["num_workers"])
        return DataLoader(
            # lanes = 2 x world size: fields stay with one worker for 0-2 workers per process
            _Positions(self.train_ds, int(self.t["seed"]), int(self.t["batch_size"]),
                       lanes=2 * self.dist.world_size),
            batch_sampler=_StepBatches(start, self.total, int(self.t["batch_size"]), self.dist),
            num_workers=nw, collate_fn=_collate, pin_memory=self.device.type == "cuda",
            worker_init_fn=_worker_init if nw > 0 else None,
            persistent_workers=False, prefetch_factor=2 if nw > 0 else None,
            # its own generator: creating the iterator must not draw from the global RNG
            generator=torch.Generator().manual_seed(int(self.t["seed"])))

    def _val_batch(self) -> dict[str, torch.Tensor]:
        """The fixed validation items, fetched once with seeded RNGs (same every time)."""
        if self._val_cache is None:
            n = min(int(self.t["val_items"]), len(self.val_ds))  # type: ignore[arg-type]
            if n == 0:
                raise ValueError("the validation set is empty")
            items = []
            with _forked_rng():
                for i in range(n):
                    _seed_all(step_seed(int(self.t["seed"]), 0x7A1, i))
                    items.append(self.val_ds[i])
            self._val_cache = _collate(items)
        return self._val_cache

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cl = bool(self.t["channels_last"])
        out = {}
        for k, v in batch.items():
            v = v.to(self.device, non_blocking=True)
            if cl and v.dim() == 4:
                v = v.contiguous(memory_format=torch.channels_last)
            out[k] = v
        return out

    def validate(self) -> dict[str, float]:
        """PSNR/SSIM of restored and blurred vs sharp on the fixed set + RUN/val/step_XXXXXX.png."""
        batch = self._val_batch()
        outs = []
        vb = max(1, int(self.t["val_batch"]))
        with _forked_rng():
            torch.manual_seed(int(self.t["seed"]))
            with self.steps.evaluating():
                for i in range(0, batch["blurred"].shape[0], vb):
                    x = self._to_device({"blurred": batch["blurred"][i:i + vb]})["blurred"]
                    outs.append(self.steps.restore(x).float().cpu())
        restored = torch.cat(outs).numpy()
        blurred, sharp = batch["blurred"].numpy(), batch["sharp"].numpy()
        metrics: dict[str, float] = {}
        if self.val_paired:
            metrics.update(batch_metrics(restored, blurred, sharp, data_range=1.0))
        # no-reference score: the only one for unpaired real images, a sanity check otherwise
        metrics["sharpness"] = float(np.mean([sharpness(np.clip(r, 0, None)) for r in restored]))
        metrics["sharpness_blurred"] = float(np.mean([sharpness(np.clip(b, 0, None))
                                                      for b in blurred]))
        save_grid(self.run / "val" / f"step_{self.step:06d}.png", [blurred, restored, sharp],
                  ["blurred", "restored", "sharp" if self.val_paired else "sharp (unpaired)"])
        self.last_val, self.last_val_step = metrics, self.step
        return metrics

    # ------------------------------------------------------------------ log
    def _log_fields(self) -> list[str]:
        return (["step", "elapsed_s", "lr", *self.steps.loss_names,
                 "val_psnr", "val_ssim", "val_psnr_blurred", "val_ssim_blurred",
                 "val_sharpness", "val_sharpness_blurred"])

    def _open_log(self, resumed_at: int | None) -> None:
        """Start RUN/log.csv, or on resume drop rows past the checkpoint (a killed run wrote them)."""
        path = self.run / "log.csv"
        rows = read_log(path) if resumed_at is not None else []
        rows = [r for r in rows if int(float(r["step"])) <= (resumed_at or 0)]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self._log_fields(), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        with atomic_write(path) as tmp:
            tmp.write_text(buf.getvalue(), encoding="utf-8")
        self._log_rows = rows
        self._log_fh = open(path, "a", newline="", encoding="utf-8")
        self._log_writer = csv.DictWriter(self._log_fh, fieldnames=self._log_fields(),
                                          extrasaction="ignore")

    def _write_log(self, row: dict[str, Any]) -> None:
        clean = {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
        self._log_writer.writerow(clean)
        self._log_fh.flush()
        self._log_rows.append({k: str(v) for k, v in clean.items()})

    def _plot(self) -> None:
        try:
            plot_curves(self._log_rows, self.steps.loss_names, self.run / "loss.png")
        except Exception as exc:  # noqa: BLE001 - a plot must never stop a training run
            self._say(f"warning: could not draw loss.png ({exc})")

    def _say(self, msg: str) -> None:
        if self.dist.is_main and not self.quiet:
            if self._bar is not None:
                self._bar.write(msg, file=sys.stderr)
            else:
                print(msg, file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ signals
    def _handle_signal(self, signum: int, frame: Any) -> None:
        if self._stop_signal is not None:      # second Ctrl-C: stop now, no checkpoint
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        self._stop_signal = signum

    def _install_signals(self) -> dict[int, Any]:
        old: dict[int, Any] = {}
        import threading
        if threading.current_thread() is not threading.main_thread():
            return old
        for s in (signal.SIGINT, signal.SIGTERM):
            old[s] = signal.signal(s, self._handle_signal)
        return old

    def _sync_flags(self, nonfinite: bool) -> tuple[int | None, bool]:
        """(signal to stop on, whether any process saw a non-finite loss), agreed by all ranks
        in one all-reduce: one rank stopping or checking alone would hang DDP."""
        if not self.dist.distributed:
            return self._stop_signal, nonfinite
        flags = torch.tensor([self._stop_signal or 0, int(nonfinite)], device=self._comm_device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return int(flags[0].item()) or None, bool(flags[1].item())

    # ------------------------------------------------------------------ the loop
    def fit(self, resume: bool = False) -> TrainResult:
        """Train to ``total`` steps (from the newest checkpoint if `resume`).

        Raises
        ------
        TrainingInterrupted
            After SIGINT/SIGTERM, once the current step finished and a checkpoint was saved.
        """
        self._bar = None
        self._comm_device = (torch.device("cuda", self.dist.local_rank)
                             if self.device.type == "cuda" else torch.device("cpu"))
        resumed_at = self.resume() if resume else None
        if self.dist.is_main:
            self.run.mkdir(parents=True, exist_ok=True)
            self._open_log(resumed_at)
        start = self.step
        if self.dist.distributed:
            self._wrap_ddp()
        old_handlers = self._install_signals()
        t0 = time.monotonic()
        elapsed = lambda: self.elapsed_prev + time.monotonic() - t0  # noqa: E731
        every = lambda n, s: n > 0 and s % n == 0  # noqa: E731
        log_every, val_every = int(self.t["log_every"]), int(self.t["val_every"])
        ckpt_every = int(self.t["checkpoint_every"])
        acc: dict[str, float] = {}
        n_acc = 0
        last_ckpt: Path | None = None
        try:
            if self.dist.is_main and not self.quiet:
                from tqdm import tqdm
                self._bar = tqdm(total=self.total, initial=start, unit="step",
                                 desc=f"{self.steps.name}", dynamic_ncols=True,
                                 disable=not sys.stderr.isatty(), file=sys.stderr)
            self._say(self._banner(start))
            self.steps.train()
            t_first = t_last = None
            last_status = time.monotonic()
            for positions_batch in self._loader(start) if start < self.total else []:
                _seed_all(step_seed(int(self.t["seed"]), 0x57E9, self.step, self.dist.rank))
                batch = self._to_device(positions_batch)
                losses = self.steps.train_step(batch, self.step)
                stop, nonfinite = self._sync_flags(
                    not all(math.isfinite(v) for v in losses.values()))
                if nonfinite:
                    self._check_diverged(losses)
                self.steps.precision.update()
                for s in self.steps.schedulers.values():
                    s.step()
                self.step += 1
                t_last = time.monotonic()
                if t_first is None:
                    t_first = t_last
                for k, v in losses.items():
                    acc[k] = acc.get(k, 0.0) + float(v)
                n_acc += 1
                if self.on_step is not None:
                    self.on_step(self.step, losses)
                if self._bar is not None:
                    self._bar.update(1)
                    if n_acc == 1 or self.step % max(1, log_every) == 0:
                        self._bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()},
                                              refresh=False)
                    if self._bar.disable and time.monotonic() - last_status > 60:
                        last_status = time.monotonic()   # no TTY (batch jobs): a line a minute
                        self._say(self._status(start, t_first, losses))
                final = self.step >= self.total
                row: dict[str, Any] = {}
                if every(log_every, self.step) or final:
                    row = {"step": self.step, "elapsed_s": round(elapsed(), 3),
                           "lr": self.steps.lr(), **self._mean_losses(acc, n_acc)}
                    acc, n_acc = {}, 0
                if (every(val_every, self.step) or final) and self.dist.is_main:
                    m = self.validate()
                    row = row or {"step": self.step, "elapsed_s": round(elapsed(), 3),
                                  "lr": self.steps.lr()}
                    row.update({f"val_{k}": v for k, v in m.items()})
                    self._say(self._val_line(m))
                if row and self.dist.is_main:
                    self._write_log(row)
                    if "val_psnr" in row or final:
                        self._plot()
                if not self.dist.distributed:
                    stop = self._stop_signal         # one process: react to a signal at once
                if every(ckpt_every, self.step) or final or stop:
                    last_ckpt = self.save(elapsed())
                if stop:
                    raise TrainingInterrupted(stop, self.step, last_ckpt)
            if start >= self.total and self.dist.is_main and not list_checkpoints(self.run):
                last_ckpt = self.save(elapsed())
            wall = elapsed()
            rate = 0.0
            if t_first is not None and self.step - start > 1:    # from step 2 (warm-up excluded)
                rate = (self.step - start - 1) / max(1e-9, t_last - t_first)
            if self.dist.is_main and not self.last_val:
                self.last_val = self.validate()
            return TrainResult(self.step, wall, dict(self.last_val), last_ckpt, rate)
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            if self.dist.is_main and getattr(self, "_log_fh", None) is not None:
                self._log_fh.close()
                self._log_fh = None
            for s, h in old_handlers.items():
                signal.signal(s, h)

    def _check_diverged(self, losses: dict[str, float]) -> None:
        """Non-finite loss: fine if the scaler skipped the step, fatal if the weights are NaN.

        Stopping at once keeps keep-last-K from replacing the good checkpoints with NaN ones.
        """
        # DDP keeps the weights identical on every rank, so each rank reaches the same verdict
        bad = any(not torch.isfinite(p).all()
                  for k in self.steps.trainable for p in self.steps.modules[k].parameters())
        if bad:
            ckpts = list_checkpoints(self.run)
            raise TrainingDiverged(self.step + 1, losses, ckpts[-1][0] if ckpts else None)

    def _val_line(self, m: dict[str, float]) -> str:
        if "psnr" in m:
            return (f"step {self.step}/{self.total}: validation PSNR {m['psnr']:.2f} dB (blurred "
                    f"{m['psnr_blurred']:.2f}), SSIM {m['ssim']:.3f} (blurred "
                    f"{m['ssim_blurred']:.3f})")
        return (f"step {self.step}/{self.total}: validation sharpness {m['sharpness']:.4g} "
                f"(blurred {m['sharpness_blurred']:.4g}; unpaired data, no PSNR/SSIM)")

    def _mean_losses(self, acc: dict[str, float], n: int) -> dict[str, float]:
        """Losses averaged over the logged steps and, under DDP, over all processes."""
        keys = sorted(acc)
        vals = torch.tensor([acc[k] / max(1, n) for k in keys], dtype=torch.float64)
        if self.dist.distributed and keys:
            vals = vals.to(self._comm_device)
            dist.all_reduce(vals)
            vals = vals.cpu() / self.dist.world_size
        return {k: float(v) for k, v in zip(keys, vals)}

    def _status(self, start: int, t_first: float | None, losses: dict[str, float]) -> str:
        """One progress line for logs without a terminal: step, speed, ETA, losses."""
        done = self.step - start - 1
        rate = done / max(1e-9, time.monotonic() - t_first) if t_first and done > 0 else 0.0
        eta = (self.total - self.step) / rate if rate > 0 else float("nan")
        eta_s = (time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) and eta < 86400
                 else (f"{eta / 86400:.1f} days" if math.isfinite(eta) else "?"))
        loss_s = " ".join(f"{k} {v:.3g}" for k, v in losses.items())
        return (f"step {self.step}/{self.total} ({100 * self.step / self.total:.1f}%), "
                f"{rate:.2f} steps/s, ETA {eta_s}: {loss_s}")

    def _wrap_ddp(self) -> None:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.dist.local_rank] if self.device.type == "cuda" else None
        self.steps.wrap(lambda m: DDP(m, device_ids=ids, broadcast_buffers=False))

    def _banner(self, start: int) -> str:
        n = sum(self.steps.n_parameters().get(k, 0) for k in self.steps.trainable)
        world = f", {self.dist.world_size} processes" if self.dist.distributed else ""
        head = f"resuming {self.steps.name} at step {start}" if start else f"training {self.steps.name}"
        return (f"{head}: {self.total} steps, batch {self.t['batch_size']} x patch "
                f"{self.t['patch']}, {n / 1e6:.2f} M trainable parameters, device "
                f"{self.device}{world}, amp {'on' if self.steps.precision.enabled else 'off'}, "
                f"run folder {self.run}")
