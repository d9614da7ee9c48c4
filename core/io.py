"""Read and write microscopy images: TIFF (ImageJ, OME, plain), PNG and JPEG.

Everything the GUI, the CLI and training load or save goes through `read_image` and
`write_image`, so that axes, pixel size and dtype survive the trip and every problem with a
file reaches the user as one `ImageError` that names the file and says what is wrong.

Axes
----
An `Image` labels each dimension with one letter of ``"TZCYXS"``: T time, Z focal plane,
C channel, Y row, X column, S the samples of an RGB(A) pixel (always the last axis). The axes
always end in ``"YX"`` or ``"YXS"``. tifffile's letters are mapped like this:

==============================  ==========================================================
tifffile letter                 deblur axis
==============================  ==========================================================
T Z C Y X                       the same letter
S (last axis)                   S (RGB/RGBA samples, e.g. ``YXS``)
S (not last: planar RGB)        C (the colour planes are kept as channels, data not moved)
E (wavelength), H (lifetime),   C (spectral / lifetime bins are channel-like)
L (exposure)
I (page sequence), Q (unknown)  guessed: the first of Z, T, C not yet used, and
and any other letter            ``metadata['axes_guessed'] = True`` with a note in
(R tile, M mosaic, A angle,     ``metadata['axes_note']``
P phase, V event, J, K)
==============================  ==========================================================

So a plain multi-page TIFF of 3 pages of 512 x 512 (tifffile: ``IYX`` or ``QYX``) is read as
``ZYX`` with ``axes_guessed``; an RGB TIFF or PNG (last axis of 3 or 4 samples, photometric RGB)
is ``YXS``. At most one axis is guessed: a file with two or more dimensions of unknown meaning
(e.g. a 4-D ``QQYX`` stack) raises `ImageError`, because there is no sensible reading.

Pixel size and other metadata
-----------------------------
``Image.pixel_size`` is (y, x) in micrometres, taken from (in this order) OME
``PhysicalSizeY/X`` with their units, the ImageJ resolution tags with the ImageJ ``unit``
(micron/um/µm, nm, mm, cm, m, inch), or plain TIFF resolution tags with resolution unit
centimetre or inch (PNG/JPEG: their dpi). Without any of these it is ``None``. Note that files
from non-microscopy software often claim 72 dpi, which reads as 352.8 µm per pixel.
``metadata`` may hold ``z_step`` (µm), ``t_step`` (s), ``channel_names`` (list of str),
``description`` and anything the caller adds. On reading we also set transient keys that are not
written back: ``format`` ("tiff"/"png"/"jpeg"), ``tiff_kind`` ("imagej"/"ome"/"plain"),
``axes_guessed``/``axes_note`` and, for float images, ``nonfinite``.

Writing TIFF uses ImageJ metadata when ImageJ can hold the image (uint8, uint16 or float32,
axes in ImageJ's TZCYXS order, RGB only as uint8 with 3 samples), otherwise OME-TIFF (any dtype,
any order). In both cases our axes, shape and JSON-safe metadata are also stored in one private
TIFF tag (`DEBLUR_TAG`) so that re-reading gives back exactly the same axes and shape (including
dimensions of size 1, which ImageJ and tifffile otherwise drop).

NaN and Inf
-----------
Float images may contain NaN/Inf (e.g. masked pixels). Reading keeps them and records their
number in ``metadata['nonfinite']``. Filters and networks would smear them over their
neighbours, so code that computes on pixels calls `finite_copy` (non-finite values replaced by
the median of the finite ones) and afterwards `put_back_nonfinite` (the original values back
where they were), so they are never silently spread or lost.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import secrets
import shutil
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import tifffile

__all__ = [
    "ImageError", "Image", "read_image", "write_image", "atomic_write",
    "finite_copy", "put_back_nonfinite", "count_nonfinite",
    "AXES", "READ_SUFFIXES", "WRITE_SUFFIXES", "SUPPORTED_DTYPES", "MIN_SIZE", "DEBLUR_TAG",
]

AXES = "TZCYXS"
MIN_SIZE = 8
READ_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
WRITE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
SUPPORTED_DTYPES = tuple(np.dtype(t) for t in (
    "uint8", "uint16", "uint32", "int8", "int16", "int32", "float32", "float64"))
DEBLUR_TAG = 65432          # private TIFF tag holding our JSON (axes, shape, metadata)
TRANSIENT_KEYS = frozenset({"format", "tiff_kind", "axes_guessed", "axes_note", "nonfinite"})

_DIRECT = set("TZCYX")
_CHANNEL_LIKE = set("EHL")
_GUESS_ORDER = "ZTC"
_IMAGEJ_DTYPES = {np.dtype("uint8"), np.dtype("uint16"), np.dtype("float32")}
_UM_PER_UNIT = {
    "um": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0,
    "micrometers": 1.0, "micrometres": 1.0, "nm": 1e-3, "nanometer": 1e-3, "nanometre": 1e-3,
    "pm": 1e-6, "mm": 1e3, "millimeter": 1e3, "millimetre": 1e3, "cm": 1e4, "centimeter": 1e4,
    "centimetre": 1e4, "m": 1e6, "meter": 1e6, "metre": 1e6, "in": 25400.0, "inch": 25400.0,
    "å": 1e-4, "a": 1e-4, "angstrom": 1e-4,
}
_OTHER_FORMATS = {
    ".czi": "a Zeiss CZI file", ".nd2": "a Nikon ND2 file", ".lif": "a Leica LIF file",
    ".lof": "a Leica file", ".vsi": "an Olympus VSI file", ".oib": "an Olympus OIB file",
    ".oif": "an Olympus OIF file", ".ims": "an Imaris file", ".dv": "a DeltaVision file",
    ".zvi": "a Zeiss ZVI file", ".ics": "an ICS file", ".mrc": "an MRC file",
}


class ImageError(ValueError):
    """A file that cannot be read or written; the message names it and says why in plain words."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None


