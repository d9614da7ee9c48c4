"""CycleGAN's training objective (Zhu et al. 2017): unpaired blurred and sharp images.

Generator loss = 1 x adversarial (LSGAN, both directions) + 10 x cycle (L1) + 5 x identity (L1);
identity 5 is Zhu et al.'s lambda_identity 0.5 relative to the cycle weight 10. The weights are
``[loss]`` in the training configuration (``training.config``); the rest of the step (the
discriminators, pools, optimisers) is shared with COMI in ``training.steps.gan``.
"""

from __future__ import annotations

import torch

from core.models.cyclegan import CycleGAN
from training.steps.gan import GanSteps, Translation

__all__ = ["CycleGANSteps"]


class CycleGANSteps(GanSteps):
    """Unpaired CycleGAN: blurred and sharp patches need not show the same specimen."""

    name = "cyclegan"
    paired = False
    loss_names = ("g", "adv", "cycle", "identity", "d")
    networks_cls = CycleGAN

    def generator_objective(self, batch: dict[str, torch.Tensor], step: int,
                            ) -> tuple[torch.Tensor, dict[str, torch.Tensor], Translation]:
        """The whole CycleGAN generator loss, weighted by ``[loss]``."""
        blurred, sharp, w = batch["blurred"], batch["sharp"], self.w
        t = self.translate(blurred, sharp, batch.get("blur"))
        terms = self.cycle_terms(t, blurred, sharp)
        loss = (w["adversarial"] * terms["adv"] + w["cycle"] * terms["cycle"]
                + w["identity"] * terms["identity"])
        return loss, terms, t
