"""Conditional DDPM for deblurring: cosine schedule, v (or eps) prediction, DDIM sampling, EMA.

After lucidrains/denoising-diffusion-pytorch and Saharia et al. (SR3 / Palette): the blurred
image is the condition, concatenated to the noisy image as a second input channel of a
time-conditioned `UNet` (``core.models.unet``). Reads top to bottom: schedule helpers, the
`ConditionalDDPM` module (training pass + DDIM step + whole-frame sampler), the tiled
`DDPMRestorer`, the model's description.

Data space: predict, then refine
--------------------------------
Images arrive percentile-normalised (~0..1). As in Whang et al. 2022 ("Deblurring via stochastic
refinement"), a deterministic *predictor* (a residual `UNetGenerator`, trained jointly with L1
against the sharp image) first gives ``base = predictor(blurred)``, the best single guess; the
diffusion then runs on what it misses, ``x0 = (sharp - base) * residual_scale``, conditioned
on ``cat([2 * blurred - 1, 2 * base - 1])``. The base is detached from the diffusion loss, so the
predictor stays a pure regressor. Why: without a predictor (``predictor=None``, the original
design, x0 = (sharp - blurred) * scale) the target contains the camera noise of the input x8,
and more DDIM steps made the result worse than one step: the sampler rebuilt noise (the
figures: docs/BENCHMARKS.md, "Design measurements"). With the predictor the diffusion only adds the small part the
regression cannot decide, and few steps cannot stray far from the predictor's estimate.
``residual_scale`` (8) brings the residual to roughly unit spread. With ``residual=False`` the
diffusion runs on ``x0 = 2 * sharp - 1``.

Tiled sampling without seams
----------------------------
`DDPMRestorer.restore_plane` draws x_T ~ N(0, 1) once over the whole region (CPU
``torch.Generator`` seeded with `seed`, so the result does not depend on the device or tile
size's random streams), then for each DDIM step calls ``tiler.map`` on ``cat([x_t, cond])``:
every tile is denoised at the same timestep and the Tiler averages the model outputs over the
overlaps (raised-cosine weights, as WeatherDiffusion does), then the DDIM update is applied to
the whole region. Neighbouring tiles therefore always share one x_t and there is no seam.
Deterministic for eta = 0 (the default); eta > 0 draws its noise from the same seeded generator.

Training (the loss, the EMA weights that get exported) lives in ``training/steps/ddpm.py``; the
module's `forward` is the training pass it calls, `sample` the whole-frame sampler validation uses.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from core.devices import autocast_context
from core.input_match import MATCH_KEY, MATCH_PARAM
from core.models.base import NetworkRestorer, Restorer
from core.models.generators import GENERATOR_PRESETS, make_generator
from core.models.spec import ModelEntry, Param
from core.models.unet import UNet
from core.tiling import Tiler

__all__ = ["ARCH_PRESETS", "CARD_NOTES", "AMP", "DEFAULT_STEPS", "cosine_alphas_cumprod",
           "ddim_timesteps", "ConditionalDDPM", "DDPMRestorer", "MODEL"]

# "cpu": 1.87 M denoiser parameters + the predictor (COMI's CPU U-Net generator, one pass);
# "gpu": 43 M parameters, 4 levels, attention at the lowest level. Speeds: docs/BENCHMARKS.md.
PREDICTOR: dict = dict(GENERATOR_PRESETS["cpu"])
ARCH_PRESETS: dict[str, dict] = {
    "cpu": dict(dim=32, dim_mults=(1, 2, 4), num_res_blocks=1, attention=False, predictor=PREDICTOR),
    "gpu": dict(dim=64, dim_mults=(1, 2, 4, 8), num_res_blocks=2, attention=True,
                predictor=dict(PREDICTOR, ngf=48, dec_convs=2)),
}
# Autocast at inference (bf16 on CPU, fp16/bf16 on GPU; LayerNorm stays float32): faster, and
# its cost in PSNR is far below the restoration error (docs/BENCHMARKS.md).
AMP = True
# DDIM steps by default, chosen on the real-image validation cases (docs/BENCHMARKS.md, "DDPM
# sampling steps"): 2 steps gained +2.05 dB there and made no case worse; 20 steps +1.29 dB, worst
# -2.68 dB, drawing detail that is plausible but not the specimen's, and blotches into empty
# background. More steps stay available for more varied samples.
DEFAULT_STEPS = 2
CARD_NOTES = (
    "Conditional DDPM (SR3-style: blurred image concatenated to the noisy input) with a "
    "time-conditioned U-Net using per-pixel LayerNorm (no GroupNorm), cosine noise schedule, "
    "v-prediction by default. Predict-and-refine (Whang et al. 2022) when the architecture has a "
    "predictor: a residual U-Net trained jointly with L1 gives a first estimate, and the diffusion "
    "runs on the scaled residual (sharp - estimate), conditioned on the blurred image and the "
    "estimate; without one, on (sharp - blurred). "
    "DDIM sampling (eta 0), 2 steps by default (chosen on the real-image validation cases: more "
    "steps drew more detail that the specimen does not have); exported weights are the EMA "
    "weights. Tiles are denoised together and their predictions averaged over overlaps at every "
    "step. A diffusion model samples a plausible sharp image: fine detail can differ between "
    "seeds, little at 2 steps, more with more steps."
)


# ----------------------------------------------------------------------------- schedule

def cosine_alphas_cumprod(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """Cosine schedule (Nichol & Dhariwal 2021): alpha-bar_t for t = 0..T-1, betas clipped to 0.999."""
    x = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64)
    ac = torch.cos(((x / timesteps) + s) / (1 + s) * math.pi * 0.5) ** 2
    ac = ac / ac[0]
    betas = (1 - ac[1:] / ac[:-1]).clamp(0, 0.999)
    return torch.cumprod(1 - betas, 0).float()


def ddim_timesteps(timesteps: int, steps: int) -> list[tuple[int, int]]:
    """(t, t_prev) pairs from T-1 down to 0 in `steps` steps; t_prev = -1 means 'done' (x0)."""
    steps = max(1, min(int(steps), timesteps))
    times = torch.linspace(-1, timesteps - 1, steps + 1).round().long().tolist()[::-1]
    return list(zip(times[:-1], times[1:]))


# ----------------------------------------------------------------------------- the model

class ConditionalDDPM(nn.Module):
    """Denoising diffusion on a blurred->sharp task, conditioned on the blurred image.

    Parameters
    ----------
    dim, dim_mults, num_res_blocks, attention :
        `UNet` size (see ``core.models.unet``).
    timesteps : int
        Training diffusion steps T (cosine schedule).
    objective : {'v', 'eps'}
        What the U-Net predicts: velocity (Salimans & Ho 2022; stable with few DDIM steps and
        at high noise) or the noise.
    residual : bool
        Diffuse ``(sharp - blurred) * residual_scale`` instead of ``2 * sharp - 1``.
    residual_scale : float
        Scale of the residual target. On the synthetic training data, sharp - blurred has a
        standard deviation of 0.05 (median patch) to 0.13 (90th percentile) in normalised units;
        x8 brings it to 0.4-1, the spread the cosine schedule was designed for.
    clip_x0 : float or None
        Clamp the predicted x0 to [-clip_x0, clip_x0] in DDIM steps (None: no clamp).
    predictor : dict or None
        `make_generator` kwargs of the deterministic first estimate (see the module docstring);
        None: the diffusion refines the blurred image itself (cards from before the predictor).
    """

    def __init__(self, dim: int = 32, dim_mults: Sequence[int] = (1, 2, 4), num_res_blocks: int = 1,
                 attention: bool = False, timesteps: int = 1000, objective: str = "v",
                 residual: bool = True, residual_scale: float = 8.0, clip_x0: float | None = None,
                 predictor: dict | None = None) -> None:
        super().__init__()
        if objective not in ("v", "eps"):
            raise ValueError(f"objective must be 'v' or 'eps', got {objective!r}")
        self.config = dict(dim=dim, dim_mults=[int(m) for m in dim_mults], num_res_blocks=num_res_blocks,
                           attention=attention, timesteps=timesteps, objective=objective,
                           residual=residual, residual_scale=residual_scale, clip_x0=clip_x0,
                           predictor=dict(predictor) if predictor else None)
        self.predictor = make_generator(**predictor) if predictor else None
        self.unet = UNet(in_channels=2 if self.predictor is None else 3, out_channels=1, dim=dim,
                         dim_mults=dim_mults, num_res_blocks=num_res_blocks, attention=attention)
        self.timesteps, self.objective = timesteps, objective
        self.residual, self.residual_scale, self.clip_x0 = residual, residual_scale, clip_x0
        # derived from the config, so not stored in the weights file
        self.register_buffer("alphas_cumprod", cosine_alphas_cumprod(timesteps), persistent=False)

    # --- data space <-> diffusion space
    def base(self, blurred: torch.Tensor) -> torch.Tensor:
        """The estimate the diffusion refines: predictor(blurred), or the blurred image itself."""
        return blurred if self.predictor is None else self.predictor(blurred).float()

    def to_x0(self, sharp: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        return (sharp - base) * self.residual_scale if self.residual else 2 * sharp - 1

    def from_x0(self, x0: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        return base + x0 / self.residual_scale if self.residual else (x0 + 1) / 2

    def condition(self, blurred: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """Condition channels: the blurred image, and the predictor's estimate when there is one."""
        c = 2 * blurred - 1
        if self.predictor is None:
            return c
        if base is None:
            raise ValueError("a DDPM with a predictor is conditioned on its estimate too")
        return torch.cat([c, 2 * base - 1], dim=1)

    # --- network
    def denoise(self, x_t: torch.Tensor, cond: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Model output (eps or v) for noisy x_t (N,1,H,W), `condition` channels, timesteps (N,)."""
        return self.unet(torch.cat([x_t, cond], dim=1), t)

    def forward(self, sharp: torch.Tensor, blurred: torch.Tensor, t: torch.Tensor,
                noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One training pass -> (U-Net output, its v/eps target, predictor estimate).

        The whole pass is the module's forward, so under DDP one wrapped call synchronises the
        gradients of the predictor and the denoiser. The estimate is detached for the diffusion.
        """
        base = self.base(blurred)
        fixed = base.detach()
        x0 = self.to_x0(sharp, fixed)
        a = self._alpha(t, x0)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        target = a.sqrt() * noise - (1 - a).sqrt() * x0 if self.objective == "v" else noise
        return self.denoise(x_t, self.condition(blurred, fixed), t), target, base

    def _alpha(self, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        a = self.alphas_cumprod.to(like.device)[torch.as_tensor(t, device=like.device).long()]
        return a.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype) if a.ndim else a.to(like.dtype)

    # --- sampling
    def ddim_step(self, x_t: torch.Tensor, out: torch.Tensor, t: int, t_prev: int, eta: float = 0.0,
                  noise: torch.Tensor | None = None) -> torch.Tensor:
        """One DDIM update (Song et al. 2021) from t to t_prev given the model output at t.

        Returns x_{t_prev}, or the x0 estimate when ``t_prev < 0``.
        """
        a = self.alphas_cumprod[t].item()
        sa, s1a = math.sqrt(a), math.sqrt(1 - a)
        if self.objective == "v":
            x0 = sa * x_t - s1a * out
            eps = s1a * x_t + sa * out
        else:
            eps = out
            x0 = (x_t - s1a * eps) / sa
        if self.clip_x0 is not None:
            x0 = x0.clamp(-self.clip_x0, self.clip_x0)
            eps = (x_t - sa * x0) / s1a
        if t_prev < 0:
            return x0
        a_prev = self.alphas_cumprod[t_prev].item()
        sigma = eta * math.sqrt(max(0.0, (1 - a_prev) / (1 - a) * (1 - a / a_prev)))
        x = math.sqrt(a_prev) * x0 + math.sqrt(max(0.0, 1 - a_prev - sigma ** 2)) * eps
        if sigma > 0:
            if noise is None:
                raise ValueError("eta > 0 needs a noise tensor")
            x = x + sigma * noise
        return x

    @torch.no_grad()
    def sample(self, blurred: torch.Tensor, steps: int = DEFAULT_STEPS, seed: int = 0,
               eta: float = 0.0) -> torch.Tensor:
        """Whole-frame DDIM sampling: blurred (N,1,H,W) in normalised units -> sharp estimate."""
        g = torch.Generator().manual_seed(int(seed))
        x = torch.randn(blurred.shape, generator=g).to(blurred.device)
        base = self.base(blurred)
        cond = self.condition(blurred, base)
        for t, t_prev in ddim_timesteps(self.timesteps, steps):
            out = self.denoise(x, cond, torch.full((x.shape[0],), t, device=x.device)).float()
            noise = torch.randn(x.shape, generator=g).to(x.device) if eta > 0 and t_prev >= 0 else None
            x = self.ddim_step(x, out, t, t_prev, eta, noise)
        return self.from_x0(x, base)

    @property
    def margin(self) -> int:
        """Halo per tile: 1/4 of the U-Net's theoretical receptive radius, a multiple of 8, <= 64,
        and at least the predictor's margin (its single pass is tiled like COMI's generator).

        Predictions are averaged over overlaps at every step, so the margin only controls how
        close tiled sampling is to whole-frame sampling, not whether seams appear.
        """
        m = int(min(64, -(-self.unet.receptive_radius / 4 // 8) * 8))
        return m if self.predictor is None else max(m, self.predictor.margin)

    @property
    def align(self) -> int:
        """Down-sampling grid the tiles must start on: the U-Net's and the predictor's."""
        f = self.unet.factor
        return f if self.predictor is None else math.lcm(f, 2 ** self.predictor.n_down)


# ----------------------------------------------------------------------------- inference

class DDPMRestorer(Restorer):
    """Tiled DDIM sampling: one ``tiler.map`` per step over ``cat([x_t, cond])`` (see module doc).

    Parameters
    ----------
    net : ConditionalDDPM (EMA weights).
    steps : DDIM steps (``passes``); `DEFAULT_STEPS` (2) restores best on real images, more
        steps draw more varied (and less faithful) detail.
    eta : DDIM stochasticity, 0 = deterministic given the seed.
    amp : bf16/fp16 autocast for the U-Net.
    margin : tile halo (default ``net.margin``), rounded up to the U-Net's downsampling grid.
    """

    name = "ddpm"

    def __init__(self, net: ConditionalDDPM, device: torch.device = torch.device("cpu"),
                 steps: int = DEFAULT_STEPS, eta: float = 0.0, amp: bool = AMP, channels_last: bool = True,
                 margin: int | None = None) -> None:
        self.net = net.to(device).eval()
        self.device = device
        self.steps = int(steps)
        self.eta = float(eta)
        self.amp = amp
        self.channels_last = channels_last and device.type == "cpu"
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        f = net.align
        self.align = f
        self.margin = -(-(net.margin if margin is None else int(margin)) // f) * f
        # tiler passes (progress and cancel): the predictor's one, then one per DDIM step
        self.passes = len(ddim_timesteps(net.timesteps, self.steps)) + (net.predictor is not None)
        self._predictor = None if net.predictor is None else NetworkRestorer(
            net.predictor, "ddpm predictor", margin=self.margin, pad_multiple=2 ** net.predictor.n_down,
            device=device, amp=amp, channels_last=self.channels_last)

    def _predict(self, tiles: torch.Tensor, t: int) -> torch.Tensor:
        """The tile function: U-Net output (eps or v) for a batch of (N, 2, h, w) tiles at step t."""
        if self.channels_last:
            tiles = tiles.contiguous(memory_format=torch.channels_last)
        tt = torch.full((tiles.shape[0],), t, device=tiles.device, dtype=torch.long)
        with torch.inference_mode(), autocast_context(self.device, self.amp):
            out = self.net.unet(tiles, tt)
        return out.float().contiguous()

    def restore_plane(self, x: np.ndarray, tiler: Tiler, seed: int = 0,
                      blur: np.ndarray | None = None) -> np.ndarray:
        blurred = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None]       # (1, H, W)
        # the predictor's single pass is a feed-forward generator run like COMI's
        base = blurred if self._predictor is None else tiler.map(self._predictor.forward_tiles, blurred)
        cond = self.net.condition(blurred[None], base[None])[0]
        g = torch.Generator().manual_seed(int(seed))
        x_t = torch.randn(blurred.shape, generator=g)
        for t, t_prev in ddim_timesteps(self.net.timesteps, self.steps):
            # the Tiler puts every tile on the U-Net's down-sampling grid (align = unet.factor)
            out = tiler.map(lambda tiles, t=t: self._predict(tiles, t), torch.cat([x_t, cond]))
            noise = torch.randn(x_t.shape, generator=g) if self.eta > 0 and t_prev >= 0 else None
            x_t = self.net.ddim_step(x_t, out, t, t_prev, self.eta, noise)
        return self.net.from_x0(x_t, base)[0].numpy().astype(np.float32)


def build(net: ConditionalDDPM, card: dict, device: torch.device, steps: int = DEFAULT_STEPS,
          eta: float = 0.0) -> DDPMRestorer:
    """Registry builder: the EMA network of a weights file as a tiled DDIM sampler."""
    return DDPMRestorer(net, device=device, steps=steps, eta=eta, amp=AMP,
                        margin=card.get("inference", {}).get("margin"))


MODEL = ModelEntry(
    name="ddpm", kind="diffusion", display_name="Diffusion (DDPM)", order=1,
    summary="Diffusion model: a first estimate of the sharp region, refined by a few diffusion "
            "steps; reproducible with a seed.",
    good_for="a second opinion beside COMI; other seeds (Sample again) give other plausible "
             "details, and where samples disagree it is guessing.",
    caution="more Steps draw more detail that the specimen may not have, and blotches into empty "
            "background (on real test images 20 steps restored worse than the default 2): "
            "compare samples and the original.",
    build=build, network=ConditionalDDPM, presets={"model": ARCH_PRESETS},
    params={
        "steps": Param(DEFAULT_STEPS, int, "DDIM sampling steps: 2 restores best on real images; "
                       "more is slower and draws more varied detail, less faithful to the specimen",
                       label="Steps", min=1, max=1000),
        "eta": Param(0.0, float, "DDIM noise: 0 gives the same result for the same seed; "
                     "up to 1 adds variety", label="Eta", min=0.0, max=1.0),
        MATCH_KEY: MATCH_PARAM,
    },
    card_notes=CARD_NOTES,
    steps="training.steps.ddpm:DDPMSteps",
)
