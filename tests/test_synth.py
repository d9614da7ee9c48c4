"""Procedural specimens (training/synth.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from training import synth

KINDS = sorted(synth.GENERATORS)


@pytest.mark.parametrize("kind", KINDS)
def test_generators_return_float32_unit_range_and_are_seeded(kind):
    gen = synth.GENERATORS[kind]
    a = gen((72, 88), 3)
    b = gen((72, 88), 3)
    c = gen((72, 88), 4)
    assert a.shape == (72, 88) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert a.std() > 0.01                      # not a flat field
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # a Generator works as the seed too, and advances
    rng = np.random.default_rng(5)
    assert not np.array_equal(gen(48, rng), gen(48, rng))


@pytest.mark.parametrize("kind", ["nuclei", "cells", "filaments", "bacteria", "round_cells"])
def test_fluorescence_kinds_have_dark_background_and_bright_objects(kind):
    img = synth.GENERATORS[kind](128, 1)
    assert synth.MODALITY[kind] == "fluorescence"
    assert np.percentile(img, 10) < 0.15
    assert np.percentile(img, 99.5) > 0.5


@pytest.mark.parametrize("kind", ["parasites", "tissue"])
def test_brightfield_kinds_have_bright_background(kind):
    img = synth.GENERATORS[kind](128, 2)
    assert synth.MODALITY[kind] == "brightfield"
    assert np.percentile(img, 90) > 0.6
    assert np.percentile(img, 2) < np.percentile(img, 90) - 0.2


def test_nuclei_have_physical_sizes_and_density():
    """At 0.5 um/px nuclei (9-15 um) are ~18-30 px across; a dense field covers much of it."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    img = synth.nuclei(256, 0, pixel_um=0.5, density=1.0, mitotic_fraction=0.0)
    fg = img > threshold_otsu(img)
    labels, n = ndimage.label(fg)
    assert fg.mean() > 0.3
    sizes = ndimage.sum(fg, labels, index=np.arange(1, n + 1))
    big = sizes[sizes > 40]
    diam = 2 * np.sqrt(np.median(big) / np.pi)
    assert 12 < diam < 40
    # same field at a finer pixel: fewer, larger nuclei
    fine = synth.nuclei(256, 0, pixel_um=0.25, density=1.0, mitotic_fraction=0.0)
    lf, nf = ndimage.label(fine > threshold_otsu(fine))
    assert nf < n


def test_tissue_rgb_and_options():
    rgb = synth.tissue(64, 1, rgb=True)
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.float32
    with pytest.raises(ValueError):
        synth.cells(64, 0, stain="purple")
    with pytest.raises(ValueError):
        synth.nuclei(4, 0)


def test_natural_pictures_load_offline():
    names = synth.available_natural_images()
    assert "camera" in names and len(names) >= 8
    img = synth.natural((64, 96), 0)
    assert img.shape == (64, 96) and img.dtype == np.float32


def test_random_specimen_mixes_kinds_reproducibly():
    seen = set()
    for i in range(12):
        img, info = synth.random_specimen(np.random.default_rng(i), 48, return_info=True)
        again = synth.random_specimen(np.random.default_rng(i), 48)
        assert np.array_equal(img, again)
        assert img.shape == (48, 48) and img.dtype == np.float32
        assert info["modality"] == synth.MODALITY[info["kind"]]
        seen.add(info["kind"])
    assert len(seen) >= 4
    only = synth.random_specimen(np.random.default_rng(0), 48, kinds=["bacteria"], return_info=True)[1]
    assert only["kind"] == "bacteria" and only["pixel_um"] is not None
    with pytest.raises(ValueError, match="unknown"):
        synth.random_specimen(np.random.default_rng(0), 48, kinds=["unicorns"])


def test_a_512_field_is_fast():
    synth.nuclei(64, 0)                      # warm up imports
    t = time.process_time()
    synth.nuclei(512, 1)
    synth.cells(512, 1)
    assert (time.process_time() - t) / 2 < 1.0
