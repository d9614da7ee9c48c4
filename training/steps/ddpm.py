"""Conditional DDPM training step: v (or eps) prediction on random timesteps, EMA weights.

The loss is written out here rather than calling ``ConditionalDDPM.loss`` so that the forward
goes through ``self.net("ddpm")`` -- under torchrun that is the DDP wrapper, whose forward is
what synchronises gradients. It is the same loss: the module's forward builds x0 from `to_x0`
(the scaled residual over the predictor's estimate by default), x_t = sqrt(a) x0 + sqrt(1-a)
eps, and returns the U-Net output and its v/eps target; MSE between them, plus
``[diffusion] predictor_weight`` x L1(estimate, sharp) that trains the predictor;
``[diffusion] predictor_init`` may start the predictor from a generator weights file.

The EMA copy (``modules["ema"]``) is what validation samples from and what gets exported;
its decay is warmed up by ``core.models.ddpm.EMA`` (``min(decay, (1+n)/(10+n))``).
Settings: ``[model]`` (ConditionalDDPM kwargs), ``[ema] decay``, ``[diffusion]
val_sample_steps``, ``[optim] grad_clip``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from core.models.ddpm import ARCH_PRESETS, EMA, ConditionalDDPM
from training.steps import ModelSteps, Precision, load_weights_into

__all__ = ["DDPMSteps"]


class DDPMSteps(ModelSteps):
    """One network, one optimiser, an EMA copy; paired data (the blurred image conditions)."""

    name = "ddpm"
    paired = True
    loss_names = ("loss", "diffusion", "predictor")

    def __init__(self, cfg: dict[str, Any], device: torch.device, precision: Precision) -> None:
        super().__init__(cfg, device, precision)
        net = ConditionalDDPM(**self._arch("model", ARCH_PRESETS))
        init = str(cfg.get("diffusion", {}).get("predictor_init", "") or "")
        if init:
            self._init_predictor(net, init)
        self.ema = EMA(net, decay=float(cfg.get("ema", {}).get("decay", 0.999)))
        self.modules = {"ddpm": net, "ema": self.ema.model}
        self.trainable = ("ddpm",)
        self._finish_modules()
        o = cfg.get("optim", {})
        self.grad_clip = float(o.get("grad_clip", 1.0))
        self.optimizers = {"ddpm": self._adam(net.parameters())}
        self.schedulers = {"ddpm": self._scheduler(self.optimizers["ddpm"])}
        self.val_steps = int(cfg.get("diffusion", {}).get("val_sample_steps", 20))
        self.predictor_weight = float(cfg.get("diffusion", {}).get("predictor_weight", 1.0))

    @staticmethod
    def _init_predictor(net: ConditionalDDPM, path: str) -> None:
        """Start the predictor from a trained generator's weights file (e.g. COMI's content-trained
        g_deblur, the same architecture): the diffusion then learns from the first step what a
        good regression still misses. A checkpoint on resume overrides this, as it should."""
        if net.predictor is None:
            raise ValueError("[diffusion] predictor_init needs a model with a predictor")
        load_weights_into([net.predictor], path)

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        raw: ConditionalDDPM = self.modules["ddpm"]  # type: ignore[assignment]
        blurred, sharp = batch["blurred"], batch["sharp"]
        opt = self.optimizers["ddpm"]
        opt.zero_grad(set_to_none=True)
        t = torch.randint(0, raw.timesteps, (sharp.shape[0],), device=sharp.device)
        noise = torch.randn_like(sharp)
        with self.precision.autocast():
            out, target, base = self.net("ddpm")(sharp, blurred, t, noise)
        diffusion, predictor = raw.loss_terms(out, target, base, sharp)
        loss = diffusion + self.predictor_weight * predictor
        self.precision.backward(loss)
        self.precision.clip_grad(opt, raw.parameters(), self.grad_clip)
        self.precision.step(opt)
        self.ema.update(raw)
        return {"loss": float(loss.detach()), "diffusion": float(diffusion.detach()),
                "predictor": float(predictor.detach())}

    def restore(self, blurred: torch.Tensor) -> torch.Tensor:
        """DDIM sampling with the EMA weights, fixed seed, ``val_sample_steps`` steps."""
        return self.ema.model.sample(blurred, steps=self.val_steps, seed=0).float()

    def export_network(self) -> tuple[nn.Module, str]:
        return self.ema.model, ""

    def init_targets(self) -> list[nn.Module]:
        """A weights file starts both the trained network and its EMA copy."""
        return [self.modules["ddpm"], self.ema.model]

    def extra_state(self) -> dict[str, Any]:
        return {"ema_updates": int(self.ema.num_updates), "ema_decay": float(self.ema.decay)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.ema.num_updates = int(state.get("ema_updates", 0))
        self.ema.decay = float(state.get("ema_decay", self.ema.decay))
