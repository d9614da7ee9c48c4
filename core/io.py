"""Read and write microscopy images: TIFF (ImageJ, OME, plain), PNG and JPEG.

Everything the GUI, the CLI and training load or save goes through `read_image` and
`write_image`, so that axes, pixel size and dtype survive the trip (the `Image` value and what
its axes mean: ``core.image``) and every problem with a file reaches the user as one
`ImageError` that names the file and says what is wrong. The formats themselves:
``core.tiff_io`` (TIFF, and how tifffile's axis letters map to ours) and ``core.png_io``
(PNG, JPEG). An RGB TIFF or PNG (last axis of 3 or 4 samples) is ``YXS``.

Writes are atomic (`atomic_write`: a temporary file in the same folder, renamed on success)
and never land on the file an image was read from (`same_file`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np

from core.image import (AXES, MIN_SIZE, SUPPORTED_DTYPES, Image, ImageError, check_axes, check_pixels,
                        count_nonfinite, dtype_words, finite_copy, put_back_nonfinite, read_error,
                        write_error)
from core.png_io import check_jpeg, check_png, read_pillow, write_jpeg, write_png
from core.tiff_io import DEBLUR_TAG, read_tiff, write_tiff

__all__ = [
    "ImageError", "Image", "read_image", "write_image", "atomic_write", "same_file",
    "finite_copy", "put_back_nonfinite", "count_nonfinite",
    "AXES", "READ_SUFFIXES", "WRITE_SUFFIXES", "SUPPORTED_DTYPES", "MIN_SIZE", "DEBLUR_TAG",
]

READ_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
WRITE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
_OTHER_FORMATS = {
    ".czi": "a Zeiss CZI file", ".nd2": "a Nikon ND2 file", ".lif": "a Leica LIF file",
    ".lof": "a Leica file", ".vsi": "an Olympus VSI file", ".oib": "an Olympus OIB file",
    ".oif": "an Olympus OIF file", ".ims": "an Imaris file", ".dv": "a DeltaVision file",
    ".zvi": "a Zeiss ZVI file", ".ics": "an ICS file", ".mrc": "an MRC file",
}

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
        raise read_error(path, "the file does not exist; check the name and the folder")
    if path.is_dir():
        raise read_error(path, "this is a folder, not an image file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(16)
    except PermissionError:
        raise read_error(path, "you do not have permission to read this file") from None
    except OSError as exc:
        raise read_error(path, f"the file cannot be read ({exc.strerror or exc})") from None
    if size == 0:
        raise read_error(path, "the file is empty (0 bytes); it was probably not saved completely")

    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        image = read_tiff(path, size)
    elif head[:8] == b"\x89PNG\r\n\x1a\n":
        image = read_pillow(path, "png")
    elif head[:3] == b"\xff\xd8\xff":
        image = read_pillow(path, "jpeg")
    else:
        image = _read_other(path)

    check_pixels(path, image.data, image.axes)
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
        return read_pillow(path, fmt)
    suffix = path.suffix.lower()
    if suffix in _OTHER_FORMATS:
        raise read_error(path, f"this is {_OTHER_FORMATS[suffix]}, which deblur cannot read; "
                                "export it as OME-TIFF or TIFF (e.g. with Fiji / Bio-Formats)")
    if _looks_like_text(path):
        raise read_error(path, "this is not an image file: it contains text")
    if suffix in (".tif", ".tiff"):
        raise read_error(path, "this is not a valid TIFF file: its contents are corrupt "
                                "or it is not an image")
    if suffix in (".png", ".jpg", ".jpeg"):
        raise read_error(path, f"this is not a valid {suffix[1:].upper()} file: its contents are "
                                "corrupt or it is not an image")
    raise read_error(path, "this is not an image deblur can read (use TIFF, PNG or JPEG)")


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
        raise write_error(path, f"unknown file type '{path.suffix or '(none)'}'; "
                                 "use .tif, .png or .jpg")
    if same_file(path, image.path):
        raise write_error(path, "this is the original image; deblur never overwrites its input. "
                                 "Choose another file name")
    if path.is_dir():
        raise write_error(path, "a folder with this name exists")
    if path.exists() and not overwrite:
        raise write_error(path, "the file already exists (allow overwriting to replace it)")
    if not path.parent.exists():
        raise write_error(path, f"the folder '{path.parent}' does not exist")
    data = np.asarray(image.data)
    dt = data.dtype
    if dt.kind in "bc" or dt.newbyteorder("=") not in SUPPORTED_DTYPES:
        raise write_error(path, f"pixel type {dtype_words(dt)} is not supported")
    try:
        check_axes(image.axes, data.shape)
    except ValueError as exc:
        raise write_error(path, str(exc)) from None

    if suffix in (".tif", ".tiff"):
        writer = write_tiff
    elif suffix == ".png":
        writer = write_png
        check_png(path, data, image.axes)
    else:
        writer = write_jpeg
        check_jpeg(path, data, image.axes)
    try:
        with atomic_write(path) as tmp:
            writer(tmp, data, image)
    except ImageError:
        raise
    except PermissionError:
        raise write_error(path, "no permission to write in this folder") from None
    except OSError as exc:
        if getattr(exc, "errno", None) == 28:
            raise write_error(path, "the disk is full") from None
        raise write_error(path, f"writing failed ({exc.strerror or exc})") from None
    except Exception as exc:
        raise write_error(path, f"writing failed ({exc})") from exc
    return path
