"""Training datasets (training/data.py): shapes, ranges, reproducibility, pairing rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.defocus import DefocusConfig
from core.io import Image, write_image
from core.normalize import percentile_params
from training import data as D
from training import windows
from training.sources import SyntheticSource
from training import synth
from training.sample_order import step_loader

SMALL = dict(patch=48, field=96)


def check_item(item: dict, patch: int, mask: bool = True) -> None:
    keys = {"blurred", "sharp", "mask"} if mask else {"blurred", "sharp"}
    # simulated items also say what a network with a blur channel is told (training.blur_told)
    assert set(item) - {"blur"} == keys
    if "blur" in item:
        assert float(item["blur"].min()) >= 0.0
        if mask:
            assert not bool((item["blur"][item["mask"] == 0] != 0).any())
    for k, v in item.items():
        assert isinstance(v, torch.Tensor) and v.dtype == torch.float32
        assert v.shape == (1, patch, patch)
        assert torch.isfinite(v).all()
    if mask:
        assert set(torch.unique(item["mask"]).tolist()) <= {0.0, 1.0}
    # percentile-normalised: mostly within a couple of units of [0, 1]
    for k in ("blurred", "sharp"):
        v = item[k]
        assert -1.5 < float(v.min()) and float(v.max()) < 6.0


def test_synthetic_items_have_documented_shapes_and_are_reproducible():
    train, val = D.make_datasets("synthetic", seed=3, train_length=20, val_length=6, **SMALL)
    assert len(train) == 20 and len(val) == 6
    for i in (0, 5):
        check_item(train[i], 48)
        a, b = train[i], train[i]
        assert all(torch.equal(a[k], b[k]) for k in a)
    # a fresh dataset with the same seed gives the same items; validation differs from training
    again, val2 = D.make_datasets("synthetic", seed=3, train_length=20, val_length=6, **SMALL)
    assert torch.equal(again[4]["blurred"], train[4]["blurred"])
    assert torch.equal(val2[2]["sharp"], val[2]["sharp"])
    assert not torch.equal(val[0]["blurred"], train[0]["blurred"])
    other, _ = D.make_datasets("synthetic", seed=4, train_length=20, val_length=6, **SMALL)
    assert not torch.equal(other[0]["blurred"], train[0]["blurred"])
    with pytest.raises(IndexError):
        train[20]


def test_fields_are_normalised_by_the_blurred_percentiles():
    src = SyntheticSource(DefocusConfig(), field=96)
    f = src.field(np.random.default_rng(0), 0)
    p = percentile_params(f.blurred, 1.0, 99.8)
    assert p.lo == pytest.approx(0.0, abs=1e-5) and p.hi == pytest.approx(1.0, abs=1e-5)
    assert f.sharp.shape == f.blurred.shape == f.mask.shape


def test_patches_come_mostly_from_the_blurred_region():
    train, _ = D.make_datasets("synthetic", seed=1, train_length=48, val_length=2, **SMALL)
    cover = np.array([float(train[i]["mask"].mean()) for i in range(48)])
    assert (cover >= 0.25).mean() >= 0.7
    assert (cover < 0.5).any()              # some in-focus patches teach identity


def test_content_bias_avoids_empty_background():
    rng = np.random.default_rng(0)
    content = np.zeros((128, 128), np.float32)
    content[90:128, 90:128] = rng.random((38, 38))
    hits = [windows.choose_window(rng, content, None, 32, None) for _ in range(30)]
    inside = [y + 32 > 90 and x + 32 > 90 for y, x in hits]
    assert np.mean(inside) > 0.8


def test_unpaired_synthetic_items_never_align():
    train, _ = D.make_datasets("synthetic", seed=0, paired=False, train_length=8, val_length=2, **SMALL)
    paired, _ = D.make_datasets("synthetic", seed=0, train_length=8, val_length=2, **SMALL)
    corr_u, corr_p = [], []
    for i in range(8):
        item = train[i]
        assert {"blurred", "sharp"} <= set(item)
        assert item["blurred"].shape == item["sharp"].shape == (1, 48, 48)
        (tb, ts) = train.sources(i)
        assert tb[:2] != ts[:2]                 # different synthetic fields
        corr_u.append(np.corrcoef(item["blurred"].ravel(), item["sharp"].ravel())[0, 1])
        p = paired[i]
        corr_p.append(np.corrcoef(p["blurred"].ravel(), p["sharp"].ravel())[0, 1])
    assert np.nanmean(np.abs(corr_u)) < 0.4 < np.nanmean(corr_p)


def _write(folder, name, arr, pixel=0.2):
    folder.mkdir(parents=True, exist_ok=True)
    write_image(folder / name, Image(arr, "YX", pixel_size=(pixel, pixel)), overwrite=True)


def _sharp_images(n, size=160):
    return [(synth.nuclei(size, i, pixel_um=0.3) * 4000 + 100).astype(np.uint16) for i in range(n)]


def test_sharp_folder_with_simulated_blur(tmp_path):
    for i, img in enumerate(_sharp_images(3)):
        _write(tmp_path / "sharp", f"f{i}.tif", img)
    train, val = D.make_datasets(str(tmp_path / "sharp"), seed=0, val_fraction=0.34, patch=48, field=128)
    tr_files = {str(p) for p in train.source.files}
    va_files = {str(p) for p in val.source.files}
    assert tr_files and va_files and not (tr_files & va_files)
    check_item(train[0], 48)
    check_item(val[1], 48)
    # the split is a function of the seed
    train2, _ = D.make_datasets(str(tmp_path / "sharp"), seed=0, val_fraction=0.34, patch=48, field=128)
    assert [p.name for p in train2.source.files] == [p.name for p in train.source.files]


def test_single_sharp_image_is_split_by_rows(tmp_path):
    _write(tmp_path / "one", "only.tif", _sharp_images(1, 200)[0])
    train, val = D.make_datasets(str(tmp_path / "one"), val_fraction=0.3, patch=32, field=96)
    assert train.source.region == (0.0, 0.7) and val.source.region == (0.7, 1.0)
    check_item(val[0], 32)


def test_paired_folders(tmp_path):
    rng = np.random.default_rng(0)
    for i, img in enumerate(_sharp_images(3, 128)):
        _write(tmp_path / "sharp", f"p{i}.tif", img)
        from scipy import ndimage

        blurred = ndimage.gaussian_filter(img.astype(float), 3).astype(np.uint16)
        _write(tmp_path / "blur", f"p{i}.tif", blurred)
    train, val = D.make_datasets(str(tmp_path / "sharp"), str(tmp_path / "blur"), patch=48, val_fraction=0.34)
    item = train[0]
    check_item(item, 48, mask=False)                 # no ROI files: no mask
    c = np.corrcoef(item["blurred"].ravel(), item["sharp"].ravel())[0, 1]
    assert c > 0.7                                   # aligned
    # with a ROI file beside every blurred image there is a mask
    for i in range(3):
        (tmp_path / "blur" / f"p{i}.roi.json").write_text('{"rois": [{"type": "rect", "x": 10, "y": 10, "w": 90, "h": 90}], "feather": 4}')
    train, _ = D.make_datasets(str(tmp_path / "sharp"), str(tmp_path / "blur"), patch=48, val_fraction=0.34)
    check_item(train[1], 48, mask=True)
    # a missing partner is named
    _write(tmp_path / "blur", "lonely.tif", rng.integers(0, 100, (64, 64)).astype(np.uint16))
    with pytest.raises(ValueError, match="lonely.tif"):
        D.make_datasets(str(tmp_path / "sharp"), str(tmp_path / "blur"))


def test_paired_size_mismatch_is_reported(tmp_path):
    _write(tmp_path / "s", "a.tif", np.zeros((64, 64), np.uint16))
    _write(tmp_path / "b", "a.tif", np.zeros((64, 80), np.uint16))
    train, _ = D.make_datasets(str(tmp_path / "s"), str(tmp_path / "b"), patch=32, val_fraction=0.0)
    with pytest.raises(ValueError, match="differ in size"):
        train[0]


def test_unpaired_folders_never_align(tmp_path):
    imgs = _sharp_images(4, 128)
    for i in range(2):
        _write(tmp_path / "sharp", f"s{i}.tif", imgs[i])
        _write(tmp_path / "blur", f"b{i}.tif", imgs[i + 2])
    train, _ = D.make_datasets(str(tmp_path / "sharp"), str(tmp_path / "blur"), paired=False, patch=32,
                               val_fraction=0.0, train_length=6)
    for i in range(6):
        check_item(train[i], 32, mask=False)
        tb, ts = train.sources(i)
        assert tb[0] != ts[0]
    # one sharp image with simulated blur: windows never overlap, or a clear error if they must
    _write(tmp_path / "big", "one.tif", _sharp_images(1, 200)[0])
    big, _ = D.make_datasets(str(tmp_path / "big"), paired=False, patch=48, field=200, val_fraction=0.0,
                             train_length=6)
    for i in range(6):
        tb, ts = big.sources(i)
        assert tb[:2] != ts[:2] or abs(tb[2] - ts[2]) >= 48 or abs(tb[3] - ts[3]) >= 48
    _write(tmp_path / "tiny", "one.tif", _sharp_images(1, 60)[0])
    tiny, _ = D.make_datasets(str(tmp_path / "tiny"), paired=False, patch=48, val_fraction=0.0, train_length=2)
    with pytest.raises(ValueError, match="unpaired"):
        tiny[0]
    # a small image beside others (a strip of a real plane): its partner comes from another image
    _write(tmp_path / "tiny", "two.tif", _sharp_images(2, 200)[1])
    mixed, _ = D.make_datasets(str(tmp_path / "tiny"), paired=False, patch=48, val_fraction=0.0,
                               train_length=24)
    for i in range(24):
        check_item(mixed[i], 48)
        tb, ts = mixed.sources(i)
        assert tb[:2] != ts[:2] or abs(tb[2] - ts[2]) >= 48 or abs(tb[3] - ts[3]) >= 48
    assert any(str(mixed.sources(i)[0][0]).endswith("one.tif") for i in range(24))     # the small one is used


def test_bad_arguments_are_clear(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        D.make_datasets(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        D.make_datasets(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="synthetic"):
        D.make_datasets("synthetic", str(tmp_path))


def test_loader_batches_are_independent_of_worker_count():
    train, _ = D.make_datasets("synthetic", seed=2, train_length=4, val_length=2, patch=32, field=64)
    b0 = next(iter(step_loader(train, seed=0, batch_size=4, start=0, stop=1, workers=0)))
    b2 = next(iter(step_loader(train, seed=0, batch_size=4, start=0, stop=1, workers=2)))
    assert b0["blurred"].shape == (4, 1, 32, 32)
    for k in b0:
        assert torch.equal(b0[k], b2[k])


# ------------------------------------------------------------------ several patches per field

def test_validation_keeps_one_field_per_item_and_training_cuts_several():
    train, val = D.make_datasets("synthetic", seed=3, train_length=8, val_length=4, **SMALL)
    assert train.patches_per_field == D.PATCHES_PER_FIELD > 1 and val.patches_per_field == 1
    one, val1 = D.make_datasets("synthetic", seed=3, train_length=8, val_length=4, patches_per_field=1, **SMALL)
    assert one.patches_per_field == 1
    for i in range(4):                       # the validation items do not depend on K
        assert all(torch.equal(val[i][k], val1[i][k]) for k in val[i])


def test_items_cut_from_one_field_are_reproducible_in_any_order():
    kw = dict(seed=5, val_length=2, patches_per_field=4, **SMALL)
    train, _ = D.make_datasets("synthetic", train_length=12, **kw)
    forward = [train[i] for i in range(12)]
    assert train._cache.misses == 3 and train._cache.hits == 9     # one field per 4 items
    # a fresh dataset fetched backwards with a one-field cache, a longer one and a pickled copy
    # (what a DataLoader worker gets) give the same items
    import pickle

    back, _ = D.make_datasets("synthetic", train_length=12, cache_fields=1, **kw)
    longer, _ = D.make_datasets("synthetic", train_length=40, **kw)
    copy = pickle.loads(pickle.dumps(train))
    assert len(copy._cache._items) == 0
    for i in reversed(range(12)):
        for other in (back, longer, copy):
            item = other[i]
            assert all(torch.equal(item[k], forward[i][k]) for k in item)
    other_seed, _ = D.make_datasets("synthetic", train_length=12, **dict(kw, seed=6))
    assert not torch.equal(other_seed[0]["blurred"], forward[0]["blurred"])


def test_patches_of_one_field_are_different_windows_of_it():
    src = SyntheticSource(DefocusConfig(), field=128)
    ds = D.PatchDataset(src, 40, patch=48, seed=1, augment=False, patches_per_field=4)
    overlaps, cover = [], []
    for f in range(10):
        items = [ds[4 * f + j] for j in range(4)]
        blurred, sharp, mask, corners = ds._cache.get(f, None)      # the field they came from
        for (y, x), item in zip(corners, items):
            assert torch.equal(item["sharp"][0], torch.from_numpy(sharp[y:y + 48, x:x + 48]))
            assert torch.equal(item["blurred"][0], torch.from_numpy(blurred[y:y + 48, x:x + 48]))
            cover.append(float(item["mask"].mean()))
        assert len(set(corners)) == 4
        for a in range(4):
            for b in range(a):
                assert not torch.equal(items[a]["sharp"], items[b]["sharp"])
                overlaps.append(windows._overlap(np.array([corners[a][0]]), np.array([corners[a][1]]),
                                           [corners[b]], 48)[0, 0])
    assert np.mean(np.array(overlaps) <= 0.25 + 1e-9) > 0.6       # mostly little shared area
    cover = np.array(cover)
    assert (cover >= 0.25).mean() >= 0.7 and (cover < 0.5).any()  # still blur-biased


def test_unpaired_items_cut_from_shared_fields_never_align():
    train, _ = D.make_datasets("synthetic", seed=0, paired=False, train_length=8, val_length=2,
                               patches_per_field=4, **SMALL)
    fields_b, fields_s = set(), set()
    for i in range(8):
        item = train[i]
        check_item(item, 48)
        tb, ts = train.sources(i)
        assert tb[:2] != ts[:2]
        fields_b.add(tb[:2])
        fields_s.add(ts[:2])
    assert len(fields_b) == len(fields_s) == 2 and not fields_b & fields_s
    assert train._cache.misses == 2


def test_field_order_keeps_fields_together_on_one_lane():
    g = lambda: torch.Generator().manual_seed(7)
    assert torch.equal(D.field_order(50, 1, g()), torch.randperm(50, generator=g()))
    for n, k, bs, m, lanes in [(64, 4, 4, None, 2), (64, 4, 4, 1, 1), (64, 4, 4, 2, 2), (45, 3, 5, None, 1),
                               (62, 4, 4, None, 2)]:
        order = D.field_order(n, k, g(), batch_size=bs, fields_per_batch=m, lanes=lanes)
        assert sorted(order.tolist()) == list(range(n))
        batches = (order // k).split(bs)
        where: dict[int, set] = {}
        for b, fields in enumerate(batches):
            if n % (k * (m or bs) * lanes) == 0:            # no ragged tail: exact layout
                assert len(set(fields.tolist())) == (m or bs)
            for f in fields.tolist():
                where.setdefault(f, set()).add(b)
        # every field's batches are on one lane (b mod lanes), within lanes * k batches
        together = [len({b % lanes for b in bs_}) == 1 and max(bs_) - min(bs_) < lanes * k
                    for bs_ in where.values()]
        assert all(together) if n % (k * (m or bs) * lanes) == 0 else np.mean(together) > 0.5
    train, _ = D.make_datasets("synthetic", seed=2, train_length=64, val_length=2, **SMALL)
    order = train.epoch_order(g(), batch_size=4, lanes=2)
    assert sorted(order.tolist()) == list(range(64)) and train._cache.size >= 8


def test_field_aware_loader_makes_each_field_once_whatever_the_workers():
    train, _ = D.make_datasets("synthetic", seed=2, train_length=32, val_length=2, patch=32, field=64)
    b0 = list(step_loader(train, seed=1, batch_size=4, start=0, stop=8, workers=0))
    assert train._cache.misses == 8 and train._cache.hits == 24
    b2 = list(step_loader(train, seed=1, batch_size=4, start=0, stop=8, workers=2))
    assert len(b0) == len(b2) == 8
    for x, y in zip(b0, b2):
        for k in x:
            assert torch.equal(x[k], y[k])
