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
from core.models.losses import perceptual_loss
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
        return self.modules["g_deblur"], ""
