"""Defaults shared by the engine, `deblur predict` and the app (no heavy imports: the CLI reads
them to build its --help)."""

#: Tile side (px). Every tile carries a halo of the model's margin on each side (56 px for the
#: U-Net generators) that its neighbours compute again: the halos alone make 256 px tiles ~2.7x
#: the pixels of one whole-frame pass, 1024 px tiles ~1.15x (tiles shrink to share a region
#: evenly, so a 2048 px frame takes 2 x 2 tiles; measured, COMI tiled takes 1.3x the one-tile
#: time, docs/BENCHMARKS.md). A 1024 px tile needs a few hundred MB for the shipped networks.
DEFAULT_TILE = 1024
#: Overlap (px) of neighbouring tile cores, blended with a raised-cosine window.
DEFAULT_OVERLAP = 32
