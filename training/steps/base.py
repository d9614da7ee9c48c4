"""The protocol every model's training steps follow, so the Trainer has exactly one loop.

A `ModelSteps` object owns what differs between models: the networks (generators,
discriminators, EMA copies), their optimisers and LR schedules, one optimisation step on a
batch, how validation restores a blurred batch, and what gets exported. Everything else
(devices, autocast, data order, DDP, logging, validation, checkpoints, signals) is the
Trainer's.

Contract with the Trainer
-------------------------
- ``modules`` holds every stateful network *unwrapped*; ``trainable`` names the ones that
  get gradients (the Trainer wraps exactly those in DistributedDataParallel). Inside
  ``train_step`` use ``self.net(name)`` for a forward pass whose gradients must be averaged
  across processes, and ``self.modules[name]`` for a frozen use (e.g. the discriminator while
  the generator learns) so DDP never waits for gradients that do not come.
- ``train_step`` does its own forward/backward/optimiser steps through ``self.precision``
  (autocast, GradScaler) and returns plain float losses; the Trainer steps the schedulers.
- All randomness inside a step must come from the global torch RNG (or a state returned by
  ``extra_state``), which the Trainer reseeds from (seed, step, rank) before each step: that is
  what makes ``--resume`` exact.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from core.devices import autocast_context
from core.models.registry import get_entry, load_network
from core.models.weights import WeightsError
from training.schedules import lr_lambda
from training.widen import (add_blur_channel, can_add_blur_channel, can_drop_blur_channel, can_widen,
                            drop_blur_channel, widen_unet)

__all__ = ["Precision", "ModelSteps", "load_weights_into"]


class Precision:
    """Autocast + (for fp16 on CUDA) a GradScaler, shared by every optimiser of a model.

    bf16 needs no loss scaling; fp16 does. One scaler serves several optimisers as long as
    ``update()`` runs once per iteration, after all of them stepped (the Trainer calls it).
    """

    def __init__(self, device: torch.device, enabled: bool) -> None:
        self.device = device
        self.enabled = bool(enabled)
        fp16 = (enabled and device.type == "cuda" and not torch.cuda.is_bf16_supported())
        self.scaler = torch.amp.GradScaler("cuda") if fp16 else None

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision for forward passes (bf16 on CPU, bf16/fp16 on CUDA)."""
        return autocast_context(self.device, self.enabled)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def clip_grad(self, optimizer: torch.optim.Optimizer, params, max_norm: float) -> None:
        """Clip the gradient norm (unscaling fp16 gradients first); no-op for max_norm <= 0."""
        if max_norm <= 0:
            return
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(list(params), max_norm)

    def update(self) -> None:
        if self.scaler is not None:
            self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def load_weights_into(nets: list[nn.Module], path: str | Path) -> dict:
    """Load a weights file into each of `nets`; returns its card.

    The file's network must be the one built here, architecture and all (the card's
    constructor kwargs, not only the tensor shapes): a WeightsError names the file and every
    setting that differs. One exception: a U-Net generator built here with more channels per
    level than the file's is loaded widened (`training.widen`: it starts out computing exactly
    what the file's network computes); the returned card then says ``widened_from``. Likewise
    one built with a blur channel (``core.blur_map``) where the file's has none: the card then
    says ``blur_channel_added_to``; and the other way round (the DDPM's predictor from a COMI
    told the blur: it then computes what the file's network computes when told nothing), the
    card says ``blur_channel_dropped_from``.
    """
    src, card = load_network(path)
    for net in nets:
        want, have = dict(getattr(net, "config", {})), dict(getattr(src, "config", {}))
        if want != have and can_widen(src, net):
            widen_unet(src, net)
            card = {**card, "widened_from": have}
            continue
        if can_add_blur_channel(src, net):
            add_blur_channel(src, net)
            card = {**card, "blur_channel_added_to": have}
            continue
        if can_drop_blur_channel(src, net):
            drop_blur_channel(src, net)
            card = {**card, "blur_channel_dropped_from": have}
            continue
        if type(src) is not type(net) or want != have:
            diff = ", ".join(f"{k} {have.get(k)!r} (here: {want.get(k)!r})"
                             for k in sorted(set(want) | set(have)) if want.get(k) != have.get(k))
            raise WeightsError(f"weights file {path} holds a {type(src).__name__} that differs from "
                               f"the {type(net).__name__} trained here: "
                               f"{diff or 'another network type'}; set [model] to match it")
        net.load_state_dict(src.state_dict())
    return card


