"""Transmitted-light specimens: a Giemsa blood smear, phase contrast, H&E (and DAB) tissue."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from training.synth.render import (_blur, _ellipse_distance, _nearest_seed, _noise, _option, _pixel,
                                   _psf_blur, _rng, _scatter, _shape, _smoothstep, _splat, _unit,
                                   _wobble, PIXEL_RANGE)


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
    stain = _option(rng, stain, {"he": 0.7, "ihc": 0.3}, "stain")
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
