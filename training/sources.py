"""Where training fields come from: simulated specimens, folders of sharp images, paired and
unpaired folders of real blurred/sharp images.

A source turns (split, index) into a `Field`: the blurred and sharp planes of one field of view,
normalised as the engine normalises at inference, and the mask of where it was defocused.
``training.data`` cuts patches from fields and makes the datasets.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.defocus import DefocusConfig, relative_intensity, sample_optics, simulate_local_defocus
from core.io import READ_SUFFIXES
from core.normalize import P_HIGH, P_LOW, normalize, percentile_params
from core.roi import load_rois, roi_mask, sidecar_path
from training import synth

__all__ = ["Field", "SyntheticSource", "SharpFolderSource", "PairedFolderSource",
           "ImageFolderSource", "PlanePoolSource", "MixedSource", "list_images", "item_rng", "IMAGE_SUFFIXES", "TRAIN", "VAL"]

IMAGE_SUFFIXES = READ_SUFFIXES          # the formats core.io reads
TRAIN, VAL = 0, 1


def item_rng(seed: int, split: int, index: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, split, int(index), stream]))


@dataclass
class Field:
    """A normalised field from which patches are cut (arrays (H, W) float32, or None)."""

    blurred: np.ndarray | None
    sharp: np.ndarray | None
    mask: np.ndarray | None
    tag: tuple                      # provenance: (source, plane, y0, x0) of the field in its image
    hint: np.ndarray | None = None  # where to steer patches when there is no mask
    blur_px: np.ndarray | None = None   # each pixel's true blur radius (px), when simulated


# --------------------------------------------------------------------------- images on disk

def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files (TIFF/PNG/JPEG) directly in `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.startswith("."))
    if not files:
        raise ValueError(f"{folder}: no images (.tif, .tiff, .png, .jpg) in this folder")
    return files


#: luminance weights of RGB (Rec. 709): colour pictures are trained on as grey
LUMINANCE = np.array([0.2125, 0.7154, 0.0721], np.float32)


def best_window(rng: np.random.Generator, plane: np.ndarray, fh: int, fw: int,
                rows: tuple[int, int] | None = None, weight: np.ndarray | None = None,
                tries: int = 4) -> tuple[int, int]:
    """Top-left corner of an (fh, fw) window of `plane` within `rows`: the best of a few random
    ones by contrast of `weight` (default the plane itself), which skips empty corners."""
    r0, r1 = rows or (0, plane.shape[0])
    src = plane if weight is None else weight
    best, best_score = (r0, 0), -1.0
    for _ in range(tries):
        y = int(rng.integers(r0, r1 - fh + 1))
        x = int(rng.integers(0, plane.shape[1] - fw + 1))
        score = float(np.std(src[y:y + fh:4, x:x + fw:4])) + 1e-9 * rng.random()
        if score > best_score:
            best, best_score = (y, x), score
    return best


def _gray_planes(path: Path) -> tuple[list[np.ndarray], float | None]:
    """Every YX plane of an image as float32 (RGB -> luminance), and its pixel size (um)."""
    from core.io import read_image

    img = read_image(path)
    data = img.data
    axes = img.axes
    if axes.endswith("S"):
        s = data.shape[-1]
        if s >= 3:
            data = data[..., :3].astype(np.float32) @ LUMINANCE
        else:
            data = data[..., 0].astype(np.float32)
        axes = axes[:-1]
    h, w = data.shape[-2:]
    planes = [np.ascontiguousarray(p, dtype=np.float32) for p in data.reshape(-1, h, w)]
    px = float(np.mean(img.pixel_size)) if img.pixel_size else None
    if px is not None and not (0.01 <= px <= 5.0):          # 72 dpi and friends: not a microscope
        px = None
    return planes, px


class _PlaneCache:
    """Small per-process LRU of loaded images (each DataLoader worker has its own)."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._items: OrderedDict[Path, tuple[list[np.ndarray], float | None]] = OrderedDict()

    def get(self, path: Path) -> tuple[list[np.ndarray], float | None]:
        if path in self._items:
            self._items.move_to_end(path)
            return self._items[path]
        value = _gray_planes(path)
        self._items[path] = value
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return value


