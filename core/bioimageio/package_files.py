"""Reading a deblur model out of a bioimage.io package (a zip), with the standard library only.

An exported package carries, beside the formats other tools run (TorchScript, ONNX), the
original deblur weights file and its card as attachments, named in ``deblur.json``; loading
those gives exactly the model that was exported, with its card, views and margin.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

__all__ = ["MANIFEST", "PackageError", "is_package", "is_model_package", "read_package"]

#: the attachment that says which files of the package are the deblur weights and card
MANIFEST = "deblur.json"
_RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")


class PackageError(ValueError):
    """A zip that is not a readable bioimage.io package of a deblur model (the message names it)."""


def is_package(path: str | Path) -> bool:
    """True for a zip file (what a bioimage.io package is); the contents are checked on read."""
    path = Path(path)
    return path.suffix.lower() == ".zip" or (path.is_file() and zipfile.is_zipfile(path))


def is_model_package(path: str | Path) -> bool:
    """True for a zip that holds a bioimage.io description (not, say, an ImageJ ROI set)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith(r) for n in zf.namelist() for r in _RDF_NAMES)
    except (OSError, zipfile.BadZipFile):
        return False


def read_package(path: str | Path) -> tuple[bytes, dict, dict]:
    """(safetensors bytes, model card, manifest) of the deblur model inside package `path`."""
    path = Path(path)
    if not path.is_file():
        raise PackageError(f"{path} does not exist")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if not any(n.endswith(r) for n in names for r in _RDF_NAMES):
                raise PackageError(f"{path} is a zip file but not a bioimage.io model package "
                                   "(it has no rdf.yaml)")
            if MANIFEST not in names:
                raise PackageError(f"{path} is a bioimage.io package, but not of a deblur model "
                                   "(deblur can run only packages it exported itself)")
            manifest = json.loads(zf.read(MANIFEST).decode("utf-8"))
            weights, card = manifest.get("weights"), manifest.get("card")
            if weights not in names or card not in names:
                raise PackageError(f"{path}: the deblur weights named in {MANIFEST} are missing "
                                   "from the package")
            return zf.read(weights), json.loads(zf.read(card).decode("utf-8")), manifest
    except zipfile.BadZipFile:
        raise PackageError(f"{path} is not a readable zip file (damaged or truncated)") from None
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise PackageError(f"{path}: the deblur description inside cannot be read ({exc})") from None
