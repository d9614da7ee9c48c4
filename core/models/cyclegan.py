"""CycleGAN for unpaired deblurring: ResNet generator, 70x70 PatchGAN, image pool, LR decay.

Reads top to bottom: helpers (padding, a per-pixel LayerNorm), the ResNet generator, the
PatchGAN discriminator, the four-network `CycleGAN` bundle a trainer optimises, the image pool
and the linear learning-rate decay of Zhu et al. (2017), tile-grid alignment for inference
(a `NetworkRestorer` whose tiles the Tiler aligns to the down-sampling grid), then the registry entry.

Normalisation: per-pixel LayerNorm, not InstanceNorm
--------------------------------------------------------
The original CycleGAN normalises with InstanceNorm. InstanceNorm divides by statistics of the
whole input, so a 256 px tile and the full frame give different outputs for the same pixel and
tiles disagree with each other at their borders. BatchNorm is worse (batch-1 inference differs
from training). We use `LayerNorm2d`: it normalises the channel vector *of each pixel* (as in
ConvNeXt and NAFNet), so every output pixel depends only on its receptive field. Tiling with a
halo (`margin`) is then exact up to the part of the receptive field cut by the halo, and
batch-1 tile inference is identical to training. ``norm="instance"`` and ``norm="none"`` remain
available for experiments; the card records the choice.

Other deliberate changes from the reference code (junyanz/pytorch-CycleGAN-and-pix2pix):
- nearest-neighbour upsampling + 3x3 convolution instead of transposed convolutions (no
  checkerboard artefacts);
- no output ``tanh``: images are percentile-normalised (~0..1, may exceed 1), the output is
  linear; with ``residual=True`` the generator predicts a correction, ``out = x + g(x)``;
- any H, W: the input is reflect-padded to a multiple of ``2**n_down`` and cropped back.

How a trainer uses this module
------------------------------
::

    gan = CycleGAN(generator=ARCH_PRESETS["cpu"], discriminator=DISC_PRESETS["cpu"])
    pool_sharp, pool_blur = ImagePool(50), ImagePool(50)      # discriminators see past fakes
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_decay(total_steps, decay_steps))
    d_loss = lsgan_d_loss(gan.d_sharp(sharp), gan.d_sharp(pool_sharp.query(fake_sharp.detach())))

Adam(lr 2e-4, betas (0.5, 0.999)) as in the reference; channels_last speeds up CPU training ~15%.
Losses (``core.models.losses``): ``lsgan_d_loss``/``lsgan_g_loss``; cycle L1 weighted
``LOSS_WEIGHTS["cycle"]`` (10), identity L1 ``LOSS_WEIGHTS["identity"]`` (5). Export only
``gan.g_deblur``: ``save_weights(path, gan.g_deblur.state_dict(), make_card("cyclegan",
gan.g_deblur, ...))``; ``load_model("cyclegan", weights=path)`` rebuilds it from
``card["architecture"]`` (= ``ResnetGenerator.config``).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.models.base import ORIENTATION_CHOICES, NetworkRestorer
from core.models.registry import ModelEntry, Param, register
from core.models.weights import default_weights_path, load_network, resolve_weights


__all__ = [
    "ARCH_PRESETS", "DISC_PRESETS", "LOSS_WEIGHTS", "CARD_NOTES", "LayerNorm2d", "pad_to_multiple",
    "make_norm", "ResnetBlock", "ResnetGenerator", "PatchDiscriminator", "CycleGAN", "ImagePool",
    "linear_decay", "receptive_radius", "default_margin", "make_generator", "generator_restorer",
    "register_generator_model", "DEFAULT_VIEWS",
]

# Named generator sizes (`make_generator` kwargs). "cpu": the lean residual U-Net that trains and
# predicts usefully on a laptop CPU (>= 0.5 MP/s); "gpu": a wider U-Net; "resnet-cpu"/"resnet-gpu":
# the reference CycleGAN ResNet shape (ngf 64, 9 blocks for gpu), which learns defocus
# correction far more slowly (benchmarks/generator_probe.py).
ARCH_PRESETS: dict[str, dict] = {
    "cpu": dict(kind="unet", ngf=16, n_down=4, residual=True),
    "gpu": dict(kind="unet", ngf=48, n_down=4, enc_convs=2, dec_convs=2, residual=True),
    "resnet-cpu": dict(kind="resnet", ngf=16, n_down=2, n_blocks=6, norm="layer", residual=True),
    "resnet-gpu": dict(kind="resnet", ngf=64, n_down=2, n_blocks=9, norm="layer", residual=True),
}
# 70x70 PatchGAN = n_layers 3. The discriminator only runs during training.
DISC_PRESETS: dict[str, dict] = {
    "cpu": dict(ndf=32, n_layers=3, norm="instance"),
    "gpu": dict(ndf=64, n_layers=3, norm="instance"),
}
# Autocast at inference (bf16 on CPU, fp16/bf16 on GPU; LayerNorm stays float32): measured on a
# 2-core CPU, 1.4-1.6x faster, output within 62-71 dB PSNR of float32 (far below restoration error).
AMP = True
LOSS_WEIGHTS: dict[str, float] = {"adversarial": 1.0, "cycle": 10.0, "identity": 5.0}
CARD_NOTES = (
    "CycleGAN (Zhu et al. 2017) trained on unpaired blurred/sharp patches: LSGAN adversarial loss, "
    "cycle L1 x10, identity L1 x5, image pool 50, linear LR decay. Residual generator: a U-Net with "
    "full-resolution skips unless the architecture says kind 'resnet' (the reference shape, with "
    "per-pixel LayerNorm instead of InstanceNorm); no tile-wide norm (tiled output matches "
    "whole-frame output), nearest upsampling + conv instead of transposed conv, linear output. "
    "Unpaired training can hallucinate structure: compare with the input before drawing conclusions."
)


# ----------------------------------------------------------------------------- helpers

def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (N, C, H, W) at the bottom/right so H and W are multiples of `multiple` and >= 2x it.

    Reflect padding where the image is large enough (no artificial edge), replicate otherwise
    (reflect needs pad < size). Crop the result back with ``y[..., :H, :W]``.
    """
    h, w = x.shape[-2:]
    th = max(-(-h // multiple) * multiple, 2 * multiple)
    tw = max(-(-w // multiple) * multiple, 2 * multiple)
    ph, pw = th - h, tw - w
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel, for (N, C, H, W) tensors.

    Local (a pixel's output depends only on that pixel's channels), so tiles equal the whole frame
    and batch size does not matter. One fused ``F.layer_norm`` on the channels-last view (free for
    channels_last tensors), in float32 even under bf16 autocast, cast back to the input dtype.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1).float(), (x.shape[1],), self.weight.float(),
                         self.bias.float(), self.eps)
        return y.permute(0, 3, 1, 2).to(x.dtype)


def make_norm(kind: str, channels: int) -> nn.Module:
    """'layer' (per-pixel LayerNorm, default), 'instance' (tile-dependent!) or 'none'."""
    if kind == "layer":
        return LayerNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r} (use 'layer', 'instance' or 'none')")


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """CycleGAN initialisation: conv weights N(0, std), biases 0, norm scales 1."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def conv_norm_act(c_in: int, c_out: int, k: int, norm: str, stride: int = 1) -> nn.Sequential:
    """Reflect-padded conv -> norm -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, padding_mode="reflect"),
        make_norm(norm, c_out),
        nn.ReLU(inplace=True),
    )


