"""`deblur estimate`: how out of focus each region of an image is (against its in-focus areas)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.cli import HelpFormatter, UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "estimate", help="measure how blurred each region is",
        description="Estimate the defocus blur of each region, measured against the in-focus "
                    "part of the same image (the blur radius in pixels, and in micrometres of "
                    "defocus when the numerical aperture is given and the pixel size is known). "
                    "Multi-plane images are measured on their first plane.",
        formatter_class=HelpFormatter)
    p.add_argument("input", metavar="INPUT", help="TIFF/PNG image")
    p.add_argument("--roi", action="append", default=[], metavar="FILE|x,y,w,h",
                   help="a region file (deblur .roi.json, ImageJ .roi/.zip) or a rectangle; may "
                        "be repeated")
    p.add_argument("--auto-roi", action="store_true", help="detect the blurred regions automatically")
    p.add_argument("--na", type=float, default=None, help="numerical aperture of the objective")
    p.add_argument("--n-medium", type=float, default=1.0,
                   help="refractive index of the immersion medium (air 1.0, water 1.33, oil 1.515)")
    p.add_argument("--wavelength", type=float, default=0.52, help="emission wavelength in um")
    p.add_argument("--pixel-um", type=float, default=None,
                   help="pixel size in um (default: the file's)")
    p.add_argument("--json", action="store_true", help="the estimates as JSON")
    p.set_defaults(run=run, feather=None)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from core.blur_estimate import estimate_regions, first_plane
    from core.cli.predict import rois_from_args
    from core.io import ImageError, read_image
    from core.roi import RoiError

    try:
        image = read_image(Path(args.input))
        rois = rois_from_args(args, image)
    except (ImageError, RoiError) as exc:
        raise UserError(str(exc)) from None
    if rois is None:
        raise UserError("say which regions to measure: --roi FILE or x,y,w,h, or --auto-roi")
    if not rois.rois:
        raise UserError(f"{args.input}: no blurred region found")
    plane = first_plane(image.data, image.axes)
    plane = plane.mean(axis=-1) if plane.ndim == 3 else plane        # RGB: the mean intensity
    pixel = args.pixel_um or (image.pixel_size[1] if image.pixel_size else None)
    optics = {"pixel_um": pixel, "na": args.na, "wavelength_um": args.wavelength,
              "n_medium": args.n_medium} if args.na and pixel else {}
    estimates = estimate_regions(plane.astype(np.float32), rois, **optics)
    if args.json:
        print(json.dumps([{"region": i + 1, "radius_px": e.radius_px, "low_px": e.low_px,
                           "high_px": e.high_px, "confidence": e.confidence,
                           "looks_sharp": e.looks_sharp, "defocus_um": e.defocus_um,
                           "fine_detail_vs_in_focus": e.detail_ratio,
                           "reason": e.reason, "patches": list(e.patches), "words": e.words()}
                          for i, e in enumerate(estimates)], indent=1))
    else:
        for i, e in enumerate(estimates):
            print(f"region {i + 1}: {e.words()}"
                  + (f" (confidence {e.confidence})" if e.radius_px is not None else ""))
    return 0
