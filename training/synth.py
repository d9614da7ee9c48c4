"""Procedural specimens: sharp microscopy-like fields made from nothing, for `--data synthetic`.

No data can be downloaded, so the models learn what cells look like from these generators and
from scikit-image's bundled photographs (a generic natural-texture prior). Each generator draws
a field at a physical pixel size, so nuclei, bacteria and filaments have realistic sizes in
pixels whatever the magnification, and renders it the way the microscope would:

* ``nuclei``         dense fields of touching nuclei (DAPI/Hoechst): chromatin texture,
                     chromocentres, nucleoli, optional lamina rim, bright mitotic figures
* ``cells``          confluent or sparse cells: textured cytoplasm, membranes, nuclei
* ``filaments``      cytoskeleton: microtubules radiating from the centrosome, stress fibres
* ``bacteria``       rods (E. coli, B. subtilis), aligned micro-colonies, dividing cells
* ``round_cells``    suspension cells / yeast: round, some budding, bright rims or cytoplasm
* ``parasites``      Giemsa blood smear in brightfield: red cells with central pallor, malaria
                     ring forms and trophozoites, the odd white cell
* ``phase_contrast`` spread and rounded cells with the dark/bright halo of phase contrast
* ``tissue``         H&E stained tissue in brightfield: glands, stroma fibres, nuclei
* ``natural``        a random crop of a bundled scikit-image picture

All return float32 images in [0, 1], shape (H, W) (``tissue(..., rgb=True)``: (H, W, 3)). They are
vectorised (no Python loop over pixels): a 512 x 512 field takes tens of milliseconds. The
images are clean (no camera noise): `core.degrade` adds blur and noise.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = [
    "nuclei", "cells", "filaments", "bacteria", "round_cells", "parasites", "phase_contrast",
    "tissue", "natural", "random_specimen", "GENERATORS", "MODALITY", "DEFAULT_WEIGHTS",
    "NATURAL_IMAGES",
]

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


# --------------------------------------------------------------------------- nuclei

def nuclei(size: int | tuple[int, int], seed: int | np.random.Generator | None = 0, *,
           pixel_um: float | None = None, density: float | None = None, rim: bool | None = None,
           mitotic_fraction: float | None = None) -> np.ndarray:
    """Nuclear stain (DAPI/Hoechst) of a cell monolayer: many touching nuclei.

    Nuclei are 9-17 um ellipses with wobbly outlines, packed from sparse to confluent (density
    0-1), flattened against each other where they touch, with fine chromatin texture, bright
    chromocentres, dark nucleoli, a brighter rim when `rim` (lamin-like stain), a few bright
    condensed mitotic/apoptotic figures, and widefield haze around them.
    """
    rng = _rng(seed)
    h, w = _shape(size)
    px = _pixel(rng, pixel_um, *PIXEL_RANGE["nuclei"])
    density = float(rng.uniform(0.3, 1.0) ** 0.6 if density is None else density)
    rim = bool(rng.random() < 0.2) if rim is None else rim
    mitotic_fraction = float(rng.uniform(0.0, 0.08) if mitotic_fraction is None else mitotic_fraction)

    mean_d_um = rng.uniform(9.0, 15.0)
    r_mean = 0.5 * mean_d_um / px                               # px
    spacing = 2 * r_mean * (1.7 - 0.9 * density)                # dense fields overlap a little
    n_max = int(1.4 * h * w / (spacing ** 2) + 4)
    seeds = _scatter(rng, (h, w), spacing, n_max, pad=r_mean)
    n = len(seeds)
    size_f = np.exp(rng.normal(0.0, 0.15, n))
    aspect = rng.uniform(1.0, 1.45, n)
    a = r_mean * size_f * np.sqrt(aspect)
    b = r_mean * size_f / np.sqrt(aspect)
    angle = rng.uniform(0, np.pi, n)
    bright = np.exp(rng.normal(0.0, 0.25, n))                  # DNA content / dye uptake varies
    mitotic = rng.random(n) < mitotic_fraction
    # mitotic figures: condensed, smaller, very bright; metaphase plates are thin bars
    a[mitotic] *= rng.uniform(0.45, 0.75, mitotic.sum())
    b[mitotic] *= rng.uniform(0.25, 0.6, mitotic.sum())
    bright[mitotic] *= rng.uniform(1.3, 2.2, mitotic.sum())

    idx, dy, dx = _nearest_seed((h, w), seeds)
    d, _ = _ellipse_distance(dy, dx, idx, a, b, angle, _wobble(rng, n, 0.12))
    edge = 1.2 / max(r_mean, 1.0)
    inside = _smoothstep((1.0 - d) / edge)
    # thickness profile of a flattened ellipsoid: flat top, soft sides
    body = np.sqrt(np.clip(1.0 - d ** 4, 0.0, 1.0))

    # touching nuclei: a thin darker seam where two Voronoi cells meet inside both
    seam = ndimage.grey_dilation(idx, size=3) != ndimage.grey_erosion(idx, size=3)
    seam = ndimage.gaussian_filter(seam.astype(np.float64), 0.7)

    tex_fine = _noise(rng, (h, w), max(0.6, 0.35 / px))        # chromatin, ~0.35 um grain
    tex_mid = _noise(rng, (h, w), max(1.0, 1.2 / px))          # heterochromatin patches
    chroma = 1.0 + 0.16 * tex_fine + 0.14 * tex_mid
    # chromocentres: bright dots ~0.6 um in some cell types
    n_spots = int(n * rng.uniform(0, 8))
    spots = _splat((h, w), rng.uniform(0, h, n_spots), rng.uniform(0, w, n_spots),
                   rng.uniform(0.5, 1.0, n_spots))
    spots = ndimage.gaussian_filter(spots, max(0.7, 0.3 / px)) * (2 * np.pi * max(0.7, 0.3 / px) ** 2)
    # nucleoli: 1-3 darker round domains of ~1.5-3 um
    n_nucl = int(n * rng.uniform(1.0, 3.0))
    nucl = _splat((h, w), rng.uniform(0, h, n_nucl), rng.uniform(0, w, n_nucl))
    sig_n = max(1.0, rng.uniform(0.6, 1.1) / px)
    nucl = ndimage.gaussian_filter(nucl, sig_n) * (2 * np.pi * sig_n ** 2)

    mit = mitotic[idx]
    cond = np.where(mit, np.clip(0.8 + 0.9 * tex_fine, 0.0, None), 1.0)    # condensed chromosomes
    img = inside * body * bright[idx] * chroma * cond
    img *= (1.0 - 0.45 * np.clip(nucl, 0, 1) * (~mit))
    img += 0.6 * inside * np.clip(spots, 0, 1.5) * bright[idx]
    if rim:
        img += 0.9 * inside * bright[idx] * np.exp(-((d - 0.9) / 0.08) ** 2)
    img *= (1.0 - 0.35 * seam * inside)
    img = np.clip(img, 0.0, None)
    img = img + _haze(rng, img, 3.0 * r_mean, rng.uniform(0.03, 0.12))
    img += rng.uniform(0.01, 0.05) * (1.0 + 0.3 * _noise(rng, (h, w), 20.0 * r_mean / 4))
    img = _psf_blur(img, px, na=rng.uniform(0.5, 1.3))
    return _finish(img)


# --------------------------------------------------------------------------- cells

def cells(size: int | tuple[int, int], seed: int | np.random.Generator | None = 0, *,
          pixel_um: float | None = None, confluence: float | None = None,
          stain: str | None = None) -> np.ndarray:
    """Adherent cells: irregular cell bodies with textured cytoplasm and a nucleus each.

    `stain` picks what is bright: "cytoplasm" (a cytoplasmic dye: granular, brighter around the
    nucleus, nucleus dimmer), "membrane" (bright outlines), "mixed" (cytoplasm + bright nuclei,
    as a sum of channels), chosen at random by default. Confluent fields tile the plane
    (wavy Voronoi borders); sparse ones leave dark gaps.
    """
    rng = _rng(seed)
    h, w = _shape(size)
    px = _pixel(rng, pixel_um, *PIXEL_RANGE["cells"])
    confluence = float(rng.uniform(0.2, 1.0) if confluence is None else confluence)
    stain = stain or str(rng.choice(["cytoplasm", "membrane", "mixed"], p=[0.4, 0.25, 0.35]))
    if stain not in ("cytoplasm", "membrane", "mixed"):
        raise ValueError(f"unknown stain {stain!r} (use cytoplasm, membrane or mixed)")

    cell_d = rng.uniform(22.0, 45.0) / px
    seeds = _scatter(rng, (h, w), 0.75 * cell_d, int(2.0 * h * w / cell_d ** 2 + 4), pad=cell_d / 2)
    n = len(seeds)
    warp_amp = 0.12 * cell_d
    warp = (warp_amp * _noise(rng, (h, w), cell_d / 3), warp_amp * _noise(rng, (h, w), cell_d / 3))
    idx, dy, dx = _nearest_seed((h, w), seeds, warp)
    # each cell's extent: confluent cells fill their Voronoi cell, sparse ones are smaller blobs
    reach = cell_d * np.exp(rng.normal(0, 0.2, n)) * (0.35 + 0.6 * confluence)
    aspect = rng.uniform(1.0, 2.2, n)
    angle = rng.uniform(0, np.pi, n)
    d_cell, _ = _ellipse_distance(dy, dx, idx, reach * np.sqrt(aspect), reach / np.sqrt(aspect), angle,
                                  _wobble(rng, n, 0.35, 4))
    border = ndimage.grey_dilation(idx, size=3) != ndimage.grey_erosion(idx, size=3)
    dist_border = ndimage.distance_transform_edt(~border)
    edge_soft = max(1.0, 0.6 / px)
    in_cell = _smoothstep((1.0 - d_cell) * reach[idx] / edge_soft) * _smoothstep(dist_border / edge_soft)

    # nucleus: an ellipse near the centre of each cell
    r_nuc = rng.uniform(4.5, 7.0) / px * np.exp(rng.normal(0, 0.12, n))
    na_ = r_nuc * rng.uniform(1.0, 1.3, n)
    nb_ = r_nuc / rng.uniform(1.0, 1.2, n)
    off = rng.normal(0, 0.15, (n, 2)) * reach[:, None]
    d_nuc, _ = _ellipse_distance(dy - off[idx, 0], dx - off[idx, 1], idx, na_, nb_, rng.uniform(0, np.pi, n),
                                 _wobble(rng, n, 0.08))
    in_nuc = _smoothstep((1.0 - d_nuc) * r_nuc[idx] / edge_soft) * in_cell
    thickness = np.clip(1.0 - d_cell, 0.0, 1.0) ** 0.5       # thin lamella at the edge

    gran = np.clip(_noise(rng, (h, w), max(0.6, 0.4 / px)), -1.5, None)     # vesicles, mitochondria
    reticular = np.abs(_noise(rng, (h, w), max(0.8, 0.8 / px)))           # ER-like network
    level = np.exp(rng.normal(0, 0.3, n))[idx]
    perinuclear = np.exp(-np.clip(d_nuc - 1.0, 0, None) * 0.9)
    if stain == "membrane":
        line = np.exp(-(dist_border / max(0.7, 0.35 / px)) ** 2) * (in_cell > 0.05)
        outline = np.exp(-(((1.0 - d_cell) * reach[idx]) / max(0.7, 0.35 / px)) ** 2) * (d_cell < 1.15)
        img = level * (np.maximum(line, outline) * (0.8 + 0.3 * gran) + 0.12 * in_cell * (1 + 0.5 * gran))
    else:
        cyto = in_cell * thickness * (1.0 + 0.35 * gran + 0.2 * reticular) * (0.6 + 0.6 * perinuclear)
        img = level * cyto * (1.0 - 0.55 * in_nuc)
        if stain == "mixed":
            chroma = 1.0 + 0.2 * _noise(rng, (h, w), max(0.6, 0.5 / px))
            img = 0.55 * img + 1.1 * in_nuc * chroma * np.exp(rng.normal(0, 0.2, n))[idx]
    img = np.clip(img, 0, None)
    img = img + _haze(rng, img, cell_d / 2, rng.uniform(0.03, 0.1)) + rng.uniform(0.01, 0.04)
    img = _psf_blur(img, px, na=rng.uniform(0.5, 1.3))
    return _finish(img)


# --------------------------------------------------------------------------- filaments

def _walks(rng: np.random.Generator, starts: np.ndarray, headings: np.ndarray, length: np.ndarray,
           step: float, persistence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth random curves (worm-like chains): points (F, L) and a validity mask per point."""
    f = len(starts)
    n_steps = int(np.ceil(length.max() / step)) + 1
    turn = rng.normal(0.0, math.sqrt(2.0 * step / persistence), (f, n_steps))
    theta = headings[:, None] + np.cumsum(turn, axis=1)
    ys = starts[:, :1] + np.cumsum(step * np.sin(theta), axis=1)
    xs = starts[:, 1:] + np.cumsum(step * np.cos(theta), axis=1)
    valid = (np.arange(n_steps)[None, :] * step) < length[:, None]
    return ys, xs, valid