def _region_rows(h: int, region: tuple[float, float]) -> tuple[int, int]:
    return int(round(region[0] * h)), max(int(round(region[0] * h)) + 1, int(round(region[1] * h)))


# --------------------------------------------------------------------------- field sources

class SyntheticSource:
    """Procedural specimens (`training.synth`) blurred by `simulate_local_defocus`.

    The specimen's pixel size drives the optics (NA chosen to sample it realistically), so
    blur and structure sizes agree as in a real microscope. Transmitted-light specimens are not
    turned into brightfield again; fluorescence ones are with `cfg.brightfield_prob`.
    """

    def __init__(self, degradation: DefocusConfig | None = None, field: int = 256,
                 kinds: dict[str, float] | list[str] | None = None) -> None:
        self.cfg = degradation or DefocusConfig()
        self.field_size = int(field)
        self.kinds = kinds

    def field(self, rng: np.random.Generator, index: int, need: str = "both") -> Field:
        img, info = synth.random_specimen(rng, self.field_size, kinds=self.kinds, return_info=True)
        if need == "sharp":                 # unpaired sharp side: no blur needed
            x = img
            params = percentile_params(x, P_LOW, P_HIGH)
            return Field(None, normalize(x, params), None, ("synthetic", index, 0, 0))
        optics = sample_optics(rng, self.cfg, pixel_um=info["pixel_um"])
        bf = None if info["modality"] in ("fluorescence", "other") else False
        sim = simulate_local_defocus(img, rng, self.cfg, optics=optics, brightfield=bf)
        params = percentile_params(sim.blurred, P_LOW, P_HIGH)
        return Field(normalize(sim.blurred, params), normalize(sim.sharp, params),
                     sim.mask.astype(np.float32), ("synthetic", index, 0, 0),
                     blur_px=sim.radius_map())


class _FolderBase:
    def __init__(self, files: list[Path], field: int, region: tuple[float, float]) -> None:
        if not files:
            raise ValueError("no image files given")
        self.files = [Path(f) for f in files]
        self.field_size = int(field)
        self.region = region
        self._cache = _PlaneCache()

    def _crop(self, rng: np.random.Generator, plane: np.ndarray, weight: np.ndarray | None = None
              ) -> tuple[int, int, int, int]:
        """A field-size window in the allowed rows, biased toward `weight` (content or mask)."""
        h, w = plane.shape
        r0, r1 = _region_rows(h, self.region)
        fh, fw = min(self.field_size, r1 - r0), min(self.field_size, w)
        best = best_window(rng, plane, fh, fw, (r0, r1), weight)
        return best[0], best[1], fh, fw


