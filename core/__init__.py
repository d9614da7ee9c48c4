"""deblur core: image I/O, normalisation, ROIs, tiling and the restoration engine (no Qt)."""

__version__ = "0.1.0"