def filaments(size: int | tuple[int, int], seed: int | np.random.Generator | None = 0, *,
              pixel_um: float | None = None, kind: str | None = None) -> np.ndarray:
    """Cytoskeleton: "microtubules" (long curved filaments radiating from a centrosome near the
    nucleus of each cell, dense at the centre), "actin" (straight, roughly parallel stress
    fibres plus a cortical rim), or "mixed". Filaments are diffraction-limited lines (~250 nm
    wide) of varying brightness, crossing and bundling.
    """
    rng = _rng(seed)
    h, w = _shape(size)
    px = _pixel(rng, pixel_um, *PIXEL_RANGE["filaments"])
    kind = kind or str(rng.choice(["microtubules", "actin", "mixed"], p=[0.45, 0.35, 0.2]))
    if kind not in ("microtubules", "actin", "mixed"):
        raise ValueError(f"unknown filament kind {kind!r} (use microtubules, actin or mixed)")
    cell_d = rng.uniform(30.0, 60.0) / px
    centres = _scatter(rng, (h, w), 0.8 * cell_d, int(1.5 * h * w / cell_d ** 2 + 2), pad=cell_d / 3)
    if len(centres) == 0:
        centres = np.array([[h / 2, w / 2]])
    # cell footprints (filaments stay mostly inside their cell), wavy borders between cells
    warp = (0.15 * cell_d * _noise(rng, (h, w), cell_d / 4), 0.15 * cell_d * _noise(rng, (h, w), cell_d / 4))
    idx, dy, dx = _nearest_seed((h, w), centres, warp)
    n = len(centres)
    reach = 0.5 * cell_d * np.exp(rng.normal(0, 0.15, n))
    d_cell, _ = _ellipse_distance(dy, dx, idx, reach * 1.2, reach / 1.2, rng.uniform(0, np.pi, n),
                                  _wobble(rng, n, 0.3, 4))
    footprint = _smoothstep((1.1 - d_cell) / 0.25)
    step = 0.7                                           # px between samples; the blur fills in
    ys_all, xs_all, ws_all = [], [], []
    if kind in ("microtubules", "mixed"):
        per_cell = int(rng.integers(80, 220))
        f = n * per_cell
        which = np.repeat(np.arange(n), per_cell)
        head = rng.uniform(0, 2 * np.pi, f)
        # most start at the centrosome, many are free (nucleated elsewhere or cut by the focal plane)
        free = rng.random(f) < 0.5
        spread = np.where(free, 0.6 * reach[which], 1.5 / px)
        start = centres[which] + rng.normal(0, 1.0, (f, 2)) * spread[:, None]
        length = reach[which] * rng.uniform(0.3, 1.4, f)
        ys, xs, valid = _walks(rng, start, head, length, step, persistence=rng.uniform(10, 30) / px)
        ys_all.append(ys[valid]); xs_all.append(xs[valid])
        ws_all.append(np.repeat(rng.uniform(0.4, 1.0, f), valid.sum(axis=1)))
    if kind in ("actin", "mixed"):
        per_cell = int(rng.integers(15, 45))
        f = n * per_cell
        which = np.repeat(np.arange(n), per_cell)
        main = rng.uniform(0, np.pi, n)[which]
        head = main + rng.normal(0, 0.18, f)
        off = rng.uniform(-1, 1, (f, 1)) * reach[which, None]
        normal = np.column_stack([np.cos(head), -np.sin(head)])
        along = np.column_stack([np.sin(head), np.cos(head)])
        length = 2 * reach[which] * rng.uniform(0.4, 1.0, f)
        start = centres[which] + off * normal - 0.5 * length[:, None] * along
        ys, xs, valid = _walks(rng, start, head, length, step, persistence=300.0 / px)
        ys_all.append(ys[valid]); xs_all.append(xs[valid])
        ws_all.append(np.repeat(rng.uniform(0.6, 2.0, f), valid.sum(axis=1)))   # bundles are brighter
    ys = np.concatenate(ys_all); xs = np.concatenate(xs_all); ws = np.concatenate(ws_all)
    lines = _splat((h, w), ys, xs, ws * step)
    # line brightness along the filament varies (dye density, bundling)
    lines *= np.clip(1.0 + 0.35 * _noise(rng, (h, w), max(1.0, 1.0 / px)), 0.2, None)
    lines *= footprint
    if kind in ("actin", "mixed"):
        cortex = np.exp(-(((1.0 - d_cell) * reach[idx]) / max(0.8, 0.4 / px)) ** 2) * (d_cell < 1.2)
        lines += 0.5 * cortex * (1 + 0.4 * _noise(rng, (h, w), max(1.0, 0.8 / px)))
    sigma = max(0.6, 0.11 / px)                              # ~250 nm FWHM line
    img = ndimage.gaussian_filter(lines, sigma) * (2 * np.pi * sigma ** 2) ** 0.5
    img = img + 0.15 * footprint * img.mean() * (1 + 0.3 * _noise(rng, (h, w), 2.0 / px))   # unpolymerised pool
    img = img + _haze(rng, img, 3.0 / px, rng.uniform(0.05, 0.2)) + rng.uniform(0.0, 0.03) * img.max()
    return _finish(np.clip(img, 0, None))


