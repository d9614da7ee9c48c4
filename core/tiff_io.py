"""TIFF files: ImageJ, OME and plain TIFF in, ImageJ or OME-TIFF out (tifffile).

How tifffile's axis letters become ours (`core.image`):

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
``ZYX`` with ``axes_guessed``. At most one axis is guessed: a file with two or more dimensions
of unknown meaning (e.g. a 4-D ``QQYX`` stack) raises `ImageError`, because there is no
sensible reading.

Pixel size comes from (in this order) OME ``PhysicalSizeY/X`` with their units, the ImageJ
resolution tags with the ImageJ ``unit`` (micron/um/µm, nm, mm, cm, m, inch), or plain TIFF
resolution tags with resolution unit centimetre or inch. Note that files from non-microscopy
software often claim 72 dpi, which reads as 352.8 µm per pixel.

Writing uses ImageJ metadata when ImageJ can hold the image (uint8, uint16 or float32, axes in
ImageJ's TZCYXS order, RGB only as uint8 with 3 samples), otherwise OME-TIFF (any dtype, any
order). In both cases our axes, shape and JSON-safe metadata are also stored in one private
TIFF tag (`DEBLUR_TAG`) so that re-reading gives back exactly the same axes and shape
(including dimensions of size 1, which ImageJ and tifffile otherwise drop).
"""

from __future__ import annotations

import json
import logging
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from core.image import (SUPPORTED_DTYPES, TRANSIENT_KEYS, Image, ImageError, check_axes, check_pixels,
                        plausible_size, positive, read_error)

__all__ = ["read_tiff", "write_tiff", "DEBLUR_TAG"]

DEBLUR_TAG = 65432          # private TIFF tag holding our JSON (axes, shape, metadata)
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


def read_tiff(path: Path, size: int) -> Image:
    catcher = _LogCatcher()
    logger = logging.getLogger("tifffile")
    logger.addHandler(catcher)
    try:
        try:
            tif = tifffile.TiffFile(path)
        except tifffile.TiffFileError:
            raise read_error(path, "this is not a valid TIFF file: its contents are corrupt "
                                    "or it is not an image") from None
        except PermissionError:
            raise read_error(path, "you do not have permission to read this file") from None
        except Exception as exc:  # struct.error, EOFError, ValueError... on a damaged header
            raise read_error(path, f"the TIFF file is damaged or incomplete ({exc})") from None
        with tif:
            try:
                if not tif.series:
                    raise read_error(path, "the TIFF file contains no image")
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
                raise read_error(path, "the image is too large to load into memory") from None
            except Exception as exc:  # tifffile raises many kinds on damaged files
                msg = str(exc)
                if "imagecodecs" in msg:
                    raise read_error(path, "its compression needs the 'imagecodecs' package "
                                            f"({msg})") from None
                raise read_error(path, f"the TIFF file is damaged or incomplete ({msg})") from None
        damage = [m for m in catcher.messages if any(w in m.lower() for w in _DAMAGE_WORDS)]
        if damage:
            raise read_error(path, "the TIFF file is damaged or incomplete (truncated, probably "
                                    "cut short while copying or saving); copy or export it again")
    finally:
        logger.removeHandler(catcher)

    if colormap is not None and data.dtype.kind in "ui" and raw_axes.endswith("YX"):
        data, raw_axes = _apply_palette(data, colormap), raw_axes + "S"
    if data.dtype.kind in "bc" or data.dtype.newbyteorder("=") not in SUPPORTED_DTYPES:
        # report the pixel type before any question about axes
        check_pixels(path, data, "YX" if data.ndim == 2 else "Q" * (data.ndim - 2) + "YX")
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
        raise read_error(path, f"the TIFF file is incomplete (truncated): it has {size} bytes but "
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
        raise read_error(path, f"its dimensions ({raw}, shape {shape}) have no image rows/columns")
    if len(unknown) > 1:
        dims = " x ".join(str(n) for n in shape)
        raise read_error(path, f"it has {len(shape)} dimensions ({dims}) and the file does not say "
                                "which is time, z or channel; save it as an ImageJ hyperstack or "
                                "OME-TIFF with dimension labels")
    note = ""
    if unknown:
        i = unknown[0]
        free = [a for a in _GUESS_ORDER if a not in out]
        if not free:
            raise read_error(path, f"its dimensions ({raw}) cannot be matched to time, z and channel")
        out[i] = free[0]
        what = {"Z": "z planes", "T": "time points", "C": "channels"}[free[0]]
        note = (f"the file does not say what its {shape[i]} {'pages' if raw[i] == 'I' else 'images'} "
                f"are; treated as {what} ({free[0]})")
    axes = "".join(a for a in out if a is not None)
    if len(set(axes)) != len(axes) or not (axes.endswith("YX") or axes.endswith("YXS")):
        raise read_error(path, f"its dimensions ({raw}, shape {shape}) cannot be matched to "
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
            spacing = positive(ij.get("spacing"))
            if spacing is not None:
                info["z_step"] = spacing * scale
        finterval = positive(ij.get("finterval"))
        if finterval is not None:
            info["t_step"] = finterval
    if info["pixel_size"] is None and info["kind"] != "imagej":
        unit = tags.get("ResolutionUnit")
        scale = {2: 25400.0, 3: 10000.0}.get(int(unit.value) if unit is not None else 2)
        if scale is not None:
            info["pixel_size"] = plausible_size(_resolution_size(tags, scale))
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
        return positive(v)

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
        v = positive(pixels.get(f"PhysicalSize{name}"))
        scale = _unit_to_um(pixels.get(f"PhysicalSize{name}Unit", "µm"))
        return v * scale if v is not None and scale is not None else None

    px, py = length("X"), length("Y")
    if px is not None:
        out["pixel_size"] = (py or px, px)
    z = length("Z")
    if z is not None:
        out["z_step"] = z
    t = positive(pixels.get("TimeIncrement"))
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
        check_axes(str(s_axes), s_shape)
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


def write_tiff(tmp: Path, data: np.ndarray, image: Image) -> None:
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
    z_step, t_step = positive(meta.get("z_step")), positive(meta.get("t_step"))
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
        if isinstance(meta.get("info"), str):
            ij["Info"] = meta["info"]          # Fiji: Image > Show Info (how the file was made)
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
