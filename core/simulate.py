"""Defocus part of a sharp image file: realistic test fields with a known truth.

`defocus_image` blurs every plane, channel and RGB sample of an `Image` inside given regions
(`random_regions` draws some): the defocus depth rises from 0 at the region's edge to its full
value over the ROI feather, and every pixel is blurred with the PSF of its depth
(`core.defocus.blur_with_depth`); pixels outside every region are left bit-identical and the
input's dtype is kept. `deblur simulate` is this plus argument parsing; the benchmark and the
tests make their fields with it too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.measure import find_contours

from core.defocus import add_noise, blur_with_depth, depth_map
from core.io import Image
from core.normalize import cast_like
from core.psf import Optics, effective_blur_radius_px, psf_function
from core.roi import Polygon, RoiSet, roi_mask, simplify_polygon

__all__ = ["random_regions", "defocus_image", "Defocused", "PSF_FAMILIES", "DEFAULT_PIXEL_UM",
           "usable_pixel_size"]

#: the PSF models a user can pick (gaussian/disk get the widefield PSF's blur radius)
PSF_FAMILIES = ("widefield", "gaussian", "disk")
#: the pixel size assumed when a file has none (um): a 40x objective on a common camera
DEFAULT_PIXEL_UM = 0.2


def usable_pixel_size(image: Image) -> float | None:
    """The file's pixel size (um, mean of y and x) when it is plausible for a microscope."""
    if image.pixel_size is not None and 0.005 <= float(np.mean(image.pixel_size)) <= 10.0:
        return float(np.mean(image.pixel_size))
    return None


def random_regions(rng: np.random.Generator, shape: tuple[int, int], feather: float) -> RoiSet | None:
    """Random smooth blob(s) covering about 20-40 % of the field, as polygon ROIs; None when no
    region can be drawn (a tiny image)."""
    h, w = shape
    for _ in range(8):
        kind = "blobs" if rng.random() < 0.6 else "smooth"
        region = depth_map(rng, (h, w), kind, float(rng.uniform(0.2, 0.4)), 1.0) > 0
        region = ndimage.binary_fill_holes(region)
        labels, n = ndimage.label(region)
        if n == 0:
            continue
        sizes = ndimage.sum(region, labels, index=np.arange(1, n + 1))
        keep = np.isin(labels, 1 + np.flatnonzero(sizes >= 0.01 * h * w))
        polys = []
        for c in find_contours(np.pad(keep, 1).astype(np.float32), 0.5):
            # contour index space (padded, row/column) -> ROI coordinates (pixel centres at +0.5)
            pts = [(float(np.clip(x - 1 + 0.5, 0, w)), float(np.clip(y - 1 + 0.5, 0, h)))
                   for y, x in simplify_polygon(c, tolerance=0.75)]
            if len(pts) >= 3:
                polys.append(Polygon([(round(x, 2), round(y, 2)) for x, y in pts]))
        if polys:
            return RoiSet(polys, feather=feather)
    return None


@dataclass
class Defocused:
    """What `defocus_image` made: the image, and the blur it applied."""

    image: Image
    mask: np.ndarray            # float32 (H, W) feathered ROI mask: depth = defocus_um * mask
    blur_radius_px: float       # the widefield PSF's effective radius at full depth


def defocus_image(image: Image, rois: RoiSet, defocus_um: float, optics: Optics, *,
                  psf: str = "widefield", photons: float | None = None, levels: int = 8,
                  rng: np.random.Generator | None = None) -> Defocused:
    """Blur `image` inside `rois` as a widefield microscope `defocus_um` out of focus would.

    Raises ValueError (plain words) when the regions miss the image or the optics give no PSF.
    `photons`: shot noise inside the region, as if the brightest pixels collected this many
    photons (blurring averages the camera noise away, so a real out-of-focus region has it).
    """
    if psf not in PSF_FAMILIES:
        raise ValueError(f"unknown PSF model {psf!r} (use {', '.join(PSF_FAMILIES)})")
    rng = np.random.default_rng(0) if rng is None else rng
    h, w = image.shape_yx
    try:
        radius = effective_blur_radius_px(defocus_um, na=optics.na, wavelength_um=optics.wavelength_um,
                                          n_medium=optics.n_medium, pixel_um=optics.pixel_um)
    except ValueError as exc:
        raise ValueError(f"cannot make a PSF for these settings: {exc}") from None
    mask = roi_mask(rois, (h, w))
    if not mask.any():
        raise ValueError(f"the regions lie outside the {w} x {h} image")
    depth = (defocus_um * mask).astype(np.float32)
    psf_at = psf_function(psf, optics, z_max=defocus_um)

    data = image.data
    work = np.float64 if data.dtype.itemsize > 2 or data.dtype == np.float64 else np.float32
    result = np.empty_like(data)
    outside = mask == 0
    for index, plane in image.planes():
        src = plane.astype(work)
        blurred = blur_with_depth(src, depth, psf_at, levels=levels)
        if photons is not None:
            top = float(np.percentile(src, 99.9)) or 1.0
            base = float(min(np.percentile(src, 0.1), 0.0))
            rel = (blurred - base) / (top - base)
            noisy = add_noise(rel, rng, float(photons), 0.0).astype(work)
            blurred = blurred + (noisy - rel) * (top - base) * mask
        new = cast_like(blurred, data.dtype)
        new[outside] = plane[outside]            # exactly the input outside every ROI
        result[index] = new
    return Defocused(image.with_data(result), mask, float(radius))
