"""`deblur export-bioimageio`: a model as a bioimage.io package for Fiji/deepImageJ and others."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli import HelpFormatter, UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-bioimageio", help="write a model as a bioimage.io package (Fiji, ilastik, ...)",
        description="Write a deblur model as a bioimage.io model package (.zip) that "
                    "Fiji/deepImageJ, ilastik, BiaPy, QuPath and bioimageio.core can run. The "
                    "package restores whole tiles; deblur loads it back with --weights. Needs "
                    "the bioimageio extra: pip install -e \".[bioimageio]\".",
        formatter_class=HelpFormatter)
    p.add_argument("--model", default="comi", help="comi or cyclegan")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="weights trained with deblur-train (default: the shipped ones)")
    p.add_argument("--views", type=int, default=None, choices=(1, 2, 4, 8),
                   help="mirrored views averaged inside the package (default: the model's)")
    p.add_argument("-o", "--out", required=True, metavar="FILE.zip", help="the package to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing package")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from core.bioimageio.export import ExportError, export_package

    out = Path(args.out)
    try:
        export_package(args.model, out, weights=args.weights, views=args.views,
                       overwrite=args.overwrite,
                       progress=lambda msg: print(f"deblur: {msg}", file=sys.stderr))
    except ValueError as exc:            # ExportError, WeightsError: plain words
        raise UserError(str(exc)) from None
    print(f"{args.model} -> {out}", file=sys.stderr)
    return 0
