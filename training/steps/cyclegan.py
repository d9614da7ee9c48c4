"""CycleGAN training step (Zhu et al. 2017), unpaired; also the base of the COMI step.

Per step: the generators learn from LSGAN + cycle (x10) + identity (x5) losses with the
discriminators frozen, then the discriminators learn from real images and generated images
drawn from a history pool of 50. Identity 5 is Zhu et al.'s lambda_identity 0.5 relative to
the cycle weight 10. Adam (2e-4, betas 0.5/0.999), constant LR for the first half, then linear
decay to 0 (configurable in ``[optim]``).

Networks come from `core.models.cyclegan`; here only the optimisation lives. Each network is
called once per batch where the maths allows (inputs concatenated along the batch axis): the
norms are per-pixel or per-sample, so this equals separate calls, and DDP sees fewer forwards.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.models.cyclegan import (ARCH_PRESETS, DISC_PRESETS, LOSS_WEIGHTS, CycleGAN, ImagePool)
from core.models.losses import lsgan_d_loss, lsgan_g_loss
from training.steps import ModelSteps, Precision

__all__ = ["CycleGANSteps", "GanSteps"]


def _pool_state(pool: ImagePool) -> dict[str, Any]:
    version, internal, gauss = pool.rng.getstate()
    images = torch.cat(pool.images) if pool.images else torch.empty(0)
    return {"images": images.cpu(), "rng": torch.tensor(internal, dtype=torch.int64),
            "rng_version": int(version), "rng_gauss": gauss}


def _load_pool(pool: ImagePool, state: dict[str, Any], device: torch.device) -> None:
    imgs = state["images"]
    pool.images = [imgs[i:i + 1].to(device) for i in range(imgs.shape[0])] if imgs.numel() else []
    pool.rng.setstate((state["rng_version"], tuple(int(v) for v in state["rng"].tolist()),
                       state["rng_gauss"]))


class GanSteps(ModelSteps):
    """Two generators + two PatchGAN discriminators, shared by CycleGAN and COMI.

    Subclasses choose the network bundle and may add generator loss terms
    (`extra_generator_losses`).
    """

    bundle_cls: type[nn.Module] = CycleGAN
    arch_presets: dict[str, dict] = ARCH_PRESETS
    disc_presets: dict[str, dict] = DISC_PRESETS
    default_weights: dict[str, float] = LOSS_WEIGHTS

    def __init__(self, cfg: dict[str, Any], device: torch.device, precision: Precision) -> None:
        super().__init__(cfg, device, precision)
        gen = self._arch("model", self.arch_presets)
        disc = self._arch("discriminator", self.disc_presets)
        loss_cfg = dict(cfg.get("loss", {}))
        pool_size = int(loss_cfg.pop("pool_size", 50))
        # one freak batch (a sparse field whose percentile normalisation puts spots at 1000s)
        # once gave a content loss of 2,500: unclipped, its gradient filled Adam's second moments
        # and learning crawled for the next thousand steps
        self.grad_clip = float(cfg.get("optim", {}).get("grad_clip", 0.0))
        self.w = {**self.default_weights, **loss_cfg}
        bundle = self.bundle_cls(generator=gen, discriminator=disc)
        self.modules = {"g_deblur": bundle.g_deblur, "g_blur": bundle.g_blur,
                        "d_sharp": bundle.d_sharp, "d_blur": bundle.d_blur}
        self.trainable = tuple(self.modules)
        self._finish_modules()
        self.optimizers = {
            "g": self._adam([*bundle.g_deblur.parameters(), *bundle.g_blur.parameters()]),
            "d": self._adam([*bundle.d_sharp.parameters(), *bundle.d_blur.parameters()]),
        }
        self.schedulers = {k: self._scheduler(o) for k, o in self.optimizers.items()}
        seed = int(cfg.get("train", {}).get("seed", 0))
        self.pools = {"sharp": ImagePool(pool_size, seed=seed + 1),
                      "blur": ImagePool(pool_size, seed=seed + 2)}

    # ------------------------------------------------------------------ the step
    def extra_generator_losses(self, batch: dict[str, torch.Tensor], out: dict[str, torch.Tensor],
                               ) -> dict[str, torch.Tensor]:
        """Extra unweighted generator terms, weighted by ``self.w[name]`` (COMI: content,
        perceptual); none for CycleGAN. `out` holds the fake sharp image and its discriminator
        features."""
        return {}

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        blurred, sharp = batch["blurred"], batch["sharp"]
        n = blurred.shape[0]
        g_deblur, g_blur = self.net("g_deblur"), self.net("g_blur")
        d_sharp_raw, d_blur_raw = self.modules["d_sharp"], self.modules["d_blur"]
        w = self.w
        opt_g, opt_d = self.optimizers["g"], self.optimizers["d"]

        # ---- generators (discriminators frozen and used unwrapped: no DDP sync for them here)
        self.set_requires_grad([d_sharp_raw, d_blur_raw], False)
        opt_g.zero_grad(set_to_none=True)
        with self.precision.autocast():
            fake_s, idt_s = g_deblur(torch.cat([blurred, sharp])).split(n)    # blurred->sharp, identity
            rec_b, fake_b, idt_b = g_blur(torch.cat([fake_s, sharp, blurred])).split(n)
            rec_s = g_deblur(fake_b)
            score_s, feats_fake = d_sharp_raw(fake_s, features=True)
            score_b = d_blur_raw(fake_b)
            out = {"fake_s": fake_s, "feats_fake": feats_fake}
            adv = lsgan_g_loss(score_s) + lsgan_g_loss(score_b)
            cycle = F.l1_loss(rec_b.float(), blurred.float()) + F.l1_loss(rec_s.float(), sharp.float())
            identity = (F.l1_loss(idt_s.float(), sharp.float())
                        + F.l1_loss(idt_b.float(), blurred.float()))
            extra = self.extra_generator_losses(batch, out)
            loss_g = (w["adversarial"] * adv + w["cycle"] * cycle + w["identity"] * identity
                      + sum((w[k] * v for k, v in extra.items()),
                            torch.zeros((), device=blurred.device)))
        self.precision.backward(loss_g)
        self.precision.clip_grad(opt_g, self._params("g_deblur", "g_blur"), self.grad_clip)
        self.precision.step(opt_g)

        # ---- discriminators: real vs pooled fakes, one forward each (per-sample norms)
        self.set_requires_grad([d_sharp_raw, d_blur_raw], True)
        opt_d.zero_grad(set_to_none=True)
        pooled_s = self.pools["sharp"].query(fake_s.detach())
        pooled_b = self.pools["blur"].query(fake_b.detach())
        with self.precision.autocast():
            real_s, fake_s_score = self.net("d_sharp")(torch.cat([sharp, pooled_s])).split(n)
            real_b, fake_b_score = self.net("d_blur")(torch.cat([blurred, pooled_b])).split(n)
            loss_d = lsgan_d_loss(real_s, fake_s_score) + lsgan_d_loss(real_b, fake_b_score)
        self.precision.backward(loss_d)
        self.precision.clip_grad(opt_d, self._params("d_sharp", "d_blur"), self.grad_clip)
        self.precision.step(opt_d)

        losses = {"g": loss_g, "adv": adv, "cycle": cycle, "identity": identity, "d": loss_d,
                  **extra}
        return {k: float(v.detach()) for k, v in losses.items()}

    def _params(self, *names: str) -> list[torch.nn.Parameter]:
        return [p for n in names for p in self.modules[n].parameters()]

    # ------------------------------------------------------------------ validation / export
    def restore(self, blurred: torch.Tensor) -> torch.Tensor:
        """The exported generator in float32, exactly as inference runs it (no autocast)."""
        return self.modules["g_deblur"](blurred).float()

    def export_network(self) -> tuple[nn.Module, str]:
        return self.modules["g_deblur"], ""

    def extra_state(self) -> dict[str, Any]:
        return {f"pool_{k}": _pool_state(p) for k, p in self.pools.items()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        for k, p in self.pools.items():
            if f"pool_{k}" in state:
                _load_pool(p, state[f"pool_{k}"], self.device)


class CycleGANSteps(GanSteps):
    """Unpaired CycleGAN: blurred and sharp patches need not show the same specimen."""

    name = "cyclegan"
    paired = False
    loss_names = ("g", "adv", "cycle", "identity", "d")

