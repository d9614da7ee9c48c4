"""The local-defocus simulator: sharp images in, realistically out-of-focus regions out.

We cannot download training data, so every model learns from sharp images blurred here (and the
benchmark and `deblur simulate` make their test fields the same way). The blur has to look like
a real out-of-focus region of a widefield microscope, or the models will not transfer to real
images. The PSFs themselves are ``core.psf``.

* **Spatially varying blur** (`blur_with_depth`): the depth map is quantised to a few levels, the
  image is convolved (FFT, reflect padding) with the PSF of each level, and the results are
  blended linearly between neighbouring levels. Pixels of depth 0 are returned untouched.
* **The simulator** (`simulate_local_defocus`): depth maps that are smooth random fields, tilted
  planes (a tilted slide) or blobs (a thick specimen), Poisson-Gaussian camera noise, intensity
  scaling, optional brightfield (transmitted light) contrast. Seeded by the caller's Generator.
* **A whole image file** (`defocus_image`): every plane, channel and RGB sample of an `Image`
  blurred inside given regions (`random_regions` draws some), the input's dtype kept and every
  pixel outside the regions bit-identical.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
from scipy import ndimage, signal

from core.psf import (IMMERSION, Optics, defocus_for_radius, effective_blur_radius_px,
                      geometric_radius_px, psf_function)

__all__ = [
    "blur_with_depth", "depth_map", "add_noise", "NoiseConfig", "DefocusConfig", "Simulated",
    "sample_optics", "simulate_local_defocus", "relative_intensity",
]

# --------------------------------------------------------------------------- spatially varying blur

def _convolve_region(image: np.ndarray, psf: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """image (C, H, W) convolved with psf, only over rows y0:y1 and columns x0:x1 (reflect edges)."""
    _, h, w = image.shape
    k = psf.shape[0] // 2
    if k == 0:
        return image[:, y0:y1, x0:x1] * np.float32(psf[0, 0])
    ya, yb, xa, xb = max(0, y0 - k), min(h, y1 + k), max(0, x0 - k), min(w, x1 + k)
    src = image[:, ya:yb, xa:xb]
    pads = ((0, 0), (k - (y0 - ya), k - (yb - y1)), (k - (x0 - xa), k - (xb - x1)))
    if any(p for pair in pads for p in pair):
        # a single row or column cannot be reflected: repeat it instead
        mode = "reflect" if min(src.shape[1:]) > 1 else "edge"
        src = np.pad(src, pads, mode=mode)
    return signal.fftconvolve(src, psf[None].astype(np.float32), mode="valid", axes=(1, 2))


def blur_with_depth(image: np.ndarray, depth_um: np.ndarray, psf_at: Callable[[float], np.ndarray],
                    levels: int = 8) -> np.ndarray:
    """Blur `image` locally: each pixel with the PSF of its own depth.

    |depth| is quantised to `levels` equally spaced non-zero depths up to its maximum; the image
    is convolved once per level (FFT, reflect padding, only over the pixels that use the level)
    and neighbouring levels are blended linearly, so blur grows smoothly with depth. Pixels of
    depth 0 are returned bit-identical to the input. `psf_at(z)` receives z >= 0.

    Parameters
    ----------
    image
        (H, W) or (C, H, W) array; every channel gets the same blur.
    depth_um
        (H, W) defocus depth per pixel.
    Returns
    -------
    float32 array of the image's shape (float64 input stays float64).
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (C, H, W), got shape {img.shape}")
    depth = np.abs(np.asarray(depth_um, dtype=np.float64))
    if depth.shape != img.shape[-2:]:
        raise ValueError(f"depth map shape {depth.shape} does not match the image {img.shape[-2:]}")
    if not np.all(np.isfinite(depth)):
        raise ValueError("the depth map contains NaN or infinite values")
    if levels < 1:
        raise ValueError("levels must be at least 1")
    work_dtype = np.float64 if img.dtype == np.float64 else np.float32
    planes = img.astype(work_dtype, copy=False).reshape((-1,) + img.shape[-2:])
    out = planes.copy()
    z_max = float(depth.max()) if depth.size else 0.0
    if z_max <= 0.0:
        return out.reshape(img.shape)
    t = depth * (levels / z_max)                       # 0 .. levels
    blurred_px = depth > 0
    acc = np.zeros(planes.shape, dtype=work_dtype)
    # level 0 is the input itself
    w0 = np.clip(1.0 - t, 0.0, None)
    acc += planes * w0.astype(work_dtype)
    for k in range(1, levels + 1):
        wk = np.clip(1.0 - np.abs(t - k), 0.0, None)
        rows = np.flatnonzero(wk.any(axis=1))
        if rows.size == 0:
            continue
        cols = np.flatnonzero(wk.any(axis=0))
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        psf = np.asarray(psf_at(z_max * k / levels), dtype=np.float64)
        if psf.ndim != 2 or psf.shape[0] != psf.shape[1] or psf.shape[0] % 2 == 0:
            raise ValueError("psf_at must return a square 2-D kernel of odd size")
        conv = _convolve_region(planes, psf / psf.sum(), y0, y1, x0, x1)
        acc[:, y0:y1, x0:x1] += conv.astype(work_dtype) * wk[y0:y1, x0:x1].astype(work_dtype)
    out[:, blurred_px] = acc[:, blurred_px]
    return out.reshape(img.shape)


