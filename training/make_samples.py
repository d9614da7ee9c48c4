"""Make the shipped sample images and the simulation figure (reproducible, no downloads).

    python -m training.make_samples                 # resources/samples/* and docs/simulation.png
    python -m training.make_samples --samples-only  # just the samples

Samples (all made by us from `training.synth`, seed fixed):

* ``nuclei_sharp.tif``     uint16 512 x 512, 0.325 um/px (a 20x / 0.75 widefield DAPI field with
                           camera offset and noise): the sharp original
* ``nuclei_blurred.tif``   the same field with a locally defocused region (widefield PSF, up to
                           4 um of defocus, ~12 px blur radius), fresh camera noise inside it and
                           bit-identical pixels outside
* ``nuclei_blurred.roi.json``  the blurred region (DESIGN §2 ROI file)
* ``tissue_sharp.png`` / ``tissue_blurred.png`` / ``tissue_blurred.roi.json``: the same for an
  RGB H&E brightfield field (uint8 384 x 384, 0.5 um/px, 20x / 0.5)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from core import defocus
from core.psf import Optics, defocus_psf, effective_blur_radius_px, psf_function, psf_radius_px
from core.io import Image, write_image
from core.roi import RoiSet, roi_mask, save_rois
from core.simulate import random_regions
from training import synth

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "resources" / "samples"
PICTURE = ROOT / "docs" / "simulation.png"


def _region(rng: np.random.Generator, shape: tuple[int, int], feather: float) -> RoiSet:
    rois = random_regions(rng, shape, feather)
    if rois is None:
        raise ValueError(f"could not draw a blurred region on a {shape[1]} x {shape[0]} image")
    return rois


def _camera(x: np.ndarray, rng: np.random.Generator, photons: float, read: float, offset: float,
            gain: float) -> np.ndarray:
    """Relative intensity -> camera counts (Poisson-Gaussian noise, offset, gain)."""
    return offset + gain * photons * defocus.add_noise(x, rng, photons, read)


#: the nuclei sample's optics (20x / 0.75 air, DAPI) and pixel size (um)
NUCLEI_OPTICS = Optics(na=0.75, wavelength_um=0.46, n_medium=1.0, pixel_um=0.325)
#: its deepest defocus (um), reached inside the region beyond its 40 px feathered edge
NUCLEI_DEFOCUS_UM = 4.0


def nuclei_blur_radius_px() -> float:
    """The nuclei sample's deepest blur radius (px), as its file's description states it."""
    o = NUCLEI_OPTICS
    return effective_blur_radius_px(NUCLEI_DEFOCUS_UM, na=o.na, wavelength_um=o.wavelength_um,
                                    n_medium=o.n_medium, pixel_um=o.pixel_um)


def nuclei_field(seed: int) -> dict:
    """One field like the nuclei sample, in camera counts: the noise-free truth ("clean"), the
    sharp and the locally blurred camera images ("sharp", "blurred": bit-identical outside the
    region), the region ("rois", "depth" in um). Seed 2024 is the shipped sample; other seeds
    make more of its kind for `training.bench_cases.make_sample_like_cases`."""
    rng = np.random.default_rng(seed)
    optics = NUCLEI_OPTICS
    x = synth.nuclei(512, rng, pixel_um=optics.pixel_um, density=0.85, mitotic_fraction=0.03)
    rois = _region(rng, x.shape, 40.0)
    depth = NUCLEI_DEFOCUS_UM * roi_mask(rois, x.shape)
    xb = defocus.blur_with_depth(x, depth, psf_function("widefield", optics), levels=8)
    photons, read, offset, gain = 400.0, 2.0, 100.0, 8000.0 / 400.0
    sharp = _camera(x, rng, photons, read, offset, gain)
    blurred_in = _camera(xb, rng, photons, read, offset, gain)
    inside = depth > 0
    return {"clean": offset + gain * photons * x, "sharp": sharp,
            "blurred": np.where(inside, blurred_in, sharp), "rois": rois, "depth": depth}


def make_nuclei(out: Path, seed: int = 2024) -> None:
    f = nuclei_field(seed)
    px = NUCLEI_OPTICS.pixel_um
    sharp, blurred, rois, inside = f["sharp"], f["blurred"], f["rois"], f["depth"] > 0
    sharp16 = np.clip(np.rint(sharp), 0, 65535).astype(np.uint16)
    blurred16 = np.where(inside, np.clip(np.rint(blurred), 0, 65535), sharp16).astype(np.uint16)
    meta = {"description": "deblur sample: synthetic DAPI nuclei, 20x/0.75 widefield (made by "
                           "training/make_samples.py)"}
    write_image(out / "nuclei_sharp.tif", Image(sharp16, "YX", pixel_size=(px, px), metadata=dict(meta)),
                overwrite=True)
    meta["description"] += (f"; locally defocused up to {NUCLEI_DEFOCUS_UM:g} um (blur radius "
                            f"{nuclei_blur_radius_px():.1f} px)")
    write_image(out / "nuclei_blurred.tif", Image(blurred16, "YX", pixel_size=(px, px), metadata=meta),
                overwrite=True)
    save_rois(out / "nuclei_blurred.roi.json", rois)


def make_tissue(out: Path, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    px = 0.5
    rgb = synth.tissue(384, rng, pixel_um=px, rgb=True, stain="he")
    optics = Optics(na=0.5, wavelength_um=0.55, n_medium=1.0, pixel_um=px)
    rois = _region(rng, rgb.shape[:2], 24.0)
    depth = 6.0 * roi_mask(rois, rgb.shape[:2])
    blurred = defocus.blur_with_depth(np.moveaxis(rgb, -1, 0), depth,
                                      psf_function("widefield", optics), levels=8)
    blurred = np.moveaxis(blurred, 0, -1)
    noise = rng.normal(0.0, 1.2, rgb.shape)                 # 8-bit camera: a grey level of noise
    sharp8 = np.clip(np.rint(rgb * 255 + noise), 0, 255).astype(np.uint8)
    blur8 = np.clip(np.rint(blurred * 255 + rng.normal(0.0, 1.2, rgb.shape)), 0, 255).astype(np.uint8)
    blur8 = np.where((depth > 0)[..., None], blur8, sharp8)
    write_image(out / "tissue_sharp.png", Image(sharp8, "YXS", pixel_size=(px, px)), overwrite=True)
    write_image(out / "tissue_blurred.png", Image(blur8, "YXS", pixel_size=(px, px)), overwrite=True)
    save_rois(out / "tissue_blurred.roi.json", rois)


# --------------------------------------------------------------------------- the figure

def _tile(img: np.ndarray, size: int, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    from scipy import ndimage

    img = np.asarray(img, dtype=np.float64)
    if img.shape[0] != size:
        img = ndimage.zoom(img, size / img.shape[0], order=1)
    lo = np.percentile(img, 0.5) if lo is None else lo
    hi = np.percentile(img, 99.8) if hi is None else hi
    return np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1)


def _outline(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask, iterations=1)


def make_picture(path: Path, seed: int = 1) -> None:
    """PSFs at several depths, their radial profiles, and simulated fields of six specimens."""
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont

    t = 151                                          # tile size (px), odd: the PSF centre is a pixel
    gap = 6
    font = ImageFont.load_default(size=13)
    small = ImageFont.load_default(size=11)
    cols = 6
    width = cols * t + (cols + 1) * gap
    title_h = 22
    label_h = 16
    height = title_h + (t + label_h + gap) * 3 + title_h + gap
    canvas = PILImage.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)

    # row 1: widefield PSFs (NA 0.8 air, 520 nm, 0.1 um/px) at depths, sqrt display; profiles
    kw = dict(na=0.8, wavelength_um=0.52, n_medium=1.0, pixel_um=0.1)
    depths = [0.0, 0.5, 1.0, 2.0, 4.0]
    draw.text((gap, 4), "Widefield defocus PSF (NA 0.8 air, 520 nm +-10 %, 0.1 um/px; sqrt display, "
                        "each 15 x 15 um)", fill=(0, 0, 0), font=font)
    profiles = []
    y0 = title_h
    for i, z in enumerate(depths):
        psf = defocus_psf(z, **kw)
        k = psf.shape[0] // 2
        view = np.zeros((t, t))
        h = min(k, t // 2)
        view[t // 2 - h:t // 2 + h + 1, t // 2 - h:t // 2 + h + 1] = psf[k - h:k + h + 1, k - h:k + h + 1]
        tile = np.sqrt(view / view.max())
        x0 = gap + i * (t + gap)
        canvas.paste(PILImage.fromarray((tile * 255).astype(np.uint8)).convert("RGB"), (x0, y0))
        r = psf_radius_px(psf)
        draw.text((x0, y0 + t + 1), f"z = {z:g} um, r = {r:.1f} px", fill=(0, 0, 0), font=small)
        profiles.append((z, psf[k, k:]))
    # radial profiles (each scaled to its own peak), drawn as lines in the depth's colour
    x0 = gap + 5 * (t + gap)
    draw.rectangle([x0, y0, x0 + t - 1, y0 + t - 1], outline=(160, 160, 160))
    colours = [(0, 0, 0), (230, 120, 0), (0, 150, 60), (0, 90, 210), (210, 0, 120)]
    rmax = 60
    for (z, prof), col in zip(profiles, colours):
        prof = prof / prof.max()
        pts = [(x0 + 4 + (t - 8) * j / rmax, y0 + t - 6 - (t - 30) * float(prof[j]))
               for j in range(min(len(prof), rmax + 1))]
        draw.line(pts, fill=col, width=2)
    draw.text((x0 + 4, y0 + 2), "radial profiles", fill=(0, 0, 0), font=small)
    for j, ((z, _), col) in enumerate(zip(profiles, colours)):
        draw.text((x0 + 100, y0 + 16 + 12 * j), f"{z:g} um", fill=col, font=small)
    draw.text((x0, y0 + t + 1), "0 - 6 um from the centre", fill=(0, 0, 0), font=small)

    # rows 2-3: specimens, sharp | locally defocused (+ noise), outline of the defocused region
    y1 = y0 + t + label_h + gap
    draw.text((gap, y1 + 2), "Simulated fields: sharp target | locally defocused input with camera noise "
                             "(red: region with depth > 0)", fill=(0, 0, 0), font=font)
    y1 += title_h
    kinds = ["nuclei", "cells", "filaments", "bacteria", "phase_contrast", "parasites"]
    cfg = defocus.DefocusConfig(blur_fraction=(0.35, 0.5), radius_px=(8.0, 16.0),
                                psf_weights={"widefield": 1.0}, brightfield_prob=0.0,
                                depth_weights={"smooth": 1.0, "tilt": 1.0, "blobs": 1.0})
    for i, kind in enumerate(kinds):
        rng = np.random.default_rng([seed, i])
        px = float(np.sqrt(np.prod(synth.PIXEL_RANGE[kind])))
        img = synth.GENERATORS[kind](256, rng, pixel_um=px)
        optics = defocus.sample_optics(rng, cfg, pixel_um=px)
        sim = defocus.simulate_local_defocus(img, rng, cfg, optics=optics, brightfield=False)
        lo, hi = np.percentile(sim.sharp, [0.5, 99.8])
        row, col = divmod(i, 3)
        x0 = gap + col * 2 * (t + gap)
        yy = y1 + row * (t + label_h + gap)
        a = _tile(sim.sharp, t, lo, hi)
        b = _tile(sim.blurred, t, lo, hi)
        rgb_b = np.stack([b] * 3, -1)
        from scipy import ndimage

        m = ndimage.zoom(sim.mask.astype(float), t / sim.mask.shape[0], order=0) > 0.5
        rgb_b[_outline(m)] = (1.0, 0.1, 0.1)
        canvas.paste(PILImage.fromarray((a * 255).astype(np.uint8)).convert("RGB"), (x0, yy))
        canvas.paste(PILImage.fromarray((rgb_b * 255).astype(np.uint8)), (x0 + t + gap, yy))
        info = sim.psf_info
        draw.text((x0, yy + t + 1), f"{kind.replace('_', ' ')}: {px:.2f} um/px, NA {info['na']:.2f}, "
                                    f"z {info['defocus_um']:.1f} um, r {info['radius_px']:.0f} px",
                  fill=(0, 0, 0), font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=SAMPLES, help="folder for the samples")
    p.add_argument("--picture", type=Path, default=PICTURE, help="where to draw the figure")
    p.add_argument("--samples-only", action="store_true")
    p.add_argument("--picture-only", action="store_true")
    args = p.parse_args(argv)
    if not args.picture_only:
        args.out.mkdir(parents=True, exist_ok=True)
        make_nuclei(args.out)
        make_tissue(args.out)
        total = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
        print(f"samples in {args.out}: {total / 1e6:.2f} MB")
    if not args.samples_only:
        make_picture(args.picture)
        print(f"figure: {args.picture} ({args.picture.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
