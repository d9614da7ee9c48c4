"""Training checkpoints: atomic writes, keep-last-K, newest-readable lookup, RNG state capture.

Checkpoints are our own files (``RUN/checkpoints/step_000500.pt``): a plain dict of state dicts,
numbers, strings and tensors written with ``torch.save`` and read back with
``torch.load(weights_only=True)``, so no pickled code is ever executed on resume. RNG states are
stored as tensors for the same reason.

A run killed with SIGKILL leaves at worst a ``.tmp`` file (the final name only appears through
``os.replace``), but a copy made by a user or a full disk can still leave a damaged newest file; the
loader therefore walks back to the newest checkpoint that actually loads.
"""

from __future__ import annotations

import os
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.io import atomic_write

__all__ = ["checkpoint_path", "list_checkpoints", "save_checkpoint", "load_latest", "load_newest",
           "prune_checkpoints", "rng_state", "set_rng_state", "CHECKPOINT_DIR"]

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_path(run: Path, step: int) -> Path:
    """`RUN/checkpoints/step_000500.pt` (six digits; longer step counts just widen the name)."""
    return Path(run) / CHECKPOINT_DIR / f"step_{step:06d}.pt"


def list_checkpoints(run: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint in the run, oldest first."""
    folder = Path(run) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def save_checkpoint(run: Path, step: int, state: dict[str, Any], keep: int = 3) -> Path:
    """Write `state` atomically as the checkpoint for `step`, then keep only the newest `keep`.

    The bytes go to a temp file in the same folder, are flushed to disk, and only then renamed
    over the final name, so a crash at any moment leaves either the old set or the new one.
    """
    path = checkpoint_path(run, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
        torch.save(state, fh)
    _fsync_dir(path.parent)
    prune_checkpoints(run, keep)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable where the OS allows it (no-op on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def prune_checkpoints(run: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints and any temp files left by a killed run."""
    ckpts = list_checkpoints(run)
    if keep > 0:
        for _, p in ckpts[:-keep]:
            p.unlink(missing_ok=True)
    folder = Path(run) / CHECKPOINT_DIR
    if folder.is_dir():
        # core.io.atomic_write's temp files of a run killed mid-save (this process has none
        # in flight: pruning follows its own save, and only one process writes a run)
        for p in folder.glob(".step_*.part"):
            p.unlink(missing_ok=True)


def load_newest(run: Path, count: int = 1, map_location: str | torch.device = "cpu",
                up_to: int | None = None) -> list[tuple[int, dict[str, Any]]]:
    """The newest `count` checkpoints that load (of those up to step `up_to`, when given),
    oldest first, as (step, state) pairs.

    Unreadable files (truncated by a kill mid-copy, zero bytes after a full disk) are skipped
    with a warning naming them, falling back to older checkpoints.
    """
    found: list[tuple[int, dict[str, Any]]] = []
    for step, path in reversed(list_checkpoints(run)):
        if len(found) >= count:
            break
        if up_to is not None and step > up_to:
            continue
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
            if not isinstance(state, dict) or "step" not in state:
                raise ValueError("not a deblur training checkpoint")
        except Exception as exc:  # noqa: BLE001 - any failure means "unusable", reason is reported
            warnings.warn(f"skipping unreadable checkpoint {path}: {type(exc).__name__}: {exc}",
                          RuntimeWarning, stacklevel=2)
            continue
        found.append((step, state))
    return found[::-1]


def load_latest(run: Path, map_location: str | torch.device = "cpu",
                ) -> tuple[int, dict[str, Any]] | None:
    """The newest checkpoint that loads, as (step, state); None if the run has none."""
    found = load_newest(run, 1, map_location)
    return found[0] if found else None


def rng_state() -> dict[str, Any]:
    """Every global RNG the training touches, as tensors/ints (loadable with weights_only)."""
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": torch.tensor(py_internal, dtype=torch.int64),
        "python_version": int(py_version),
        "python_gauss": None if py_gauss is None else float(py_gauss),
        "numpy": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
        "numpy_pos": int(np_pos),
        "numpy_has_gauss": int(np_has_gauss),
        "numpy_gauss": float(np_gauss),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA states only if the device count matches).
    A checkpoint loaded onto a GPU holds these tensors there: each is brought back first."""
    torch.set_rng_state(state["torch"].cpu())
    random.setstate((state["python_version"], tuple(int(v) for v in state["python"].cpu().tolist()),
                     state["python_gauss"]))
    np.random.set_state(("MT19937", state["numpy"].cpu().numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_gauss"]))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([c.cpu() for c in cuda])
