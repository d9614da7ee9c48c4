"""The one training loop shared by every model.

The Trainer owns everything that is the same for COMI, CycleGAN and the DDPM: devices and
autocast, a data order that is a pure function of (seed, step), DistributedDataParallel,
the progress bar, the CSV log and loss curve, validation with a PNG grid, atomic checkpoints,
exact resume and clean stops on SIGINT/SIGTERM. What differs per model lives in
`training.steps` (one `ModelSteps` object).

Exact resume: the data order is a pure function of (seed, step) (``training.sample_order``)
and the checkpoint holds module, optimiser, scheduler, scaler and per-model extra state (image
pools), plus the RNG states. Validation grids and loss curves: ``training.plots``.
"""

from __future__ import annotations

import csv
import io
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from core.io import atomic_write
from core.metrics import batch_metrics, sharpness
from training.checkpoint import (load_latest, list_checkpoints, rng_state, save_checkpoint,
                                 set_rng_state)
from training.plots import plot_curves, read_log, save_grid
from training.sample_order import (DistInfo, collate, forked_rng, seed_all, step_loader,
                                   step_seed)
from training.steps import ModelSteps

__all__ = ["Trainer", "TrainResult", "TrainingInterrupted", "TrainingDiverged"]

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
    time_budget_s : float, optional
        Stop after the first step that ends this many seconds into the run (as if it were the
        last step: validation, log row, checkpoint); ``cfg['train']['steps']`` stays the cap.
        For adaptation to one image (``training.adapt``), which is budgeted by time.
    """

    def __init__(self, steps: ModelSteps, train_ds: Dataset, val_ds: Dataset, run_dir: Path,
                 cfg: dict[str, Any], dist_: DistInfo | None = None, quiet: bool = False,
                 on_step: Callable[[int, dict[str, float]], None] | None = None,
                 val_paired: bool = True, time_budget_s: float | None = None) -> None:
        self.steps = steps
        self.time_budget_s = time_budget_s
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
        return step_loader(self.train_ds, seed=int(self.t["seed"]), batch_size=int(self.t["batch_size"]),
                           start=start, stop=self.total, dist_=self.dist,
                           workers=int(self.t["num_workers"]), pin_memory=self.device.type == "cuda")

    def _val_batch(self) -> dict[str, torch.Tensor]:
        """The fixed validation items, fetched once with seeded RNGs (same every time)."""
        if self._val_cache is None:
            n = min(int(self.t["val_items"]), len(self.val_ds))  # type: ignore[arg-type]
            if n == 0:
                raise ValueError("the validation set is empty")
            items = []
            with forked_rng():
                for i in range(n):
                    seed_all(step_seed(int(self.t["seed"]), 0x7A1, i))
                    items.append(self.val_ds[i])
            self._val_cache = collate(items)
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
        with forked_rng():
            torch.manual_seed(int(self.t["seed"]))
            with self.steps.evaluating():
                for i in range(0, batch["blurred"].shape[0], vb):
                    part = self._to_device({k: batch[k][i:i + vb] for k in ("blurred", "blur")
                                            if k in batch})
                    outs.append(self.steps.predict_batch(part["blurred"], part.get("blur"))
                                .float().cpu())
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
                seed_all(step_seed(int(self.t["seed"]), 0x57E9, self.step, self.dist.rank))
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
                if (self.time_budget_s is not None and self.step < self.total
                        and time.monotonic() - t0 >= self.time_budget_s):
                    self.total = self.step           # the time is up: this step is the last
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
                if final:
                    break
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

