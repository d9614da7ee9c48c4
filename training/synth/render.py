"""Shared drawing tools of the procedural specimens: seeded noise fields, scattering and
splatting objects, Voronoi-like cells, in-focus optics and the final intensity scaling."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

# --------------------------------------------------------------------------- helpers

def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _shape(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        h = w = int(size)
    else:
        h, w = (int(v) for v in size)
    if h < 8 or w < 8:
        raise ValueError(f"a specimen must be at least 8 x 8 pixels, got {h} x {w}")
    return h, w


#: plausible pixel sizes (um) per kind: the magnifications each specimen is usually imaged at
PIXEL_RANGE: dict[str, tuple[float, float]] = {
    "nuclei": (0.16, 0.5),
    "cells": (0.16, 0.5),
    "filaments": (0.065, 0.33),
    "bacteria": (0.065, 0.16),
    "round_cells": (0.1, 0.4),
    "parasites": (0.08, 0.3),
    "phase_contrast": (0.25, 0.5),
    "tissue": (0.2, 0.5),
}


def _pixel(rng: np.random.Generator, pixel_um: float | None, lo: float, hi: float) -> float:
    """The given pixel size, or a random one in [lo, hi] um (log-uniform)."""
    if pixel_um is not None:
        if not pixel_um > 0:
            raise ValueError(f"pixel_um must be positive, got {pixel_um!r}")
        return float(pixel_um)
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _unit(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation."""
    x = x - x.mean()
    return x / (x.std() + 1e-12)


def _interp_matrix(n_out: int, n_in: int, wrap: bool) -> np.ndarray:
    """(n_out, n_in) linear-interpolation matrix mapping pixel centres of a coarse grid to a fine one."""
    pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    i0 = np.floor(pos).astype(np.int64)
    f = pos - i0
    m = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    if wrap:
        np.add.at(m, (rows, i0 % n_in), 1.0 - f)
        np.add.at(m, (rows, (i0 + 1) % n_in), f)
    else:
        np.add.at(m, (rows, np.clip(i0, 0, n_in - 1)), 1.0 - f)
        np.add.at(m, (rows, np.clip(i0 + 1, 0, n_in - 1)), f)
    return m


def _upsample(small: np.ndarray, shape: tuple[int, int], wrap: bool = False) -> np.ndarray:
    """Bilinear upsampling as two small matrix products (much faster than ndimage.zoom)."""
    return _interp_matrix(shape[0], small.shape[0], wrap) @ small @ _interp_matrix(shape[1], small.shape[1], wrap).T


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian random field with correlation length `sigma` px, unit std.

    Fine scales are filtered at full resolution; coarse ones are made on a small grid and
    upsampled, so the cost does not grow with sigma.
    """
    h, w = shape
    if sigma <= 4.0:
        return _unit(ndimage.gaussian_filter(rng.standard_normal(shape), max(sigma, 0.3), mode="wrap"))
    step = sigma / 2.0
    gh, gw = max(4, int(math.ceil(h / step)) + 1), max(4, int(math.ceil(w / step)) + 1)
    small = ndimage.gaussian_filter(rng.standard_normal((gh, gw)), 2.0, mode="wrap")
    return _unit(_upsample(small, (h, w), wrap=True))


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _scatter(rng: np.random.Generator, shape: tuple[int, int], min_dist: float, n_max: int,
             pad: float = 0.0, attempts: int = 4) -> np.ndarray:
    """Random points (y, x) at least `min_dist` apart (greedy dart throwing), as a (N, 2) array."""
    h, w = shape
    n_cand = int(min(200_000, max(n_max * attempts, 16)))
    pts = np.column_stack([rng.uniform(-pad, h + pad, n_cand), rng.uniform(-pad, w + pad, n_cand)])
    if min_dist <= 0 or n_cand < 2:
        return pts[:n_max]
    tree = cKDTree(pts)
    neigh = tree.query_ball_point(pts, r=min_dist)
    alive = np.ones(n_cand, dtype=bool)
    keep: list[int] = []
    for i in range(n_cand):                       # over candidate objects, not pixels
        if not alive[i]:
            continue
        keep.append(i)
        alive[neigh[i]] = False
        if len(keep) >= n_max:
            break
    return pts[keep]


def _splat(shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray, ws: np.ndarray | float = 1.0) -> np.ndarray:
    """Bilinear splatting of weighted points into an image (points outside are dropped)."""
    h, w = shape
    ws = np.broadcast_to(np.asarray(ws, dtype=np.float64), ys.shape)
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    fy = ys - y0
    fx = xs - x0
    out = np.zeros(h * w)
    for dy, dx, wt in ((0, 0, (1 - fy) * (1 - fx)), (1, 0, fy * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 1, fy * fx)):
        yy, xx = y0 + dy, x0 + dx
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        out += np.bincount((yy[ok] * w + xx[ok]), weights=(ws * wt)[ok], minlength=h * w)
    return out.reshape(h, w)


def _nearest_seed(shape: tuple[int, int], seeds: np.ndarray, warp: tuple[np.ndarray, np.ndarray] | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index of the nearest seed for every pixel and the (dy, dx) offset to it.

    Seeds may lie outside the field. `warp` displaces the pixel positions first, which makes
    Voronoi boundaries wavy like real cell borders. Uses one Euclidean distance transform of
    the rasterised seeds (seed positions rounded to the pixel grid for the assignment only).
    """
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    if warp is not None:
        yy = yy + warp[0]
        xx = xx + warp[1]
    pad = int(math.ceil(max(0.0, -seeds[:, 0].min(), -seeds[:, 1].min(), seeds[:, 0].max() - h + 1,
                            seeds[:, 1].max() - w + 1,
                            -yy.min(), -xx.min(), yy.max() - h + 1, xx.max() - w + 1))) + 1
    grid = np.full((h + 2 * pad, w + 2 * pad), -1, dtype=np.int64)
    gy = np.clip(np.rint(seeds[:, 0]).astype(np.int64) + pad, 0, h + 2 * pad - 1)
    gx = np.clip(np.rint(seeds[:, 1]).astype(np.int64) + pad, 0, w + 2 * pad - 1)
    grid[gy, gx] = np.arange(len(seeds))
    _, (iy, ix) = ndimage.distance_transform_edt(grid < 0, return_indices=True)
    nearest = grid[iy, ix]
    if warp is None:
        idx = nearest[pad:pad + h, pad:pad + w]
    else:
        ry = np.clip(np.rint(yy).astype(np.int64) + pad, 0, h + 2 * pad - 1)
        rx = np.clip(np.rint(xx).astype(np.int64) + pad, 0, w + 2 * pad - 1)
        idx = nearest[ry, rx]
    dy = yy - seeds[idx, 0]
    dx = xx - seeds[idx, 1]
    return idx, dy, dx


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; wide ones on a downsampled copy (same look, a fraction of the cost)."""
    if sigma <= 6.0:
        return ndimage.gaussian_filter(img, sigma, mode="reflect")
    f = sigma / 3.0
    h, w = img.shape
    sh, sw = max(4, round(h / f)), max(4, round(w / f))
    down_y, down_x = _interp_matrix(h, sh, False).T, _interp_matrix(w, sw, False).T
    small = (down_y / down_y.sum(1, keepdims=True)) @ img @ (down_x / down_x.sum(1, keepdims=True)).T
    small = ndimage.gaussian_filter(small, 3.0 * sh / h * f, mode="reflect")
    return _upsample(small, (h, w))


def _ellipse_distance(dy: np.ndarray, dx: np.ndarray, idx: np.ndarray, a: np.ndarray, b: np.ndarray,
                      angle: np.ndarray, harmonics: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Normalised elliptical distance (1 on the outline) of each pixel to its own seed's ellipse,
    with per-seed outline wobble from low angular harmonics. Returns (d, polar angle)."""
    c, s = np.cos(angle).astype(np.float32)[idx], np.sin(angle).astype(np.float32)[idx]
    dx = dx.astype(np.float32, copy=False)
    dy = dy.astype(np.float32, copy=False)
    u = dx * c + dy * s
    v = dy * c - dx * s
    d = np.sqrt((u / a.astype(np.float32)[idx]) ** 2 + (v / b.astype(np.float32)[idx]) ** 2)
    theta = np.arctan2(v, u)
    if harmonics is not None:
        wob = np.ones_like(d)
        for k in range(harmonics.shape[1]):
            amp = harmonics[:, k, 0].astype(np.float32)[idx]
            ph = harmonics[:, k, 1].astype(np.float32)[idx]
            wob += amp * np.cos((k + 2) * theta + ph)
        d = d / wob
    return d.astype(np.float64), theta


