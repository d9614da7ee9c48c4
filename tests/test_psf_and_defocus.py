"""Defocus PSFs, spatially varying blur and the local-defocus simulator (core/psf.py, core/defocus.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, signal

from core import defocus
from core.psf import Optics, defocus_for_radius, defocus_psf, disk_psf, effective_blur_radius_px, gaussian_psf, psf_function, psf_radius_px


def sharpness(img: np.ndarray) -> float:
    """Mean squared gradient: falls as an image gets blurrier."""
    gy, gx = np.gradient(img.astype(np.float64))
    return float(np.mean(gy ** 2 + gx ** 2))


def convolve_reflect(img: np.ndarray, psf: np.ndarray) -> np.ndarray:
    k = psf.shape[0] // 2
    return signal.fftconvolve(np.pad(img, k, mode="reflect"), psf, mode="valid")


def pattern(n: int = 96) -> np.ndarray:
    """Test pattern with all spatial frequencies: random dots and bars."""
    rng = np.random.default_rng(1)
    img = np.zeros((n, n))
    img[rng.integers(0, n, 60), rng.integers(0, n, 60)] = 1.0
    img[:, n // 3:n // 3 + 2] = 1.0
    img[n // 2:n // 2 + 3, :] = 0.7
    return img


@pytest.mark.parametrize("psf", [
    gaussian_psf(0.0), gaussian_psf(0.4), gaussian_psf(3.0),
    disk_psf(0.3), disk_psf(2.5), disk_psf(10.0),
    defocus_psf(0.0), defocus_psf(2.0),
    defocus_psf(1.5, na=1.4, n_medium=1.515, pixel_um=0.1),
    defocus_psf(10.0, na=0.25, n_medium=1.0, pixel_um=0.5),
    defocus_psf(3.0, na=1.2, n_medium=1.333, pixel_um=0.065, bandwidth=0.0),
])
def test_psfs_are_odd_square_nonnegative_and_sum_to_one(psf):
    assert psf.ndim == 2 and psf.shape[0] == psf.shape[1] and psf.shape[0] % 2 == 1
    assert psf.dtype == np.float64
    assert np.all(np.isfinite(psf)) and psf.min() >= 0
    assert psf.sum() == pytest.approx(1.0, abs=1e-9)


def test_defocus_psf_widens_and_blurs_more_with_depth():
    depths = [0.0, 0.5, 1.0, 2.0, 4.0, 8.0]
    kw = dict(na=0.8, wavelength_um=0.52, n_medium=1.0, pixel_um=0.2)
    psfs = [defocus_psf(z, **kw) for z in depths]
    radii = [psf_radius_px(p) for p in psfs]
    assert all(b > a for a, b in zip(radii, radii[1:])), radii
    img = pattern()
    sharp = [sharpness(convolve_reflect(img, p)) for p in psfs]
    assert all(b < a for a, b in zip(sharp, sharp[1:])), sharp
    # only |z| matters, and the sign of the depth gives the same PSF
    assert np.array_equal(defocus_psf(-2.0, **kw), defocus_psf(2.0, **kw))


def test_blur_radius_covers_1_to_beyond_30_px_and_matches_geometry():
    # in focus, well sampled: the Airy spot is ~1-3 px
    assert 0.5 < effective_blur_radius_px(0.0, na=0.8, pixel_um=0.2) < 2.5
    # a few um of defocus with an oil objective at 0.1 um/px: far beyond 30 px
    big = effective_blur_radius_px(4.0, na=1.4, n_medium=1.515, pixel_um=0.1)
    assert big > 30
    # large defocus approaches geometric optics (80 % radius of the pupil's ray fan)
    geo = 4.0 * np.tan(np.arcsin(np.sqrt(0.8) * 1.4 / 1.515)) / np.sqrt(0.8) / 0.1
    assert big == pytest.approx(geo, rel=0.08)
    # the inverse used by the simulator lands within 15 %, and within 3 % when refined
    for r in (5.0, 12.0, 35.0):
        for refine, tol in ((False, 0.15), (True, 0.03)):
            z = defocus_for_radius(r, na=1.0, wavelength_um=0.55, n_medium=1.333, pixel_um=0.15, refine=refine)
            got = effective_blur_radius_px(z, na=1.0, wavelength_um=0.55, n_medium=1.333, pixel_um=0.15)
            assert got == pytest.approx(r, rel=tol)
    lo, hi = defocus.DefocusConfig().radius_range_px()
    assert lo <= 1.0 and hi >= 30.0


def test_psf_radius_convention_disk_and_gaussian():
    assert psf_radius_px(disk_psf(10.0)) == pytest.approx(10.0, rel=0.02)
    assert psf_radius_px(gaussian_psf(5.0)) == pytest.approx(10.0, rel=0.03)
    assert psf_radius_px(np.ones((1, 1))) < 0.7


def test_defocus_psf_matches_an_independent_fft_model_and_has_rings():
    """The Hankel/Debye PSF equals |FFT(pupil * defocus phase)|^2 computed on a fine 2-D grid."""
    na, lam, n, pix, z = 0.8, 0.52, 1.0, 0.2, 1.5
    psf = defocus_psf(z, na=na, wavelength_um=lam, n_medium=n, pixel_um=pix, bandwidth=0.0)
    s, m = 3, 151
    big = s * m
    f = np.fft.fftfreq(big, pix / s)
    fr = np.hypot(f[:, None], f[None, :])
    kz = np.sqrt(np.clip((n / lam) ** 2 - fr ** 2, 0, None))
    field = (fr <= na / lam) * np.exp(2j * np.pi * z * (kz - n / lam))
    inten = np.abs(np.fft.fftshift(np.fft.ifft2(field))) ** 2
    c = big // 2
    half = m // 2
    inten = inten[c - 1 - half * s:c + 2 + half * s, c - 1 - half * s:c + 2 + half * s]
    ref = inten.reshape(m, s, m, s).sum(axis=(1, 3))
    k = psf.shape[0] // 2
    ref = ref[half - k:half + k + 1, half - k:half + k + 1]
    ref /= ref.sum()
    assert np.abs(psf - ref).max() < 0.06 * psf.max()
    # a defocused widefield PSF has rings: its radial profile is not monotonic
    profile = psf[k, k:]
    assert np.any(np.diff(profile[: int(0.8 * k)]) > 1e-4 * psf.max())


def test_defocus_psf_rejects_impossible_optics():
    with pytest.raises(ValueError, match="numerical aperture"):
        defocus_psf(1.0, na=1.2, n_medium=1.0)
    with pytest.raises(ValueError):
        defocus_psf(float("nan"))
    with pytest.raises(ValueError):
        defocus_psf(1.0, pixel_um=0.0)


def test_blur_with_depth_leaves_depth_zero_untouched():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        img = rng.random((64, 80)).astype(dtype)
        depth = np.zeros((64, 80), np.float32)
        depth[10:40, 30:70] = 2.0
        depth[40:50, 30:70] = 0.7
        out = defocus.blur_with_depth(img, depth, psf_function("widefield", Optics()), levels=4)
        assert out.dtype == dtype and out.shape == img.shape
        assert np.array_equal(out[depth == 0], img[depth == 0])
        assert np.abs(out[depth > 0] - img[depth > 0]).mean() > 0.05
    # channels get the same treatment
    stack = rng.random((2, 32, 32)).astype(np.float32)
    depth = np.zeros((32, 32))
    depth[:, 16:] = 1.0
    out = defocus.blur_with_depth(stack, depth, lambda z: gaussian_psf(2 * z))
    assert np.array_equal(out[:, :, :16], stack[:, :, :16])
    assert not np.allclose(out[:, :, 16:], stack[:, :, 16:])


def test_blur_with_uniform_depth_is_a_plain_reflect_convolution():
    rng = np.random.default_rng(2)
    img = rng.random((48, 56))
    psf = disk_psf(4.0)
    out = defocus.blur_with_depth(img, np.full(img.shape, 3.0), lambda z: psf, levels=5)
    ref = ndimage.convolve(img, psf, mode="mirror")
    np.testing.assert_allclose(out, ref, atol=1e-10)


def test_depth_maps_have_an_in_focus_part_and_reach_the_depth():
    rng = np.random.default_rng(3)
    for kind in ("smooth", "tilt", "blobs"):
        m = defocus.depth_map(rng, (96, 128), kind, fraction=0.35, z_max=2.5)
        assert m.shape == (96, 128) and m.dtype == np.float32
        assert m.min() == 0.0 and m.max() == pytest.approx(2.5, rel=1e-5)
        assert 0.2 < (m > 0).mean() < 0.5
    full = defocus.depth_map(rng, (64, 64), "full", z_max=1.0)
    assert full.min() > 0
    with pytest.raises(ValueError):
        defocus.depth_map(rng, (8, 8), "spiral")


def test_simulator_is_seeded_and_reproducible():
    sharp = pattern(80)
    cfg = defocus.DefocusConfig()
    a = defocus.simulate_local_defocus(sharp, np.random.default_rng(7), cfg)
    b = defocus.simulate_local_defocus(sharp, np.random.default_rng(7), cfg)
    c = defocus.simulate_local_defocus(sharp, np.random.default_rng(8), cfg)
    for name in ("blurred", "sharp", "depth_um", "mask"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert a.psf_info == b.psf_info
    assert not np.array_equal(a.blurred, c.blurred)


def test_simulator_without_noise_leaves_in_focus_pixels_untouched():
    sharp = pattern(80)
    cfg = defocus.DefocusConfig(noise=None, radius_px=(6.0, 10.0), blur_fraction=(0.3, 0.5))
    for seed in range(4):
        sim = defocus.simulate_local_defocus(sharp, np.random.default_rng(seed), cfg)
        assert sim.blurred.dtype == np.float32 and sim.sharp.dtype == np.float32
        assert sim.mask.dtype == bool
        assert np.array_equal(sim.mask, sim.depth_um > 0)
        assert 0.0 < sim.mask.mean() <= 1.0
        out = ~sim.mask
        assert np.array_equal(sim.blurred[out], sim.sharp[out])
        assert sharpness(sim.blurred * sim.mask) < sharpness(sim.sharp * sim.mask)
        info = sim.psf_info
        assert info["family"] in ("widefield", "gaussian", "disk")
        assert info["radius_px"] > 0 and info["defocus_um"] > 0


def test_simulator_adds_noise_everywhere_and_keeps_target_clean():
    sharp = pattern(64)
    cfg = defocus.DefocusConfig(brightfield_prob=0.0)
    sim = defocus.simulate_local_defocus(sharp, np.random.default_rng(1), cfg)
    out = ~sim.mask
    assert not np.array_equal(sim.blurred[out], sim.sharp[out])        # camera noise outside too
    # the clean target is an affine copy of the (relative) sharp input
    x = sharp.ravel()
    y = sim.sharp.ravel()
    assert abs(np.corrcoef(x, y)[0, 1]) > 0.999


def test_add_noise_statistics():
    rng = np.random.default_rng(0)
    for level in (0.05, 0.5):                # Poisson branch and Gaussian branch
        x = np.full(200_000, level, np.float32)
        y = defocus.add_noise(x, rng, photons=400.0, read_noise=0.0)
        assert y.mean() == pytest.approx(level, rel=0.01)
        assert y.var() == pytest.approx(level / 400.0, rel=0.05)


def test_config_round_trip_and_unknown_keys():
    cfg = defocus.DefocusConfig(radius_px=(2.0, 9.0), noise=None)
    again = defocus.DefocusConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert defocus.DefocusConfig.from_dict(defocus.DefocusConfig().to_dict()) == defocus.DefocusConfig()
    with pytest.raises(ValueError, match="unknown"):
        defocus.DefocusConfig.from_dict({"radius_pixels": (1, 2)})
    # as read from TOML: lists, nested tables, `noise = false`
    toml_like = {"radius_px": [2, 20], "objectives": {"air": [0.3, 0.9]}, "immersion_weights": {"air": 1.0},
                 "noise": {"photons": [10, 100], "read_noise": [1, 2]}}
    cfg = defocus.DefocusConfig.from_dict(toml_like)
    assert cfg.radius_px == (2, 20) and cfg.objectives == {"air": (0.3, 0.9)}
    assert cfg.noise == defocus.NoiseConfig((10, 100), (1, 2))
    assert defocus.DefocusConfig.from_dict({"noise": False}).noise is None
    only_air = defocus.sample_optics(np.random.default_rng(0), cfg)
    assert only_air.n_medium == 1.0
    with pytest.raises(ValueError, match="medium"):
        defocus.DefocusConfig(objectives={"glycerol": (0.5, 1.2)})
    with pytest.raises(ValueError, match="impossible"):
        defocus.DefocusConfig(objectives={"air": (0.5, 1.2)})


def test_sample_optics_matches_pixel_to_na():
    cfg = defocus.DefocusConfig()
    rng = np.random.default_rng(0)
    for px in (0.065, 0.1, 0.2, 0.5):
        for _ in range(5):
            o = defocus.sample_optics(rng, cfg, pixel_um=px)
            assert o.pixel_um == px and o.na < o.n_medium
            ratio = px / (o.wavelength_um / (4 * o.na))
            # within the configured sampling, or the best any configured objective can do
            assert cfg.sampling[0] * 0.999 <= ratio <= cfg.sampling[1] * 1.001 or o.na in (0.25, 1.4)


def test_fft_convolution_region_equals_full_convolution():
    """Convolving only a window (with a halo) gives the same pixels as the whole image."""
    rng = np.random.default_rng(4)
    img = rng.random((1, 40, 50)).astype(np.float32)
    psf = gaussian_psf(2.0)
    part = defocus._convolve_region(img, psf, 5, 30, 10, 45)
    whole = signal.fftconvolve(np.pad(img[0], psf.shape[0] // 2, mode="reflect"), psf, mode="valid")
    np.testing.assert_allclose(part[0], whole[5:30, 10:45], atol=1e-5)
