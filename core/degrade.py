"""Defocus PSFs and the local-defocus simulator (shared by training, benchmarks and `deblur simulate`).

We cannot download training data, so every model learns from sharp images blurred here. The
blur has to look like a real out-of-focus region of a widefield microscope, or the models will
not transfer to real images:

* **Widefield defocus PSF** (`defocus_psf`): the scalar Debye / Born-Wolf integral of a uniform
  circular pupil with the exact (high-NA) defocus phase of the angular spectrum,

      A(r) = integral_0^1 J0(2 pi NA r rho / lambda) exp(-i 2 pi n z (1 - cos theta) / lambda) rho d rho,
      sin theta = rho NA / n,    PSF(r) = |A(r)|^2,

  averaged over a band of wavelengths (default +-10 %, as an emission filter passes), integrated
  over the camera pixel (supersampling), cropped to 99.9 % of its energy and normalised to unit
  sum. It has the concentric Fresnel rings of a real defocused spot, and in focus it is the
  Airy pattern. The pupil is uniform (no apodisation) and the defocus is the displacement of
  the focal plane in a medium of index n (no index mismatch, no aberrations); the PSF depends
  only on |z|. The profile is computed out to 1.1 geometric radii + 3 edge-fringe widths
  sqrt(lambda z / n) + 8 Airy radii (the far Airy tail beyond, ~3 % of a focused spot's energy,
  is dropped), so kernels grow with the blur instead of being fixed and giant. Numerically: Gauss-
  Legendre quadrature in rho, one Bessel kernel shared by all wavelengths (in optical units),
  results cached; tests check it against an independent FFT angular-spectrum model.
* **Gaussian** and **uniform disk** PSFs as simple alternatives (`gaussian_psf`, `disk_psf`).
* **Spatially varying blur** (`blur_with_depth`): the depth map is quantised to a few levels, the
  image is convolved (FFT, reflect padding) with the PSF of each level, and the results are
  blended linearly between neighbouring levels. Pixels of depth 0 are returned untouched.
* **The simulator** (`simulate_local_defocus`): depth maps that are smooth random fields, tilted
  planes (a tilted slide) or blobs (a thick specimen), Poisson-Gaussian camera noise, intensity
  scaling, optional brightfield (transmitted light) contrast. Seeded by the caller's Generator.

Blur radius convention: `psf_radius_px` is the radius of the uniform disk whose 80 % encircled
energy radius equals the PSF's. It is exact for a disk (radius R -> R) and gives 2 sigma for a
Gaussian, so `gaussian_psf(r / 2)`, `disk_psf(r)` and a widefield PSF of radius r blur alike.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np
from scipy import ndimage, signal, special

__all__ = [
    "gaussian_psf", "disk_psf", "defocus_psf", "psf_radius_px", "geometric_radius_px",
    "effective_blur_radius_px", "defocus_for_radius", "psf_function", "blur_with_depth",
    "depth_map", "add_noise", "Optics", "NoiseConfig", "DefocusConfig", "Simulated",
    "sample_optics", "simulate_local_defocus", "relative_intensity", "IMMERSION",
]

#: refractive index of the common immersion media
IMMERSION: dict[str, float] = {"air": 1.0, "water": 1.333, "oil": 1.515}

# Widest PSF we ever build (half-size in pixels). A 10 um defocus of a 1.4 NA oil objective at
# 0.065 um/px has a radius of ~370 px; this bound only stops absurd parameter combinations.
_MAX_HALF = 1024


# --------------------------------------------------------------------------- simple PSFs

def _odd_crop_normalise(psf: np.ndarray) -> np.ndarray:
    psf = np.asarray(psf, dtype=np.float64)
    psf = np.clip(psf, 0.0, None)
    return psf / psf.sum()


def gaussian_psf(sigma_px: float, *, truncate: float = 4.0) -> np.ndarray:
    """Pixel-integrated 2-D Gaussian (float64, odd size, unit sum).

    Integrating over each pixel (differences of the error function) keeps sub-pixel sigmas exact
    instead of collapsing them to a delta. sigma <= 0 gives the identity kernel [[1.0]].
    """
    sigma = float(sigma_px)
    if not math.isfinite(sigma):
        raise ValueError(f"sigma must be a finite number, got {sigma_px!r}")
    if sigma <= 1e-6:
        return np.ones((1, 1))
    half = max(1, int(math.ceil(truncate * sigma)))
    if half > _MAX_HALF:
        raise ValueError(f"a Gaussian PSF of sigma {sigma:g} px is too large (max {_MAX_HALF // 4} px)")
    edges = (np.arange(-half, half + 2) - 0.5) / (sigma * math.sqrt(2.0))
    g = np.diff(special.erf(edges))
    return _odd_crop_normalise(np.outer(g, g))


def disk_psf(radius_px: float, *, supersample: int = 8) -> np.ndarray:
    """Uniform disk (the geometric-optics defocus blur), antialiased by pixel coverage.

    Each pixel's weight is the fraction of its area inside the circle (supersampled), so the
    PSF changes smoothly with a fractional radius. radius <= 0.5 gives the identity kernel.
    """
    radius = float(radius_px)
    if not math.isfinite(radius):
        raise ValueError(f"radius must be a finite number, got {radius_px!r}")
    if radius <= 0.5:
        return np.ones((1, 1))
    half = int(math.ceil(radius + 0.5)) - 1
    if half > _MAX_HALF:
        raise ValueError(f"a disk PSF of radius {radius:g} px is too large (max {_MAX_HALF} px)")
    s = int(supersample)
    sub = (np.arange(s) + 0.5) / s - 0.5
    coords = (np.arange(-half, half + 1)[:, None] + sub[None, :]).reshape(-1)
    inside = (coords[:, None] ** 2 + coords[None, :] ** 2) <= radius ** 2
    n = 2 * half + 1
    cover = inside.reshape(n, s, n, s).mean(axis=(1, 3))
    return _odd_crop_normalise(cover)


# --------------------------------------------------------------------------- widefield defocus PSF

def _check_optics(na: float, wavelength_um: float, n_medium: float, pixel_um: float) -> None:
    for name, v in (("na", na), ("wavelength_um", wavelength_um), ("n_medium", n_medium),
                    ("pixel_um", pixel_um)):
        if not (isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive number, got {v!r}")
    if na >= n_medium:
        raise ValueError(f"the numerical aperture ({na:g}) must be smaller than the refractive "
                         f"index of the immersion medium ({n_medium:g})")


def _encircled(psf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel radii sorted ascending and the cumulative energy at each."""
    h, w = psf.shape
    y = np.arange(h) - (h - 1) / 2.0
    x = np.arange(w) - (w - 1) / 2.0
    r = np.hypot(y[:, None], x[None, :]).reshape(-1)
    order = np.argsort(r, kind="stable")
    return r[order], np.cumsum(psf.reshape(-1)[order])