# --------------------------------------------------------------------------- bacteria

def _rods(rng: np.random.Generator, shape: tuple[int, int], px: float, density: float
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spherocylinder cells: (normalised distance to the rod axis, label, per-label brightness)."""
    h, w = shape
    width = rng.uniform(0.7, 1.1) / px
    length_um = rng.uniform(2.0, 4.5)
    length = length_um / px
    order = rng.random() < 0.6                            # micro-colonies align locally
    spacing = (0.55 + 1.4 * (1 - density)) * length
    centres = _scatter(rng, shape, spacing, int(2.5 * h * w / spacing ** 2 + 4), pad=length / 2)
    n = len(centres)
    if order:
        field = np.pi * _noise(rng, shape, 8 * length)
        iy = np.clip(centres[:, 0].astype(int), 0, h - 1)
        ix = np.clip(centres[:, 1].astype(int), 0, w - 1)
        angle = field[iy, ix] + rng.normal(0, 0.2, n)
    else:
        angle = rng.uniform(0, np.pi, n)
    lengths = length * np.exp(rng.normal(0, 0.25, n))
    # sample the axis of every rod and mark it; the distance transform then gives the capsule
    step = 0.5
    k = int(np.ceil(lengths.max() / step)) + 1
    t = np.arange(k)[None, :] * step - lengths[:, None] / 2
    valid = t <= lengths[:, None] / 2
    ys = centres[:, :1] + t * np.sin(angle)[:, None]
    xs = centres[:, 1:] + t * np.cos(angle)[:, None]
    yi = np.rint(ys[valid]).astype(int)
    xi = np.rint(xs[valid]).astype(int)
    lab = np.repeat(np.arange(n), valid.sum(axis=1))
    ok = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
    axis = np.full(shape, -1, dtype=np.int64)
    axis[yi[ok], xi[ok]] = lab[ok]
    if not (axis >= 0).any():
        axis[h // 2, w // 2] = 0
    dist, (iy, ix) = ndimage.distance_transform_edt(axis < 0, return_indices=True)
    label = axis[iy, ix]
    r = 0.5 * width * np.exp(rng.normal(0, 0.06, n))
    d = dist / r[label]
    return d, label, np.exp(rng.normal(0, 0.3, n))


def bacteria(size: int | tuple[int, int], seed: int | np.random.Generator | None = 0, *,
             pixel_um: float | None = None, density: float | None = None, stain: str | None = None) -> np.ndarray:
    """Rod-shaped bacteria (0.7-1.1 x 2-4.5 um): scattered or in aligned micro-colonies.

    `stain`: "cytoplasm" (filled rods, GFP-like, bright nucleoid-free poles vary), "membrane"
    (bright outline, FM dye-like) or "nucleoid" (compact DNA blobs inside dim rods).
    """
    rng = _rng(seed)
    h, w = _shape(size)
    px = _pixel(rng, pixel_um, *PIXEL_RANGE["bacteria"])
    density = float(rng.uniform(0.2, 1.0) if density is None else density)
    stain = stain or str(rng.choice(["cytoplasm", "membrane", "nucleoid"], p=[0.5, 0.25, 0.25]))
    if stain not in ("cytoplasm", "membrane", "nucleoid"):
        raise ValueError(f"unknown stain {stain!r} (use cytoplasm, membrane or nucleoid)")
    d, label, level = _rods(rng, (h, w), px, density)
    edge = 0.6 / max(2.0, 0.45 / px)
    inside = _smoothstep((1.0 - d) / edge)
    seam = ndimage.grey_dilation(label, size=3) != ndimage.grey_erosion(label, size=3)
    inside *= 1.0 - 0.6 * ndimage.gaussian_filter(seam.astype(float), 0.6)
    if stain == "membrane":
        img = np.exp(-((d - 0.85) / 0.2) ** 2) * level[label] + 0.15 * inside
    elif stain == "nucleoid":
        blobs = np.clip(_noise(rng, (h, w), max(1.0, 0.3 / px)) + 0.3, 0, None)
        img = inside * level[label] * (0.25 + 1.2 * blobs * (d < 0.7))
    else:
        img = inside * np.sqrt(np.clip(1 - d ** 2, 0, 1)) * level[label] * \
            (1 + 0.12 * _noise(rng, (h, w), max(0.7, 0.2 / px)))
    img = img + _haze(rng, img, 2.0 / px, rng.uniform(0.03, 0.1)) + rng.uniform(0.0, 0.04)
    img = _psf_blur(img, px, na=rng.uniform(0.9, 1.4))
    return _finish(img)


# --------------------------------------------------------------------------- round cells

def round_cells(size: int | tuple[int, int], seed: int | np.random.Generator | None = 0, *,
                pixel_um: float | None = None, kind: str | None = None) -> np.ndarray:
    """Round cells in fluorescence: "yeast" (4-7 um, budding, bright wall and dark vacuole) or
    "lymphocytes" (7-12 um, cytoplasmic stain around a big dim nucleus), scattered or clumped.
    """
    rng = _rng(seed)
    h, w = _shape(size)
    px = _pixel(rng, pixel_um, *PIXEL_RANGE["round_cells"])
    kind = kind or str(rng.choice(["yeast", "lymphocytes"]))
    if kind not in ("yeast", "lymphocytes"):
        raise ValueError(f"unknown kind {kind!r} (use yeast or lymphocytes)")
    diam = (rng.uniform(4.0, 7.0) if kind == "yeast" else rng.uniform(7.0, 12.0)) / px
    density = rng.uniform(0.2, 0.95)
    spacing = diam * (0.95 + 1.5 * (1 - density))
    seeds = _scatter(rng, (h, w), spacing, int(1.5 * h * w / spacing ** 2 + 3), pad=diam / 2)
    n = len(seeds)
    if kind == "yeast":                                  # buds: small cells touching a mother
        nb = int(n * rng.uniform(0.1, 0.4))
        mothers = rng.choice(n, nb, replace=nb > n) if n else np.zeros(0, int)
        ang = rng.uniform(0, 2 * np.pi, nb)
        bud_r = rng.uniform(0.3, 0.45, nb) * diam
        buds = seeds[mothers] + (0.5 * diam + 0.8 * bud_r)[:, None] * np.column_stack([np.sin(ang), np.cos(ang)])
        seeds = np.concatenate([seeds, buds])
        radii = np.concatenate([0.5 * diam * np.exp(rng.normal(0, 0.1, n)), bud_r])
    else:
        radii = 0.5 * diam * np.exp(rng.normal(0, 0.1, n))
    m = len(seeds)
    idx, dy, dx = _nearest_seed((h, w), seeds)
    asp = rng.uniform(1.0, 1.15, m)
    d, _ = _ellipse_distance(dy, dx, idx, radii * asp, radii / asp, rng.uniform(0, np.pi, m), _wobble(rng, m, 0.04))
    edge = 1.0 / np.maximum(radii[idx], 2.0)
    inside = _smoothstep((1.0 - d) / edge)
    level = np.exp(rng.normal(0, 0.3, m))[idx]
    tex = _noise(rng, (h, w), max(0.6, 0.3 / px))
    if kind == "yeast":
        wall = np.exp(-((d - 0.92) / 0.08) ** 2)
        vac_off = rng.normal(0, 0.2, (m, 2)) * radii[:, None]
        dv = np.hypot(dy - vac_off[idx, 0], dx - vac_off[idx, 1]) / (radii[idx] * rng.uniform(0.3, 0.55, m)[idx])
        vacuole = _smoothstep((1.0 - dv) / 0.3)
        img = level * (inside * (0.55 + 0.15 * tex) * (1 - 0.6 * vacuole) + 0.7 * wall * (d < 1.1))
    else:
        dn = d / rng.uniform(0.6, 0.8, m)[idx]
        nucleus = _smoothstep((1.0 - dn) / 0.1)
        img = level * inside * np.sqrt(np.clip(1 - d ** 2, 0, 1)) * (1 + 0.25 * tex) * (1 - 0.5 * nucleus)
    img = img + _haze(rng, img, diam / 2, rng.uniform(0.03, 0.12)) + rng.uniform(0.0, 0.04)
    img = _psf_blur(img, px, na=rng.uniform(0.6, 1.4))
    return _finish(np.clip(img, 0, None))


# --------------------------------------------------------------------------- blood smear

def parasites(size: int | tuple[int, int], seed: int | np.random.Generator | None = 0, *,
              pixel_um: float | None = None, parasitemia: float | None = None) -> np.ndarray:
    """Giemsa-stained thin blood smear in brightfield (transmitted light, bright background).

    Red cells are 7-8 um biconcave discs (darker rim, pale centre), packed like a monolayer;
    a fraction (`parasitemia`) carry Plasmodium: ring forms (a thin ring with 1-2 dark chromatin
    dots) or trophozoites (irregular dark bodies with pigment), plus the odd white cell with a
    dark lobed nucleus and the occasional platelet.
    """
    rng = _rng(seed)
    h, w = _shape(size)
    px = _pixel(rng, pixel_um, *PIXEL_RANGE["parasites"])
    parasitemia = float(rng.uniform(0.03, 0.25) if parasitemia is None else parasitemia)
    r_rbc = rng.uniform(3.5, 4.0) / px
    density = rng.uniform(0.5, 1.0)
    seeds = _scatter(rng, (h, w), 2 * r_rbc * (1.0 + 0.5 * (1 - density)) * 0.93,
                     int(1.5 * h * w / (2 * r_rbc) ** 2 + 4), pad=r_rbc)
    n = len(seeds)
    idx, dy, dx = _nearest_seed((h, w), seeds)
    radii = r_rbc * np.exp(rng.normal(0, 0.06, n))
    asp = rng.uniform(1.0, 1.12, n)
    d, theta = _ellipse_distance(dy, dx, idx, radii * asp, radii / asp, rng.uniform(0, np.pi, n), _wobble(rng, n, 0.04))
    edge = 0.8 / np.maximum(radii[idx], 2.0)
    inside = _smoothstep((1.0 - d) / edge)
    # biconcave thickness: thick torus, thin centre
    pallor = rng.uniform(0.45, 0.8, n)[idx]
    thick = inside * (1.0 - pallor * np.exp(-(d / 0.5) ** 2)) * (0.75 + 0.25 * np.sqrt(np.clip(1 - d ** 2, 0, 1)))
    od = 0.35 * np.exp(rng.normal(0, 0.08, n))[idx] * thick
    # parasites
    infected = rng.random(n) < parasitemia
    stage = rng.random(n) < 0.7                                      # True: ring form
    pr = radii * rng.uniform(0.22, 0.35, n)
    poff = rng.uniform(-0.45, 0.45, (n, 2)) * radii[:, None]
    pdist = np.hypot(dy - poff[idx, 0], dx - poff[idx, 1]) / pr[idx]
    ring_w = max(0.12, 0.25 / px / pr.mean())
    ring = np.exp(-((pdist - 1.0) / ring_w) ** 2)
    dot_ang = rng.uniform(0, 2 * np.pi, n)
    ddot = np.hypot(dy - poff[idx, 0] - pr[idx] * np.sin(dot_ang)[idx],
                    dx - poff[idx, 1] - pr[idx] * np.cos(dot_ang)[idx])
    dot = np.exp(-(ddot / max(0.8, 0.35 / px)) ** 2)
    tropho = _smoothstep((1.6 - pdist * (1 + 0.35 * _noise(rng, (h, w), max(1.0, 0.6 / px)))) / 0.5)
    pigment = np.clip(_noise(rng, (h, w), max(0.6, 0.2 / px)) - 1.2, 0, None)
    para = np.where(stage[idx], 0.9 * ring + 1.6 * dot, 0.9 * tropho * (1 + 2.0 * pigment))
    od = od + infected[idx] * inside * para
    # white cells: large dark lobed nucleus in a pale cytoplasm
    n_wbc = int(rng.poisson(h * w * px * px / 8000.0))
    if n_wbc:
        yy, xx = np.mgrid[0:h, 0:w].astype(float)
        for cy, cx in rng.uniform(0, 1, (n_wbc, 2)) * [h, w]:
            rw = rng.uniform(5.0, 7.0) / px
            dw = np.hypot(yy - cy, xx - cx) / rw
            cell = _smoothstep((1.0 - dw) / 0.05)
            lobes = _smoothstep((0.7 + 0.25 * np.cos(3 * np.arctan2(yy - cy, xx - cx)) - dw) / 0.1)
            od = od * (1 - cell) + cell * (0.15 + 1.4 * lobes * (1 + 0.2 * _noise(rng, (h, w), 0.4 / px)))
    # platelets: small purple dots between cells
    n_plt = int(rng.poisson(h * w * px * px / 400.0))
    plt = _splat((h, w), rng.uniform(0, h, n_plt), rng.uniform(0, w, n_plt))
    od = od + 0.8 * ndimage.gaussian_filter(plt, max(0.8, 0.8 / px)) * (2 * np.pi * max(0.8, 0.8 / px) ** 2) ** 0.5
    od = _psf_blur(od, px, na=rng.uniform(0.5, 1.4))
    bg = rng.uniform(0.8, 0.95) * (1.0 + 0.03 * _noise(rng, (h, w), 40.0 / px))      # uneven lamp
    return np.clip(bg * np.exp(-od), 0, 1).astype(np.float32)


# --------------------------------------------------------------------------- phase contrast

def phase_contrast(size: int | tuple[int, int], seed: int | np.random.Generator | None = 0, *,
                   pixel_um: float | None = None) -> np.ndarray:
    """Phase-contrast image of cultured cells: grey background, flat spread cells dark with a
    bright halo, thick rounded (mitotic) cells phase-bright, granules and nucleoli inside.

    Zernike's model: the specimen is a phase object U = exp(i phi); the phase ring advances the
    low spatial frequencies (a Gaussian low-pass of width `s`, the ring's finite size) by a
    quarter wave and attenuates them by `a`: I = |U - (1 + a i) G_s * U|^2 (positive phase
    contrast; 15 % of fields are negative, 1 - a i). That gives the halo
    and the contrast reversal of thick cells, as real phase contrast has.
    """
    rng = _rng(seed)
    h, w = _shape(size)
    px = _pixel(rng, pixel_um, *PIXEL_RANGE["phase_contrast"])
    cell_d = rng.uniform(20.0, 45.0) / px
    seeds = _scatter(rng, (h, w), 0.9 * cell_d, int(1.3 * h * w / cell_d ** 2 + 3), pad=cell_d / 3)
    n = len(seeds)
    keep = rng.random(n) < rng.uniform(0.35, 0.9)
    seeds = seeds[keep] if keep.any() else seeds[:1]
    n = len(seeds)
    warp = (0.15 * cell_d * _noise(rng, (h, w), cell_d / 4), 0.15 * cell_d * _noise(rng, (h, w), cell_d / 4))
    idx, dy, dx = _nearest_seed((h, w), seeds, warp)
    rounded = rng.random(n) < rng.uniform(0.05, 0.3)
    reach = 0.5 * cell_d * np.exp(rng.normal(0, 0.25, n))
    reach[rounded] = rng.uniform(5.0, 8.0, rounded.sum()) / px
    aspect = np.where(rounded, 1.05, rng.uniform(1.2, 3.5, n))
    wob = _wobble(rng, n, 0.45, 4)
    wob[rounded, :, 0] = 0.02
    d, _ = _ellipse_distance(dy, dx, idx, reach * np.sqrt(aspect), reach / np.sqrt(aspect),
                             rng.uniform(0, np.pi, n), wob)
    inside = _smoothstep((1.0 - d) * reach[idx] / max(1.0, 0.4 / px))
    # phase delay (rad): lamellae ~0.15, the nucleus region ~0.8, round cells 1.5-3
    r_nuc = rng.uniform(4.0, 6.5, n) / px
    dn = np.hypot(dy, dx) / np.minimum(r_nuc, 0.8 * reach / np.sqrt(aspect))[idx]
    gran = _noise(rng, (h, w), max(0.7, 0.5 / px))
    phi = inside * (0.15 + 0.65 * _smoothstep((1.0 - dn) / 0.4) + 0.04 * gran)
    nucleoli = np.clip(_noise(rng, (h, w), max(0.8, 0.6 / px)) - 1.6, 0, None) * (dn < 1)
    phi = phi + 0.5 * nucleoli * inside
    tall = rng.uniform(1.5, 3.0, n)[idx] * inside * np.sqrt(np.clip(1 - d ** 2, 0, 1))
    phi = np.where(rounded[idx], tall, phi) * rng.uniform(0.7, 1.3)
    phi = ndimage.gaussian_filter(phi, max(0.5, 0.2 / px))
    u = np.exp(1j * phi)
    s = rng.uniform(2.0, 5.0) / px                              # halo width
    low = _blur(u.real, s) + 1j * _blur(u.imag, s)
    a = rng.uniform(0.35, 0.6)
    sign = 1.0 if rng.random() < 0.85 else -1.0                 # positive (dark) or negative contrast
    img = np.abs(u - (1.0 + sign * a * 1j) * low) ** 2 / (a * a)      # background -> 1
    img *= 1.0 + 0.05 * _noise(rng, (h, w), 30.0 / px)        # uneven illumination
    # exposure: background at 35-50 %, the brightest parts just below saturation
    img *= rng.uniform(0.35, 0.5)
    top = float(np.percentile(img, 99.8))
    if top > 0.95:
        img *= 0.95 / top
    return np.clip(img, 0, 1).astype(np.float32)


# --------------------------------------------------------------------------- stained tissue

# Ruifrok-Johnston optical densities per unit stain (R, G, B)
_HEMATOXYLIN = np.array([0.65, 0.70, 0.29])
_EOSIN = np.array([0.07, 0.99, 0.11])
_DAB = np.array([0.27, 0.57, 0.78])


def tissue(size: int | tuple[int, int], seed: int | np.random.Generator | None = 0, *,
           pixel_um: float | None = None, rgb: bool = False, stain: str | None = None) -> np.ndarray:
    """Stained tissue section in brightfield: glands (epithelium of packed nuclei around a pale
    lumen), fibrous stroma with sparse elongated nuclei, empty space. Colour by Beer-Lambert
    with Ruifrok stain vectors: "he" (hematoxylin & eosin) or "ihc" (hematoxylin + DAB membrane
    stain). Returns grey (luminance) by default, (H, W, 3) with `rgb`.
    """
    rng = _rng(seed)
    h, w = _shape(size)
    px = _pixel(rng, pixel_um, *PIXEL_RANGE["tissue"])
    stain = stain or str(rng.choice(["he", "ihc"], p=[0.7, 0.3]))
    if stain not in ("he", "ihc"):
        raise ValueError(f"unknown stain {stain!r} (use he or ihc)")
    # layout: gland islands from a smooth field; lumens inside the larger ones
    scale = rng.uniform(60.0, 160.0) / px
    f = _noise(rng, (h, w), scale / 3)
    gland = _smoothstep((f - rng.uniform(-0.3, 0.6)) / 0.25)
    depth_in = ndimage.distance_transform_edt(gland > 0.5) * px                      # um into the gland
    lumen = _smoothstep((depth_in - rng.uniform(18.0, 40.0)) / 3.0) * (rng.random() < 0.8)
    epith = gland * (1 - lumen)
    empty = _smoothstep((_noise(rng, (h, w), scale / 2) - 1.6) / 0.3) * (1 - gland)

    # nuclei: dense in epithelium (elongated perpendicular to the edge), sparse in stroma
    r_nuc = rng.uniform(3.0, 5.0) / px
    seeds = _scatter(rng, (h, w), 1.6 * r_nuc, int(1.2 * h * w / (1.6 * r_nuc) ** 2 + 4), pad=r_nuc)
    n = len(seeds)
    iy = np.clip(seeds[:, 0].astype(int), 0, h - 1)
    ix = np.clip(seeds[:, 1].astype(int), 0, w - 1)
    in_ep = epith[iy, ix] > 0.5
    in_st = (gland[iy, ix] < 0.5) & (empty[iy, ix] < 0.5)
    keep = in_ep | (in_st & (rng.random(n) < 0.18))
    seeds, in_ep = seeds[keep], in_ep[keep]
    n = len(seeds)
    if n == 0:
        seeds, in_ep, n = np.array([[h / 2, w / 2]]), np.array([True]), 1
    gy, gx = np.gradient(ndimage.gaussian_filter(f, 3.0))
    fibre_dir = np.arctan2(gy, gx) + np.pi / 2                       # stroma runs along the glands
    iy = np.clip(seeds[:, 0].astype(int), 0, h - 1)
    ix = np.clip(seeds[:, 1].astype(int), 0, w - 1)
    ang = np.where(in_ep, fibre_dir[iy, ix] + np.pi / 2, fibre_dir[iy, ix]) + rng.normal(0, 0.3, n)
    elong = np.where(in_ep, rng.uniform(1.2, 1.8, n), rng.uniform(2.0, 4.0, n))
    rn = r_nuc * np.exp(rng.normal(0, 0.15, n))
    idx, dy, dx = _nearest_seed((h, w), seeds)
    d, _ = _ellipse_distance(dy, dx, idx, rn * np.sqrt(elong), rn / np.sqrt(elong), ang, _wobble(rng, n, 0.1))
    nuc = _smoothstep((1.0 - d) / 0.15)
    chrom = 1.0 + 0.35 * _noise(rng, (h, w), max(0.6, 0.4 / px)) + 0.4 * (np.exp(-((d - 0.85) / 0.12) ** 2))
    # IHC uses a light hematoxylin counterstain; H&E a strong one
    hema = nuc * chrom * np.exp(rng.normal(0, 0.2, n))[idx] * (rng.uniform(0.3, 0.55) if stain == "ihc" else rng.uniform(0.6, 0.9))

    # stroma fibres: noise stretched along the local fibre direction. A bank of 8 oriented
    # filters (FFT), blended per pixel between the two orientations nearest the local direction.
    spec = np.fft.rfft2(rng.standard_normal((h, w)))
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    long_s, short_s = 4.0 / px, max(0.7, 0.5 / px)
    n_or = 8
    bank = []
    for k in range(n_or):
        th = np.pi * k / n_or
        along = ky * np.sin(th) + kx * np.cos(th)
        across = ky * np.cos(th) - kx * np.sin(th)
        filt = np.exp(-2 * np.pi ** 2 * ((along * long_s) ** 2 + (across * short_s) ** 2))
        bank.append(np.fft.irfft2(spec * filt, s=(h, w)))
    pos = (np.mod(fibre_dir, np.pi) / np.pi) * n_or
    k0 = np.floor(pos).astype(int) % n_or
    frac = pos - np.floor(pos)
    bank = np.stack([_unit(b) for b in bank])
    yy, xx = np.indices((h, w))
    fib = (1 - frac) * bank[k0, yy, xx] + frac * bank[(k0 + 1) % n_or, yy, xx]
    fib = _unit(fib)
    stroma = (1 - gland) * (1 - empty) * np.clip(0.55 + 0.35 * fib, 0.05, None)
    cyto = epith * (0.45 + 0.15 * _noise(rng, (h, w), max(0.7, 0.6 / px)))
    eos = stroma * rng.uniform(0.3, 0.6) + cyto * rng.uniform(0.2, 0.45)
    if stain == "ihc":
        memb = ndimage.grey_dilation(idx, size=3) != ndimage.grey_erosion(idx, size=3)
        memb = ndimage.gaussian_filter(memb.astype(float), max(0.8, 0.5 / px)) * epith
        cyto_dab = epith * np.clip(1.0 + 0.35 * _noise(rng, (h, w), max(0.8, 1.0 / px)), 0.2, None)
        dab = rng.uniform(0.5, 1.1) * (rng.uniform(0.3, 0.8) * cyto_dab + 1.3 * memb)
        stroma_h = 0.12 * stroma                               # faint blue counterstain of stroma
        od = (hema + stroma_h)[..., None] * _HEMATOXYLIN + dab[..., None] * _DAB
    else:
        od = hema[..., None] * _HEMATOXYLIN + eos[..., None] * _EOSIN
    od = ndimage.gaussian_filter(od, (max(0.5, 0.25 / px),) * 2 + (0,))
    img = np.clip(rng.uniform(0.88, 0.97) * np.exp(-od * rng.uniform(0.7, 1.1)), 0, 1)
    if rgb:
        return img.astype(np.float32)
    return (img @ np.array([0.2125, 0.7154, 0.0721])).astype(np.float32)


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


# --------------------------------------------------------------------------- mixing

GENERATORS: dict[str, Callable[..., np.ndarray]] = {
    "nuclei": nuclei, "cells": cells, "filaments": filaments, "bacteria": bacteria,
    "round_cells": round_cells, "parasites": parasites, "phase_contrast": phase_contrast,
    "tissue": tissue, "natural": natural,
}

#: how each kind is imaged: fluorescence (dark background) or transmitted light
MODALITY: dict[str, str] = {
    "nuclei": "fluorescence", "cells": "fluorescence", "filaments": "fluorescence",
    "bacteria": "fluorescence", "round_cells": "fluorescence", "parasites": "brightfield",
    "phase_contrast": "phase", "tissue": "brightfield", "natural": "other",
}

#: default mix: fluorescence nuclei and cells dominate, as in the microscopy users bring
DEFAULT_WEIGHTS: dict[str, float] = {
    "nuclei": 0.24, "cells": 0.16, "filaments": 0.12, "bacteria": 0.09, "round_cells": 0.07,
    "parasites": 0.07, "phase_contrast": 0.07, "tissue": 0.08, "natural": 0.10,
}


def random_specimen(rng: np.random.Generator, size: int | tuple[int, int], *, pixel_um: float | None = None,
                    kinds: dict[str, float] | list[str] | None = None, return_info: bool = False
                    ) -> np.ndarray | tuple[np.ndarray, dict]:
    """A random specimen of a random kind (float32 (H, W) in [0, 1]).

    Parameters
    ----------
    rng
        Source of all randomness (same state -> same image).
    pixel_um
        Physical pixel size; default: drawn from the kind's `PIXEL_RANGE`.
    kinds
        Weights per kind name (or a list of names, equally weighted); default `DEFAULT_WEIGHTS`.
    return_info
        Also return {"kind", "pixel_um" (None for natural pictures), "modality"}.
    """
    if kinds is None:
        weights = DEFAULT_WEIGHTS
    elif isinstance(kinds, dict):
        weights = dict(kinds)
    else:
        weights = {k: 1.0 for k in kinds}
    unknown = set(weights) - set(GENERATORS)
    if unknown:
        raise ValueError(f"unknown specimen kind(s) {sorted(unknown)}; known: {sorted(GENERATORS)}")
    names = [k for k, v in weights.items() if v > 0]
    if not names:
        raise ValueError("no specimen kind has a positive weight")
    p = np.array([weights[k] for k in names], dtype=np.float64)
    kind = names[int(rng.choice(len(names), p=p / p.sum()))]
    px = pixel_um
    if px is None and kind in PIXEL_RANGE:
        px = _pixel(rng, None, *PIXEL_RANGE[kind])
    img = GENERATORS[kind](size, rng, pixel_um=px)
    if return_info:
        return img, {"kind": kind, "pixel_um": px, "modality": MODALITY[kind]}
    return img
