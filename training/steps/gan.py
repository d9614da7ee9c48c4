"""What training COMI and CycleGAN shares: the four networks, their optimisers, the translation
pass, the discriminator step, the image pools.

Per step: the generators learn from the model's objective (``generator_objective``, written out
whole in ``training/steps/comi.py`` and ``training/steps/cyclegan.py``) with the discriminators
frozen, then the discriminators learn from real images and generated images drawn from a
history pool. Adam (2e-4, betas 0.5/0.999), constant LR, then linear decay (``[optim]``).

Each network is called once per batch where the maths allows (inputs concatenated along the
batch axis): the norms are per-pixel or per-sample, so this equals separate calls, and DDP sees
fewer forwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.blur_map import with_blur
from core.models.generators import GanNetworks
from core.models.losses import lsgan_d_loss, lsgan_g_loss
from training.image_pool import ImagePool
from training.settings import setting
from training.steps.base import ModelSteps, Precision

__all__ = ["GanSteps", "GanLoss", "Translation"]


@dataclass
class GanLoss:
    """The CycleGAN generator loss weights, and the image pool."""

    adversarial: float = setting(1.0, "LSGAN adversarial loss weight", min=0.0)
    cycle: float = setting(10.0, "cycle L1 weight", min=0.0)
    identity: float = setting(5.0, "identity L1 weight (0.5 x cycle: Zhu et al.'s lambda_identity)",
                              min=0.0)
    pool_size: int = setting(50, "history of generated images shown to the discriminators", min=0)


@dataclass
class Translation:
    """One generator pass of both directions, and what the frozen discriminators say of it."""

    fake_sharp: torch.Tensor      # g_deblur(blurred)
    fake_blurred: torch.Tensor    # g_blur(sharp)
    cycled_blurred: torch.Tensor  # g_blur(g_deblur(blurred))
    cycled_sharp: torch.Tensor    # g_deblur(g_blur(sharp))
    same_sharp: torch.Tensor      # g_deblur(sharp): identity
    same_blurred: torch.Tensor    # g_blur(blurred): identity
    score_sharp: torch.Tensor     # d_sharp(fake_sharp)
    score_blurred: torch.Tensor   # d_blur(fake_blurred)
    features: list[torch.Tensor]  # d_sharp's activations on fake_sharp (feature matching)


class GanSteps(ModelSteps):
    """Two generators + two PatchGAN discriminators; subclasses write `generator_objective`."""

    networks_cls: type[GanNetworks] = GanNetworks
    config_sections = {"loss": GanLoss}
    config_defaults = {"discriminator": {"preset": "cpu"}}

    def __init__(self, cfg: dict[str, Any], device: torch.device, precision: Precision) -> None:
        super().__init__(cfg, device, precision)
        bundle = self.networks_cls(generator=self._arch("model"),
                                   discriminator=self._arch("discriminator"))
        loss = cfg["loss"]
        # one freak batch (a sparse field whose percentile normalisation puts spots at 1000s)
        # once gave a content loss of 2,500: unclipped, its gradient filled Adam's second moments
        # and learning crawled for the next thousand steps
        self.grad_clip = float(cfg["optim"]["grad_clip"])
        self.w = loss
        self.modules = {"g_deblur": bundle.g_deblur, "g_blur": bundle.g_blur,
                        "d_sharp": bundle.d_sharp, "d_blur": bundle.d_blur}
        self.trainable = tuple(self.modules)
        self._finish_modules()
        self.optimizers = {
            "g": self._adam([*bundle.g_deblur.parameters(), *bundle.g_blur.parameters()]),
            "d": self._adam([*bundle.d_sharp.parameters(), *bundle.d_blur.parameters()]),
        }
        self.schedulers = {k: self._scheduler(o) for k, o in self.optimizers.items()}
        seed = int(cfg["train"]["seed"])
        self.pools = {"sharp": ImagePool(int(loss["pool_size"]), seed=seed + 1),
                      "blur": ImagePool(int(loss["pool_size"]), seed=seed + 2)}

    # ------------------------------------------------------------------ for the objectives
    def told(self, x: torch.Tensor, blur: torch.Tensor | None) -> torch.Tensor:
        """g_deblur's input: `x`, plus the told blur when it has a blur channel."""
        return with_blur(self.modules["g_deblur"], x, blur)

    def translate(self, blurred: torch.Tensor, sharp: torch.Tensor,
                  blur: torch.Tensor | None = None) -> Translation:
        """Both generators forward (with gradients), the frozen discriminators' scores.
        `blur`: what g_deblur is told of `blurred`, and of its re-blurred sharp partner where
        the data are paired (the same field); unpaired, g_blur's blur of another field is not
        what was measured of `blurred`, so g_deblur is told nothing there."""
        n = blurred.shape[0]
        g_deblur, g_blur = self.net("g_deblur"), self.net("g_blur")
        fake_s, idt_s = g_deblur(torch.cat([self.told(blurred, blur), self.told(sharp, None)])).split(n)
        rec_b, fake_b, idt_b = g_blur(torch.cat([fake_s, sharp, blurred])).split(n)
        rec_s = g_deblur(self.told(fake_b, blur if self.paired else None))
        score_s, feats = self.modules["d_sharp"](fake_s, features=True)
        return Translation(fake_sharp=fake_s, fake_blurred=fake_b, cycled_blurred=rec_b,
                           cycled_sharp=rec_s, same_sharp=idt_s, same_blurred=idt_b,
                           score_sharp=score_s, score_blurred=self.modules["d_blur"](fake_b),
                           features=feats)

    @staticmethod
    def cycle_terms(t: Translation, blurred: torch.Tensor, sharp: torch.Tensor,
                    ) -> dict[str, torch.Tensor]:
        """The CycleGAN terms, unweighted: adversarial (LSGAN, both directions), cycle (L1 back
        to where each image started), identity (L1: a generator leaves its own domain alone)."""
        return {
            "adv": lsgan_g_loss(t.score_sharp) + lsgan_g_loss(t.score_blurred),
            "cycle": (F.l1_loss(t.cycled_blurred.float(), blurred.float())
                      + F.l1_loss(t.cycled_sharp.float(), sharp.float())),
            "identity": (F.l1_loss(t.same_sharp.float(), sharp.float())
                         + F.l1_loss(t.same_blurred.float(), blurred.float())),
        }

    def generator_objective(self, batch: dict[str, torch.Tensor], step: int,
                            ) -> tuple[torch.Tensor, dict[str, torch.Tensor], Translation | None]:
        """(weighted generator loss, its terms for the log, the translation for the
        discriminator step, or None when this step trains no discriminator)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the step
    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        d_sharp, d_blur = self.modules["d_sharp"], self.modules["d_blur"]
        opt_g, opt_d = self.optimizers["g"], self.optimizers["d"]

        # ---- generators (discriminators frozen and used unwrapped: no DDP sync for them here)
        self.set_requires_grad([d_sharp, d_blur], False)
        opt_g.zero_grad(set_to_none=True)
        with self.precision.autocast():
            loss_g, terms, t = self.generator_objective(batch, step)
        self.precision.backward(loss_g)
        self.precision.clip_grad(opt_g, self._params("g_deblur", "g_blur"), self.grad_clip)
        self.precision.step(opt_g)
        self.set_requires_grad([d_sharp, d_blur], True)
        if t is None:
            # the discriminators wait: no gradients, so this changes nothing, but their LR
            # schedule (stepped by the Trainer) must not run ahead of an optimiser that never stepped
            opt_d.step()
            zero = torch.zeros(())
            terms = {k: terms.get(k, zero) for k in self.loss_names if k != "g"}
            return {"g": float(loss_g.detach()), **{k: float(v.detach()) for k, v in terms.items()}}

        # ---- discriminators: real vs pooled fakes, one forward each (per-sample norms)
        blurred, sharp = batch["blurred"], batch["sharp"]
        n = blurred.shape[0]
        opt_d.zero_grad(set_to_none=True)
        pooled_s = self.pools["sharp"].query(t.fake_sharp.detach())
        pooled_b = self.pools["blur"].query(t.fake_blurred.detach())
        with self.precision.autocast():
            real_s, fake_s = self.net("d_sharp")(torch.cat([sharp, pooled_s])).split(n)
            real_b, fake_b = self.net("d_blur")(torch.cat([blurred, pooled_b])).split(n)
            loss_d = lsgan_d_loss(real_s, fake_s) + lsgan_d_loss(real_b, fake_b)
        self.precision.backward(loss_d)
        self.precision.clip_grad(opt_d, self._params("d_sharp", "d_blur"), self.grad_clip)
        self.precision.step(opt_d)

        losses = {"g": loss_g, **terms, "d": loss_d}
        return {k: float(v.detach()) for k, v in losses.items()}

    def _params(self, *names: str) -> list[torch.nn.Parameter]:
        return [p for n in names for p in self.modules[n].parameters()]

    # ------------------------------------------------------------------ validation / export
    def predict_batch(self, blurred: torch.Tensor, blur: torch.Tensor | None = None) -> torch.Tensor:
        """The exported generator in float32, exactly as inference runs it (no autocast)."""
        return self.modules["g_deblur"](self.told(blurred, blur)).float()

    def export_network(self) -> tuple[nn.Module, str]:
        return self.modules["g_deblur"], ""

    def extra_state(self) -> dict[str, Any]:
        return {f"pool_{k}": p.state_dict() for k, p in self.pools.items()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        for k, p in self.pools.items():
            if f"pool_{k}" in state:
                p.load_state_dict(state[f"pool_{k}"], self.device)
