"""Conditional DDPM training step: v (or eps) prediction on random timesteps, EMA weights.

The loss is written out here rather than calling ``ConditionalDDPM.loss`` so that the U-Net
forward goes through ``self.net("ddpm")`` -- under torchrun that is the DDP wrapper, whose
forward is what synchronises gradients. It is the same loss: x0 from `to_x0` (the scaled
residual by default), x_t = sqrt(a) x0 + sqrt(1-a) eps, MSE against v or eps.

The EMA copy (``modules["ema"]``) is what validation samples from and what gets exported;
its decay is warmed up by ``core.models.ddpm.EMA`` (``min(decay, (1+n)/(10+n))``).
Settings: ``[model]`` (ConditionalDDPM kwargs), ``[ema] decay``, ``[diffusion]
val_sample_steps``, ``[optim] grad_clip``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.models.ddpm import ARCH_PRESETS, EMA, ConditionalDDPM
from training.steps import ModelSteps, Precision

__all__ = ["DDPMSteps"]


class DDPMSteps(ModelSteps):
    """One network, one optimiser, an EMA copy; paired data (the blurred image conditions)."""

    name = "ddpm"
    paired = True
    loss_names = ("loss",)

    def __init__(self, cfg: dict[str, Any], device: torch.device, precision: Precision) -> None:
        super().__init__(cfg, device, precision)
        net = ConditionalDDPM(**self._arch("model", ARCH_PRESETS))
        self.ema = EMA(net, decay=float(cfg.get("ema", {}).get("decay", 0.999)))
        self.modules = {"ddpm": net, "ema": self.ema.model}
        self.trainable = ("ddpm",)
        self._finish_modules()
        o = cfg.get("optim", {})
        self.grad_clip = float(o.get("grad_clip", 1.0))
        self.optimizers = {"ddpm": self._adam(net.parameters())}
        self.schedulers = {"ddpm": self._scheduler(self.optimizers["ddpm"])}
        self.val_steps = int(cfg.get("diffusion", {}).get("val_sample_steps", 20))

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        raw: ConditionalDDPM = self.modules["ddpm"]  # type: ignore[assignment]
        blurred, sharp = batch["blurred"], batch["sharp"]
        opt = self.optimizers["ddpm"]
        opt.zero_grad(set_to_none=True)
        x0 = raw.to_x0(sharp, blurred)
        n = x0.shape[0]
        t = torch.randint(0, raw.timesteps, (n,), device=x0.device)
        noise = torch.randn_like(x0)
        a = raw.alphas_cumprod.to(x0.device)[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        target = a.sqrt() * noise - (1 - a).sqrt() * x0 if raw.objective == "v" else noise
        with self.precision.autocast():
            out = self.net("ddpm")(x_t, raw.condition(blurred), t)
        loss = F.mse_loss(out.float(), target.float())
        self.precision.backward(loss)
        self.precision.clip_grad(opt, raw.parameters(), self.grad_clip)
        self.precision.step(opt)
        self.ema.update(raw)
        return {"loss": float(loss.detach())}

    def restore(self, blurred: torch.Tensor) -> torch.Tensor:
        """DDIM sampling with the EMA weights, fixed seed, ``val_sample_steps`` steps."""
        return self.ema.model.sample(blurred, steps=self.val_steps, seed=0).float()

    def export_network(self) -> tuple[nn.Module, str]:
        return self.ema.model, ""

    def extra_state(self) -> dict[str, Any]:
        return {"ema_updates": int(self.ema.num_updates), "ema_decay": float(self.ema.decay)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.ema.num_updates = int(state.get("ema_updates", 0))
        self.ema.decay = float(state.get("ema_decay", self.ema.decay))
