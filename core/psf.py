"""Point spread functions of defocus: the widefield (Born-Wolf) PSF of a real microscope, and
the simple Gaussian and disk alternatives; blur-radius conversions; the optics they depend on.

Shared by the local-defocus simulator (``core.defocus``), Richardson-Lucy deconvolution
(``core.models.classical``), the benchmark and training.

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

Blur radius convention: `psf_radius_px` is the radius of the uniform disk whose 80 % encircled
energy radius equals the PSF's. It is exact for a disk (radius R -> R) and gives 2 sigma for a
Gaussian, so `gaussian_psf(r / 2)`, `disk_psf(r)` and a widefield PSF of radius r blur alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from scipy import special

__all__ = [
    "gaussian_psf", "disk_psf", "defocus_psf", "psf_radius_px", "geometric_radius_px",
    "effective_blur_radius_px", "defocus_for_radius", "psf_function", "Optics", "IMMERSION",
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