def _wobble(rng: np.random.Generator, n: int, strength: float, k: int = 3) -> np.ndarray:
    """Random outline harmonics (n, k, [amplitude, phase]); amplitudes fall with order."""
    amp = rng.uniform(0.0, strength, (n, k)) / (1.0 + np.arange(k))[None, :]
    ph = rng.uniform(0.0, 2 * np.pi, (n, k))
    return np.stack([amp, ph], axis=-1)


def _psf_blur(img: np.ndarray, pixel_um: float, na: float = 0.9, wavelength_um: float = 0.52) -> np.ndarray:
    """In-focus optics: blur by the Airy core (Gaussian sigma 0.21 lambda / NA) so edges are not
    sharper than a microscope can image (at least a 0.5 px sigma against aliasing)."""
    sigma = max(0.5, 0.21 * wavelength_um / na / pixel_um)
    return ndimage.gaussian_filter(img, sigma, mode="reflect")


def _finish(img: np.ndarray, top: float = 0.92) -> np.ndarray:
    """Scale so the 99.9th percentile sits at `top` (a little headroom, as a well-exposed camera
    image has) and clip to [0, 1], float32."""
    img = np.asarray(img, dtype=np.float64)
    hi = np.percentile(img[:: max(1, img.shape[0] // 256), :: max(1, img.shape[1] // 256)], 99.9)
    lo = min(0.0, float(img.min()))
    if hi <= lo:
        return np.zeros(img.shape, np.float32)
    return np.clip((img - lo) / (hi - lo) * top, 0.0, 1.0).astype(np.float32)


def _haze(rng: np.random.Generator, img: np.ndarray, scale_px: float, amount: float) -> np.ndarray:
    """Out-of-focus light from other planes of a widefield specimen: a broad blur of itself."""
    return amount * _blur(img, max(2.0, scale_px))


def _option(rng: np.random.Generator, value: str | None, weights: dict[str, float], what: str) -> str:
    """`value`, or one of `weights`' names drawn with those weights; ValueError naming the choices."""
    names = list(weights)
    value = value or str(rng.choice(names, p=list(weights.values())))
    if value not in names:
        raise ValueError(f"unknown {what} {value!r} (use {', '.join(names[:-1])} or {names[-1]})")
    return value
