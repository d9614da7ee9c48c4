"""PNG and JPEG files (Pillow): 8/16-bit grey, RGB(A), pixel size as dpi.

JPEG is lossy: written only when asked for explicitly, 8-bit grey or RGB only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.image import Image, dtype_words, plausible_size, positive, read_error, write_error

__all__ = ["read_pillow", "write_png", "write_jpeg", "check_png", "check_jpeg"]


def read_pillow(path: Path, fmt: str) -> Image:
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
        raise read_error(path, f"this is not a valid {fmt.upper()} image: its contents are corrupt "
                                "or it is not an image") from None
    except PILImage.DecompressionBombError:
        raise read_error(path, f"the {fmt.upper()} image is too large for the PNG/JPEG reader; "
                                "save it as TIFF instead") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise read_error(path, f"the {fmt.upper()} file is damaged or incomplete ({exc})") from None
    if mode.startswith("I;16") or (mode == "I" and fmt == "png"):
        if data.min(initial=0) < 0 or data.max(initial=0) > 65535:
            raise read_error(path, "its pixel values do not fit 16 bits")
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
        dx, dy = (positive(v) for v in dpi)
    except (TypeError, ValueError):
        return None
    if dx is None:
        return None
    return plausible_size((25400.0 / (dy or dx), 25400.0 / dx))


def _read_png16_colour(path: Path) -> Image:
    """16-bit RGB(A)/gray+alpha PNG: Pillow would cut it to 8 bits, imagecodecs keeps 16."""
    try:
        import imagecodecs
    except ImportError:
        raise read_error(path, "it is a 16-bit colour PNG, which needs the 'imagecodecs' package; "
                                "save it as TIFF instead") from None
    try:
        data = imagecodecs.png_decode(path.read_bytes())
    except Exception as exc:
        raise read_error(path, f"the PNG file is damaged or incomplete ({exc})") from None
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


def check_png(path: Path, data: np.ndarray, axes: str) -> None:
    if data.dtype not in (np.dtype("uint8"), np.dtype("uint16")):
        raise write_error(path, f"PNG holds only 8- or 16-bit images, not {dtype_words(data.dtype)}; "
                                 "save it as .tif")
    if axes not in ("YX", "YXS") or (axes == "YXS" and data.shape[-1] not in (2, 3, 4)):
        raise write_error(path, f"PNG holds one gray or RGB(A) picture, this image has axes {axes} "
                                 f"and shape {data.shape}; save it as .tif")
    if data.dtype == np.uint16 and data.ndim == 3:
        try:
            import imagecodecs  # noqa: F401
        except ImportError:
            raise write_error(path, "16-bit colour PNG needs the 'imagecodecs' package; "
                                     "save it as .tif") from None


def check_jpeg(path: Path, data: np.ndarray, axes: str) -> None:
    if data.dtype != np.uint8 or axes not in ("YX", "YXS") or (axes == "YXS" and data.shape[-1] != 3):
        raise write_error(path, "JPEG holds only 8-bit gray or RGB pictures; save it as .tif or .png")


def write_png(tmp: Path, data: np.ndarray, image: Image) -> None:
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


def write_jpeg(tmp: Path, data: np.ndarray, image: Image) -> None:
    from PIL import Image as PILImage

    kw: dict[str, Any] = {"format": "JPEG", "quality": 95, "subsampling": 0}
    if image.pixel_size is not None:
        kw["dpi"] = (25400.0 / image.pixel_size[1], 25400.0 / image.pixel_size[0])
    PILImage.fromarray(np.ascontiguousarray(data)).save(tmp, **kw)
