"""`deblur info FILE`: how a restored image was made (the provenance stored in it)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.cli import HelpFormatter, UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show how a restored image was made",
                       description="Print what deblur recorded in a restored image: the input, "
                                   "the model and its weights (with checksum), the settings, the "
                                   "regions and the seed.",
                       formatter_class=HelpFormatter)
    p.add_argument("file", metavar="FILE", help="an image written by deblur")
    p.add_argument("--json", action="store_true", help="the record as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from core.io import ImageError, read_image
    from core.provenance import KEY, describe

    try:
        image = read_image(Path(args.file))
    except ImageError as exc:
        raise UserError(str(exc)) from None
    rec = image.metadata.get(KEY)
    if not isinstance(rec, dict):
        raise UserError(f"{args.file}: no deblur record in this file (it was not written by "
                        "deblur, or saved as PNG/JPEG, which cannot hold one)")
    print(json.dumps(rec, indent=1) if args.json else describe(rec))
    return 0