class ModelSteps(ABC):
    """What one model contributes to training; see the module docstring for the contract.

    Parameters
    ----------
    cfg : dict
        The merged run configuration (sections ``model``, ``optim``, ``loss``, ``train`` ...).
    device : torch.device
        Where the networks live.
    precision : Precision
        Autocast and loss scaling, owned by the Trainer.
    """

    name: str = ""
    #: the model's own configuration sections (table -> dataclass of typed settings), beside
    #: the common [train], [data], [optim] of ``training.settings``
    config_sections: dict[str, type] = {}
    #: where its defaults differ from the common ones: {table: {key: value}}
    config_defaults: dict[str, dict[str, Any]] = {}
    paired: bool = True                      # needs aligned blurred/sharp pairs
    loss_names: tuple[str, ...] = ()         # keys of train_step's result, fixed for the CSV log
    notes: str = ""                          # for the model card

    def __init__(self, cfg: dict[str, Any], device: torch.device, precision: Precision) -> None:
        self.cfg = cfg
        self.device = device
        self.precision = precision
        self.modules: dict[str, nn.Module] = {}
        self.trainable: tuple[str, ...] = ()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}
        self._wrapped: dict[str, nn.Module] = {}

    # ------------------------------------------------------------------ for subclasses
    def net(self, name: str) -> nn.Module:
        """The module to use for gradient-carrying forward passes (DDP-wrapped if distributed)."""
        return self._wrapped.get(name, self.modules[name])

    def _arch(self, table: str) -> dict[str, Any]:
        """Constructor kwargs: the model's named size ``[table] preset`` (from its description,
        ``core.models.<name>.MODEL.presets``) overlaid with the other keys of the table."""
        presets = get_entry(self.name).presets[table]
        spec = dict(self.cfg.get(table, {}))
        name = spec.pop("preset", "cpu")
        if name not in presets:
            raise ValueError(f"[{table}] preset {name!r} is not one of {', '.join(presets)}")
        return {**presets[name], **spec}

    def _finish_modules(self) -> None:
        """Move every module to the device (and channels_last if configured)."""
        cl = bool(self.cfg["train"]["channels_last"])
        for name, m in self.modules.items():
            m.to(self.device)
            if cl:
                m.to(memory_format=torch.channels_last)

    def _adam(self, params) -> torch.optim.Optimizer:
        """Adam with the configured LR and betas."""
        o = self.cfg["optim"]
        return torch.optim.Adam(params, lr=float(o["lr"]), betas=(float(o["beta1"]), float(o["beta2"])),
                                weight_decay=float(o["weight_decay"]))

    def _scheduler(self, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        o = self.cfg["optim"]
        total = int(self.cfg["train"]["steps"])
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lr_lambda(total, warmup=int(o["warmup"]), decay=str(o["decay"]),
                           decay_start=float(o["decay_start"])))

    @staticmethod
    def set_requires_grad(modules: list[nn.Module], flag: bool) -> None:
        """Freeze or unfreeze networks (discriminators while their generator learns)."""
        for m in modules:
            for p in m.parameters():
                p.requires_grad_(flag)

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode + no grad for validation, restoring each module's previous mode."""
        modes = {k: m.training for k, m in self.modules.items()}
        try:
            for m in self.modules.values():
                m.eval()
            with torch.no_grad():
                yield
        finally:
            for k, m in self.modules.items():
                m.train(modes[k])

    # ------------------------------------------------------------------ the protocol
    @abstractmethod
    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        """One optimisation step on a batch already on the device; returns the losses."""

    @abstractmethod
    def predict_batch(self, blurred: torch.Tensor, blur: torch.Tensor | None = None) -> torch.Tensor:
        """Restore a (N, 1, P, P) blurred batch for validation (deterministic, no grad);
        `blur`: the batch's blur channel (``training.blur_told``), for a network that takes one."""

    @abstractmethod
    def export_network(self) -> tuple[nn.Module, str]:
        """(the inference network, extra card notes); its ``.config`` is the card architecture."""

    def export(self) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
        """(state_dict, architecture constructor kwargs, card notes) of the inference network."""
        net, notes = self.export_network()
        return ({k: v.detach().cpu() for k, v in net.state_dict().items()}, dict(net.config),
                notes)

    def init_targets(self) -> list[nn.Module]:
        """The modules a ``[train] init`` weights file is loaded into: the exported network."""
        return [self.export_network()[0]]

    def init_from(self, path: str) -> dict:
        """Start from a trained model's weights file (fine-tuning, e.g. the shipped COMI on your
        own images); returns the file's card. Optimisers start fresh; a checkpoint on --resume
        overrides this."""
        return load_weights_into(self.init_targets(), path)

    def load_averaged(self, states: list[dict[str, Any]]) -> None:
        """Load the last of `states` (``state_dict()`` results), with the exported network's
        floating-point tensors replaced by their mean over all of them.

        Averaging the weights of the last checkpoints of a run (Polyak averaging; Yazici et al.
        2019 for GANs) smooths the step-to-step jitter of the exported network (what it did
        for COMI: docs/BENCHMARKS.md, "Design measurements").
        """
        total: dict[str, torch.Tensor] = {}
        for state in states:
            self.load_state_dict(state)
            for k, v in self.export_network()[0].state_dict().items():
                if v.is_floating_point():
                    total[k] = total.get(k, 0) + v.detach().double()
        net = self.export_network()[0]
        current = net.state_dict()
        net.load_state_dict({k: (total[k] / len(states)).to(v.dtype) if k in total else v
                             for k, v in current.items()})

    def extra_state(self) -> dict[str, Any]:
        """Non-module state that resume must restore (image pools, counters); tensors/ints only."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Inverse of `extra_state`."""

    # ------------------------------------------------------------------ used by the Trainer
    def wrap(self, wrapper: Callable[[nn.Module], nn.Module]) -> None:
        """Wrap every trainable module (DDP); `modules` keeps the plain ones."""
        self._wrapped = {name: wrapper(self.modules[name]) for name in self.trainable}

    def train(self) -> None:
        """Training mode for the trainable networks (EMA copies stay in eval mode)."""
        for k in self.trainable:
            self.modules[k].train()

    def lr(self) -> float:
        """The current LR of the first optimiser (for the log)."""
        opt = next(iter(self.optimizers.values()))
        return float(opt.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        return {
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "precision": self.precision.state_dict(),
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        self.precision.load_state_dict(state.get("precision", {}))
        self.load_extra_state(state.get("extra", {}))

    def n_parameters(self) -> dict[str, int]:
        return {k: sum(p.numel() for p in m.parameters()) for k, m in self.modules.items()}