# ----------------------------------------------------------------------------- generator

class ResnetBlock(nn.Module):
    """x + conv-norm-relu-conv-norm(x), reflect padding (as in the CycleGAN reference)."""

    def __init__(self, channels: int, norm: str = "layer") -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect"),
            make_norm(norm, channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect"),
            make_norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """ResNet image-to-image generator (Johnson et al. 2016 / CycleGAN), any H and W.

    stem 7x7 (ngf) -> `n_down` stride-2 convs (channels x2 each) -> `n_blocks` residual blocks at
    1/2**n_down resolution -> `n_down` x (nearest upsample + 3x3 conv) -> 7x7 conv to
    `out_channels`.

    Parameters
    ----------
    in_channels, out_channels : int
        Image channels (1: one plane at a time).
    ngf : int
        Width of the first layer; the bottleneck has ``ngf * 2**n_down`` channels.
    n_down : int
        Number of 2x downsamplings (input padded internally to a multiple of 2**n_down).
    n_blocks : int
        Residual blocks at the lowest resolution.
    norm : {'layer', 'instance', 'none'}
        See the module docstring; 'layer' keeps tiled == whole-frame.
    residual : bool
        ``out = x + g(x)`` (needs in_channels == out_channels).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, ngf: int = 16, n_down: int = 2,
                 n_blocks: int = 6, norm: str = "layer", residual: bool = True) -> None:
        super().__init__()
        if residual and in_channels != out_channels:
            raise ValueError("residual=True needs in_channels == out_channels")
        self.config = dict(in_channels=in_channels, out_channels=out_channels, ngf=ngf,
                           n_down=n_down, n_blocks=n_blocks, norm=norm, residual=residual)
        self.n_down, self.residual = n_down, residual
        layers: list[nn.Module] = [conv_norm_act(in_channels, ngf, 7, norm)]
        ch = ngf
        for _ in range(n_down):
            layers.append(conv_norm_act(ch, ch * 2, 3, norm, stride=2))
            ch *= 2
        layers += [ResnetBlock(ch, norm) for _ in range(n_blocks)]
        for _ in range(n_down):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv_norm_act(ch, ch // 2, 3, norm)]
            ch //= 2
        layers.append(nn.Conv2d(ch, out_channels, 7, padding=3, padding_mode="reflect"))
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = self.net(pad_to_multiple(x, 2 ** self.n_down))[..., :h, :w]
        return x + y.to(x.dtype) if self.residual else y

    @property
    def receptive_radius(self) -> int:
        """Theoretical receptive-field radius in pixels (see `receptive_radius`)."""
        return receptive_radius(self.config)

    @property
    def margin(self) -> int:
        """Context (px) a tile needs around it; see `default_margin`."""
        return default_margin(self.config)


def receptive_radius(config: dict) -> int:
    """Theoretical receptive-field radius (px) of a `ResnetGenerator` with this config."""
    n_down, n_blocks = config.get("n_down", 2), config.get("n_blocks", 6)
    r = 3                                            # 7x7 stem
    r += sum(2 ** i for i in range(n_down))          # 3x3 stride-2 convs
    r += 2 * n_blocks * 2 ** n_down                  # 3x3 convs at the bottleneck
    r += sum(2 ** i for i in range(n_down))          # 3x3 convs after each upsample
    r += 3                                           # 7x7 head
    return r + 2 ** n_down - 1                       # nearest upsampling: sub-grid position


def default_margin(config: dict) -> int:
    """Halo (px) per tile: half the theoretical receptive radius, rounded up to a multiple of 8.

    The effective receptive field of a conv net is roughly Gaussian and much narrower than the
    theoretical one. Measured with random weights on a smooth random 400x400 input, tile 128,
    overlap 32, tiles on the downsampling grid (Tiler `align`), float32, away from
    the frame edges: COMI preset (radius 47, margin 24) max |tiled - whole| 1.6e-4, mean 7e-6
    (mean correction 0.03); CycleGAN preset (radius 63, margin 32) max 3.6e-5, mean 1.6e-6.
    A margin >= the radius makes tiled == whole-frame to float precision. Without grid alignment
    the difference is ~1e-1 whatever the margin. A card may override it (``inference.margin``).
    """
    half = receptive_radius(config) / 2
    return int(-(-half // 8) * 8)


# ----------------------------------------------------------------------------- discriminator

class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator (Isola et al. 2017): one real/fake score per overlapping patch.

    ``n_layers=3`` gives the 70x70 receptive field of the reference; for an (N, C, H, W) input
    the output is (N, 1, H//8 - 2, W//8 - 2) (inputs need H, W >= 24). Runs only in training, so
    InstanceNorm (the reference choice) is harmless here.

    ``forward(x, features=True)`` also returns the activations of every block, for the
    feature-matching loss (``core.models.losses.feature_matching_loss``).
    """

    def __init__(self, in_channels: int = 1, ndf: int = 64, n_layers: int = 3,
                 norm: str = "instance") -> None:
        super().__init__()
        self.config = dict(in_channels=in_channels, ndf=ndf, n_layers=n_layers, norm=norm)
        act = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
        blocks = [nn.Sequential(nn.Conv2d(in_channels, ndf, 4, 2, 1), act())]
        ch = ndf
        for i in range(1, n_layers + 1):
            out = ndf * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1
            blocks.append(nn.Sequential(nn.Conv2d(ch, out, 4, stride, 1), make_norm(norm, out), act()))
            ch = out
        blocks.append(nn.Sequential(nn.Conv2d(ch, 1, 4, 1, 1)))
        self.blocks = nn.ModuleList(blocks)
        init_weights(self)

    def forward(self, x: torch.Tensor, features: bool = False):
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return (x, feats[:-1]) if features else x


# ----------------------------------------------------------------------------- the bundle

def make_generator(kind: str = "resnet", **kwargs) -> nn.Module:
    """A blurred<->sharp generator from its config: ``kind`` "unet" (`UNetGenerator`, the
    shipped presets) or "resnet" (`ResnetGenerator`, the CycleGAN reference shape; cards written
    before the U-Net existed have no ``kind`` and load as ResNet)."""
    if kind == "unet":
        from core.models.unet_generator import UNetGenerator
        return UNetGenerator(**kwargs)
    if kind == "resnet":
        return ResnetGenerator(**kwargs)
    raise ValueError(f"unknown generator kind {kind!r} (use 'unet' or 'resnet')")


class CycleGAN(nn.Module):
    """The four networks trained together; only `g_deblur` is exported for inference.

    Parameters
    ----------
    generator : dict, optional
        `make_generator` kwargs for both generators (default ``ARCH_PRESETS["cpu"]``).
    discriminator : dict, optional
        `PatchDiscriminator` kwargs for both discriminators (default ``DISC_PRESETS["cpu"]``).
    """

    def __init__(self, generator: dict | None = None, discriminator: dict | None = None) -> None:
        super().__init__()
        gen = dict(ARCH_PRESETS["cpu"] if generator is None else generator)
        disc = dict(DISC_PRESETS["cpu"] if discriminator is None else discriminator)
        self.g_deblur = make_generator(**gen)       # blurred -> sharp (exported)
        self.g_blur = make_generator(**gen)         # sharp -> blurred
        self.d_sharp = PatchDiscriminator(**disc)   # real sharp vs g_deblur(blurred)
        self.d_blur = PatchDiscriminator(**disc)    # real blurred vs g_blur(sharp)

    def generators(self) -> list[nn.Parameter]:
        return [*self.g_deblur.parameters(), *self.g_blur.parameters()]

    def discriminators(self) -> list[nn.Parameter]:
        return [*self.d_sharp.parameters(), *self.d_blur.parameters()]


class ImagePool:
    """History of generated images (Shrivastava et al. 2017), as in the CycleGAN reference.

    ``query(fakes)`` returns a batch of the same size: while the pool fills, the new images; then
    each image is, with probability 1/2, swapped for a random stored one. Feed the discriminator
    ``pool.query(fake.detach())``. ``size=0`` disables the pool.
    """

    def __init__(self, size: int = 50, seed: int | None = None) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image[None]
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif self.rng.random() < 0.5:
                i = self.rng.randrange(self.size)
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)


