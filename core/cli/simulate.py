"""`deblur simulate`: defocus part of a sharp image, to make realistic test fields.

The blurred region is given as a ROI file or drawn at random (`--mask auto`: smooth blobs over
20-40 % of the field). Inside it the defocus depth rises from 0 at the edge to `--defocus-um`
over the ROI feather, and every pixel is blurred with the widefield PSF of its depth
(`core.simulate.defocus_image`); pixels outside every ROI are left bit-identical. The output
keeps the input's shape, dtype, axes and metadata (every plane, channel and RGB sample gets
the same blur), and its region file (`core.roi.sidecar_path`: x.tif -> x.roi.json) is
written beside it describing the blurred region.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from core.cli import HelpFormatter, UserError
from core.simulate import DEFAULT_PIXEL_UM, PSF_FAMILIES

def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate", help="blur part of a sharp image (realistic local defocus)",
        description="Apply a physically based local defocus to a sharp image and write the "
                    "result (same shape and dtype) and the ROI file of the blurred region beside it.",
        formatter_class=HelpFormatter)
    p.add_argument("input", metavar="INPUT", help="sharp TIFF/PNG/JPEG image")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output image (.tif, .png, ...)")
    p.add_argument("--defocus-um", type=float, default=3.0, metavar="Z",
                   help="defocus depth (um) inside the blurred region (it ramps up from 0 over the feather)")
    p.add_argument("--mask", default="auto", metavar="auto|ROI.json",
                   help="'auto' (random smooth blobs over 20-40%% of the field) or a ROI file")
    p.add_argument("--seed", type=int, default=0, help="random seed (auto mask, noise)")
    optics = p.add_argument_group("optics")
    optics.add_argument("--na", type=float, default=0.8, help="numerical aperture of the objective")
    optics.add_argument("--wavelength-um", type=float, default=0.52, help="emission wavelength (um)")
    optics.add_argument("--n-medium", type=float, default=1.0,
                        help="refractive index of the immersion medium (1.0 air, 1.333 water, 1.515 oil)")
    optics.add_argument("--pixel-um", type=float, default=None,
                        help=f"pixel size (um); default: the file's, else {DEFAULT_PIXEL_UM}")
    p.add_argument("--psf", choices=list(PSF_FAMILIES), default="widefield",
                   help="PSF model (gaussian/disk get the widefield PSF's blur radius)")
    p.add_argument("--feather", type=float, default=None,
                   help="width (px) over which the depth rises inside the region edge "
                        "(default: the ROI file's, or 8%% of the image side for auto)")
    p.add_argument("--photons", type=float, default=None,
                   help="add shot noise inside the region, as if the brightest pixels collected "
                        "this many photons (blurring averages the camera noise away)")
    p.add_argument("--levels", type=int, default=8, help="depth levels of the spatially varying blur")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from core.io import ImageError, read_image, write_image
    from core.psf import Optics
    from core.roi import RoiError, RoiSet, load_rois, save_rois, sidecar_path
    from core.simulate import DEFAULT_PIXEL_UM, defocus_image, random_regions, usable_pixel_size

    inp, out = Path(args.input), Path(args.out)
    z = float(args.defocus_um)
    if not (math.isfinite(z) and z > 0):
        raise UserError(f"--defocus-um must be a positive number of micrometres, got {args.defocus_um}")
    if args.levels < 1 or args.levels > 64:
        raise UserError(f"--levels must be between 1 and 64, got {args.levels}")
    if args.photons is not None and not args.photons > 0:
        raise UserError(f"--photons must be positive, got {args.photons}")
    if args.feather is not None and not args.feather >= 0:
        raise UserError(f"--feather must not be negative, got {args.feather}")
    roi_out = sidecar_path(out)
    if not args.overwrite:
        for path in (out, roi_out):
            if path.exists():
                raise UserError(f"{path} already exists (use --overwrite to replace it)")

    try:
        image = read_image(inp)
    except ImageError as exc:
        raise UserError(str(exc)) from None
    if image.data.dtype.kind not in "uif":
        raise UserError(f"{inp}: {image.data.dtype} images cannot be blurred (need integer or float pixels)")
    h, w = image.shape_yx

    pixel = args.pixel_um if args.pixel_um is not None else usable_pixel_size(image)
    if pixel is None:
        pixel = DEFAULT_PIXEL_UM
        print(f"deblur: note: {inp.name} has no usable pixel size; assuming {pixel} um (set --pixel-um)",
              file=sys.stderr)
    try:
        optics = Optics(na=float(args.na), wavelength_um=float(args.wavelength_um),
                        n_medium=float(args.n_medium), pixel_um=float(pixel))
    except ValueError as exc:
        raise UserError(str(exc)) from None

    rng = np.random.default_rng(args.seed)
    if args.mask == "auto":
        feather = args.feather if args.feather is not None else float(np.clip(0.08 * min(h, w), 4, 64))
        rois = random_regions(rng, (h, w), feather)
        if rois is None:
            raise UserError(f"could not draw a blurred region on a {w} x {h} image (too small?)")
    else:
        try:
            rois = load_rois(args.mask)
        except RoiError as exc:
            raise UserError(str(exc)) from None
        if not rois.rois:
            raise UserError(f"{args.mask}: the ROI file holds no region")
        if args.feather is not None:
            rois = RoiSet(rois.rois, feather=float(args.feather))
    try:
        done = defocus_image(image, rois, z, optics, psf=args.psf, photons=args.photons,
                             levels=args.levels, rng=rng)
    except ValueError as exc:
        message = str(exc)
        raise UserError(f"{args.mask}: {message}" if message.startswith("the regions") else message) from None

    try:
        write_image(out, done.image, overwrite=args.overwrite)
    except ImageError as exc:
        raise UserError(str(exc)) from None
    try:
        save_rois(roi_out, rois)
    except OSError as exc:
        raise UserError(f"{roi_out}: cannot write the ROI file ({exc})") from None
    share = float((done.mask > 0).mean())
    print(f"wrote {out} ({args.psf} defocus {z:g} um = blur radius {done.blur_radius_px:.1f} px at "
          f"NA {optics.na:g}, {pixel:g} um/px, over {100 * share:.0f}% of the field) and {roi_out}")
    return 0
