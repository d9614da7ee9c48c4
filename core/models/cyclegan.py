"""CycleGAN (Zhu et al. 2017) for unpaired deblurring: the model's description.

Trained on *unpaired* blurred and sharp images: the generators learn from an adversarial
(LSGAN) loss against the two PatchGAN discriminators, a cycle loss (blurred -> sharp -> blurred
comes back) and an identity loss; the discriminators see a history pool of generated images;
the learning rate decays linearly (``training/steps/cyclegan.py`` holds the whole objective).

The networks are shared with COMI (``core.models.generators``): residual generators (``out =
x + g(x)``), by default the lean U-Net of ``core.models.unet_generator``; no norm spans the tile
(``core.models.layers``), so tiles equal the whole frame. Only ``g_deblur`` is exported.
"""

from __future__ import annotations

from core.models.generators import GanNetworks, gan_model

__all__ = ["CycleGAN", "CARD_NOTES", "MODEL"]

CARD_NOTES = (
    "CycleGAN (Zhu et al. 2017) trained on unpaired blurred/sharp patches: LSGAN adversarial loss, "
    "cycle L1 x10, identity L1 x5, image pool 50, linear LR decay. Residual generator: a U-Net with "
    "full-resolution skips unless the architecture says kind 'resnet' (the reference shape, with "
    "per-pixel LayerNorm instead of InstanceNorm); no tile-wide norm (tiled output matches "
    "whole-frame output), nearest upsampling + conv instead of transposed conv, linear output. "
    "Unpaired training can hallucinate structure: compare with the input before drawing conclusions."
)


class CycleGAN(GanNetworks):
    """The four CycleGAN networks (generators of any `make_generator` kind, PatchGANs)."""


MODEL = gan_model(
    "cyclegan", display_name="CycleGAN", order=2,
    summary="CycleGAN trained on unpaired blurred and sharp images; sharpens texture, "
            "may invent detail where the input has none.",
    good_for="a second opinion next to COMI, from a model trained without matched pairs.",
    caution="it can invent structure where the input has none, and gains less than COMI on the "
            "test images; it keeps the input's brightness above 8 px (Keep brightness), without "
            "which it shifts it; compare with the original.",
    card_notes=CARD_NOTES, steps="training.steps.cyclegan:CycleGANSteps",
    # trained without pairs, it shifts a region's large-scale brightness; keeping the input's
    # above 8 px raised its real-image validation gain from +0.39 to +1.51 dB (4 px +1.50,
    # 16 px +1.42; docs/BENCHMARKS.md); COMI keeps it already (no setting: +2.43 vs +2.41)
    brightness_px=8.0)
