"""deblur's sample images for napari's File > Open Sample: each image with its blurred region
as a shapes layer, ready for the deblur widget."""

from __future__ import annotations

from core.io import read_image
from core.roi import load_rois, sidecar_path
from core.shape_layers import shapes_from_rois
from resources import SAMPLES

__all__ = ["nuclei", "tissue", "sample_layers"]


def sample_layers(filename: str, name: str) -> list[tuple]:
    """[(image, kwargs, "image"), (shapes, kwargs, "shapes")] for one shipped sample."""
    path = SAMPLES / filename
    image = read_image(path)
    rois = load_rois(sidecar_path(path))
    data, types = shapes_from_rois(rois)
    scale = image.pixel_size if image.pixel_size else (1.0, 1.0)
    return [
        (image.data, {"name": name, "rgb": "S" in image.axes, "scale": scale,
                      "metadata": {"path": str(path)}}, "image"),
        (data, {"name": f"{name}: blurred region", "shape_type": types, "scale": scale,
                "edge_color": "yellow", "face_color": "transparent", "edge_width": 2,
                "metadata": {"deblur_feather": rois.feather}}, "shapes"),
    ]


def nuclei() -> list[tuple]:
    return sample_layers("nuclei_blurred.tif", "nuclei")


def tissue() -> list[tuple]:
    return sample_layers("tissue_blurred.png", "tissue")
