"""What COMI and CycleGAN share: generator and discriminator sizes, the four-network bundle,
and inference with the trained blurred->sharp generator ("Views averaged").

Both models train the same networks (two residual generators, blurred->sharp and
sharp->blurred, and two PatchGAN discriminators) and differ only in their data (paired or not)
and their training objective (``training/steps/``). Only ``g_deblur`` is exported; a weights
file rebuilds it with `make_generator` from the card's architecture.
"""

from __future__ import annotations

import torch
from torch import nn

from core.input_match import MATCH_KEY, MATCH_PARAM
from core.models.base import ORIENTATION_CHOICES, NetworkRestorer
from core.models.patchgan import PatchDiscriminator
from core.models.resnet_generator import ResnetGenerator
from core.models.spec import ModelEntry, Param
from core.models.unet_generator import UNetGenerator

__all__ = ["GENERATOR_PRESETS", "DISC_PRESETS", "AMP", "DEFAULT_VIEWS", "VIEWS_PARAM",
           "brightness_param", "make_generator", "GanNetworks", "build_generator_restorer",
           "gan_model"]

# Named generator sizes (`make_generator` kwargs). "cpu": the lean residual U-Net that trains and
# predicts usefully on a laptop CPU; "gpu": a wider U-Net; "resnet-cpu" / "resnet-gpu": the
# reference CycleGAN ResNet shape (ngf 64, 9 blocks for gpu), which learns defocus correction
# far more slowly (benchmarks/generator_probe.py).
GENERATOR_PRESETS: dict[str, dict] = {
    "cpu": dict(kind="unet", ngf=16, n_down=4, residual=True),
    "gpu": dict(kind="unet", ngf=48, n_down=4, enc_convs=2, dec_convs=2, residual=True),
    "resnet-cpu": dict(kind="resnet", ngf=16, n_down=2, n_blocks=6, norm="layer", residual=True),
    "resnet-gpu": dict(kind="resnet", ngf=64, n_down=2, n_blocks=9, norm="layer", residual=True),
}
# 70x70 PatchGAN = n_layers 3. The discriminators only run during training.
DISC_PRESETS: dict[str, dict] = {
    "cpu": dict(ndf=32, n_layers=3, norm="instance"),
    "gpu": dict(ndf=64, n_layers=3, norm="instance"),
}
# Autocast at inference (bf16 on CPU, fp16/bf16 on GPU; LayerNorm stays float32): faster, and
# its cost in PSNR is far below the restoration error (docs/BENCHMARKS.md).
AMP = True

#: views averaged unless the user picks another number: the image and its left-right mirror
#: (why 2 and not more: docs/BENCHMARKS.md, "Views averaged")
DEFAULT_VIEWS = 2
VIEWS_PARAM = Param(DEFAULT_VIEWS, int, "restore each region in 1, 2, 4 or 8 mirrored and turned "
                    "copies and average them: a little cleaner, that many times slower",
                    label="Views averaged", choices=ORIENTATION_CHOICES)


def make_generator(kind: str = "resnet", **kwargs) -> nn.Module:
    """A blurred<->sharp generator from its config: ``kind`` "unet" (`UNetGenerator`, the
    shipped presets) or "resnet" (`ResnetGenerator`, the CycleGAN reference shape; cards written
    before the U-Net existed have no ``kind`` and load as ResNet)."""
    if kind == "unet":
        return UNetGenerator(**kwargs)
    if kind == "resnet":
        return ResnetGenerator(**kwargs)
    raise ValueError(f"unknown generator kind {kind!r} (use 'unet' or 'resnet')")


class GanNetworks(nn.Module):
    """The four networks trained together; only `g_deblur` is exported for inference.

    Parameters
    ----------
    generator : dict, optional
        `make_generator` kwargs for both generators (default ``GENERATOR_PRESETS["cpu"]``).
    discriminator : dict, optional
        `PatchDiscriminator` kwargs for both discriminators (default ``DISC_PRESETS["cpu"]``).
    """

    def __init__(self, generator: dict | None = None, discriminator: dict | None = None) -> None:
        super().__init__()
        gen = dict(GENERATOR_PRESETS["cpu"] if generator is None else generator)
        disc = dict(DISC_PRESETS["cpu"] if discriminator is None else discriminator)
        self.g_deblur = make_generator(**gen)       # blurred -> sharp (exported)
        # sharp -> blurred; told nothing (a blur channel is g_deblur's input, core.blur_map)
        self.g_blur = make_generator(**{k: v for k, v in gen.items() if k != "blur_channel"})
        self.d_sharp = PatchDiscriminator(**disc)   # real sharp vs g_deblur(blurred)
        self.d_blur = PatchDiscriminator(**disc)    # real blurred vs g_blur(sharp)

    def generators(self) -> list[nn.Parameter]:
        return [*self.g_deblur.parameters(), *self.g_blur.parameters()]

    def discriminators(self) -> list[nn.Parameter]:
        return [*self.d_sharp.parameters(), *self.d_blur.parameters()]


def build_generator_restorer(name: str, brightness_px: float = 0.0):
    """The registry `build` of a GAN: its trained blurred->sharp generator as a tiled
    `NetworkRestorer` (the card may set the halo: ``inference.margin``)."""
    def build(net: nn.Module, card: dict, device: torch.device,
              orientations: int = DEFAULT_VIEWS,
              brightness_px: float = brightness_px) -> NetworkRestorer:
        margin = card.get("inference", {}).get("margin", net.margin)
        return NetworkRestorer(net, name, margin=margin, pad_multiple=2 ** net.n_down, device=device,
                               amp=AMP, orientations=orientations, brightness_px=brightness_px)

    return build


def brightness_param(default: float) -> Param:
    """The "Keep brightness" setting (`NetworkRestorer`'s ``brightness_px``)."""
    return Param(float(default), float, "keep the input's brightness at scales above this many "
                 "px (defocus spreads light, it does not add or remove it); 0 = off",
                 label="Keep brightness above (px)", min=0.0, max=32.0, off=0.0)


def gan_model(name: str, *, display_name: str, order: int, summary: str, card_notes: str,
              steps: str, good_for: str = "", caution: str = "",
              brightness_px: float = 0.0) -> ModelEntry:
    """The description of a GAN whose trained blurred->sharp generator restores (COMI,
    CycleGAN): what they share (networks, sizes, the Views averaged and Keep brightness
    settings) filled in; `brightness_px` is the model's default, chosen on validation."""
    return ModelEntry(name=name, kind="gan", display_name=display_name, order=order,
                      summary=summary, good_for=good_for, caution=caution,
                      build=build_generator_restorer(name, brightness_px), network=make_generator,
                      presets={"model": GENERATOR_PRESETS, "discriminator": DISC_PRESETS},
                      params={"orientations": VIEWS_PARAM,
                              "brightness_px": brightness_param(brightness_px),
                              MATCH_KEY: MATCH_PARAM},
                      card_notes=card_notes, steps=steps)
