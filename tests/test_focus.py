"""core.focus: the sharpness map and auto-ROIs find blurred regions and leave sharp ones alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from skimage import data as skdata
from skimage.draw import disk as draw_disk

from core.blurred_regions import auto_rois, blurred_regions
from core.focus import NO_CONTENT, focus_grid, focus_map
from core.io import Image, read_image
from core.roi import Polygon, RoiSet, load_rois, roi_mask

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"

SHAPE = (384, 384)
CENTRE, RADIUS = (200, 170), 90


def specimen(seed: int, shape=SHAPE, n: int = 300, where: np.ndarray | None = None) -> np.ndarray:
    """Textured 'nuclei' (discs of 4-12 px with fine texture), 0..~1.4, float32."""
    rng = np.random.default_rng(seed)
    img = np.zeros(shape, np.float32)
    for _ in range(n):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        if where is not None and not where[int(cy), int(cx)]:
            continue
        rr, cc = draw_disk((cy, cx), rng.uniform(4, 12), shape=shape)
        img[rr, cc] += rng.uniform(0.4, 1.0)
    texture = ndimage.gaussian_filter(rng.standard_normal(shape), 1.0).astype(np.float32)
    return img * (1 + 0.4 * texture)


def true_disk(shape=SHAPE) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - CENTRE[0]) ** 2 + (xx - CENTRE[1]) ** 2 <= RADIUS**2


def camera_like(sharp: np.ndarray, seed: int, gain: float = 2000.0) -> np.ndarray:
    """What a camera records: scaled signal + offset + read noise (added after any blur)."""
    rng = np.random.default_rng(seed + 1000)
    return sharp * gain + 100 + rng.normal(0, 30, sharp.shape)


def with_blurred_disk(sharp: np.ndarray, sigma: float) -> np.ndarray:
    return np.where(true_disk(sharp.shape), ndimage.gaussian_filter(sharp, sigma), sharp)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("seed,sigma", [(0, 4.0), (1, 5.0), (2, 6.0)])
def test_finds_the_blurred_disk(seed, sigma):
    img = camera_like(with_blurred_disk(specimen(seed), sigma), seed)
    img = np.clip(img, 0, 65535).astype(np.uint16)
    rois, mask = blurred_regions(img)
    assert len(rois) == 1 and isinstance(rois[0], Polygon)
    assert mask.shape == img.shape and mask.dtype == bool
    assert iou(mask, true_disk()) > 0.5
    # the ROI itself (as the engine rasterises it) is the mask
    drawn = roi_mask(RoiSet(rois, feather=0), img.shape) > 0
    assert iou(drawn, mask) > 0.97
    xs = [p[0] for p in rois[0].points]
    ys = [p[1] for p in rois[0].points]
    assert min(xs) >= 0 and max(xs) <= img.shape[1] and min(ys) >= 0 and max(ys) <= img.shape[0]


def test_finds_blur_in_a_natural_photograph():
    cam = skdata.camera().astype(np.float32)
    yy, xx = np.ogrid[:512, :512]
    disk = (yy - 380) ** 2 + (xx - 300) ** 2 <= 100**2     # the grass field and tripod
    img = np.where(disk, ndimage.gaussian_filter(cam, 5), cam)
    img = img + np.random.default_rng(0).normal(0, 2, img.shape)
    rois, mask = blurred_regions(img)
    # the man's dark coat is smooth and may be offered too; the blurred disk must be one ROI
    best = max(iou(mask_of(r, img.shape), disk) for r in rois)
    assert best > 0.5 and len(rois) <= 2


def mask_of(roi, shape) -> np.ndarray:
    return roi_mask(RoiSet([roi], feather=0), shape) > 0


@pytest.mark.parametrize("seed", [0, 3])
def test_a_sharp_field_gives_no_region(seed):
    rois, mask = blurred_regions(camera_like(specimen(seed), seed).astype(np.float32))
    assert rois == [] and not mask.any()


@pytest.mark.parametrize("texture", ["brick", "gravel", "grass"])
def test_sharp_natural_textures_give_no_region(texture):
    img = getattr(skdata, texture)().astype(np.float32)
    img += np.random.default_rng(1).normal(0, 2, img.shape)
    assert blurred_regions(img)[0] == []


def test_large_empty_background_is_not_blurred():
    left = np.zeros(SHAPE, bool)
    left[:, :128] = True
    img = camera_like(specimen(4, n=150, where=left), 4).astype(np.float32)
    rois, mask = blurred_regions(img)
    assert rois == [] and not mask.any()
    fmap = focus_map(img)
    assert (fmap[:, 200:] == NO_CONTENT).mean() > 0.95     # background: "no content", not blurred
    assert (fmap[:, :100] >= 0).mean() > 0.9


def test_dim_but_sharp_area_is_not_selected():
    sharp = specimen(5)
    dim = np.zeros(SHAPE, bool)
    dim[:, :192] = True
    img = camera_like(np.where(dim, 0.2 * sharp, sharp), 5).astype(np.float32)
    rois, mask = blurred_regions(img)
    assert rois == [] and not mask.any()
    grid = focus_grid(img)
    left, right = grid.focus[:, :10], grid.focus[:, 14:]
    dim_focus = np.median(left[grid.content[:, :10]])
    bright_focus = np.median(right[grid.content[:, 14:]])
    assert dim_focus > 0.6 * bright_focus              # contrast-normalised, not brightness


def test_dim_area_that_is_also_blurred_is_found():
    sharp = specimen(6)
    img = camera_like(0.3 * with_blurred_disk(sharp, 5.0) + 0.7 * (~true_disk()) * sharp, 6)
    rois, mask = blurred_regions(img.astype(np.float32))
    # dim blurred structure is partly too faint to judge, so it may come as a few pieces
    assert 1 <= len(rois) <= 3 and iou(mask, true_disk()) > 0.5
    for roi in rois:
        piece = mask_of(roi, SHAPE)
        assert (piece & true_disk()).sum() > 0.7 * piece.sum()


def test_focus_map_shape_dtype_and_values_for_uint16_and_float():
    blurred = with_blurred_disk(specimen(7), 5.0)
    f_img = camera_like(blurred, 7).astype(np.float32)
    u_img = np.clip(f_img, 0, 65535).astype(np.uint16)
    for img in (u_img, f_img, f_img.astype(np.float64)):
        fmap = focus_map(img)
        assert fmap.shape == img.shape and fmap.dtype == np.float32
        assert np.isfinite(fmap).all()
        assert ((fmap == NO_CONTENT) | ((fmap >= 0) & (fmap <= 1))).all()
        inside = ndimage.binary_erosion(true_disk(), iterations=40)
        outside = ~ndimage.binary_dilation(true_disk(), iterations=40)
        assert np.median(fmap[inside]) < 0.3 * np.median(fmap[outside & (fmap >= 0)])
    m_u = blurred_regions(u_img)[1]
    m_f = blurred_regions(f_img)[1]
    assert iou(m_u, m_f) > 0.9


def test_nonfinite_pixels_and_flat_planes_are_handled():
    img = camera_like(with_blurred_disk(specimen(8), 5.0), 8).astype(np.float32)
    img[10:20, 10:20] = np.nan
    img[300, 300] = np.inf
    fmap = focus_map(img)
    assert np.isfinite(fmap).all()
    rois, mask = blurred_regions(img)
    assert len(rois) == 1 and iou(mask, true_disk()) > 0.5
    flat = np.full((64, 80), 7, np.uint8)
    assert (focus_map(flat) == NO_CONTENT).all()
    assert blurred_regions(flat)[0] == []
    assert focus_map(np.zeros((8, 8), np.float32)).shape == (8, 8)


def test_threshold_and_min_area():
    img = camera_like(with_blurred_disk(specimen(9), 5.0), 9).astype(np.float32)
    assert blurred_regions(img, threshold=0.0)[0] == []                # nothing is below 0
    assert blurred_regions(img, min_area=200 * 200)[0] == []           # the disk is smaller
    assert len(blurred_regions(img, threshold=0.02)[0]) == 1


def test_auto_rois_on_channels_and_stacks():
    sharp = specimen(10)
    blurred = with_blurred_disk(sharp, 5.0)
    ch0 = camera_like(blurred, 10)
    ch1 = camera_like(with_blurred_disk(specimen(11), 5.0), 11) * 0.1   # another, dimmer stain
    cyx = Image(np.stack([ch0, ch1]).astype(np.uint16), "CYX")
    rois = auto_rois(cyx)
    assert isinstance(rois, RoiSet) and len(rois) == 1
    assert iou(roi_mask(RoiSet(rois.rois, feather=0), SHAPE) > 0, true_disk()) > 0.5

    # z stacks are judged on their first plane
    zyx = Image(np.stack([ch0, camera_like(sharp, 12)]).astype(np.float32), "ZYX")
    assert len(auto_rois(zyx)) == 1
    zyx_sharp_first = Image(zyx.data[::-1].copy(), "ZYX")
    assert len(auto_rois(zyx_sharp_first)) == 0

    rgb = np.clip(np.stack([ch0 / 20] * 3, axis=-1), 0, 255).astype(np.uint8)
    assert len(auto_rois(Image(rgb, "YXS"), min_area=1024)) == 1


def test_large_plane_runs_on_the_coarse_grid():
    tile = camera_like(specimen(13, shape=(256, 256), n=120), 13).astype(np.uint16)
    big = np.tile(tile, (8, 8))                                      # 2048 x 2048
    grid = focus_grid(big)
    assert grid.focus.shape == (128, 128)
    fmap = focus_map(big)
    assert fmap.shape == big.shape and np.isfinite(fmap).all()


# --------------------------------------------------------------------------- realistic fields

def sample_truth(name: str, shape) -> np.ndarray:
    """The blurred band of a shipped sample: where its defocus is at least half the maximum."""
    return roi_mask(load_rois(SAMPLES / f"{name}.roi.json"), shape) > 0.5


def test_nuclei_sample_band_is_found_and_the_sharp_field_gives_nothing():
    # uint16 widefield DAPI field, Poisson noise: the blurred nuclei are 10-30 x noisier than
    # the background, which must not make them look sharp
    img = read_image(SAMPLES / "nuclei_blurred.tif").data
    truth = sample_truth("nuclei_blurred", img.shape)
    rois, mask = blurred_regions(img)
    assert 1 <= len(rois) <= 2 and iou(mask, truth) >= 0.6
    # the mask is exactly the ROIs as the engine rasterises them
    assert np.array_equal(roi_mask(RoiSet(rois, feather=0), img.shape) > 0, mask)
    assert blurred_regions(read_image(SAMPLES / "nuclei_sharp.tif").data)[0] == []


def test_tissue_sample_band_is_found_in_rgb_and_the_sharp_field_gives_nothing():
    img = read_image(SAMPLES / "tissue_blurred.png")              # RGB H&E brightfield
    truth = sample_truth("tissue_blurred", img.data.shape[:2])
    rois = auto_rois(img)
    assert 1 <= len(rois) <= 3
    assert iou(roi_mask(RoiSet(rois.rois, feather=0), truth.shape) > 0, truth) >= 0.5
    assert len(auto_rois(read_image(SAMPLES / "tissue_sharp.png"))) == 0


def simulated_field(kind: str, seed: int, size: int = 512, photons: float | None = None):
    """What `deblur simulate` makes of a synthetic specimen: widefield defocus rising to a blur
    radius of 4-15 px inside smooth random blobs over 20-40 % of the field, then camera noise.
    Returns (blurred, sharp, truth) with truth = defocus at least half its maximum."""
    from core import defocus
    from core.psf import Optics, defocus_for_radius, psf_function
    from core.simulate import random_regions as random_region
    from training import synth

    rng = np.random.default_rng(seed)
    x, info = synth.random_specimen(rng, size, kinds=[kind], return_info=True)
    px = info["pixel_um"] or 0.2
    optics = Optics(na=0.75, wavelength_um=0.52, n_medium=1.0, pixel_um=px)
    radius = rng.uniform(4, 15)
    z = defocus_for_radius(radius, na=optics.na, wavelength_um=optics.wavelength_um,
                                   n_medium=optics.n_medium, pixel_um=px)
    region = roi_mask(random_region(rng, x.shape, 0.08 * size), x.shape)
    blurred = defocus.blur_with_depth(x, z * region, psf_function("widefield", optics), levels=6)
    if photons is None:
        photons = 1000.0 if synth.MODALITY[kind] == "fluorescence" else 10000.0

    def camera(v):
        return (100 + 20 * photons * defocus.add_noise(v, rng, photons, 2.0)).astype(np.float32)

    return camera(blurred), camera(x), region > 0.5


SIMULATED_KINDS = ["nuclei", "cells", "filaments", "bacteria", "round_cells", "parasites",
                   "phase_contrast", "tissue"]


def test_simulated_defocus_is_found_in_several_kinds_of_specimen():
    ious = []
    for kind in SIMULATED_KINDS:
        blurred, sharp, truth = simulated_field(kind, seed=0)
        ious.append(iou(blurred_regions(blurred)[1], truth))
        assert blurred_regions(sharp)[0] == [], kind        # the same field in focus: nothing
    assert np.mean(ious) >= 0.5 and min(ious) > 0.4, dict(zip(SIMULATED_KINDS, np.round(ious, 2)))


@pytest.mark.parametrize("kind", ["tissue", "parasites", "cells"])
def test_very_noisy_sharp_fields_give_no_region(kind):
    # 150 photons at full brightness: pale stroma or a smooth cell body loses its fine detail in
    # the noise, which does not make it "clearly blurred"
    _, sharp, _ = simulated_field(kind, seed=1, photons=150.0)
    assert blurred_regions(sharp)[0] == []
