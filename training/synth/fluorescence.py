"""Fluorescence specimens: nuclei, cells, filaments, bacteria, round cells (dark background)."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from training.synth.render import (_ellipse_distance, _finish, _haze, _nearest_seed, _noise,
                                   _option, _pixel, _psf_blur, _rng, _scatter, _shape, _smoothstep,
                                   _splat, _wobble, PIXEL_RANGE)


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
    stain = _option(rng, stain, {"cytoplasm": 0.4, "membrane": 0.25, "mixed": 0.35}, "stain")

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
    stain = _option(rng, stain, {"cytoplasm": 0.5, "membrane": 0.25, "nucleoid": 0.25}, "stain")
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