class SharpFolderSource(_FolderBase):
    """Sharp images from disk with simulated local defocus (`--data DIR`).

    Each field is a crop of up to `field` px of one plane (channels, z and t are separate
    planes; RGB is turned to grey), blurred by `simulate_local_defocus` with the file's pixel
    size when it has one, never turned into brightfield (it keeps the user's contrast).
    """

    def __init__(self, files: list[Path], degradation: DefocusConfig | None = None, field: int = 384,
                 region: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__(files, field, region)
        self.cfg = degradation or DefocusConfig()

    def field(self, rng: np.random.Generator, index: int, need: str = "both") -> Field:
        k = index % len(self.files)
        planes, px = self._cache.get(self.files[k])
        p = int(rng.integers(len(planes)))
        plane = planes[p]
        y, x, fh, fw = self._crop(rng, plane)
        crop = plane[y:y + fh, x:x + fw]
        tag = (str(self.files[k]), p, y, x)
        if need == "sharp":
            params = percentile_params(crop, P_LOW, P_HIGH)
            return Field(None, normalize(crop, params), None, tag)
        optics = sample_optics(rng, self.cfg, pixel_um=px)
        sim = simulate_local_defocus(crop, rng, self.cfg, optics=optics, brightfield=False)
        params = percentile_params(sim.blurred, P_LOW, P_HIGH)
        return Field(normalize(sim.blurred, params), normalize(sim.sharp, params),
                     sim.mask.astype(np.float32), tag, blur_px=sim.radius_map())


class PairedFolderSource(_FolderBase):
    """Blurred/sharp pairs with the same file names (`--data SHARP --blurred BLURRED`).

    Both planes are normalised with the percentiles of the *whole* blurred plane (exactly what
    the engine does at inference). A ``<stem>.roi.json`` beside every blurred file gives the
    mask; without them there is no mask and patches are drawn toward where the pair differs.
    """

    def __init__(self, pairs: list[tuple[Path, Path]], field: int = 512, region: tuple[float, float] = (0.0, 1.0)
                 ) -> None:
        super().__init__([b for b, _ in pairs], field, region)
        self.pairs = [(Path(b), Path(s)) for b, s in pairs]
        self.has_mask = all(sidecar_path(b).is_file() for b, _ in self.pairs)
        self._params: dict[tuple[int, int], object] = {}

    def _load(self, k: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        b_path, s_path = self.pairs[k]
        bp, _ = self._cache.get(b_path)
        sp, _ = self._cache.get(s_path)
        if len(bp) != len(sp) or bp[0].shape != sp[0].shape:
            raise ValueError(f"{b_path.name}: the blurred image ({len(bp)} x {bp[0].shape}) and its sharp "
                             f"partner ({len(sp)} x {sp[0].shape}) differ in size")
        return bp, sp

    def field(self, rng: np.random.Generator, index: int, need: str = "both") -> Field:
        k = index % len(self.pairs)
        bp, sp = self._load(k)
        p = int(rng.integers(len(bp)))
        key = (k, p)
        if key not in self._params:
            self._params[key] = percentile_params(bp[p], P_LOW, P_HIGH)
        params = self._params[key]
        mask_full = None
        if self.has_mask:

            mask_full = roi_mask(load_rois(sidecar_path(self.pairs[k][0])), bp[p].shape)
            weight = mask_full
        else:
            weight = np.abs(bp[p] - sp[p])
        y, x, fh, fw = self._crop(rng, bp[p], weight)
        win = (slice(y, y + fh), slice(x, x + fw))
        mask = None if mask_full is None else (mask_full[win] > 0).astype(np.float32)
        if mask is None and need != "sharp":
            # no ROI file: steer patches toward where the pair differs (weight only, not returned)
            diff = np.abs(normalize(bp[p][win], params) - normalize(sp[p][win], params))
            mask_hint = (diff > np.percentile(diff, 60)).astype(np.float32)
        else:
            mask_hint = None
        return Field(normalize(bp[p][win], params), normalize(sp[p][win], params), mask,
                     (str(self.pairs[k][0]), p, y, x), mask_hint)


class ImageFolderSource(_FolderBase):
    """One side of an unpaired set: images used as they are (`role` "blurred" or "sharp"),
    each crop normalised by its own plane's percentiles."""

    def __init__(self, files: list[Path], role: str, field: int = 512, region: tuple[float, float] = (0.0, 1.0)
                 ) -> None:
        super().__init__(files, field, region)
        if role not in ("blurred", "sharp"):
            raise ValueError("role must be 'blurred' or 'sharp'")
        self.role = role
        self._params: dict[tuple[int, int], object] = {}

    def field(self, rng: np.random.Generator, index: int, need: str = "both") -> Field:
        k = index % len(self.files)
        planes, _ = self._cache.get(self.files[k])
        p = int(rng.integers(len(planes)))
        if (k, p) not in self._params:
            self._params[(k, p)] = percentile_params(planes[p], P_LOW, P_HIGH)
        y, x, fh, fw = self._crop(rng, planes[p])
        arr = normalize(planes[p][y:y + fh, x:x + fw], self._params[(k, p)])
        tag = (str(self.files[k]), p, y, x)
        return Field(arr, None, None, tag) if self.role == "blurred" else Field(None, arr, None, tag)


# --------------------------------------------------------------------------- real sharp planes

#: modalities whose images are dark-field-like (bright objects on dark): these may also be
#: turned into brightfield contrast; transmitted-light images keep their own contrast
_EMISSIVE = ("fluorescence", "confocal", "light-sheet")


class PlanePoolSource:
    """Real sharp planes in memory (``training.real_splits.train_planes``) with simulated local
    defocus: the real-image half of the training data.

    Per field: a plane (chance ~ the square root of its area), a magnification log-uniform in
    `scale` (a window of field / scale px, best of 4 by contrast, resized), a gamma in `gamma`
    on its relative intensity, then `simulate_local_defocus` with the plane's pixel size
    (divided by the magnification) when known. Fluorescence-like planes may be turned into
    brightfield (`cfg.brightfield_prob`), transmitted-light ones keep their contrast.
    """

    def __init__(self, planes: list, degradation: DefocusConfig | None = None, field: int = 256,
                 scale: tuple[float, float] = (0.5, 2.0), gamma: tuple[float, float] = (0.7, 1.4)) -> None:
        if not planes:
            raise ValueError("no real planes to train on")
        self.cfg = degradation or DefocusConfig()
        self.field_size = int(field)
        self.scale, self.gamma = scale, gamma
        self.planes = list(planes)
        area = np.array([float(np.prod(p.data.shape[:2])) for p in self.planes])
        self.p = np.sqrt(area) / np.sqrt(area).sum()
        self._grey: dict[int, np.ndarray] = {}

    def _plane(self, k: int) -> np.ndarray:
        if k not in self._grey:
            data = np.asarray(self.planes[k].data, np.float32)
            if data.ndim == 3:
                data = data[..., :3] @ LUMINANCE
            self._grey[k] = np.ascontiguousarray(data)
        return self._grey[k]

    def field(self, rng: np.random.Generator, index: int, need: str = "both") -> Field:
        from scipy import ndimage

        k = int(rng.choice(len(self.planes), p=self.p))
        plane, info = self._plane(k), self.planes[k]
        scale = float(np.exp(rng.uniform(np.log(self.scale[0]), np.log(self.scale[1]))))
        h, w = plane.shape
        side = int(np.ceil(self.field_size / scale))
        fh, fw = min(side, h), min(side, w)
        y, x = best_window(rng, plane, fh, fw)
        crop = plane[y:y + fh, x:x + fw]
        if abs(scale - 1.0) > 1e-3:
            crop = ndimage.zoom(crop, scale, order=1)[:self.field_size, :self.field_size]
        crop = relative_intensity(crop) ** np.float32(rng.uniform(*self.gamma))
        tag = (f"{info.source}: {info.name}", k, y, x)
        if need == "sharp":
            params = percentile_params(crop, P_LOW, P_HIGH)
            return Field(None, normalize(crop, params), None, tag)
        pixel = None if info.pixel_um is None else float(info.pixel_um) / scale
        if pixel is not None and not (self.cfg.pixel_um[0] / 4 <= pixel <= self.cfg.pixel_um[1] * 4):
            pixel = None
        optics = sample_optics(rng, self.cfg, pixel_um=pixel)
        emissive = any(m in info.modality.lower() for m in _EMISSIVE)
        sim = simulate_local_defocus(crop, rng, self.cfg, optics=optics, brightfield=None if emissive else False)
        params = percentile_params(sim.blurred, P_LOW, P_HIGH)
        return Field(normalize(sim.blurred, params), normalize(sim.sharp, params),
                     sim.mask.astype(np.float32), tag, blur_px=sim.radius_map())


class MixedSource:
    """Fields from several sources, each chosen with its weight (by the field's own rng, so an
    item stays a function of (seed, split, index))."""

    def __init__(self, sources: list, weights: list[float]) -> None:
        if len(sources) != len(weights) or not sources or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("MixedSource needs one non-negative weight per source, not all zero")
        self.sources = list(sources)
        w = np.asarray(weights, np.float64)
        self.p = w / w.sum()
        self.has_mask = all(getattr(s, "has_mask", True) for s in self.sources)

    def field(self, rng: np.random.Generator, index: int, need: str = "both") -> Field:
        k = int(rng.choice(len(self.sources), p=self.p))
        return self.sources[k].field(rng, index, need)