def _crop_energy(psf: np.ndarray, energy: float) -> np.ndarray:
    """Smallest centred square holding `energy` of the total, renormalised."""
    h = psf.shape[0] // 2
    yy, xx = np.indices(psf.shape)
    cheb = np.maximum(np.abs(yy - h), np.abs(xx - h)).reshape(-1)
    ring = np.bincount(cheb, weights=psf.reshape(-1), minlength=h + 1)
    cum = np.cumsum(ring) / ring.sum()
    k = int(np.searchsorted(cum, energy - 1e-12))
    k = min(max(k, 0), h)
    out = psf[h - k:h + k + 1, h - k:h + k + 1]
    return out / out.sum()


@lru_cache(maxsize=64)
def _leggauss(m: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(m)


# J0 on a fine table: linear interpolation error < 2e-5, ~20x faster than special.j0
_J0_STEP = 1.0 / 64.0
_J0_MAX = 4096.0
_J0_TABLE: np.ndarray | None = None


def _j0(x: np.ndarray) -> np.ndarray:
    global _J0_TABLE
    if float(x.max(initial=0.0)) > _J0_MAX:
        return special.j0(x)
    if _J0_TABLE is None:
        _J0_TABLE = special.j0(np.arange(0.0, _J0_MAX + 2 * _J0_STEP, _J0_STEP))
    idx = x * (1.0 / _J0_STEP)
    i = idx.astype(np.int64)
    f = idx - i
    return _J0_TABLE[i] * (1.0 - f) + _J0_TABLE[i + 1] * f


@lru_cache(maxsize=256)
def _defocus_psf_cached(z: float, na: float, wavelength_um: float, n_medium: float, pixel_um: float,
                        bandwidth: float, n_wavelengths: int, energy: float) -> np.ndarray:
    sin_a = na / n_medium
    cos_a = math.sqrt(1.0 - sin_a * sin_a)
    tan_a = sin_a / cos_a
    if bandwidth > 0 and n_wavelengths > 1:
        lams = wavelength_um * (1.0 + bandwidth * np.linspace(-1.0, 1.0, n_wavelengths))
    else:
        lams = np.array([wavelength_um])
    lam_min, lam_max = float(lams.min()), float(lams.max())

    # radial extent of the profile: the geometric shadow, the edge-diffraction fringe beyond it
    # (~sqrt(lambda z / n)) and 8 Airy radii of far rings; 99.9 % of this energy is kept below
    r_airy = 0.61 * lam_max / na
    r_geo = z * tan_a
    r_max = 1.1 * r_geo + 3.0 * math.sqrt(lam_max * z / n_medium) + 8.0 * r_airy + 2.0 * pixel_um
    r_max = min(r_max, (_MAX_HALF + 1) * pixel_um * math.sqrt(2.0))

    # Gauss-Legendre nodes on rho in [0, 1], ~3 per oscillation of the integrand
    cycles = na * r_max / lam_min + n_medium * z * (1.0 - cos_a) / lam_min
    m = int(min(4096, 16 * math.ceil((3.0 * cycles + 48) / 16)))
    nodes, weights = _leggauss(m)
    rho = 0.5 * (nodes + 1.0)
    wrho = 0.5 * weights * rho
    cos_t = np.sqrt(1.0 - (rho * sin_a) ** 2)

    # In the optical unit u = 2 pi NA r / lambda the Bessel kernel J0(u rho) is the same for every
    # wavelength: evaluate it once and apply each wavelength's defocus phase (one matrix product).
    du = math.pi / 8.0                                 # 8 samples per ring period (pi in u)
    u = np.arange(0.0, 2.0 * math.pi * na * r_max / lam_min + du, du)
    phases = np.exp(-1j * (2.0 * math.pi * n_medium * z) * np.outer(1.0 - cos_t, 1.0 / lams))
    kernel = _j0(u[:, None] * rho[None, :])
    # two real products: numpy's real @ complex path is ~50x slower than this
    intensity = (kernel @ (wrho[:, None] * phases.real)) ** 2 + (kernel @ (wrho[:, None] * phases.imag)) ** 2

    dr = lam_min / (16.0 * na)
    r = np.arange(0.0, r_max + dr, dr)
    profile = np.zeros_like(r)
    for j, lam in enumerate(lams):
        a = 2.0 * math.pi * na / lam
        # |A|^2 a^2 / pi has unit energy in the plane (Hankel-Parseval): equal weight per lambda
        profile += np.interp(a * r, u, intensity[:, j], right=0.0) * (a * a / math.pi)
    profile /= len(lams)

    # keep the radius holding `energy` of the profile's energy (2 pi r dr), then sample in 2-D
    cum = np.cumsum(profile * r)
    r_keep = float(r[min(len(r) - 1, int(np.searchsorted(cum, energy * cum[-1])))])
    half = int(min(_MAX_HALF, math.ceil(r_keep / pixel_um + 0.5)))

    # integrate over each pixel (supersampled finely enough to resolve the rings); the PSF is
    # symmetric, so one quadrant (pixels 0..half on both axes) is computed and mirrored
    s = int(min(7, max(1, math.ceil(pixel_um / (lam_min / (4.0 * na))))))
    sub = (np.arange(s) + 0.5) / s - 0.5
    coords = (np.arange(0, half + 1)[:, None] + sub[None, :]).reshape(-1) * pixel_um
    q = half + 1
    quad = np.empty((q, q))
    c2 = coords ** 2
    band = max(1, 2_000_000 // (q * s * s * q))         # rows per chunk: bounded memory
    for i0 in range(0, q, band):
        i1 = min(q, i0 + band)
        rr = np.sqrt(c2[i0 * s:i1 * s, None] + c2[None, :])
        quad[i0:i1] = np.interp(rr, r, profile, right=0.0).reshape(i1 - i0, s, q, s).mean(axis=(1, 3))
    top = np.concatenate([quad[::-1, :0:-1], quad[::-1]], axis=1)
    bottom = np.concatenate([quad[1:, :0:-1], quad[1:]], axis=1)
    psf = np.concatenate([top, bottom], axis=0)
    psf = _crop_energy(_odd_crop_normalise(psf), energy)
    psf.setflags(write=False)
    return psf


def defocus_psf(defocus_um: float, *, na: float = 0.8, wavelength_um: float = 0.52,
                n_medium: float = 1.0, pixel_um: float = 0.2, bandwidth: float = 0.1,
                n_wavelengths: int = 5, energy: float = 0.999) -> np.ndarray:
    """Scalar widefield PSF at a defocus of `defocus_um` micrometres (float64, odd size, unit sum).

    Parameters
    ----------
    defocus_um
        Displacement of the focal plane in the immersion medium; only |defocus| matters.
    na, wavelength_um, n_medium, pixel_um
        Numerical aperture, emission wavelength (um), refractive index of the immersion medium
        (1.0 air, 1.333 water, 1.515 oil) and the pixel size in the specimen plane (um).
    bandwidth, n_wavelengths
        Relative half-width of the emission band and how many wavelengths sample it; averaging
        smooths the rings as a real filter does (bandwidth 0: monochromatic).
    energy
        Fraction of the energy kept when cropping the kernel.

    Results are cached on parameters rounded to 1 nm / 0.001 (returned as a fresh copy).
    """
    z = float(defocus_um)
    if not math.isfinite(z):
        raise ValueError(f"defocus must be a finite number, got {defocus_um!r}")
    _check_optics(na, wavelength_um, n_medium, pixel_um)
    if not 0.0 <= bandwidth < 0.5:
        raise ValueError(f"bandwidth must be in [0, 0.5), got {bandwidth!r}")
    if not 0.5 < energy <= 1.0:
        raise ValueError(f"energy must be in (0.5, 1], got {energy!r}")
    psf = _defocus_psf_cached(round(abs(z), 3), round(float(na), 3), round(float(wavelength_um), 3),
                              round(float(n_medium), 3), round(float(pixel_um), 4),
                              round(float(bandwidth), 3), int(n_wavelengths), float(energy))
    return psf.copy()


def psf_radius_px(psf: np.ndarray) -> float:
    """Effective blur radius (px): radius of the uniform disk with the same 80 % energy radius.

    A disk of radius R gives R and a Gaussian 2 sigma (within a few per cent above ~2 px);
    pixels count as small squares, so a single-pixel kernel gives ~0.56. Used to state blur
    sizes in cards and to match Gaussian/disk PSFs to widefield ones.
    """
    psf = np.asarray(psf, dtype=np.float64)
    if psf.ndim != 2 or psf.size == 0:
        raise ValueError("the PSF must be a non-empty 2-D array")
    total = psf.sum()
    if not total > 0:
        raise ValueError("the PSF must have a positive sum")
    psf = psf / total
    # pixels are small squares, not points: for small kernels spread each over s x s sub-pixels
    # so the 80 % radius is found to a fraction of a pixel
    s = max(1, min(8, 96 // max(psf.shape)))
    if s > 1:
        psf = np.kron(psf, np.ones((s, s)) / (s * s))
    r, cum = _encircled(psf)
    target = 0.8
    i = int(np.searchsorted(cum, target))
    if i == 0:
        return 0.0
    r_lo, r_hi = r[i - 1], r[i]
    c_lo, c_hi = cum[i - 1], cum[i]
    r80 = r_lo + (r_hi - r_lo) * (target - c_lo) / max(c_hi - c_lo, 1e-300)
    return float(r80 / s / math.sqrt(target))


def geometric_radius_px(defocus_um: float, *, na: float, n_medium: float, pixel_um: float) -> float:
    """Radius of the geometric-optics blur circle, |z| tan(asin(NA / n)) / pixel."""
    sin_a = na / n_medium
    return abs(float(defocus_um)) * sin_a / math.sqrt(1.0 - sin_a * sin_a) / pixel_um


def effective_blur_radius_px(defocus_um: float, *, na: float = 0.8, wavelength_um: float = 0.52,
                             n_medium: float = 1.0, pixel_um: float = 0.2,
                             bandwidth: float = 0.1) -> float:
    """Effective radius (px, `psf_radius_px`) of the widefield PSF at this defocus."""
    return psf_radius_px(defocus_psf(defocus_um, na=na, wavelength_um=wavelength_um,
                                     n_medium=n_medium, pixel_um=pixel_um, bandwidth=bandwidth))


def _geometric_effective_px_per_um(na: float, n_medium: float, pixel_um: float) -> float:
    """Effective radius (px) per um of defocus in geometric optics.

    With a uniform pupil, the ray through pupil radius rho lands at z tan(theta), sin(theta) =
    rho NA / n, and the pupil disk of radius sqrt(0.8) holds 80 % of the energy, so the 80 %
    radius is z tan(asin(sqrt(0.8) NA / n)); dividing by sqrt(0.8) gives the equivalent disk.
    """
    s = math.sqrt(0.8) * na / n_medium
    return s / math.sqrt(1.0 - s * s) / math.sqrt(0.8) / pixel_um


def defocus_for_radius(radius_px: float, *, na: float, wavelength_um: float, n_medium: float,
                       pixel_um: float, refine: bool = False) -> float:
    """Defocus (um) whose widefield PSF has about this effective radius (`psf_radius_px`).

    Uses r_eff^2 ~ r_geo(z)^2 + r_focus^2 with the geometric-optics 80 % radius r_geo and the
    computed in-focus radius r_focus: within ~10 % once the defocus spans several waves.
    `refine` adds a secant step on the real PSF (one more PSF computation, ~2 % accuracy).
    Radii at or below the in-focus radius give 0.
    """
    kw = dict(na=na, wavelength_um=wavelength_um, n_medium=n_medium, pixel_um=pixel_um)
    r0 = effective_blur_radius_px(0.0, **kw)
    target = float(radius_px)
    if target <= r0:
        return 0.0
    per_um = _geometric_effective_px_per_um(na, n_medium, pixel_um)
    z = math.sqrt(target * target - r0 * r0) / per_um
    if refine:
        r1 = effective_blur_radius_px(z, **kw)
        if r1 > r0:
            z *= math.sqrt((target * target - r0 * r0) / (r1 * r1 - r0 * r0))
    return z


@dataclass(frozen=True)
class Optics:
    """A microscope's imaging parameters (what a widefield PSF needs)."""

    na: float = 0.8
    wavelength_um: float = 0.52
    n_medium: float = 1.0
    pixel_um: float = 0.2

    def __post_init__(self) -> None:
        _check_optics(self.na, self.wavelength_um, self.n_medium, self.pixel_um)


def psf_function(family: str, optics: Optics, *, z_max: float = 1.0, radius_max_px: float | None = None,
                 bandwidth: float = 0.1) -> Callable[[float], np.ndarray]:
    """PSF as a function of depth (um) for `blur_with_depth`.

    "widefield" is the optical PSF at |z|; "gaussian" and "disk" grow linearly with |z| to an
    effective radius `radius_max_px` at `z_max` (default: the widefield radius at z_max), so all
    three families give the same blur size at the same depth.
    """
    if family == "widefield":
        return lambda z: defocus_psf(z, na=optics.na, wavelength_um=optics.wavelength_um,
                                     n_medium=optics.n_medium, pixel_um=optics.pixel_um,
                                     bandwidth=bandwidth)
    if family not in ("gaussian", "disk"):
        raise ValueError(f"unknown PSF family {family!r} (use widefield, gaussian or disk)")
    if radius_max_px is None:
        radius_max_px = effective_blur_radius_px(z_max, na=optics.na, wavelength_um=optics.wavelength_um,
                                                 n_medium=optics.n_medium, pixel_um=optics.pixel_um)
    per_um = float(radius_max_px) / max(float(z_max), 1e-9)
    if family == "gaussian":
        return lambda z: gaussian_psf(per_um * abs(z) / 2.0)
    return lambda z: disk_psf(per_um * abs(z))


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

    def __post_init__(self) -> None:
        unknown = set(self.objectives) - set(IMMERSION)
        if unknown:
            raise ValueError(f"unknown immersion medium(s) {sorted(unknown)}; known: {sorted(IMMERSION)}")
        for medium, (lo, hi) in self.objectives.items():
            if not 0 < lo <= hi < IMMERSION[medium]:
                raise ValueError(f"NA range {lo}-{hi} is impossible in {medium} (n = {IMMERSION[medium]})")
        if not any(self.immersion_weights.get(m, 0) > 0 for m in self.objectives):
            raise ValueError("no immersion medium with objectives has a positive weight")

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
