"""COMI: paired out-of-focus correction with two residual ResNet generators and two PatchGANs.

After Zhang et al., "Correction of out-of-focus microscopic images by deep learning" (CSBJ 2022):
a CycleGAN-style pair of generators (blurred->sharp and sharp->blurred) and discriminators,
trained on *aligned* pairs, so besides the adversarial, cycle and identity losses a direct
content loss ties the deblurred image to its sharp partner.

Networks (shared with ``core.models.cyclegan``): residual generators (``out = x + g(x)``: the
network only predicts the correction, and an untrained one is the identity), by default the
lean U-Net of ``core.models.unet_generator`` instead of the paper's ResNet (which has no
full-resolution path and learns defocus correction far more slowly; the ``resnet-*`` presets
keep it), and the 70x70 `PatchDiscriminator`. No norm that spans the tile, so tiles equal the
whole frame.

The VGG19 perceptual loss of the paper is replaced
-------------------------------------------------
VGG19 needs ImageNet weights that cannot be downloaded here (and were never trained on
microscopy). We use ``core.models.losses.perceptual_loss``: 1 - SSIM averaged over 3 scales,
+ 0.1 x L1 of log Fourier amplitudes (defocus removes high frequencies; this term sees it),
+ feature matching on the discriminator's activations (a perceptual loss whose features are
learned on our data). `CARD_NOTES` says so in every exported card.

How a trainer uses this module (``training/steps/comi.py``)::

    comi = COMI(generator=ARCH_PRESETS["cpu"], discriminator=DISC_PRESETS["cpu"])
    fake = comi.g_deblur(blurred); rec = comi.g_blur(fake)        # blurred -> sharp -> blurred
    fake_b = comi.g_blur(sharp);   rec_s = comi.g_deblur(fake_b)  # sharp -> blurred -> sharp
    score, f_fake = comi.d_sharp(fake, features=True); _, f_real = comi.d_sharp(sharp, features=True)
    g_loss = (w["adversarial"] * (lsgan_g_loss(score) + lsgan_g_loss(comi.d_blur(fake_b)))
              + w["content"] * l1(fake, sharp)
              + w["cycle"] * (l1(rec, blurred) + l1(rec_s, sharp))
              + w["identity"] * (l1(comi.g_deblur(sharp), sharp) + l1(comi.g_blur(blurred), blurred))
              + w["perceptual"] * perceptual_loss(fake, sharp, f_fake, f_real))
    d_loss = lsgan_d_loss(comi.d_sharp(sharp), comi.d_sharp(fake.detach())) + (same for d_blur)

with ``w = LOSS_WEIGHTS``. Export ``comi.g_deblur`` with ``make_card("comi", comi.g_deblur, ...)``.
"""

from __future__ import annotations

from core.models.cyclegan import CycleGAN, register_generator_model
from core.models.losses import PERCEPTUAL_WEIGHTS

__all__ = ["ARCH_PRESETS", "DISC_PRESETS", "LOSS_WEIGHTS", "CARD_NOTES", "AMP", "COMI"]

# Generator sizes (`core.models.cyclegan.make_generator` kwargs). "cpu": the residual U-Net
# (core.models.unet_generator), >= 1 MP/s full-field on a 2-core CPU; "gpu": a wider one;
# "resnet-*": the paper's ResNet generator shape (learns defocus far more slowly, see
# benchmarks/generator_probe.py).
ARCH_PRESETS: dict[str, dict] = {
    "cpu": dict(kind="unet", ngf=16, n_down=4, residual=True),
    "gpu": dict(kind="unet", ngf=48, n_down=4, enc_convs=2, dec_convs=2, residual=True),
    "resnet-cpu": dict(kind="resnet", ngf=16, n_down=2, n_blocks=4, norm="layer", residual=True),
    "resnet-gpu": dict(kind="resnet", ngf=64, n_down=2, n_blocks=9, norm="layer", residual=True),
}
DISC_PRESETS: dict[str, dict] = {
    "cpu": dict(ndf=32, n_layers=3, norm="instance"),
    "gpu": dict(ndf=64, n_layers=3, norm="instance"),
}
LOSS_WEIGHTS: dict[str, float] = {
    "adversarial": 1.0,
    "content": 10.0,       # L1(g_deblur(blurred), sharp): the pairs are aligned
    "cycle": 10.0,
    "identity": 5.0,
    "perceptual": 1.0,     # losses.perceptual_loss (replaces VGG19), see PERCEPTUAL_WEIGHTS
}
# Autocast at inference (bf16 on CPU, fp16/bf16 on GPU; LayerNorm stays float32): measured on a
# 2-core CPU, 1.4-1.6x faster, output within 62-71 dB PSNR of float32 (far below restoration error).
AMP = True
CARD_NOTES = (
    "COMI (Zhang et al. 2022): residual generators (out = x + g(x); a U-Net with full-resolution "
    "skips unless the architecture says kind 'resnet', the paper's shape), "
    "70x70 PatchGAN discriminators, LSGAN, trained on aligned blurred/sharp pairs with adversarial, "
    "content (L1), cycle (L1) and identity (L1) losses. The paper's VGG19 perceptual loss was "
    "REPLACED (no pretrained ImageNet weights are available offline): perceptual term = "
    f"{PERCEPTUAL_WEIGHTS['ms_ssim']} x (1 - SSIM averaged over 3 scales) + "
    f"{PERCEPTUAL_WEIGHTS['fourier']} x L1 of log Fourier amplitudes + "
    f"{PERCEPTUAL_WEIGHTS['feature_matching']} x discriminator feature matching (L1)."
)


class COMI(CycleGAN):
    """The four COMI networks (CycleGAN's shape, residual generators, COMI's sizes and losses);
    only `g_deblur` is exported for inference.

    Parameters
    ----------
    generator : dict, optional
        `make_generator` kwargs for both generators (default ``ARCH_PRESETS["cpu"]``);
        ``residual`` is forced to True (COMI's generators are residual).
    discriminator : dict, optional
        `PatchDiscriminator` kwargs (default ``DISC_PRESETS["cpu"]``).
    """

    def __init__(self, generator: dict | None = None, discriminator: dict | None = None) -> None:
        gen = {**(ARCH_PRESETS["cpu"] if generator is None else generator), "residual": True}
        super().__init__(gen, DISC_PRESETS["cpu"] if discriminator is None else discriminator)


register_generator_model(
    "comi",
    "COMI: a GAN trained on pairs of blurred and sharp images that restores fine detail "
    "in out-of-focus regions.", AMP)
