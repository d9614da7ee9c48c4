"""The `Image` value: pixels, what their axes mean, pixel size and metadata.

Everything the GUI, the CLI and training pass around is an `Image`; `core.io` reads and writes
them (TIFF, PNG, JPEG) so that axes, pixel size and dtype survive the trip.

Axes
----
An `Image` labels each dimension with one letter of ``"TZCYXS"``: T time, Z focal plane,
C channel, Y row, X column, S the samples of an RGB(A) pixel (always the last axis). The axes
always end in ``"YX"`` or ``"YXS"`` (how file formats' own letters map to these: ``core.io``).

Metadata
--------
``Image.pixel_size`` is (y, x) in micrometres, or None. ``metadata`` may hold ``z_step`` (µm),
``t_step`` (s), ``channel_names`` (list of str), ``description`` and anything the caller adds.
Reading also sets transient keys that are not written back (`TRANSIENT_KEYS`): ``format``
("tiff"/"png"/"jpeg"), ``tiff_kind`` ("imagej"/"ome"/"plain"), ``axes_guessed``/``axes_note``
and, for float images, ``nonfinite``.

NaN and Inf
-----------
Float images may contain NaN/Inf (e.g. masked pixels). Reading keeps them and records their
number in ``metadata['nonfinite']``. Filters and networks would smear them over their
neighbours, so code that computes on pixels calls `finite_copy` (non-finite values replaced by
the median of the finite ones) and afterwards `put_back_nonfinite` (the original values back
where they were), so they are never silently spread or lost.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__ = ["ImageError", "Image", "AXES", "MIN_SIZE", "SUPPORTED_DTYPES", "TRANSIENT_KEYS",
           "finite_copy", "put_back_nonfinite", "count_nonfinite", "read_error", "write_error",
           "positive", "plausible_size", "dtype_words", "MAX_PLAUSIBLE_PIXEL_UM", "check_axes",
           "check_pixels"]

AXES = "TZCYXS"
MIN_SIZE = 8
SUPPORTED_DTYPES = tuple(np.dtype(t) for t in (
    "uint8", "uint16", "uint32", "int8", "int16", "int32", "float32", "float64"))
TRANSIENT_KEYS = frozenset({"format", "tiff_kind", "axes_guessed", "axes_note", "nonfinite"})


class ImageError(ValueError):
    """A file that cannot be read or written; the message names it and says why in plain words."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None


def read_error(path: Path, what: str) -> ImageError:
    return ImageError(f"Cannot open '{path.name}': {what} (file: {path})", path)


def write_error(path: Path, what: str) -> ImageError:
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
        check_axes(self.axes, self.data.shape)
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


def check_axes(axes: str, shape: tuple[int, ...]) -> None:
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


# --------------------------------------------------------------------------- metadata sanity

#: Pixel sizes above this (µm) are not a microscope's: 72/96 dpi screen defaults or unset
#: calibration; a scale bar drawn from them would be wrong, so they count as unknown.
MAX_PLAUSIBLE_PIXEL_UM = 50.0


def positive(v: Any) -> float | None:
    """`v` as a positive finite float, else None (metadata values come in every form)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def plausible_size(size: tuple[float, float] | None) -> tuple[float, float] | None:
    """A pixel size (y, x) in µm, or None when it cannot be a microscope's."""
    if size is None or max(size) > MAX_PLAUSIBLE_PIXEL_UM:
        return None
    return size


def dtype_words(dt: np.dtype) -> str:
    """'16-bit unsigned integer': a pixel type in words."""
    bits = dt.itemsize * 8
    kind = {"u": "unsigned integer", "i": "signed integer", "f": "floating point",
            "c": "complex", "b": "bool"}.get(dt.kind, dt.name)
    return f"{bits}-bit {kind}"


def check_pixels(path: Path, data: np.ndarray, axes: str) -> None:
    """Refuse pixel types and sizes the rest of deblur cannot work with."""
    dt = data.dtype
    if dt.kind == "b":
        raise read_error(path, "it is a black-and-white (1-bit, true/false) image; deblur needs "
                                "gray levels (8, 16 or 32-bit)")
    if dt.kind == "c":
        raise read_error(path, "it holds complex numbers (e.g. a Fourier transform), "
                                "not an intensity image")
    if dt.newbyteorder("=") not in SUPPORTED_DTYPES:
        raise read_error(path, f"its pixel type ({dtype_words(dt)}) is not supported; "
                                "convert it to 8-, 16- or 32-bit (e.g. in Fiji: Image > Type)")
    h, w = data.shape[axes.index("Y")], data.shape[axes.index("X")]
    if h < MIN_SIZE or w < MIN_SIZE:
        raise read_error(path, f"the image is too small ({w} x {h} pixels, shape {data.shape}, "
                                f"axes {axes}); deblur needs at least {MIN_SIZE} x {MIN_SIZE} pixels")
