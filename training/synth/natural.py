"""Natural textures: random crops of scikit-image's bundled pictures (a generic texture prior)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import ndimage

from training.synth.render import _rng, _shape


# --------------------------------------------------------------------------- natural textures

#: scikit-image pictures shipped inside the package (loaded offline, no download)
NATURAL_IMAGES = ("camera", "coins", "moon", "brick", "grass", "gravel", "cell", "text", "page",
                  "immunohistochemistry", "hubble_deep_field", "retina", "chelsea", "coffee",
                  "astronaut", "rocket", "clock", "microaneurysms")


@lru_cache(maxsize=None)
def _natural_image(name: str) -> np.ndarray:
    from skimage import data

    img = np.asarray(getattr(data, name)())
    img = img.astype(np.float32)
    if img.ndim == 3:
        img = img[..., :3] @ np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)
    img -= img.min()
    img /= max(float(img.max()), 1e-6)
    img.setflags(write=False)
    return img


def available_natural_images() -> tuple[str, ...]:
    """The bundled pictures that load on this installation (a few need pooch and are skipped)."""
    ok = []
    for name in NATURAL_IMAGES:
        try:
            _natural_image(name)
        except Exception:          # not bundled in this scikit-image version: skip quietly
            continue
        ok.append(name)
    return tuple(ok)


def natural(size: int | tuple[int, int], seed: int | np.random.Generator | None = 0, *,
            pixel_um: float | None = None, name: str | None = None) -> np.ndarray:
    """A random crop of a bundled scikit-image picture, randomly scaled (0.5-2x), flipped,
    rotated and sometimes inverted: real-world edges and textures as a generic prior."""
    rng = _rng(seed)
    h, w = _shape(size)
    names = available_natural_images()
    if not names:
        raise RuntimeError("no scikit-image sample picture could be loaded")
    name = name or names[int(rng.integers(len(names)))]
    src = _natural_image(name)
    zoom = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    need = (int(math.ceil(h / zoom)) + 2, int(math.ceil(w / zoom)) + 2)
    if need[0] > src.shape[0] or need[1] > src.shape[1]:
        zoom = max(zoom, h / (src.shape[0] - 2), w / (src.shape[1] - 2))
        need = (min(src.shape[0], int(math.ceil(h / zoom)) + 2), min(src.shape[1], int(math.ceil(w / zoom)) + 2))
    y0 = int(rng.integers(0, src.shape[0] - need[0] + 1))
    x0 = int(rng.integers(0, src.shape[1] - need[1] + 1))
    crop = src[y0:y0 + need[0], x0:x0 + need[1]]
    out = ndimage.zoom(crop, (h / crop.shape[0], w / crop.shape[1]), order=1)
    out = out[:h, :w]
    if out.shape != (h, w):
        out = np.pad(out, ((0, h - out.shape[0]), (0, w - out.shape[1])), mode="reflect")
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if h == w:
        out = np.rot90(out, int(rng.integers(4)))
    if rng.random() < 0.3:
        out = 1.0 - out
    return np.ascontiguousarray(np.clip(out, 0, 1), dtype=np.float32)
