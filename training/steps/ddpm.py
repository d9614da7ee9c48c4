"""The conditional DDPM's training objective and step: v (or eps) prediction at random
timesteps, the predictor's L1, EMA weights.

`diffusion_objective` is the whole loss, top to bottom: the module's forward builds x0 from
`to_x0` (the scaled residual over the predictor's estimate by default), x_t = sqrt(a) x0 +
sqrt(1-a) eps, and returns the U-Net output and its v/eps target; the loss is the MSE between
them, plus ``[diffusion] predictor_weight`` x L1(estimate, sharp), which trains the predictor
(``[diffusion] predictor_init`` may start the predictor from a generator weights file). The
forward goes through ``self.net("ddpm")``: under torchrun that is the DDP wrapper, whose
forward is what synchronises gradients.

The EMA copy (``modules["ema"]``) is what validation samples from and what gets exported; its
decay is warmed up (`training.ema.EMA`). Settings: ``[model]`` (ConditionalDDPM kwargs),
``[ema] decay``, ``[diffusion]``, ``[optim] grad_clip``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from core.models.ddpm import DEFAULT_STEPS, ConditionalDDPM
from training.ema import EMA
from training.settings import setting
from training.steps.base import ModelSteps, Precision, load_weights_into

__all__ = ["DDPMSteps", "diffusion_objective", "EmaSection", "DiffusionSection"]


@dataclass
class EmaSection:
    """The moving average whose weights are exported."""

    decay: float = setting(0.999, "EMA decay, warmed up as min(decay, (1 + n) / (10 + n))",
                           min=0.0, max=1.0)


@dataclass
class DiffusionSection:
    """The predictor and validation sampling."""

    val_sample_steps: int = setting(DEFAULT_STEPS, "DDIM steps when validating (default: as the "
                                                   "app restores)", min=1)
    predictor_weight: float = setting(1.0, "weight of L1(predictor estimate, sharp) beside the "
                                           "diffusion MSE", min=0.0)
    predictor_init: str = setting("", "a generator .safetensors (same architecture, e.g. COMI's) "
                                      "to start the predictor from; \"\" = random")


def diffusion_objective(model: ConditionalDDPM, sharp: torch.Tensor, blurred: torch.Tensor, *,
                        predictor_weight: float = 1.0, generator: torch.Generator | None = None,
                        forward: Callable[..., Any] | None = None,
                        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(loss, {"diffusion", "predictor"}) for a batch: MSE between the U-Net output and its v
    (or eps) target at uniformly random t, plus ``predictor_weight`` x L1(estimate, sharp) when
    there is a predictor. `forward` is the module to call (a DDP wrapper of `model`); the
    random t and noise come from `generator` (else the global RNG). Loss maths in float32."""
    n = sharp.shape[0]
    dev = generator.device if generator is not None else sharp.device
    t = torch.randint(0, model.timesteps, (n,), device=dev, generator=generator).to(sharp.device)
    noise = torch.randn(sharp.shape, device=dev, generator=generator).to(sharp.device, sharp.dtype)
    with autocast():
        out, target, base = (forward or model)(sharp, blurred, t, noise)
    diffusion = F.mse_loss(out.float(), target.float())
    predictor = (torch.zeros((), device=out.device) if model.predictor is None
                 else F.l1_loss(base.float(), sharp.float()))
    return diffusion + predictor_weight * predictor, {"diffusion": diffusion, "predictor": predictor}


class DDPMSteps(ModelSteps):
    """One network, one optimiser, an EMA copy; paired data (the blurred image conditions)."""

    name = "ddpm"
    paired = True
    loss_names = ("loss", "diffusion", "predictor")
    config_sections = {"ema": EmaSection, "diffusion": DiffusionSection}
    # a diffusion model trains longer and validates more slowly (DDIM sampling); Adam with
    # beta1 0.9, a warm-up and cosine decay as in denoising-diffusion-pytorch; tighter clipping
    config_defaults = {"train": {"steps": 6000, "val_every": 500},
                       "optim": {"beta1": 0.9, "warmup": 200, "decay": "cosine", "decay_start": 0.0,
                                 "grad_clip": 1.0}}

    def __init__(self, cfg: dict[str, Any], device: torch.device, precision: Precision) -> None:
        super().__init__(cfg, device, precision)
        net = ConditionalDDPM(**self._arch("model"))
        diffusion = cfg["diffusion"]
        if diffusion["predictor_init"]:
            self._init_predictor(net, str(diffusion["predictor_init"]))
        self.ema = EMA(net, decay=float(cfg["ema"]["decay"]))
        self.modules = {"ddpm": net, "ema": self.ema.model}
        self.trainable = ("ddpm",)
        self._finish_modules()
        self.grad_clip = float(cfg["optim"]["grad_clip"])
        self.optimizers = {"ddpm": self._adam(net.parameters())}
        self.schedulers = {"ddpm": self._scheduler(self.optimizers["ddpm"])}
        self.val_steps = int(diffusion["val_sample_steps"])
        self.predictor_weight = float(diffusion["predictor_weight"])

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
        opt = self.optimizers["ddpm"]
        opt.zero_grad(set_to_none=True)
        loss, terms = diffusion_objective(raw, batch["sharp"], batch["blurred"],
                                          predictor_weight=self.predictor_weight,
                                          forward=self.net("ddpm"), autocast=self.precision.autocast)
        self.precision.backward(loss)
        self.precision.clip_grad(opt, raw.parameters(), self.grad_clip)
        self.precision.step(opt)
        self.ema.update(raw)
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items()}}

    def predict_batch(self, blurred: torch.Tensor, blur: torch.Tensor | None = None) -> torch.Tensor:
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
