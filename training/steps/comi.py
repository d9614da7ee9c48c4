"""COMI's training objective (Zhang et al. 2022): the CycleGAN terms on aligned pairs, plus the
content and perceptual terms the pairing allows.

Generator loss = 1 x adversarial (LSGAN) + 10 x content L1(g_deblur(blurred), sharp)
+ 10 x cycle + 5 x identity + 1 x perceptual, where "perceptual" is the stated replacement for
COMI's VGG19 loss: ``core.models.losses.perceptual_loss`` (multi-scale SSIM + Fourier
log-amplitude + discriminator feature matching; no pretrained weights needed). The weights are
``[loss]`` in the training configuration (``training.config``).

Content-only start: for its first ``warm_start_steps`` steps only g_deblur learns, from the
content terms (L1 + the structure part of the perceptual term), as ESRGAN pre-trains its
generator for PSNR: one generator pass per step instead of six plus two discriminators, so the
generator learns to deblur about 5x sooner and the adversarial phase starts from a useful
restorer rather than the identity. The shipped COMI trained this way throughout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from dataclasses import dataclass

from torch import nn

from core.models.comi import COMI
from core.models.losses import perceptual_loss, structure_loss
from training.settings import setting
from training.steps.gan import GanLoss, GanSteps, Translation

__all__ = ["ComiSteps", "ComiLoss", "BLUR_CHANNEL_NOTE"]

BLUR_CHANNEL_NOTE = ("The generator is also told each region's blur, measured against the image's "
                     "in-focus areas (a second input channel, core.blur_map; 0 where nothing was "
                     "measured, for regions that look sharp and for bioimage.io packages); it "
                     "was trained on the simulator's true blur with the measurement's kind of "
                     "errors (training.blur_told).")


@dataclass
class ComiLoss(GanLoss):
    """The COMI generator loss weights: the CycleGAN ones and those below."""

    content: float = setting(10.0, "L1(g_deblur(blurred), sharp) weight: the pairs are aligned",
                             min=0.0)
    perceptual: float = setting(1.0, "VGG19 replacement (MS-SSIM + Fourier amplitude + "
                                     "discriminator feature matching) weight", min=0.0)
    warm_start_steps: int = setting(0, "content-only steps of g_deblur before the full losses",
                                    min=0)


class ComiSteps(GanSteps):
    """Paired COMI: the same two generators and discriminators as CycleGAN, trained on pairs."""

    name = "comi"
    paired = True
    loss_names = ("g", "adv", "content", "perceptual", "cycle", "identity", "d")
    networks_cls = COMI
    config_sections = {"loss": ComiLoss}

    def generator_objective(self, batch: dict[str, torch.Tensor], step: int,
                            ) -> tuple[torch.Tensor, dict[str, torch.Tensor], Translation | None]:
        """The whole COMI generator loss, weighted by ``[loss]``; content terms only (and no
        discriminator step) for the first ``warm_start_steps`` steps."""
        blurred, sharp, w = batch["blurred"], batch["sharp"], self.w
        float32 = torch.autocast(self.device.type, enabled=False)   # loss maths: see below
        if step < int(w["warm_start_steps"]):
            fake = self.net("g_deblur")(self.told(blurred, batch.get("blur")))
            with float32:
                terms = {"content": F.l1_loss(fake.float(), sharp.float()),
                         "perceptual": structure_loss(fake.float(), sharp.float())}
                loss = w["content"] * terms["content"] + w["perceptual"] * terms["perceptual"]
            return loss, terms, None

        t = self.translate(blurred, sharp, batch.get("blur"))
        terms = self.cycle_terms(t, blurred, sharp)
        with torch.no_grad():
            _, feats_real = self.modules["d_sharp"](sharp, features=True)
        # SSIM takes E[x^2] - E[x]^2 through Gaussian convolutions: under bf16 autocast those
        # run in bf16 and the cancellation gives negative variances, inf SSIM and NaN weights
        # within a few steps. Loss maths stays in float32; only the networks use autocast.
        with float32:
            fake = t.fake_sharp.float()
            terms["content"] = F.l1_loss(fake, sharp.float())
            terms["perceptual"] = perceptual_loss(fake, sharp.float(),
                                                  [f.float() for f in t.features],
                                                  [f.float() for f in feats_real])
        loss = (w["adversarial"] * terms["adv"] + w["content"] * terms["content"]
                + w["cycle"] * terms["cycle"] + w["identity"] * terms["identity"]
                + w["perceptual"] * terms["perceptual"])
        return loss, terms, t

    def export_network(self) -> tuple[nn.Module, str]:
        """The generator, and a note on which losses this run used (the card must not claim
        adversarial training for a run that had none)."""
        warm, total = int(self.w["warm_start_steps"]), int(self.cfg["train"]["steps"])
        if warm >= total > 0:
            note = (f"This run trained the generator on the content terms only (L1 + the "
                    f"structure terms; warm_start_steps {warm} >= its {total} steps).")
        elif warm > 0:
            note = (f"This run trained the generator on the content terms only for its first "
                    f"{warm} steps, then with all the COMI losses.")
        else:
            note = ""
        if getattr(self.modules["g_deblur"], "blur_channel", False):
            note = (note + " " if note else "") + BLUR_CHANNEL_NOTE
        return self.modules["g_deblur"], note
