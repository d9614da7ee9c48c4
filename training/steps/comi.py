"""COMI training step (Zhang et al. 2022): the CycleGAN step on aligned pairs, plus content
and perceptual terms that use the pairing.

Generator loss = adversarial (LSGAN) + 10 x content L1(g_deblur(blurred), sharp) + 10 x cycle
+ 5 x identity + 1 x perceptual, where "perceptual" is the stated replacement for COMI's VGG19
loss: ``core.models.losses.perceptual_loss`` (multi-scale SSIM + Fourier log-amplitude +
discriminator feature matching; no pretrained weights needed). The card's notes say so.
Weights live in ``[loss]`` of training/configs/comi.toml.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.models.comi import ARCH_PRESETS, COMI, DISC_PRESETS, LOSS_WEIGHTS
from core.models.losses import perceptual_loss, structure_loss
from training.steps.cyclegan import GanSteps

__all__ = ["ComiSteps"]


class ComiSteps(GanSteps):
    """Paired COMI: the same two generators and discriminators as CycleGAN, trained on pairs."""

    name = "comi"
    paired = True
    loss_names = ("g", "adv", "content", "perceptual", "cycle", "identity", "d")
    bundle_cls = COMI
    arch_presets = ARCH_PRESETS
    disc_presets = DISC_PRESETS
    default_weights = LOSS_WEIGHTS

    def __init__(self, cfg: dict[str, Any], device: torch.device, precision) -> None:
        loss_cfg = dict(cfg.get("loss", {}))
        # steps of content-only pre-training of g_deblur before the full COMI losses (as
        # ESRGAN pre-trains its generator for PSNR): one generator pass per step instead of
        # six plus two discriminators, so the generator learns to deblur ~5x sooner and the
        # adversarial phase starts from a useful restorer rather than the identity
        self.warm_steps = int(loss_cfg.pop("warm_start_steps", 0))
        super().__init__({**cfg, "loss": loss_cfg}, device, precision)

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        if step >= self.warm_steps:
            return super().train_step(batch, step)
        blurred, sharp = batch["blurred"], batch["sharp"]
        opt_g = self.optimizers["g"]
        opt_g.zero_grad(set_to_none=True)
        with self.precision.autocast():
            fake = self.net("g_deblur")(blurred)
        with torch.autocast(self.device.type, enabled=False):
            content = F.l1_loss(fake.float(), sharp.float())
            structure = structure_loss(fake.float(), sharp.float())
            loss = self.w["content"] * content + self.w["perceptual"] * structure
        self.precision.backward(loss)
        self.precision.clip_grad(opt_g, self._params("g_deblur"), self.grad_clip)
        self.precision.step(opt_g)
        # the discriminators wait: no gradients, so this changes nothing, but their LR schedule
        # (stepped by the Trainer) must not run ahead of an optimiser that never stepped
        self.optimizers["d"].step()
        zero = 0.0
        return {"g": float(loss.detach()), "adv": zero, "content": float(content.detach()),
                "perceptual": float(structure.detach()), "cycle": zero, "identity": zero, "d": zero}

    def extra_generator_losses(self, batch: dict[str, torch.Tensor], out: dict[str, Any],
                               ) -> dict[str, torch.Tensor]:
        """Content L1 against the aligned sharp patch and the VGG-free perceptual loss."""
        sharp, fake = batch["sharp"], out["fake_s"]
        with torch.no_grad():
            _, feats_real = self.modules["d_sharp"](sharp, features=True)
        # SSIM takes E[x^2] - E[x]^2 through Gaussian convolutions: under bf16 autocast those
        # run in bf16 and the cancellation gives negative variances, inf SSIM and NaN weights
        # within a few steps. Loss maths stays in float32; only the networks use autocast.
        with torch.autocast(self.device.type, enabled=False):
            return {
                "content": F.l1_loss(fake.float(), sharp.float()),
                "perceptual": perceptual_loss(fake.float(), sharp.float(),
                                              [f.float() for f in out["feats_fake"]],
                                              [f.float() for f in feats_real]),
            }

    def export_network(self) -> tuple[nn.Module, str]:
        """The generator, and a note on which losses this run used (the card must not claim
        adversarial training for a run that had none)."""
        total = int(self.cfg.get("train", {}).get("steps", 0))
        if self.warm_steps >= total > 0:
            note = (f"This run trained the generator on the content terms only (L1 + the "
                    f"structure terms; warm_start_steps {self.warm_steps} >= its {total} steps).")
        elif self.warm_steps > 0:
            note = (f"This run trained the generator on the content terms only for its first "
                    f"{self.warm_steps} steps, then with all the COMI losses.")
        else:
            note = ""
        return self.modules["g_deblur"], note
