"""The history of generated images the GAN discriminators learn from (Shrivastava et al. 2017)."""

from __future__ import annotations

import random
from typing import Any

import torch

__all__ = ["ImagePool"]


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



    def state_dict(self) -> dict[str, Any]:
        """The stored images and the random state, for an exact ``--resume``."""
        version, internal, gauss = self.rng.getstate()
        images = torch.cat(self.images) if self.images else torch.empty(0)
        return {"images": images.cpu(), "rng": torch.tensor(internal, dtype=torch.int64),
                "rng_version": int(version), "rng_gauss": gauss}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        imgs = state["images"]
        self.images = [imgs[i:i + 1].to(device) for i in range(imgs.shape[0])] if imgs.numel() else []
        self.rng.setstate((state["rng_version"], tuple(int(v) for v in state["rng"].tolist()),
                           state["rng_gauss"]))
