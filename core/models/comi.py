"""COMI: paired out-of-focus correction (Zhang et al., "Correction of out-of-focus microscopic
images by deep learning", CSBJ 2022): the model's description.

A CycleGAN-shaped pair of generators (blurred->sharp and sharp->blurred) and discriminators,
trained on *aligned* pairs, so besides the adversarial, cycle and identity losses a direct
content loss ties the deblurred image to its sharp partner (``training/steps/comi.py`` holds
the whole objective, top to bottom).

Networks (``core.models.generators``, shared with CycleGAN): residual generators (``out = x +
g(x)``: the network only predicts the correction, and an untrained one is the identity), by
default the lean U-Net of ``core.models.unet_generator`` instead of the paper's ResNet (which has
no full-resolution path and learns defocus correction far more slowly; the ``resnet-*`` presets
keep it), and the 70x70 PatchGAN. No norm spans the tile, so tiles equal the whole frame.

The VGG19 perceptual loss of the paper is replaced
-------------------------------------------------
VGG19 needs ImageNet weights that cannot be downloaded here (and were never trained on
microscopy). We use ``core.models.losses.perceptual_loss``: 1 - SSIM averaged over 3 scales,
+ 0.1 x L1 of log Fourier amplitudes (defocus removes high frequencies; this term sees it),
+ feature matching on the discriminator's activations (a perceptual loss whose features are
learned on our data). `CARD_NOTES` says so in every exported card.
"""

from __future__ import annotations

from core.models.generators import DISC_PRESETS, GENERATOR_PRESETS, GanNetworks, gan_model
from core.models.losses import PERCEPTUAL_WEIGHTS

__all__ = ["COMI", "CARD_NOTES", "MODEL"]

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


class COMI(GanNetworks):
    """The four COMI networks; its generators are always residual (``residual`` forced True).

    Parameters
    ----------
    generator : dict, optional
        `make_generator` kwargs for both generators (default ``GENERATOR_PRESETS["cpu"]``).
    discriminator : dict, optional
        `PatchDiscriminator` kwargs (default ``DISC_PRESETS["cpu"]``).
    """

    def __init__(self, generator: dict | None = None, discriminator: dict | None = None) -> None:
        gen = {**(GENERATOR_PRESETS["cpu"] if generator is None else generator), "residual": True}
        super().__init__(gen, DISC_PRESETS["cpu"] if discriminator is None else discriminator)


MODEL = gan_model(
    "comi", display_name="COMI", order=0,
    summary="COMI: a GAN trained on pairs of blurred and sharp images that restores fine detail "
            "in out-of-focus regions.",
    good_for="sharpening out-of-focus regions of fluorescence and transmitted-light images; "
             "the default, and the best of the shipped models on the test images.",
    caution="like every learned model it can invent fine detail that is not in the sample; "
            "compare with the original before you measure anything in a restored region.",
    card_notes=CARD_NOTES, steps="training.steps.comi:ComiSteps")
