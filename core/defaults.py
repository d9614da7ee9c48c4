"""Defaults shared by the engine, `deblur predict`, the benchmark and the app, one home each
(no heavy imports: the CLI reads them to build its --help)."""

#: Tile side (px). A region is cut into ceil(length / tile) pieces, each grown by its overlap, so
#: a 2048 px camera frame is 2 x 2 tiles of 1040 px. Every tile carries a halo of the model's
#: margin on each side that its neighbours compute again, so small tiles cost much more than one
#: whole-frame pass (the measured ratio: docs/BENCHMARKS.md). A 1024 px tile needs a few hundred
#: MB for the shipped networks.
DEFAULT_TILE = 1024
#: Overlap (px) of neighbouring tile cores, blended with a raised-cosine window.
DEFAULT_OVERLAP = 32
#: Edge softness (px) of a region: the restored pixels fade into the original over this distance
#: inside the drawn edge (a ROI file's own "feather" wins).
DEFAULT_FEATHER = 16.0
#: Added to a restored file's name: cells.tif -> cells_deblurred.tif.
OUT_SUFFIX = "_deblurred"
