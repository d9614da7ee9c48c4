"""Procedural specimens: sharp microscopy-like fields made from nothing, for `--data synthetic`.

No data can be downloaded, so the models learn what cells look like from these generators and
from scikit-image's bundled photographs (a generic natural-texture prior). Each generator draws
a field at a physical pixel size, so nuclei, bacteria and filaments have realistic sizes in
pixels whatever the magnification, and renders it the way the microscope would:

* ``nuclei``         dense fields of touching nuclei (DAPI/Hoechst): chromatin texture,
                     chromocentres, nucleoli, optional lamina rim, bright mitotic figures
* ``cells``          confluent or sparse cells: textured cytoplasm, membranes, nuclei
* ``filaments``      cytoskeleton: microtubules radiating from the centrosome, stress fibres
* ``bacteria``       rods (E. coli, B. subtilis), aligned micro-colonies, dividing cells
* ``round_cells``    suspension cells / yeast: round, some budding, bright rims or cytoplasm
* ``parasites``      Giemsa blood smear in brightfield: red cells with central pallor, malaria
                     ring forms and trophozoites, the odd white cell
* ``phase_contrast`` spread and rounded cells with the dark/bright halo of phase contrast
* ``tissue``         H&E stained tissue in brightfield: glands, stroma fibres, nuclei
* ``natural``        a random crop of a bundled scikit-image picture

All return float32 images in [0, 1], shape (H, W) (``tissue(..., rgb=True)``: (H, W, 3)). They are
vectorised (no Python loop over pixels): a 512 x 512 field takes tens of milliseconds. The
images are clean (no camera noise): `core.defocus` adds blur and noise.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from training.synth.brightfield import parasites, phase_contrast, tissue
from training.synth.fluorescence import bacteria, cells, filaments, nuclei, round_cells
from training.synth.natural import NATURAL_IMAGES, available_natural_images, natural
from training.synth.render import PIXEL_RANGE, _pixel

__all__ = [
    "nuclei", "cells", "filaments", "bacteria", "round_cells", "parasites", "phase_contrast",
    "tissue", "natural", "random_specimen", "GENERATORS", "MODALITY", "DEFAULT_WEIGHTS",
    "NATURAL_IMAGES", "PIXEL_RANGE", "available_natural_images",
]

# --------------------------------------------------------------------------- mixing

GENERATORS: dict[str, Callable[..., np.ndarray]] = {
    "nuclei": nuclei, "cells": cells, "filaments": filaments, "bacteria": bacteria,
    "round_cells": round_cells, "parasites": parasites, "phase_contrast": phase_contrast,
    "tissue": tissue, "natural": natural,
}

#: how each kind is imaged: fluorescence (dark background) or transmitted light
MODALITY: dict[str, str] = {
    "nuclei": "fluorescence", "cells": "fluorescence", "filaments": "fluorescence",
    "bacteria": "fluorescence", "round_cells": "fluorescence", "parasites": "brightfield",
    "phase_contrast": "phase", "tissue": "brightfield", "natural": "other",
}

#: default mix: fluorescence nuclei and cells dominate, as in the microscopy users bring
DEFAULT_WEIGHTS: dict[str, float] = {
    "nuclei": 0.24, "cells": 0.16, "filaments": 0.12, "bacteria": 0.09, "round_cells": 0.07,
    "parasites": 0.07, "phase_contrast": 0.07, "tissue": 0.08, "natural": 0.10,
}


def random_specimen(rng: np.random.Generator, size: int | tuple[int, int], *, pixel_um: float | None = None,
                    kinds: dict[str, float] | list[str] | None = None, return_info: bool = False
                    ) -> np.ndarray | tuple[np.ndarray, dict]:
    """A random specimen of a random kind (float32 (H, W) in [0, 1]).

    Parameters
    ----------
    rng
        Source of all randomness (same state -> same image).
    pixel_um
        Physical pixel size; default: drawn from the kind's `PIXEL_RANGE`.
    kinds
        Weights per kind name (or a list of names, equally weighted); default `DEFAULT_WEIGHTS`.
    return_info
        Also return {"kind", "pixel_um" (None for natural pictures), "modality"}.
    """
    if kinds is None:
        weights = DEFAULT_WEIGHTS
    elif isinstance(kinds, dict):
        weights = dict(kinds)
    else:
        weights = {k: 1.0 for k in kinds}
    unknown = set(weights) - set(GENERATORS)
    if unknown:
        raise ValueError(f"unknown specimen kind(s) {sorted(unknown)}; known: {sorted(GENERATORS)}")
    names = [k for k, v in weights.items() if v > 0]
    if not names:
        raise ValueError("no specimen kind has a positive weight")
    p = np.array([weights[k] for k in names], dtype=np.float64)
    kind = names[int(rng.choice(len(names), p=p / p.sum()))]
    px = pixel_um
    if px is None and kind in PIXEL_RANGE:
        px = _pixel(rng, None, *PIXEL_RANGE[kind])
    img = GENERATORS[kind](size, rng, pixel_um=px)
    if return_info:
        return img, {"kind": kind, "pixel_um": px, "modality": MODALITY[kind]}
    return img