# --------------------------------------------------------------------------- depth maps

def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _upsample_linear(small: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling (periodic) by two small matrix products: cheap at any output size."""
    def matrix(n_out: int, n_in: int) -> np.ndarray:
        pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        i0 = np.floor(pos).astype(np.int64)
        f = pos - i0
        m = np.zeros((n_out, n_in))
        np.add.at(m, (np.arange(n_out), i0 % n_in), 1.0 - f)
        np.add.at(m, (np.arange(n_out), (i0 + 1) % n_in), f)
        return m
    return matrix(shape[0], small.shape[0]) @ small @ matrix(shape[1], small.shape[1]).T


def _lowres_field(rng: np.random.Generator, shape: tuple[int, int], corr: float) -> np.ndarray:
    """Smooth Gaussian random field, correlation length `corr` (fraction of the field), unit std.

    Made on a coarse grid and upsampled, so a 2048 px field costs the same as a 64 px one.
    """
    h, w = shape
    n = 48
    gh, gw = max(4, int(round(n * h / max(h, w)))), max(4, int(round(n * w / max(h, w))))
    f = ndimage.gaussian_filter(rng.standard_normal((gh, gw)), sigma=max(0.8, corr * n), mode="wrap")
    f = _upsample_linear(f, (h, w))
    f = f - f.mean()
    return f / (f.std() + 1e-12)


def depth_map(rng: np.random.Generator, shape: tuple[int, int], kind: str = "smooth",
              fraction: float = 0.35, z_max: float = 1.0) -> np.ndarray:
    """Defocus depth (um, >= 0) over a field: 0 in the in-focus part, rising smoothly to `z_max`.

    kind: "smooth" (random smooth field: an uneven specimen or coverslip), "tilt" (a plane: a
    tilted slide, depth growing linearly away from the in-focus line), "blobs" (a few round
    domes: a thick specimen), "full" (the whole field defocused, unevenly). About `fraction` of
    the pixels get a depth > 0.
    """
    h, w = int(shape[0]), int(shape[1])
    fraction = float(np.clip(fraction, 0.01, 1.0))
    yy, xx = np.meshgrid(np.linspace(0.0, 1.0, h), np.linspace(0.0, 1.0, w), indexing="ij")
    if kind == "full":
        f = _lowres_field(rng, (h, w), rng.uniform(0.15, 0.4))
        g = 0.55 + 0.45 * _smoothstep((f - f.min()) / (np.ptp(f) + 1e-12))
        return (z_max * g).astype(np.float32)
    if kind == "smooth":
        f = _lowres_field(rng, (h, w), rng.uniform(0.12, 0.35))
    elif kind == "tilt":
        angle = rng.uniform(0.0, 2.0 * np.pi)
        f = np.cos(angle) * xx * w + np.sin(angle) * yy * h
        f = f + 0.03 * max(h, w) * _lowres_field(rng, (h, w), 0.3)   # a slide is not perfectly flat
    elif kind == "blobs":
        f = np.zeros((h, w))
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = rng.uniform(0.0, 1.0, 2)
            sy, sx = rng.uniform(0.12, 0.35, 2) * np.sqrt(fraction / 0.35)
            f += rng.uniform(0.6, 1.0) * np.exp(-0.5 * (((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2))
    else:
        raise ValueError(f"unknown depth map kind {kind!r} (use smooth, tilt, blobs or full)")
    sample = f[::2, ::2] if f.size > 4096 else f
    thr = float(np.quantile(sample, 1.0 - fraction))
    top = float(np.quantile(sample, 1.0 - 0.25 * fraction))  # the deepest quarter reaches z_max
    g = _smoothstep((f - thr) / max(top - thr, 1e-12))
    g[f <= thr] = 0.0
    return (z_max * g).astype(np.float32)


# --------------------------------------------------------------------------- noise and config

@dataclass
class NoiseConfig:
    """Poisson-Gaussian camera noise: photons collected at intensity 1.0, read noise in photons."""

    photons: tuple[float, float] = (30.0, 3000.0)     # log-uniform
    read_noise: tuple[float, float] = (0.5, 3.0)      # uniform, rms electrons


def add_noise(x: np.ndarray, rng: np.random.Generator, photons: float, read_noise: float) -> np.ndarray:
    """Shot noise (Poisson on x * photons) plus Gaussian read noise, back in units of x.

    Above 50 expected photons the Poisson draw is replaced by its Gaussian limit (mean and
    variance lambda; indistinguishable there, and ~10x faster).
    """
    lam = np.clip(np.asarray(x, dtype=np.float32), 0.0, None) * np.float32(photons)
    counts = lam + np.sqrt(lam) * rng.standard_normal(lam.shape, dtype=np.float32)
    low = lam < 50.0
    if low.any():
        counts[low] = rng.poisson(lam[low]).astype(np.float32)
    counts += rng.normal(0.0, read_noise, lam.shape).astype(np.float32)
    return counts / np.float32(photons)


def _default_objectives() -> dict[str, tuple[float, float]]:
    return {"air": (0.25, 0.95), "water": (0.8, 1.2), "oil": (1.2, 1.4)}


@dataclass
class DefocusConfig:
    """What `simulate_local_defocus` draws from. Defaults cover the microscopes users have.

    Per field: an immersion medium and NA (air 0.25-0.95, water 0.8-1.2, oil 1.2-1.4), an
    emission wavelength, a pixel size tied to the NA as real cameras are (`sampling` x the
    Nyquist pixel lambda / 4 NA, clipped to `pixel_um`), a PSF family, a depth-map kind, a
    maximum blur radius (log-uniform in `radius_px`: 1 to 40 px by default) converted to the
    defocus that gives it (clipped to `defocus_um`), noise, gain and background.
    """

    objectives: dict[str, tuple[float, float]] = field(default_factory=_default_objectives)
    immersion_weights: dict[str, float] = field(
        default_factory=lambda: {"air": 0.45, "water": 0.2, "oil": 0.35})
    wavelength_um: tuple[float, float] = (0.45, 0.68)
    pixel_um: tuple[float, float] = (0.065, 0.5)
    sampling: tuple[float, float] = (0.6, 2.5)         # pixel / (lambda / 4 NA), log-uniform
    radius_px: tuple[float, float] | None = (1.0, 40.0)  # max blur radius of a field, log-uniform
    defocus_um: tuple[float, float] = (0.1, 30.0)      # bounds of the max depth (used directly if radius_px is None)
    bandwidth: float = 0.1
    psf_weights: dict[str, float] = field(
        default_factory=lambda: {"widefield": 0.7, "gaussian": 0.15, "disk": 0.15})
    depth_weights: dict[str, float] = field(
        default_factory=lambda: {"smooth": 0.4, "tilt": 0.25, "blobs": 0.3, "full": 0.05})
    blur_fraction: tuple[float, float] = (0.2, 0.6)
    levels: int = 8                                   # most depth levels (fewer for small blurs)
    noise: NoiseConfig | None = field(default_factory=NoiseConfig)
    noisy_target: bool = False                         # True: target gets its own independent noise
    gain: tuple[float, float] = (0.4, 1.0)
    background: tuple[float, float] = (0.0, 0.08)
    brightfield_prob: float = 0.15
    brightfield_density: tuple[float, float] = (0.4, 1.6)  # optical density at intensity 1
    no_blur_share: float = 0.0                         # fields whose region is left sharp (noise only)

    def __post_init__(self) -> None:
        unknown = set(self.objectives) - set(IMMERSION)
        if unknown:
            raise ValueError(f"unknown immersion medium(s) {sorted(unknown)}; known: {sorted(IMMERSION)}")
        for medium, (lo, hi) in self.objectives.items():
            if not 0 < lo <= hi < IMMERSION[medium]:
                raise ValueError(f"NA range {lo}-{hi} is impossible in {medium} (n = {IMMERSION[medium]})")
        if not any(self.immersion_weights.get(m, 0) > 0 for m in self.objectives):
            raise ValueError("no immersion medium with objectives has a positive weight")
        if not 0.0 <= self.no_blur_share <= 1.0:
            raise ValueError(f"no_blur_share must be between 0 and 1, got {self.no_blur_share}")

    def media_weights(self) -> dict[str, float]:
        """Weights of the media that have objectives."""
        return {m: float(self.immersion_weights.get(m, 0.0)) for m in self.objectives}

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (for model cards)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DefocusConfig":
        """Inverse of `to_dict` (unknown keys are an error, so typos in a config are caught)."""
        data = dict(data)
        noise = data.pop("noise", "default")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown degradation settings: {', '.join(sorted(unknown))}")
        for k, v in list(data.items()):
            if isinstance(v, list):
                data[k] = tuple(v)
            if isinstance(v, dict) and k == "objectives":
                data[k] = {m: tuple(r) for m, r in v.items()}
        cfg = cls(**data)
        if noise is None or noise is False:             # TOML has no null: `noise = false`
            cfg.noise = None
        elif isinstance(noise, dict):
            cfg.noise = NoiseConfig(**{k: tuple(v) for k, v in noise.items()})
        return cfg

    def radius_range_px(self) -> tuple[float, float]:
        """The range of maximum blur radii (px) a field can get."""
        if self.radius_px is not None:
            return float(self.radius_px[0]), float(self.radius_px[1])
        lo = []
        hi = []
        for medium, (na_lo, na_hi) in self.objectives.items():
            n = IMMERSION[medium]
            lo.append(geometric_radius_px(self.defocus_um[0], na=na_lo, n_medium=n, pixel_um=self.pixel_um[1]))
            hi.append(geometric_radius_px(self.defocus_um[1], na=na_hi, n_medium=n, pixel_um=self.pixel_um[0]))
        return max(min(lo), 1.0), max(hi)


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = [k for k, v in weights.items() if v > 0]
    if not names:
        raise ValueError("at least one weight must be positive")
    p = np.array([weights[k] for k in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > lo else float(lo)


def sample_optics(rng: np.random.Generator, cfg: DefocusConfig, pixel_um: float | None = None) -> Optics:
    """A random, realistic objective + camera: NA and immersion, wavelength, matched pixel size.

    With `pixel_um` given (an image's known pixel size), the NA is drawn so that the pixel is
    within `cfg.sampling` x the Nyquist pixel, as a real objective and camera would be.
    """
    lam = float(rng.uniform(*cfg.wavelength_um))
    if pixel_um is None:
        medium = _pick(rng, cfg.media_weights())
        na_lo, na_hi = cfg.objectives[medium]
        na = float(rng.uniform(na_lo, na_hi))
        nyquist = lam / (4.0 * na)
        pixel = float(np.clip(nyquist * _loguniform(rng, *cfg.sampling), *cfg.pixel_um))
        return Optics(na=na, wavelength_um=lam, n_medium=IMMERSION[medium], pixel_um=pixel)
    pixel = float(pixel_um)
    # NA range for which this pixel is a realistic sampling of the PSF
    want_lo, want_hi = cfg.sampling[0] * lam / (4 * pixel), cfg.sampling[1] * lam / (4 * pixel)
    options = {m: (max(lo, want_lo), min(hi, want_hi)) for m, (lo, hi) in cfg.objectives.items()
               if cfg.media_weights()[m] > 0}
    fits = {m: r for m, r in options.items() if r[0] <= r[1]}
    if fits:
        medium = _pick(rng, {m: cfg.immersion_weights[m] for m in fits})
        na = float(rng.uniform(*fits[medium]))
    else:                                   # no objective samples this pixel well: nearest NA
        medium, na, best = "air", 0.5, math.inf
        for m, (lo, hi) in cfg.objectives.items():
            if cfg.media_weights()[m] <= 0:
                continue
            for cand in (lo, hi):
                cost = abs(math.log(cand / math.sqrt(want_lo * want_hi)))
                if cost < best:
                    medium, na, best = m, cand, cost
    return Optics(na=na, wavelength_um=lam, n_medium=IMMERSION[medium], pixel_um=pixel)


@dataclass
class Simulated:
    """One simulated field: model input, target, and how it was made."""

    blurred: np.ndarray          # float32 (H, W): locally defocused (+ noise if cfg.noise)
    sharp: np.ndarray            # float32 (H, W): the clean target, same gain/background/contrast
    depth_um: np.ndarray         # float32 (H, W): defocus depth, 0 where in focus
    mask: np.ndarray             # bool (H, W): depth > 0
    psf_info: dict               # optics, PSF family, depths, radii, noise... (JSON-ready)

    def radius_map(self) -> np.ndarray:
        """Each pixel's blur radius (px, float32): the field's radius scaled by the pixel's
        depth (blur grows about linearly with defocus), 0 in focus and in a region left sharp."""
        r = float(self.psf_info.get("radius_px", 0.0))
        z_max = float(self.depth_um.max())
        if r <= 0 or z_max <= 0:
            return np.zeros(self.depth_um.shape, np.float32)
        return (self.depth_um * np.float32(r / z_max)).astype(np.float32)


def relative_intensity(sharp: np.ndarray) -> np.ndarray:
    """Scale an image of any range to relative intensity, 0.1th percentile -> 0, 99.9th -> 1."""
    x = np.asarray(sharp, dtype=np.float32)
    sample = x[:: max(1, x.shape[0] // 512), :: max(1, x.shape[1] // 512)]
    lo, hi = np.percentile(sample, [0.1, 99.9])
    if not hi > lo:
        hi = lo + 1.0
    return np.clip((x - np.float32(lo)) / np.float32(hi - lo), 0.0, None)


def simulate_local_defocus(sharp: np.ndarray, rng: np.random.Generator, cfg: DefocusConfig | None = None, *,
                           optics: Optics | None = None, brightfield: bool | None = None) -> Simulated:
    """Blur part of a sharp (H, W) image as a real out-of-focus region looks.

    Conventions (every trainer relies on them):

    * The sharp image is first scaled to relative intensity (0.1 / 99.9 percentiles -> 0 / 1),
      optionally turned into brightfield contrast (transmission exp(-density * x)), then given a
      random gain and background. That is the **target** `sharp`: clean, no noise (unless
      `cfg.noisy_target`, which adds independent noise of the same model).
    * `blurred` = the same image blurred by the depth map (`blur_with_depth`), then camera noise
      everywhere (a camera adds noise to in-focus pixels too). With `cfg.noise = None`, pixels of
      depth 0 in `blurred` equal `sharp` exactly.

    * With probability `cfg.no_blur_share` the region is NOT blurred (``psf_info["no_blur"]``):
      `mask` still marks it, as a user marks a region that only looks blurred, and `blurred` is
      the target plus noise, so the model learns to leave sharp content alone (and denoise it).

    `optics` fixes the microscope (default: drawn by `sample_optics`); `brightfield` forces the
    contrast (default: brightfield with probability `cfg.brightfield_prob`).
    """
    cfg = cfg or DefocusConfig()
    x = np.asarray(sharp)
    if x.ndim != 2:
        raise ValueError(f"simulate_local_defocus needs a 2-D image, got shape {x.shape}")
    h, w = x.shape
    x = relative_intensity(x)
    info: dict = {}
    if brightfield is None:
        brightfield = bool(rng.random() < cfg.brightfield_prob)
    if brightfield:
        density = float(rng.uniform(*cfg.brightfield_density))
        x = np.exp(-density * np.minimum(x, 1.5)).astype(np.float32)
        info["brightfield_density"] = density
    gain = float(rng.uniform(*cfg.gain))
    background = float(rng.uniform(*cfg.background))
    target = (x * np.float32(gain) + np.float32(background)).astype(np.float32)

    optics = optics or sample_optics(rng, cfg)
    family = _pick(rng, cfg.psf_weights)
    if cfg.radius_px is not None:
        r_max = _loguniform(rng, *cfg.radius_px)
        z_max = defocus_for_radius(r_max, na=optics.na, wavelength_um=optics.wavelength_um,
                                   n_medium=optics.n_medium, pixel_um=optics.pixel_um)
        z_max = float(np.clip(z_max, *cfg.defocus_um))
    else:
        z_max = float(rng.uniform(*cfg.defocus_um))
    kind = _pick(rng, cfg.depth_weights)
    fraction = float(rng.uniform(*cfg.blur_fraction))
    depth = depth_map(rng, (h, w), kind, fraction, z_max)
    radius_wf = effective_blur_radius_px(z_max, na=optics.na, wavelength_um=optics.wavelength_um,
                                         n_medium=optics.n_medium, pixel_um=optics.pixel_um,
                                         bandwidth=cfg.bandwidth)
    if family == "widefield":
        radius = radius_wf
        psf_at = psf_function("widefield", optics, bandwidth=cfg.bandwidth)
    else:
        radius = r_max if cfg.radius_px is not None else radius_wf
        psf_at = psf_function(family, optics, z_max=z_max, radius_max_px=radius)
    # a level every ~3 px of blur radius is enough to hide the steps; small blurs need few
    levels = int(np.clip(math.ceil(radius / 3.0), 2, max(2, cfg.levels)))
    no_blur = cfg.no_blur_share > 0 and bool(rng.random() < cfg.no_blur_share)
    if no_blur:
        blurred, radius = target.copy(), 0.0
        info["no_blur"] = True
    else:
        blurred = blur_with_depth(target, depth, psf_at, levels=levels)

    if cfg.noise is not None:
        photons = _loguniform(rng, *cfg.noise.photons)
        read = float(rng.uniform(*cfg.noise.read_noise))
        blurred = add_noise(blurred, rng, photons, read)
        if cfg.noisy_target:
            target = add_noise(target, rng, photons, read)
        info.update(photons=photons, read_noise=read)
    mask = depth > 0
    info.update(family=family, na=optics.na, wavelength_um=optics.wavelength_um,
                n_medium=optics.n_medium, pixel_um=optics.pixel_um, defocus_um=z_max,
                radius_px=float(radius), depth_kind=kind, blurred_fraction=float(mask.mean()),
                brightfield=bool(brightfield), gain=gain, background=background, levels=levels)
    return Simulated(blurred=blurred.astype(np.float32), sharp=target, depth_um=depth,
                     mask=mask, psf_info=info)