def _read_error(path: Path, what: str) -> ImageError:
    return ImageError(f"Cannot open '{path.name}': {what} (file: {path})", path)


def _write_error(path: Path, what: str) -> ImageError:
    return ImageError(f"Cannot save '{path.name}': {what} (file: {path})", path)


# --------------------------------------------------------------------------- Image


@dataclass
class Image:
    """Pixels plus what is needed to interpret and save them again.

    Attributes
    ----------
    data : ndarray
        As stored on disk (dtype kept; byte order made native).
    axes : str
        One letter per dimension from "TZCYXS", ending in "YX" or "YXS".
    pixel_size : (float, float) or None
        (y, x) micrometres per pixel.
    metadata : dict
        Free-form; see the module docstring for the keys we use.
    path : Path or None
        The file it was read from; `write_image` refuses to write onto it.
    """

    data: np.ndarray
    axes: str
    pixel_size: tuple[float, float] | None = None
    metadata: dict = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.data, np.ndarray):
            self.data = np.asarray(self.data)
        self.axes = str(self.axes).upper()
        _check_axes(self.axes, self.data.shape)
        if self.pixel_size is not None:
            ps = tuple(float(v) for v in self.pixel_size)
            if len(ps) != 2 or not all(math.isfinite(v) and v > 0 for v in ps):
                raise ValueError(f"pixel_size must be two positive numbers (y, x), got {self.pixel_size!r}")
            self.pixel_size = ps  # type: ignore[assignment]
        if self.path is not None:
            self.path = Path(self.path)

    @property
    def shape_yx(self) -> tuple[int, int]:
        """(height, width) of every plane."""
        return int(self.data.shape[self.axes.index("Y")]), int(self.data.shape[self.axes.index("X")])

    @property
    def n_planes(self) -> int:
        """How many YX planes `planes()` yields (every T, Z, C and RGB sample)."""
        h, w = self.shape_yx
        return int(self.data.size // (h * w)) if h * w else 0

    def planes(self) -> Iterator[tuple[tuple, np.ndarray]]:
        """Yield ``(index, plane)`` for every YX plane; RGB(A) samples count as separate planes.

        ``index`` is a full numpy index, so ``image.data[index]`` is the plane and
        ``out[index] = new_plane`` writes one back; ``plane`` is a 2-D view (no copy).
        """
        yi, xi = self.axes.index("Y"), self.axes.index("X")
        others = [i for i in range(self.data.ndim) if i not in (yi, xi)]
        for pos in np.ndindex(*(self.data.shape[i] for i in others)):
            index: list[Any] = [slice(None)] * self.data.ndim
            for axis, p in zip(others, pos):
                index[axis] = p
            idx = tuple(index)
            yield idx, self.data[idx]

    def with_data(self, data: np.ndarray) -> "Image":
        """A copy with new pixels and the same axes, pixel size, metadata and path.

        ``metadata['nonfinite']`` is recounted for float data (and dropped otherwise) so it
        always describes the pixels it travels with.
        """
        meta = copy.deepcopy(self.metadata)
        meta.pop("nonfinite", None)
        if np.asarray(data).dtype.kind == "f":
            meta["nonfinite"] = count_nonfinite(data)
        return Image(data=data, axes=self.axes, pixel_size=self.pixel_size, metadata=meta,
                     path=self.path)


def _check_axes(axes: str, shape: tuple[int, ...]) -> None:
    """Raise ValueError unless `axes` is a valid deblur axes string for `shape`."""
    if len(axes) != len(shape):
        raise ValueError(f"axes {axes!r} do not match an array of shape {shape}")
    if any(a not in AXES for a in axes) or len(set(axes)) != len(axes):
        raise ValueError(f"axes {axes!r} must use each of the letters {AXES} at most once")
    if not (axes.endswith("YX") or axes.endswith("YXS")):
        raise ValueError(f"axes {axes!r} must end in 'YX' or 'YXS' (samples last)")


# --------------------------------------------------------------------------- NaN / Inf


def count_nonfinite(data: np.ndarray) -> int:
    """Number of NaN/Inf values (0 for integer data)."""
    data = np.asarray(data)
    if data.dtype.kind not in "fc":
        return 0
    return int(data.size - np.count_nonzero(np.isfinite(data)))


def finite_copy(data: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Replace NaN/Inf by the median of the finite values, so filters do not spread them.

    Call it per plane. Returns ``(array, mask)``: ``mask`` is the boolean map of the
    non-finite pixels, or None when there are none (then ``array`` is `data` itself, not a
    copy). A plane with no finite value at all is filled with 0. Undo with
    `put_back_nonfinite`.
    """
    data = np.asarray(data)
    if data.dtype.kind != "f":
        return data, None
    finite = np.isfinite(data)
    if finite.all():
        return data, None
    mask = ~finite
    out = data.copy()
    out[mask] = np.median(data[finite]) if finite.any() else 0.0
    return out, mask


def put_back_nonfinite(result: np.ndarray, original: np.ndarray,
                       mask: np.ndarray | None) -> np.ndarray:
    """Write the original NaN/Inf values back into `result` (in place) and return it."""
    if mask is not None:
        result[mask] = np.asarray(original)[mask]
    return result


# --------------------------------------------------------------------------- reading


def read_image(path: str | os.PathLike) -> Image:
    """Read a TIFF, PNG or JPEG file into an `Image`.

    The format is recognised from the file's content (its first bytes), not its name.
    Every problem raises `ImageError` naming the file: missing, empty, truncated or corrupt,
    not an image, unsupported pixel type (complex, 1-bit/bool, float16, 64-bit integers),
    dimensions that cannot be told apart, or smaller than 8 x 8 pixels.
    """
    path = Path(path)
    if not path.exists():
        raise _read_error(path, "the file does not exist; check the name and the folder")
    if path.is_dir():
        raise _read_error(path, "this is a folder, not an image file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(16)
    except PermissionError:
        raise _read_error(path, "you do not have permission to read this file") from None
    except OSError as exc:
        raise _read_error(path, f"the file cannot be read ({exc.strerror or exc})") from None
    if size == 0:
        raise _read_error(path, "the file is empty (0 bytes); it was probably not saved completely")

    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        image = _read_tiff(path, size)
    elif head[:8] == b"\x89PNG\r\n\x1a\n":
        image = _read_pillow(path, "png")
    elif head[:3] == b"\xff\xd8\xff":
        image = _read_pillow(path, "jpeg")
    else:
        image = _read_other(path)

    _check_pixels(path, image.data, image.axes)
    image.path = path
    if image.data.dtype.kind == "f":
        image.metadata["nonfinite"] = count_nonfinite(image.data)
    return image


def _read_other(path: Path) -> Image:
    """Anything that is not TIFF/PNG/JPEG: let Pillow try (BMP, GIF...), else explain."""
    from PIL import Image as PILImage, UnidentifiedImageError

    try:
        with PILImage.open(path) as im:
            fmt = (im.format or "").lower()
    except (UnidentifiedImageError, OSError, ValueError):
        fmt = ""
    if fmt:
        return _read_pillow(path, fmt)
    suffix = path.suffix.lower()
    if suffix in _OTHER_FORMATS:
        raise _read_error(path, f"this is {_OTHER_FORMATS[suffix]}, which deblur cannot read; "
                                "export it as OME-TIFF or TIFF (e.g. with Fiji / Bio-Formats)")
    if _looks_like_text(path):
        raise _read_error(path, "this is not an image file: it contains text")
    if suffix in (".tif", ".tiff"):
        raise _read_error(path, "this is not a valid TIFF file: its contents are corrupt "
                                "or it is not an image")
    if suffix in (".png", ".jpg", ".jpeg"):
        raise _read_error(path, f"this is not a valid {suffix[1:].upper()} file: its contents are "
                                "corrupt or it is not an image")
    raise _read_error(path, "this is not an image deblur can read (use TIFF, PNG or JPEG)")


def _looks_like_text(path: Path) -> bool:
    with open(path, "rb") as fh:
        chunk = fh.read(4096)
    if b"\x00" in chunk:
        return False
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError:
        # a multi-byte character may be cut at the end of the chunk
        try:
            chunk[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


def _check_pixels(path: Path, data: np.ndarray, axes: str) -> None:
    """Refuse pixel types and sizes the rest of deblur cannot work with."""
    dt = data.dtype
    if dt.kind == "b":
        raise _read_error(path, "it is a black-and-white (1-bit, true/false) image; deblur needs "
                                "gray levels (8, 16 or 32-bit)")
    if dt.kind == "c":
        raise _read_error(path, "it holds complex numbers (e.g. a Fourier transform), "
                                "not an intensity image")
    if dt.newbyteorder("=") not in SUPPORTED_DTYPES:
        raise _read_error(path, f"its pixel type ({_dtype_words(dt)}) is not supported; "
                                "convert it to 8-, 16- or 32-bit (e.g. in Fiji: Image > Type)")
    h, w = data.shape[axes.index("Y")], data.shape[axes.index("X")]
    if h < MIN_SIZE or w < MIN_SIZE:
        raise _read_error(path, f"the image is too small ({w} x {h} pixels, shape {data.shape}, "
                                f"axes {axes}); deblur needs at least {MIN_SIZE} x {MIN_SIZE} pixels")


def _dtype_words(dt: np.dtype) -> str:
    bits = dt.itemsize * 8
    kind = {"u": "unsigned integer", "i": "signed integer", "f": "floating point",
            "c": "complex", "b": "bool"}.get(dt.kind, dt.name)
    return f"{bits}-bit {kind}"


class _LogCatcher(logging.Handler):
    """Collects tifffile's error messages for this thread (tifffile logs damage, it does not raise)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


_DAMAGE_WORDS = ("invalid page offset", "invalid value offset", "failed to read", "truncat",
                 "corrupt", "invalid offset", "out of range")


def _read_tiff(path: Path, size: int) -> Image:
    catcher = _LogCatcher()
    logger = logging.getLogger("tifffile")
    logger.addHandler(catcher)
    try:
        try:
            tif = tifffile.TiffFile(path)
        except tifffile.TiffFileError:
            raise _read_error(path, "this is not a valid TIFF file: its contents are corrupt "
                                    "or it is not an image") from None
        except PermissionError:
            raise _read_error(path, "you do not have permission to read this file") from None
        except Exception as exc:  # struct.error, EOFError, ValueError... on a damaged header
            raise _read_error(path, f"the TIFF file is damaged or incomplete ({exc})") from None
        with tif:
            try:
                if not tif.series:
                    raise _read_error(path, "the TIFF file contains no image")
                series = tif.series[0]
                _check_extent(path, series, size)
                data = series.asarray()
                raw_axes = series.axes
                page = getattr(series, "keyframe", None) or tif.pages[0]
                info = _tiff_metadata(tif, page)
                colormap = page.colormap if page.photometric == tifffile.PHOTOMETRIC.PALETTE else None
            except ImageError:
                raise
            except MemoryError:
                raise _read_error(path, "the image is too large to load into memory") from None
            except Exception as exc:  # tifffile raises many kinds on damaged files
                msg = str(exc)
                if "imagecodecs" in msg:
                    raise _read_error(path, "its compression needs the 'imagecodecs' package "
                                            f"({msg})") from None
                raise _read_error(path, f"the TIFF file is damaged or incomplete ({msg})") from None
        damage = [m for m in catcher.messages if any(w in m.lower() for w in _DAMAGE_WORDS)]
        if damage:
            raise _read_error(path, "the TIFF file is damaged or incomplete (truncated, probably "
                                    "cut short while copying or saving); copy or export it again")
    finally:
        logger.removeHandler(catcher)

    if colormap is not None and data.dtype.kind in "ui" and raw_axes.endswith("YX"):
        data, raw_axes = _apply_palette(data, colormap), raw_axes + "S"
    if data.dtype.kind in "bc" or data.dtype.newbyteorder("=") not in SUPPORTED_DTYPES:
        # report the pixel type before any question about axes
        _check_pixels(path, data, "YX" if data.ndim == 2 else "Q" * (data.ndim - 2) + "YX")
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    axes, guessed = _map_axes(path, raw_axes, data.shape)
    meta: dict[str, Any] = {"format": "tiff", "tiff_kind": info.pop("kind")}
    pixel_size = info.pop("pixel_size")
    stored = info.pop("stored")
    meta.update(info)
    if guessed:
        meta["axes_guessed"] = True
        meta["axes_note"] = guessed
    if stored is not None:
        data, axes, meta = _apply_stored(stored, data, axes, meta)
    return Image(data=data, axes=axes, pixel_size=pixel_size, metadata=meta)


def _check_extent(path: Path, series: Any, size: int) -> None:
    """A file cut short still parses; its pixel data would point past the end of the file."""
    end = 0
    if getattr(series, "dataoffset", None) is not None:
        end = int(series.dataoffset) + int(series.nbytes)
    else:
        for page in series.pages:
            if page is None:
                continue
            offsets, counts = page.dataoffsets, page.databytecounts
            if offsets and counts:
                end = max(end, max(int(o) + int(c) for o, c in zip(offsets, counts)))
    if end > size:
        raise _read_error(path, f"the TIFF file is incomplete (truncated): it has {size} bytes but "
                                f"its image data need {end}; copy or export it again")


def _apply_palette(data: np.ndarray, colormap: np.ndarray) -> np.ndarray:
    """Indexed colour -> RGB samples (uint8 when the palette is 8-bit in disguise)."""
    cmap = np.asarray(colormap)
    if cmap.dtype == np.uint16 and np.all(cmap % 257 == 0):
        cmap = (cmap // 257).astype(np.uint8)
    idx = np.clip(data, 0, cmap.shape[1] - 1)
    return np.moveaxis(cmap[:, idx], 0, -1)


def _map_axes(path: Path, raw: str, shape: tuple[int, ...]) -> tuple[str, str]:
    """tifffile axes -> deblur axes (see the module docstring); returns (axes, guess note)."""
    raw = raw.upper()
    out: list[str | None] = []
    unknown: list[int] = []
    for i, a in enumerate(raw):
        if a in _DIRECT:
            out.append(a)
        elif a == "S":
            out.append("S" if i == len(raw) - 1 else "C")
        elif a in _CHANNEL_LIKE:
            out.append("C")
        else:
            out.append(None)
            unknown.append(i)
    if "Y" not in out or "X" not in out:
        raise _read_error(path, f"its dimensions ({raw}, shape {shape}) have no image rows/columns")
    if len(unknown) > 1:
        dims = " x ".join(str(n) for n in shape)
        raise _read_error(path, f"it has {len(shape)} dimensions ({dims}) and the file does not say "
                                "which is time, z or channel; save it as an ImageJ hyperstack or "
                                "OME-TIFF with dimension labels")
    note = ""
    if unknown:
        i = unknown[0]
        free = [a for a in _GUESS_ORDER if a not in out]
        if not free:
            raise _read_error(path, f"its dimensions ({raw}) cannot be matched to time, z and channel")
        out[i] = free[0]
        what = {"Z": "z planes", "T": "time points", "C": "channels"}[free[0]]
        note = (f"the file does not say what its {shape[i]} {'pages' if raw[i] == 'I' else 'images'} "
                f"are; treated as {what} ({free[0]})")
    axes = "".join(a for a in out if a is not None)
    if len(set(axes)) != len(axes) or not (axes.endswith("YX") or axes.endswith("YXS")):
        raise _read_error(path, f"its dimensions ({raw}, shape {shape}) cannot be matched to "
                                "time, z, channel, rows and columns")
    return axes, note


def _unit_to_um(unit: Any) -> float | None:
    """Micrometres per `unit` ('micron', 'µm', 'nm', 'cm', 'inch'...), None if unknown."""
    if unit is None:
        return None
    u = str(unit).strip().lower()
    for mu in ("\\u00b5", "\u00b5", "\u03bc"):
        u = u.replace(mu, "u")
    return _UM_PER_UNIT.get(u)


def _positive(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def _tiff_metadata(tif: tifffile.TiffFile, page: Any) -> dict[str, Any]:
    """Pixel size, z/t steps, channel names and our stored JSON from a TIFF's metadata."""
    info: dict[str, Any] = {"kind": "plain", "pixel_size": None, "stored": None}
    tags = page.tags
    if tif.is_ome and tif.ome_metadata:
        info["kind"] = "ome"
        info.update(_ome_metadata(tif.ome_metadata))
    elif tif.is_imagej:
        info["kind"] = "imagej"
        ij = tif.imagej_metadata or {}
        scale = _unit_to_um(ij.get("unit"))
        if scale is not None:
            px = _resolution_size(tags, scale)
            if px is not None:
                info["pixel_size"] = px
            spacing = _positive(ij.get("spacing"))
            if spacing is not None:
                info["z_step"] = spacing * scale
        finterval = _positive(ij.get("finterval"))
        if finterval is not None:
            info["t_step"] = finterval
    if info["pixel_size"] is None and info["kind"] != "imagej":
        unit = tags.get("ResolutionUnit")
        scale = {2: 25400.0, 3: 10000.0}.get(int(unit.value) if unit is not None else 2)
        if scale is not None:
            info["pixel_size"] = _plausible(_resolution_size(tags, scale))
    if info["kind"] == "plain" and not tif.is_shaped:
        desc = page.description
        if desc:
            info["description"] = desc
    tag = tags.get(DEBLUR_TAG)
    if tag is not None:
        try:
            value = tag.value
            if not isinstance(value, str):   # tifffile returns unknown ASCII tags as int8 arrays
                value = np.asarray(value).astype(np.uint8).tobytes().rstrip(b"\0").decode("utf-8")
            stored = json.loads(value)
            if isinstance(stored, dict) and stored.get("deblur") == 1:
                info["stored"] = stored
        except (TypeError, ValueError):
            pass
    return info


def _resolution_size(tags: Any, um_per_unit: float) -> tuple[float, float] | None:
    """(y, x) µm per pixel from X/YResolution (pixels per unit)."""
    def res(name: str) -> float | None:
        tag = tags.get(name)
        if tag is None:
            return None
        v = tag.value
        if isinstance(v, tuple) and len(v) == 2:
            v = v[0] / v[1] if v[1] else 0.0
        return _positive(v)

    rx, ry = res("XResolution"), res("YResolution")
    if rx is None:
        return None
    ry = ry or rx
    return (um_per_unit / ry, um_per_unit / rx)


def _ome_metadata(xml: str) -> dict[str, Any]:
    """Pixel size, z step, time step and channel names of the first OME image."""
    out: dict[str, Any] = {}
    try:
        root = ET.fromstring(xml.encode("utf-8") if isinstance(xml, str) else xml)
    except ET.ParseError:
        return out
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return out

    def length(name: str) -> float | None:
        v = _positive(pixels.get(f"PhysicalSize{name}"))
        scale = _unit_to_um(pixels.get(f"PhysicalSize{name}Unit", "µm"))
        return v * scale if v is not None and scale is not None else None

    px, py = length("X"), length("Y")
    if px is not None:
        out["pixel_size"] = (py or px, px)
    z = length("Z")
    if z is not None:
        out["z_step"] = z
    t = _positive(pixels.get("TimeIncrement"))
    if t is not None:
        t_unit = pixels.get("TimeIncrementUnit", "s")
        out["t_step"] = t * {"s": 1.0, "ms": 1e-3, "min": 60.0, "h": 3600.0}.get(t_unit, 1.0)
    names = [c.get("Name") for c in pixels if c.tag.rsplit("}", 1)[-1] == "Channel"]
    if names and all(names):
        out["channel_names"] = [str(n) for n in names]
    return out


def _apply_stored(stored: dict, data: np.ndarray, axes: str,
                  meta: dict) -> tuple[np.ndarray, str, dict]:
    """Use the axes/shape/metadata we stored on write when they still fit the pixels."""
    s_axes, s_shape = stored.get("axes"), stored.get("shape")
    try:
        s_shape = tuple(int(n) for n in s_shape)
        _check_axes(str(s_axes), s_shape)
    except (TypeError, ValueError):
        return data, axes, meta
    squeezed = tuple(n for n in s_shape if n != 1)
    if squeezed == tuple(n for n in data.shape if n != 1) and int(np.prod(s_shape)) == data.size:
        data, axes = data.reshape(s_shape), str(s_axes)
        meta.pop("axes_guessed", None)
        meta.pop("axes_note", None)
    extra = stored.get("metadata")
    if isinstance(extra, dict):
        for k, v in extra.items():
            meta.setdefault(k, v)
    return data, axes, meta


def _read_pillow(path: Path, fmt: str) -> Image:
    """PNG/JPEG (and other Pillow formats): 16-bit stays uint16, RGBA keeps 4 samples,
    palette becomes RGB(A)."""
    from PIL import Image as PILImage, UnidentifiedImageError

    if fmt == "png":
        with open(path, "rb") as fh:
            head = fh.read(32)
        if len(head) >= 26 and head[24] == 16 and head[25] in (2, 4, 6):
            return _read_png16_colour(path)
    try:
        with PILImage.open(path) as im:
            im.load()
            mode = im.mode
            dpi = im.info.get("dpi")
            desc = im.info.get("Description") or im.info.get("description")
            if mode == "P" or mode == "PA":
                im = im.convert("RGBA" if ("transparency" in im.info or mode == "PA") else "RGB")
            elif mode in ("CMYK", "YCbCr", "RGBX", "LAB", "HSV"):
                im = im.convert("RGB")
            elif mode == "La":
                im = im.convert("LA")
            elif mode == "RGBa":
                im = im.convert("RGBA")
            data = np.array(im)
            mode = im.mode
    except UnidentifiedImageError:
        raise _read_error(path, f"this is not a valid {fmt.upper()} image: its contents are corrupt "
                                "or it is not an image") from None
    except PILImage.DecompressionBombError:
        raise _read_error(path, f"the {fmt.upper()} image is too large for the PNG/JPEG reader; "
                                "save it as TIFF instead") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _read_error(path, f"the {fmt.upper()} file is damaged or incomplete ({exc})") from None
    if mode.startswith("I;16") or (mode == "I" and fmt == "png"):
        if data.min(initial=0) < 0 or data.max(initial=0) > 65535:
            raise _read_error(path, "its pixel values do not fit 16 bits")
        data = data.astype(np.uint16)
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    axes = "YX" if data.ndim == 2 else "YXS"
    meta: dict[str, Any] = {"format": fmt}
    if isinstance(desc, str) and desc:
        meta["description"] = desc
    return Image(data=data, axes=axes, pixel_size=_dpi_size(dpi), metadata=meta)


def _dpi_size(dpi: Any) -> tuple[float, float] | None:
    try:
        dx, dy = (_positive(v) for v in dpi)
    except (TypeError, ValueError):
        return None
    if dx is None:
        return None
    return _plausible((25400.0 / (dy or dx), 25400.0 / dx))


#: Larger "pixel sizes" come from screen/print dpi (72 dpi = 352.8 um), not a microscope
#: calibration; a scale bar drawn from them would be wrong, so they count as unknown.
MAX_PLAUSIBLE_PIXEL_UM = 50.0


def _plausible(size: tuple[float, float] | None) -> tuple[float, float] | None:
    if size is None or max(size) > MAX_PLAUSIBLE_PIXEL_UM:
        return None
    return size


def _read_png16_colour(path: Path) -> Image:
    """16-bit RGB(A)/gray+alpha PNG: Pillow would cut it to 8 bits, imagecodecs keeps 16."""
    try:
        import imagecodecs
    except ImportError:
        raise _read_error(path, "it is a 16-bit colour PNG, which needs the 'imagecodecs' package; "
                                "save it as TIFF instead") from None
    try:
        data = imagecodecs.png_decode(path.read_bytes())
    except Exception as exc:
        raise _read_error(path, f"the PNG file is damaged or incomplete ({exc})") from None
    pixel_size = None
    try:
        from PIL import Image as PILImage

        with PILImage.open(path) as im:
            pixel_size = _dpi_size(im.info.get("dpi"))
    except Exception:
        pass
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    return Image(data=data, axes="YX" if data.ndim == 2 else "YXS", pixel_size=pixel_size,
                 metadata={"format": "png"})


# --------------------------------------------------------------------------- writing


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder that replaces `path` only on success.

    A crash, an exception or Ctrl-C (KeyboardInterrupt) while writing removes the temporary
    file and leaves any existing `path` untouched; readers never see half a file.
    The new file gets normal permissions (the user's umask), or those of the file it replaces.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if path.exists():
            with contextlib.suppress(OSError):
                shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def same_file(a: str | os.PathLike, b: str | os.PathLike | None) -> bool:
    """Whether two paths name the same file (also through links and on case-insensitive
    disks); False when `b` is None. The one check that keeps every writer off an original."""
    if b is None:
        return False
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def write_image(path: str | os.PathLike, image: Image, *, overwrite: bool = False) -> Path:
    """Save `image` atomically; the format follows the extension.

    * ``.tif``/``.tiff``: keeps shape, dtype, axes, pixel size, z/t step, channel names and the
      JSON-safe metadata (ImageJ-compatible when ImageJ can hold it, else OME-TIFF).
    * ``.png``: 8- or 16-bit, gray (YX) or RGB/RGBA/gray+alpha (YXS); pixel size as dpi.
    * ``.jpg``/``.jpeg``: 8-bit gray or RGB only. JPEG is LOSSY: pixel values change and are
      not suitable for measurements; use it only when asked for explicitly.

    Never writes onto the file the image was read from (``image.path``), even with
    `overwrite`; never replaces another existing file unless `overwrite`. Returns the path.
    Every failure raises `ImageError` naming the file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise _write_error(path, f"unknown file type '{path.suffix or '(none)'}'; "
                                 "use .tif, .png or .jpg")
    if same_file(path, image.path):
        raise _write_error(path, "this is the original image; deblur never overwrites its input. "
                                 "Choose another file name")
    if path.is_dir():
        raise _write_error(path, "a folder with this name exists")
    if path.exists() and not overwrite:
        raise _write_error(path, "the file already exists (allow overwriting to replace it)")
    if not path.parent.exists():
        raise _write_error(path, f"the folder '{path.parent}' does not exist")
    data = np.asarray(image.data)
    dt = data.dtype
    if dt.kind in "bc" or dt.newbyteorder("=") not in SUPPORTED_DTYPES:
        raise _write_error(path, f"pixel type {_dtype_words(dt)} is not supported")
    try:
        _check_axes(image.axes, data.shape)
    except ValueError as exc:
        raise _write_error(path, str(exc)) from None

    if suffix in (".tif", ".tiff"):
        writer = _write_tiff
    elif suffix == ".png":
        writer = _write_png
        _check_png(path, data, image.axes)
    else:
        writer = _write_jpeg
        _check_jpeg(path, data, image.axes)
    try:
        with atomic_write(path) as tmp:
            writer(tmp, data, image)
    except ImageError:
        raise
    except PermissionError:
        raise _write_error(path, "no permission to write in this folder") from None
    except OSError as exc:
        if getattr(exc, "errno", None) == 28:
            raise _write_error(path, "the disk is full") from None
        raise _write_error(path, f"writing failed ({exc.strerror or exc})") from None
    except Exception as exc:
        raise _write_error(path, f"writing failed ({exc})") from exc
    return path


def _json_safe(value: Any) -> Any:
    """A JSON-serialisable copy of `value`, or raise TypeError."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.size <= 4096:
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    json.dumps(value)
    return value


def _stored_json(data: np.ndarray, image: Image) -> str:
    meta = {}
    for k, v in image.metadata.items():
        if k in TRANSIENT_KEYS:
            continue
        try:
            meta[str(k)] = _json_safe(v)
        except (TypeError, ValueError):
            continue  # not representable in a file: dropped
    return json.dumps({"deblur": 1, "axes": image.axes, "shape": list(data.shape), "metadata": meta})


def _write_tiff(tmp: Path, data: np.ndarray, image: Image) -> None:
    axes = image.axes
    data = np.ascontiguousarray(data)
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    meta = image.metadata
    has_s = axes.endswith("S")
    n_s = data.shape[-1] if has_s else 0
    big = data.nbytes > 2**32 - 2**25
    it = iter("TZCYXS")
    in_ij_order = all(a in it for a in axes)
    use_imagej = (data.dtype in _IMAGEJ_DTYPES and in_ij_order and not big
                  and (not has_s or (data.dtype == np.uint8 and n_s == 3 and "C" not in axes)))
    kwargs: dict[str, Any] = {
        "photometric": "rgb" if has_s and n_s in (3, 4) else "minisblack",
        "extratags": [(DEBLUR_TAG, "s", 0, _stored_json(data, image), True)],
    }
    if has_s:
        kwargs["planarconfig"] = "contig"
        if n_s in (2, 4):
            kwargs["extrasamples"] = ["unassalpha"]
    z_step, t_step = _positive(meta.get("z_step")), _positive(meta.get("t_step"))
    ps = image.pixel_size
    if use_imagej:
        ij: dict[str, Any] = {"axes": axes}
        if ps is not None:
            kwargs["resolution"] = (1.0 / ps[1], 1.0 / ps[0])
            ij["unit"] = "um"
        if z_step is not None:
            ij["spacing"] = z_step
            ij.setdefault("unit", "um")
        if t_step is not None:
            ij["finterval"] = t_step
        tifffile.imwrite(tmp, data, imagej=True, metadata=ij, **kwargs)
        return
    ome: dict[str, Any] = {"axes": axes}
    if ps is not None:
        ome.update(PhysicalSizeX=ps[1], PhysicalSizeXUnit="µm",
                   PhysicalSizeY=ps[0], PhysicalSizeYUnit="µm")
        kwargs["resolution"] = (1e4 / ps[1], 1e4 / ps[0])
        kwargs["resolutionunit"] = "CENTIMETER"
    if z_step is not None:
        ome.update(PhysicalSizeZ=z_step, PhysicalSizeZUnit="µm")
    if t_step is not None:
        ome.update(TimeIncrement=t_step, TimeIncrementUnit="s")
    names = meta.get("channel_names")
    if "C" in axes and isinstance(names, (list, tuple)) and len(names) == data.shape[axes.index("C")]:
        ome["Channel"] = {"Name": [str(n) for n in names]}
    tifffile.imwrite(tmp, data, ome=True, bigtiff=big, metadata=ome, **kwargs)


def _check_png(path: Path, data: np.ndarray, axes: str) -> None:
    if data.dtype not in (np.dtype("uint8"), np.dtype("uint16")):
        raise _write_error(path, f"PNG holds only 8- or 16-bit images, not {_dtype_words(data.dtype)}; "
                                 "save it as .tif")
    if axes not in ("YX", "YXS") or (axes == "YXS" and data.shape[-1] not in (2, 3, 4)):
        raise _write_error(path, f"PNG holds one gray or RGB(A) picture, this image has axes {axes} "
                                 f"and shape {data.shape}; save it as .tif")
    if data.dtype == np.uint16 and data.ndim == 3:
        try:
            import imagecodecs  # noqa: F401
        except ImportError:
            raise _write_error(path, "16-bit colour PNG needs the 'imagecodecs' package; "
                                     "save it as .tif") from None


def _check_jpeg(path: Path, data: np.ndarray, axes: str) -> None:
    if data.dtype != np.uint8 or axes not in ("YX", "YXS") or (axes == "YXS" and data.shape[-1] != 3):
        raise _write_error(path, "JPEG holds only 8-bit gray or RGB pictures; save it as .tif or .png")


def _write_png(tmp: Path, data: np.ndarray, image: Image) -> None:
    from PIL import Image as PILImage

    ps = image.pixel_size
    dpi = (25400.0 / ps[1], 25400.0 / ps[0]) if ps is not None else None
    if data.dtype == np.uint16 and data.ndim == 3:
        import imagecodecs

        tmp.write_bytes(imagecodecs.png_encode(np.ascontiguousarray(data)))
        if dpi is not None:   # imagecodecs writes no pHYs chunk: add it with Pillow's help
            _png_add_phys(tmp, dpi)
        return
    im = PILImage.fromarray(np.ascontiguousarray(data))   # uint16 2-D -> mode "I;16"
    kw: dict[str, Any] = {"format": "PNG"}
    if dpi is not None:
        kw["dpi"] = dpi
    im.save(tmp, **kw)


def _png_add_phys(tmp: Path, dpi: tuple[float, float]) -> None:
    """Insert a pHYs chunk (pixels per metre) after IHDR."""
    import struct
    import zlib

    raw = tmp.read_bytes()
    ihdr_end = 8 + 8 + 13 + 4
    ppm = (int(round(dpi[0] / 0.0254)), int(round(dpi[1] / 0.0254)))
    body = b"pHYs" + struct.pack(">IIB", ppm[0], ppm[1], 1)
    chunk = struct.pack(">I", 9) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    tmp.write_bytes(raw[:ihdr_end] + chunk + raw[ihdr_end:])


def _write_jpeg(tmp: Path, data: np.ndarray, image: Image) -> None:
    from PIL import Image as PILImage

    kw: dict[str, Any] = {"format": "JPEG", "quality": 95, "subsampling": 0}
    if image.pixel_size is not None:
        kw["dpi"] = (25400.0 / image.pixel_size[1], 25400.0 / image.pixel_size[0])
    PILImage.fromarray(np.ascontiguousarray(data)).save(tmp, **kw)
