"""Which samples each process trains on at each step: a pure function of (seed, step).

Three things make a run resumed at step N equal to an uninterrupted one (``training.trainer``
does the rest):
1. the batch for step s is ``items[perm(seed, epoch)[pos]]`` for the global sample positions of
   step s, so no iterator state has to survive;
2. before each step every global RNG is reseeded from (seed, step, rank) and every dataset item
   is fetched with the RNGs seeded from (seed, position) (random crops, simulated blur);
3. the checkpoint holds the rest (modules, optimisers, schedulers, pools, RNG states).
Under torchrun each process (rank) takes its own lanes of the same global order.
"""

from __future__ import annotations

import os
import random
import signal
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["DistInfo", "dist_info", "step_seed", "seed_all", "batch_positions", "Positions",
           "StepBatches", "forked_rng", "worker_init", "collate", "step_loader"]


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


def seed_all(s: int) -> None:
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


class Positions(Dataset):
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
        with forked_rng():
            seed_all(step_seed(self.seed, 0xDA7A, pos))
            return self.ds[int(self._perm[i])]


class StepBatches(Sampler[list[int]]):
    """Batches of positions for steps [start, stop) of one rank."""

    def __init__(self, start: int, stop: int, batch_size: int, dist_: DistInfo) -> None:
        self.start, self.stop, self.bs, self.dist = start, stop, batch_size, dist_

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self):
        for s in range(self.start, self.stop):
            yield list(batch_positions(s, self.bs, self.dist.rank, self.dist.world_size))


class forked_rng:
    """Save and restore the torch/numpy/python RNGs around a block (validation, data items)."""

    def __enter__(self) -> None:
        self.t, self.n, self.p = torch.get_rng_state(), np.random.get_state(), random.getstate()

    def __exit__(self, *exc: Any) -> None:
        torch.set_rng_state(self.t)
        np.random.set_state(self.n)
        random.setstate(self.p)


def worker_init(_: int) -> None:
    """DataLoader workers ignore Ctrl-C and SIGTERM sent to the whole process group (the main
    process decides when to stop, and shuts them down) and use one thread each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(1)


def step_loader(ds: Dataset, *, seed: int, batch_size: int, start: int, stop: int,
                dist_: DistInfo | None = None, workers: int = 0, pin_memory: bool = False,
                ) -> DataLoader:
    """The one way training data is loaded: the batches of steps [start, stop) for this
    process, each a pure function of (seed, step), whatever the worker count.

    Lanes = 2 x world size: the patches of one simulated field stay with one worker for 0-2
    workers per process, so each field is made once.
    """
    dist_ = dist_ or DistInfo()
    return DataLoader(
        Positions(ds, seed, batch_size, lanes=2 * dist_.world_size),
        batch_sampler=StepBatches(start, stop, batch_size, dist_),
        num_workers=workers, collate_fn=collate, pin_memory=pin_memory,
        worker_init_fn=worker_init if workers > 0 else None,
        persistent_workers=False, prefetch_factor=2 if workers > 0 else None,
        # its own generator: creating the iterator must not draw from the global RNG
        generator=torch.Generator().manual_seed(int(seed)))


def collate(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([it[k] for it in items]) for k in items[0]
            if isinstance(items[0][k], torch.Tensor)}
