"""What the napari widget reads from layers and gives back, checked with plain messages.

No Qt here: an image layer -> (array, axes), a shapes layer -> our ROI set in the image's pixel
coordinates (through `core.shape_layers`, the one conversion), and the keyword arguments of the
result layer (same placement and look as the original, which is never touched).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.defaults import DEFAULT_FEATHER
from core.roi import RoiSet
from core.shape_layers import rois_from_shapes

__all__ = ["LayerError", "image_array", "layer_rois", "result_kwargs", "FEATHER_KEY"]

#: shapes-layer metadata key for the edge softness a region set came with (samples, files)
FEATHER_KEY = "deblur_feather"


class LayerError(ValueError):
    """A layer the widget cannot use; the message says which and why, in plain words."""


def image_array(layer: Any) -> tuple[np.ndarray, str]:
    """(data as a numpy array, axes "YX" or "YXS") of an image layer, or a LayerError.

    Dask and other lazy arrays are read into memory; of a multiscale image the full resolution.
    """
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    try:
        data = np.asarray(data)
    except (MemoryError, ValueError) as exc:
        raise LayerError(f"The pixels of '{layer.name}' cannot be read into memory ({exc}).") from None
    if getattr(layer, "rgb", False):
        if data.ndim != 3 or data.shape[-1] not in (3, 4):
            raise LayerError(f"'{layer.name}' is a colour stack of shape {data.shape}: the deblur "
                             "widget restores one 2-D picture at a time.")
        return data, "YXS"
    if data.ndim != 2:
        raise LayerError(f"'{layer.name}' has {data.ndim} dimensions {tuple(data.shape)}: the "
                         "deblur widget restores one 2-D plane at a time. Make the plane you want "
                         "its own layer first, or restore the whole stack with deblur predict.")
    if data.dtype.kind not in "uif" or data.dtype == np.float16:
        data = data.astype(np.float32)
    return data, "YX"


def _to_image_coords(shapes: Any, image: Any, vertices: np.ndarray) -> np.ndarray:
    """Vertices of a shape (shapes-layer data coordinates) in the image layer's pixel grid."""
    same = (np.allclose(shapes.scale[-2:], image.scale[-2:])
            and np.allclose(shapes.translate[-2:], image.translate[-2:])
            and np.allclose(shapes.affine.affine_matrix, image.affine.affine_matrix)
            and np.allclose(shapes.rotate, image.rotate))
    if same:
        return np.asarray(vertices, dtype=np.float64)[:, -2:]
    return np.array([image.world_to_data(shapes.data_to_world(v))[-2:] for v in vertices],
                    dtype=np.float64)


def layer_rois(shapes: Any, image: Any, feather: float | None = None) -> tuple[RoiSet, list[str]]:
    """The areas of a shapes layer as our ROI set in `image`'s pixels, and what was skipped.

    LayerError when nothing usable is left (an empty layer, only lines and paths).
    """
    if len(shapes.data) == 0:
        raise LayerError(f"The regions layer '{shapes.name}' is empty: draw rectangles, ellipses "
                         "or polygons around the blurred areas, or press Detect blurred regions.")
    data = [_to_image_coords(shapes, image, v) for v in shapes.data]
    if feather is None:
        feather = shapes.metadata.get(FEATHER_KEY, DEFAULT_FEATHER)
    rois, skipped = rois_from_shapes(data, list(shapes.shape_type), feather=feather)
    if not rois.rois:
        raise LayerError(f"The regions layer '{shapes.name}' has no area to restore ("
                         + "; ".join(skipped) + "): draw rectangles, ellipses or polygons.")
    return rois, skipped


def result_kwargs(layer: Any, name: str, metadata: dict) -> dict:
    """add_image keyword arguments that place the result exactly over `layer` and look alike."""
    kw: dict = {"name": name, "scale": layer.scale, "translate": layer.translate,
                "rotate": layer.rotate, "shear": layer.shear,
                "affine": layer.affine.affine_matrix, "rgb": layer.rgb,
                "blending": layer.blending, "metadata": metadata}
    if not layer.rgb:
        kw["colormap"] = layer.colormap
        kw["contrast_limits"] = list(layer.contrast_limits)
    return kw
