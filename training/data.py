"""Training data: synthetic fields, folders of sharp images, paired and unpaired folders.

Every dataset item is a dict of float32 tensors (see docs/INTERFACES.md)::

    {"blurred": (1, P, P), "sharp": (1, P, P), "mask": (1, P, P)}

* **Normalisation** mimics the engine: at inference a whole plane is scaled by its own
  1 / 99.8 percentiles (`core.normalize`). Here each *field* (a synthetic field, a crop of up
  to `field` px of a folder image, or the whole plane for paired files) is normalised with the
  percentile params of its **blurred** version, and the sharp target with the same params, then
  patches are cut. Unpaired sharp patches come from their own field, normalised by its own
  percentiles (there is no blurred partner).
* **Target**: the clean sharp image with the same intensity scaling as the input (noise only on
  the input; see `core.defocus.simulate_local_defocus`).
* **mask**: 1 where the field was defocused (depth > 0), else 0. Paired folders have it only
  when every blurred file has a ``<stem>.roi.json`` beside it (feathered ROI mask); unpaired
  items carry the mask of their blurred patch.
* **blur** (items with simulated blur: synthetic data, sharp folders, the real pool): what a
  network with a blur channel (``core.blur_map``) is told, the true radius map with the blur
  estimate's kind of errors (``training.blur_told``), drawn once per field from its own seed
  stream, so the other arrays are exactly as without it; 0 outside the defocused region.
* **Patches** are biased toward content (windows of empty background are rarely chosen) and,
  with probability `blur_bias` (default 0.85), toward the blurred region (>= half of the patch
  defocused), so the models mostly see what they must repair; the rest teach identity.
* **Augmentation** (training only): flips, rot90 and a mild common gain/offset jitter (the
  percentile estimate of a real plane is never exact).
* **Several patches per field** (training sets with simulated blur; `patches_per_field` K,
  default 4): simulating a field is most of an item's cost, so item i is patch i % K of field
  i // K, the K windows each chosen as above but sharing at most a quarter of their area when
  the blurred region allows it. Each process keeps the last fields (LRU), so the saving needs an
  order that fetches a field's patches close together: `dataset.epoch_order` / `field_order`
  (the one loader, ``training.sample_order.step_loader``, uses it). A plain random order still works, at
  the old cost. Validation sets keep one field per item.
* **Reproducibility**: item `i` is drawn from ``SeedSequence([seed, split, i])`` (with K > 1:
  its field from ``[seed, split, i // K]``), so it is the same whatever the number of DataLoader
  workers, the fetch order or the cache; the validation split uses other seeds (synthetic) or
  other files (folders; one file: the bottom rows), fixed by `seed`.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from core.defocus import DefocusConfig
from training.sources import (TRAIN, VAL, ImageFolderSource, MixedSource, PairedFolderSource,
                              PlanePoolSource, SharpFolderSource, SyntheticSource, item_rng,
                              list_images)
from training.blur_told import told_blur
from training.windows import Windows, pad_to

__all__ = ["PatchDataset", "UnpairedDataset", "make_datasets", "PATCHES_PER_FIELD", "field_order"]

# --------------------------------------------------------------------------- datasets

def _augment(rng: np.random.Generator, arrays: list[np.ndarray | None], intensity: bool = True
             ) -> list[np.ndarray | None]:
    k = int(rng.integers(4))
    flip = bool(rng.random() < 0.5)
    gain = float(rng.uniform(0.85, 1.15)) if intensity else 1.0
    offset = float(rng.uniform(-0.05, 0.05)) if intensity else 0.0
    out = []
    for i, a in enumerate(arrays):
        if a is None:
            out.append(None)
            continue
        a = np.rot90(a, k)
        if flip:
            a = a[:, ::-1]
        if i < 2 and intensity:          # images, not the mask
            a = a * np.float32(gain) + np.float32(offset)
        out.append(a)
    return out


def _tensor(a: np.ndarray) -> torch.Tensor:
    # always a copy: patches may be views of a cached field that later items still cut from
    return torch.from_numpy(np.array(a, dtype=np.float32)[None])


#: patches cut from each simulated training field by default (see `make_datasets`)
PATCHES_PER_FIELD = 4


class _FieldCache:
    """Small per-process LRU of prepared fields (each DataLoader worker has its own, and a
    pickled dataset starts with an empty one)."""

    def __init__(self, size: int = 8) -> None:
        self.size = max(1, int(size))
        self._items: OrderedDict[int, tuple] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: int, make) -> tuple:
        if key in self._items:
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key]
        self.misses += 1
        value = make()
        self._items[key] = value
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value

    def __getstate__(self) -> dict:
        return {"size": self.size}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["size"])


def field_order(n: int, patches_per_field: int, generator: torch.Generator | None = None, *,
                batch_size: int = 1, fields_per_batch: int | None = None, lanes: int = 1) -> torch.Tensor:
    """A random order of items 0..n-1 (item i: patch i % K of field i // K) in which each field's
    K patches come close together, so a field cache makes every field only once.

    With K = 1 this is exactly ``torch.randperm(n, generator=generator)``. Otherwise the fields
    are shuffled and taken `fields_per_batch` (m, default `batch_size`) at a time: such a chunk
    fills K m / batch_size batches, each holding one patch (in a random order) of each of its
    fields. Chunks run in `lanes` (L) interleaved streams, batch after batch: the patches of a
    field land in batches b, b + L, b + 2L, ... A DataLoader hands batches to its W workers in
    turn, so when W divides L those batches all go to the same worker (whatever the batch the
    loader starts at) and it makes the field once, keeping at most L m fields at a time. Under
    DistributedDataParallel the ranks also take consecutive batches: use L = world size x W.
    """
    k = int(patches_per_field)
    if k <= 1:
        return torch.randperm(n, generator=generator)
    bs = max(1, int(batch_size))
    m = max(1, int(fields_per_batch or bs))
    lanes = max(1, int(lanes))
    n_fields = -(-n // k)
    fields = torch.randperm(n_fields, generator=generator)
    slots = torch.argsort(torch.rand(n_fields, k, generator=generator), dim=1)
    items = fields[:, None] * k + slots                                  # (field rank, slot)
    rank = torch.arange(n_fields)[:, None].expand(n_fields, k)
    chunk, q = rank // m, rank % m
    u = torch.arange(k)[None, :] * m + q                                 # place within the chunk
    # sort by (block of L chunks, batch within the chunk, lane, place within the batch)
    key = (((chunk // lanes) * (-(-k * m // bs)) + u // bs) * lanes + chunk % lanes) * bs + u % bs
    order = items.reshape(-1)[torch.argsort(key.reshape(-1), stable=True)]
    return order[order < n]


class _Grouped(Dataset):
    """Common part of the datasets: item i is patch i % K of field i // K (K = patches_per_field).

    K = 1 is the original one-field-per-item scheme (bit-identical items). For K > 1, a field and
    the corners of its K patches are drawn from the field's own seed, the augmentation of each
    patch from the item's seed, so item i still depends only on (seed, split, i) and K.
    """

    patches_per_field: int

    def _common(self, length: int, patch: int, seed: int, split: int, augment: bool | None,
                blur_bias: float) -> None:
        """The settings every patch dataset has; augmentation defaults to on for training."""
        if patch < 8:
            raise ValueError("patch must be at least 8 pixels")
        self.length = int(length)
        self.patch = int(patch)
        self.seed = int(seed)
        self.split = int(split)
        self.augment = (split == TRAIN) if augment is None else bool(augment)
        self.blur_bias = float(blur_bias)

    def _setup(self, patches_per_field: int, cache_fields: int, max_overlap: float) -> None:
        if int(patches_per_field) < 1:
            raise ValueError(f"patches_per_field must be at least 1, got {patches_per_field}")
        self.patches_per_field = int(patches_per_field)
        self.max_overlap = float(max_overlap)
        self._cache = _FieldCache(cache_fields)

    def field_of(self, index: int) -> int:
        """The field item `index` is cut from."""
        return int(index) // self.patches_per_field

    def _reserve(self, batch_size: int, fields_per_batch: int | None, lanes: int) -> None:
        if self.patches_per_field > 1:
            need = max(1, int(lanes)) * max(1, int(fields_per_batch or batch_size))
            self._cache.size = max(self._cache.size, need)

    def epoch_order(self, generator: torch.Generator | None = None, *, batch_size: int = 1,
                    fields_per_batch: int | None = None, lanes: int = 1) -> torch.Tensor:
        """A shuffled order of all items that keeps each field's patches close (`field_order`):
        a sampler that uses it makes each field once instead of K times. Also grows this
        process's field cache to the L m fields such an order keeps in flight."""
        self._reserve(batch_size, fields_per_batch, lanes)
        return field_order(len(self), self.patches_per_field, generator, batch_size=batch_size,
                           fields_per_batch=fields_per_batch, lanes=lanes)


class PatchDataset(_Grouped):
    """Aligned (blurred, sharp[, mask]) patches from a field source (synthetic, sharp folder,
    paired folder). Item `i` depends only on (seed, split, i).

    `patches_per_field` K > 1 cuts K patches from each field (item i: patch i % K of field
    i // K), each with its own blur-biased choice and augmentation, sharing at most
    `max_overlap` of their area when the field allows; the last `cache_fields` fields are kept,
    so fetching a field's items one after the other makes it once (see `epoch_order`).
    """

    def __init__(self, source, length: int, *, patch: int = 128, seed: int = 0, split: int = TRAIN,
                 augment: bool | None = None, blur_bias: float = 0.85, patches_per_field: int = 1,
                 cache_fields: int = 8, max_overlap: float = 0.25) -> None:
        self.source = source
        self._common(length, patch, seed, split, augment, blur_bias)
        self.has_mask = getattr(source, "has_mask", True)
        self._setup(patches_per_field, cache_fields, max_overlap)

    def __len__(self) -> int:
        return self.length

    def _plan(self, rng: np.random.Generator, index: int, slots: int):
        """Field `index` (padded to the patch) and the corners of its `slots` patches."""
        f = self.source.field(rng, index)
        blurred, sharp = pad_to(f.blurred, self.patch), pad_to(f.sharp, self.patch)
        mask = None if f.mask is None else pad_to(f.mask, self.patch)
        steer = mask if mask is not None else (None if f.hint is None else pad_to(f.hint, self.patch))
        windows = Windows(sharp, steer, self.patch)
        corners: list[tuple[int, int]] = []
        for _ in range(slots):
            want = bool(rng.random() < self.blur_bias) if steer is not None else None
            corners.append(windows.choose(rng, want, spread=corners, max_overlap=self.max_overlap))
        blur = None
        if f.blur_px is not None:
            # what a blur channel is told, from its own seed stream: the patches stay as before
            told = told_blur(item_rng(self.seed, self.split, index, stream=6), f.blur_px, f.mask)
            blur = pad_to(told, self.patch)
        return blurred, sharp, (mask, blur), corners

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        k = self.patches_per_field
        if k == 1:
            rng = item_rng(self.seed, self.split, index)
            blurred, sharp, (mask, blur), corners = self._plan(rng, index, 1)
            (y, x), aug = corners[0], rng
        else:
            f, j = divmod(int(index), k)
            blurred, sharp, (mask, blur), corners = self._cache.get(
                f, lambda: self._plan(item_rng(self.seed, self.split, f, stream=4), f, k))
            (y, x), aug = corners[j], item_rng(self.seed, self.split, index, stream=5)
        win = (slice(y, y + self.patch), slice(x, x + self.patch))
        arrays = [blurred[win], sharp[win], None if mask is None else mask[win],
                  None if blur is None else blur[win]]
        if self.augment:
            arrays = _augment(aug, arrays)
        item = {"blurred": _tensor(arrays[0]), "sharp": _tensor(arrays[1])}
        if self.has_mask and arrays[2] is not None:
            item["mask"] = _tensor(arrays[2])
        if arrays[3] is not None:
            item["blur"] = _tensor(arrays[3])
        return item


class UnpairedDataset(_Grouped):
    """Blurred and sharp patches that never show the same place (for CycleGAN).

    The blurred patch comes from field 2i of `blurred_source`, the sharp one from field 2i + 1
    of `sharp_source` (another seed, file or position), with i the item (or, with
    `patches_per_field` K > 1, the item's field i // K: K items share each pair of fields). When
    both happen to come from the same image plane, the sharp window is placed so it does not
    overlap the blurred one. Items: {"blurred", "sharp", "mask" and "blur" (of the blurred patch,
    when known)}.
    """

    def __init__(self, blurred_source, sharp_source, length: int, *, patch: int = 128, seed: int = 0,
                 split: int = TRAIN, augment: bool | None = None, blur_bias: float = 0.85,
                 patches_per_field: int = 1, cache_fields: int = 8, max_overlap: float = 0.25) -> None:
        self.blurred_source = blurred_source
        self.sharp_source = sharp_source
        self._common(length, patch, seed, split, augment, blur_bias)
        self._setup(patches_per_field, cache_fields, max_overlap)

    def __len__(self) -> int:
        return self.length

    def sources(self, index: int) -> tuple[tuple, tuple]:
        """Provenance (image, plane, y, x) of the blurred and sharp patch of item `index`."""
        return self._draw(index)[5:]

    #: sharp fields drawn for one blurred field before giving up on keeping them apart
    SHARP_TRIES = 8

    def _plan(self, rng_b: np.random.Generator, rng_s: np.random.Generator, fi: int, slots: int):
        """Blurred field 2 fi, sharp field 2 fi + 1 and the corners of `slots` patch pairs.

        Where a sharp patch cannot be placed apart from its blurred partner (both fields cut
        from one small plane, e.g. a strip of a real image), another sharp field is drawn; an
        error only when `SHARP_TRIES` draws all land on that plane (a folder of one small image).
        """
        fb = self.blurred_source.field(rng_b, 2 * fi, need="blurred")
        blurred = pad_to(fb.blurred, self.patch)
        mask = None if fb.mask is None else pad_to(fb.mask, self.patch)
        told = None
        if fb.blur_px is not None:
            # what a blur channel is told of the blurred field, from its own seed stream
            told = pad_to(told_blur(item_rng(self.seed, self.split, 2 * fi, stream=9), fb.blur_px,
                                    fb.mask), self.patch)
        win_b = Windows(blurred, mask, self.patch)
        corners_b: list[tuple[int, int]] = []
        for _ in range(slots):
            want = bool(rng_b.random() < self.blur_bias) if mask is not None else None
            corners_b.append(win_b.choose(rng_b, want, spread=corners_b, max_overlap=self.max_overlap))
        for _ in range(self.SHARP_TRIES):
            fs = self.sharp_source.field(rng_s, 2 * fi + 1, need="sharp")
            sharp = pad_to(fs.sharp, self.patch)
            pairs = self._pair(fb, fs, Windows(sharp, None, self.patch), corners_b, rng_s)
            if pairs is not None:
                return blurred, (mask, told), sharp, pairs
        raise ValueError(f"{fb.tag[0]}: unpaired training needs at least two images, or images at "
                         f"least twice the patch size ({self.patch} px), so that blurred and sharp "
                         f"patches never show the same place")

    def _pair(self, fb, fs, win_s: Windows, corners_b: list[tuple[int, int]],
              rng_s: np.random.Generator) -> list[tuple] | None:
        """A sharp window of `fs` for each blurred corner, never over its blurred partner's
        place in the same image plane; None where that cannot be done."""
        same_plane = fb.tag[:2] == fs.tag[:2] and fb.tag[0] != "synthetic"
        corners_s: list[tuple[int, int]] = []
        pairs = []
        for yb, xb in corners_b:
            avoid = None
            if same_plane:                         # same image plane: keep the windows apart
                avoid = (yb + fb.tag[2] - fs.tag[2], xb + fb.tag[3] - fs.tag[3])
            ys, xs = win_s.choose(rng_s, None, avoid=avoid, spread=corners_s, max_overlap=self.max_overlap)
            tag_b = fb.tag[:2] + (fb.tag[2] + yb, fb.tag[3] + xb)
            tag_s = fs.tag[:2] + (fs.tag[2] + ys, fs.tag[3] + xs)
            if same_plane and abs(tag_b[2] - tag_s[2]) < self.patch and abs(tag_b[3] - tag_s[3]) < self.patch:
                return None
            corners_s.append((ys, xs))
            pairs.append((yb, xb, ys, xs, tag_b, tag_s))
        return pairs

    def _draw(self, index: int):
        k = self.patches_per_field
        if k == 1:
            rng_b = item_rng(self.seed, self.split, 2 * index, stream=1)
            rng_s = item_rng(self.seed, self.split, 2 * index + 1, stream=2)
            blurred, (mask, told), sharp, pairs = self._plan(rng_b, rng_s, index, 1)
            pair = pairs[0]
        else:
            f, j = divmod(int(index), k)
            blurred, (mask, told), sharp, pairs = self._cache.get(f, lambda: self._plan(
                item_rng(self.seed, self.split, 2 * f, stream=7), item_rng(self.seed, self.split, 2 * f + 1, stream=8),
                f, k))
            pair, rng_s = pairs[j], item_rng(self.seed, self.split, index, stream=6)
        yb, xb, ys, xs, tag_b, tag_s = pair
        p = self.patch
        pb = blurred[yb:yb + p, xb:xb + p]
        pm = None if mask is None else mask[yb:yb + p, xb:xb + p]
        pt = None if told is None else told[yb:yb + p, xb:xb + p]
        ps = sharp[ys:ys + p, xs:xs + p]
        return pb, pm, pt, ps, rng_s, tag_b, tag_s

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        pb, pm, pt, ps, rng_s, _, _ = self._draw(index)
        if self.augment:
            rng = item_rng(self.seed, self.split, index, stream=3)
            pb, _, pm, pt = _augment(rng, [pb, None, pm, pt])
            ps, = _augment(rng_s, [ps])
        item = {"blurred": _tensor(pb), "sharp": _tensor(ps)}
        if pm is not None:
            item["mask"] = _tensor(pm)
        if pt is not None:
            item["blur"] = _tensor(pt)
        return item


# --------------------------------------------------------------------------- entry points

def _split_files(files: list[Path], val_fraction: float, seed: int
                 ) -> tuple[list[Path], list[Path], tuple[float, float], tuple[float, float]]:
    """Train/val files (a seeded permutation) or, for one file, train/val row bands."""
    if len(files) == 1 or val_fraction <= 0:
        if val_fraction <= 0:
            return files, files, (0.0, 1.0), (0.0, 1.0)
        cut = 1.0 - val_fraction
        return files, files, (0.0, cut), (cut, 1.0)
    order = np.random.default_rng(np.random.SeedSequence([seed, 7])).permutation(len(files))
    n_val = min(len(files) - 1, max(1, int(round(val_fraction * len(files)))))
    val = sorted(files[i] for i in order[:n_val])
    train = sorted(files[i] for i in order[n_val:])
    return train, val, (0.0, 1.0), (0.0, 1.0)


def _pairs(sharp_dir: str, blurred_dir: str) -> list[tuple[Path, Path]]:
    sharp = {p.name: p for p in list_images(sharp_dir)}
    blurred = {p.name: p for p in list_images(blurred_dir)}
    missing_sharp = sorted(set(blurred) - set(sharp))
    missing_blurred = sorted(set(sharp) - set(blurred))
    if missing_sharp or missing_blurred:
        parts = []
        if missing_sharp:
            parts.append(f"no sharp partner in {sharp_dir} for {_names(missing_sharp)}")
        if missing_blurred:
            parts.append(f"no blurred partner in {blurred_dir} for {_names(missing_blurred)}")
        raise ValueError("paired folders must hold the same file names: " + "; ".join(parts))
    return [(blurred[n], sharp[n]) for n in sorted(sharp)]


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def make_datasets(data: str, blurred: str | None = None, *, patch: int = 128, seed: int = 0,
                  val_fraction: float = 0.1, paired: bool = True, degradation: DefocusConfig | None = None,
                  field: int | None = None, train_length: int | None = None, val_length: int | None = None,
                  kinds: dict[str, float] | list[str] | None = None, patches_per_field: int | None = None,
                  cache_fields: int = 8, real_planes: list | None = None, real_share: float = 0.5
                  ) -> tuple[Dataset, Dataset]:
    """Training and validation datasets for every trainer.

    Parameters
    ----------
    data
        "synthetic" (procedural specimens, simulated blur) or a folder of images: sharp ones
        (blur simulated) or, with `blurred`, the sharp partners of the blurred folder.
    blurred
        Folder of blurred images: paired with `data` by file name (`paired=True`) or an
        unpaired blurred set (`paired=False`).
    patch, seed, val_fraction
        Patch side (px), seed of everything, share of files (or of rows for one file) for
        validation.
    paired
        False: items whose blurred and sharp patches never align (CycleGAN).
    degradation
        Simulation settings (default `DefocusConfig()`); ignored for blurred folders.
    field
        Side of the field generated or cropped per item (default: synthetic max(256, 2 * patch),
        folders max(384, 2 * patch)).
    train_length, val_length
        Items per epoch (default: synthetic 10000 / 64; folders 64 per image, at least 512 / 32).
    kinds
        Specimen kinds and weights for synthetic data (default `training.synth.DEFAULT_WEIGHTS`).
    patches_per_field
        Training patches cut from each simulated field (synthetic data and sharp folders; default
        `PATCHES_PER_FIELD`): item i is patch i % K of field i // K. Simulating a field is most of
        the cost of an item, so K > 1 makes items ~K times cheaper *when the K items of a field
        are fetched close together* (`dataset.epoch_order`); in a plain random order it saves
        nothing. Validation keeps one field per item (its items do not change), and folders of
        real blurred images (nothing simulated) use 1 unless given.
    cache_fields
        Fields each process keeps (LRU) to cut the next patches from.
    real_planes, real_share
        Real sharp planes (``training.real_splits.load_train_planes``) mixed into synthetic data:
        a share `real_share` of the fields is cut from them (magnified 0.5-2x, gamma changed)
        and blurred by the same simulator.
    """
    cfg = degradation or DefocusConfig()
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    common = dict(patch=patch, seed=seed)
    k_sim = PATCHES_PER_FIELD if patches_per_field is None else int(patches_per_field)
    k_real = 1 if patches_per_field is None else int(patches_per_field)
    sim_tr = dict(common, patches_per_field=k_sim, cache_fields=cache_fields)
    real_tr = dict(common, patches_per_field=k_real, cache_fields=cache_fields)
    if str(data).lower() == "synthetic":
        if blurred is not None:
            raise ValueError("--blurred cannot be combined with synthetic data")
        src = SyntheticSource(cfg, field or max(256, 2 * patch), kinds)
        if real_planes:
            if not 0.0 < real_share <= 1.0:
                raise ValueError(f"real_share must be in (0, 1], got {real_share}")
            src = MixedSource([src, PlanePoolSource(real_planes, cfg, field or max(256, 2 * patch))],
                              [1.0 - real_share, real_share])
        n_train, n_val = train_length or 10_000, val_length or 64
        if paired:
            return (PatchDataset(src, n_train, split=TRAIN, **sim_tr),
                    PatchDataset(src, n_val, split=VAL, **common))
        return (UnpairedDataset(src, src, n_train, split=TRAIN, **sim_tr),
                UnpairedDataset(src, src, n_val, split=VAL, **common))

    if real_planes:
        raise ValueError("real images (--real-pool) are mixed into synthetic data only")
    fsize = field or max(384, 2 * patch)
    if blurred is None:
        files = list_images(data)
        tr, va, rtr, rva = _split_files(files, val_fraction, seed)
        src_tr = SharpFolderSource(tr, cfg, fsize, rtr)
        src_va = SharpFolderSource(va, cfg, fsize, rva)
        n_train = train_length or max(512, 64 * len(tr))
        n_val = val_length or max(32, 8 * len(va))
        if paired:
            return (PatchDataset(src_tr, n_train, split=TRAIN, **sim_tr),
                    PatchDataset(src_va, n_val, split=VAL, **common))
        return (UnpairedDataset(src_tr, src_tr, n_train, split=TRAIN, **sim_tr),
                UnpairedDataset(src_va, src_va, n_val, split=VAL, **common))

    if paired:
        pairs = _pairs(data, blurred)
        by_blurred = dict(pairs)
        tr, va, rtr, rva = _split_files([b for b, _ in pairs], val_fraction, seed)
        src_tr = PairedFolderSource([(b, by_blurred[b]) for b in tr], fsize, rtr)
        src_va = PairedFolderSource([(b, by_blurred[b]) for b in va], fsize, rva)
        n_train = train_length or max(512, 64 * len(tr))
        n_val = val_length or max(32, 8 * len(va))
        return (PatchDataset(src_tr, n_train, split=TRAIN, **real_tr),
                PatchDataset(src_va, n_val, split=VAL, **common))

    sharp_files, blurred_files = list_images(data), list_images(blurred)
    s_tr, s_va, s_rtr, s_rva = _split_files(sharp_files, val_fraction, seed)
    b_tr, b_va, b_rtr, b_rva = _split_files(blurred_files, val_fraction, seed + 1)
    n_train = train_length or max(512, 64 * max(len(b_tr), len(s_tr)))
    n_val = val_length or max(32, 8 * max(len(b_va), len(s_va)))
    return (UnpairedDataset(ImageFolderSource(b_tr, "blurred", fsize, b_rtr),
                            ImageFolderSource(s_tr, "sharp", fsize, s_rtr), n_train, split=TRAIN, **real_tr),
            UnpairedDataset(ImageFolderSource(b_va, "blurred", fsize, b_rva),
                            ImageFolderSource(s_va, "sharp", fsize, s_rva), n_val, split=VAL, **common))