def linear_decay(total_steps: int, decay_steps: int | None = None) -> Callable[[int], float]:
    """LR multiplier for ``LambdaLR``: 1 for the first ``total - decay`` steps, then linear to 0.

    The reference trains 100 epochs at constant LR and 100 decaying; ``decay_steps`` defaults to
    half of ``total_steps``.
    """
    decay = total_steps // 2 if decay_steps is None else decay_steps
    start = total_steps - decay

    def factor(step: int) -> float:
        if step < start or decay <= 0:
            return 1.0
        return max(0.0, 1.0 - (step - start) / float(decay + 1))

    return factor


# ----------------------------------------------------------------------------- registry

#: views averaged unless the user picks another number: the image and its mirror. Measured with
#: benchmarks/checkpoints.py on the bench cases, 1 -> 2 views: COMI +3.92 -> +4.01 dB (the
#: phase-contrast image +7.62 -> +8.13), CycleGAN +1.80 -> +1.84, at half the speed (COMI
#: about 1.5 MP/s full field on 2 cores, still over the 1 MP/s it must reach); 4 views, +4.07 dB
#: for COMI, would drop it under 1 MP/s.
DEFAULT_VIEWS = 2


def generator_restorer(name: str, weights: Path | None, device: torch.device,
                       amp: bool, orientations: int = DEFAULT_VIEWS) -> NetworkRestorer:
    """A trained blurred->sharp generator (COMI or CycleGAN) as a tiled `NetworkRestorer`."""
    net, card = load_network(resolve_weights(name, weights), name, device)
    margin = card.get("inference", {}).get("margin", net.margin)
    return NetworkRestorer(net, name, margin=margin, pad_multiple=2 ** net.n_down, device=device, amp=amp,
                           orientations=orientations)


def register_generator_model(name: str, summary: str, amp: bool) -> None:
    """Register a GAN whose inference is its trained blurred->sharp generator (COMI, CycleGAN)."""
    def build(weights: Path | None = None, device: torch.device = torch.device("cpu"),
              orientations: int = DEFAULT_VIEWS, **params) -> NetworkRestorer:
        return generator_restorer(name, weights, device, amp, orientations)

    register(ModelEntry(name=name, kind="gan", summary=summary, build=build,
                        default_weights=default_weights_path(name), params={
                            "orientations": Param(
                                DEFAULT_VIEWS, int, "restore each region in 1, 2, 4 or 8 mirrored and "
                                "turned copies and average them: a little cleaner, that many times slower",
                                label="Views averaged", choices=ORIENTATION_CHOICES)}))


register_generator_model(
    "cyclegan",
    "CycleGAN trained on unpaired blurred and sharp images; sharpens texture, "
    "may invent detail where the input has none.", AMP)
