"""`deblur predict`: restore the blurred regions of one or more images.

The output has the input's shape, dtype and metadata; pixels outside every ROI are identical to
the input; the input file is never touched and an existing output is not replaced unless
--overwrite is given. The output is written only after the restoration succeeded, atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.adaptation import AdaptSettings
from core.cli import HelpFormatter, UserError, fail
from core.defaults import DEFAULT_FEATHER, DEFAULT_OVERLAP, DEFAULT_TILE, OUT_SUFFIX



def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="restore blurred regions of images",
        description="Restore the out-of-focus regions of one or more images. Pixels outside the "
                    "regions are left exactly as they were.",
        formatter_class=HelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="TIFF/PNG/JPEG image(s)")
    p.add_argument("-o", "--out", required=True, metavar="OUT",
                   help="output file for one input, or a folder (for several inputs)")
    p.add_argument("--model", default=None,
                   help="model name (see `deblur models`); default: the best shipped model")
    roi = p.add_argument_group("regions (default: the whole image)")
    roi.add_argument("--roi", action="append", default=[], metavar="FILE|x,y,w,h",
                     help="a region file (deblur .roi.json, or ImageJ/Fiji .roi or .zip) or a "
                          "rectangle x,y,w,h in pixels; may be repeated")
    roi.add_argument("--auto-roi", action="store_true", help="detect the blurred regions automatically")
    roi.add_argument("--feather", type=float, default=None,
                     help=f"edge softness in pixels (default: the ROI file's value, else {DEFAULT_FEATHER:g})")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE,
                   help=f"tile size in pixels (default {DEFAULT_TILE}; smaller needs less memory)")
    p.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP, help="tile overlap in pixels")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (diffusion models)")
    p.add_argument("--seed", type=int, default=0, help="random seed (diffusion models)")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="weights trained with deblur-train (.safetensors), or a bioimage.io package "
                        "(.zip) that deblur exported; the model is the one they were trained for")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a model setting, e.g. psf_radius=6 (see `deblur models`)")
    p.add_argument("--report", default=None, metavar="FILE.json",
                   help="write, per image and region, the measured blur and whether the result is "
                        "explained by the input (the trust check)")
    ad = p.add_argument_group("learning from the image's own sharp areas (COMI)")
    ad.add_argument("--adapt", action="store_true",
                    help="before restoring each image, fine-tune the model on its in-focus areas "
                         "outside the regions (about a minute on a laptop CPU)")
    ad.add_argument("--adapt-seconds", type=float, default=AdaptSettings.seconds, metavar="S",
                    help="how long to learn, in seconds")
    ad.add_argument("--adapt-steps", type=int, default=None, metavar="N",
                    help="learn for exactly N steps instead (reproducible on one machine)")
    ad.add_argument("--adapt-min-blur", type=float, default=AdaptSettings.min_blur_px,
                    metavar="PX", help="learn only when a region measures at least this blurred "
                                       "(on milder blur learning made results worse in our tests; "
                                       "0: always)")
    ad.add_argument("--adapt-on", default=None, metavar="FILE",
                    help="learn once, from FILE (with the same --roi/--auto-roi), and restore "
                         "every input with the result")
    ad.add_argument("--save-adapted", default=None, metavar="FILE.safetensors",
                    help="also save the adapted model (reuse it with --weights)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def model_params(args: argparse.Namespace) -> dict:
    """--param NAME=VALUE items (and --steps) as a dict; values are checked by the registry."""
    params: dict = {}
    for item in args.param:
        if "=" not in item:
            raise UserError(f"--param {item!r} must look like NAME=VALUE")
        key, value = item.split("=", 1)
        params[key.strip().replace("-", "_")] = value.strip()
    if args.steps is not None:
        params["steps"] = args.steps
    return params


def rois_from_args(args: argparse.Namespace, image) -> "object | None":
    """RoiSet from --roi / --auto-roi, or None for the whole field."""
    from core.region_files import IMAGEJ_SUFFIXES, load_region_file
    from core.roi import RoiSet, parse_rect

    if args.auto_roi and args.roi:
        raise UserError("use either --roi or --auto-roi, not both")
    if args.auto_roi:
        from core.blurred_regions import auto_rois

        rois = auto_rois(image)
    elif args.roi:
        rois = RoiSet()
        feathers = []
        for item in args.roi:
            if Path(item).suffix.lower() in (".json", *IMAGEJ_SUFFIXES) or Path(item).exists():
                loaded, skipped = load_region_file(item)
                if skipped:
                    print(f"deblur: note: {item}: skipped {len(skipped)} ImageJ ROI(s) that are not "
                          f"areas: {'; '.join(skipped)}", file=sys.stderr)
                rois.rois.extend(loaded.rois)
                feathers.append(loaded.feather)
            else:
                rois.rois.append(parse_rect(item))
        if feathers:
            rois.feather = feathers[0]
    else:
        return None
    if args.feather is not None:
        if args.feather < 0:
            raise UserError("--feather must not be negative")
        rois.feather = args.feather
    return rois


def output_path(inp: Path, out: Path, many: bool) -> Path:
    """OUT itself for one input; OUT/<stem>_deblurred<suffix> when OUT is a folder."""
    if many or out.is_dir():
        suffix = inp.suffix.lower() if inp.suffix.lower() in (".tif", ".tiff", ".png") else ".tif"
        return out / f"{inp.stem}{OUT_SUFFIX}{suffix}"
    return out


def _progress_bar(name: str, quiet: bool):
    if quiet:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=0, desc=name, unit="tile", disable=None, leave=False, file=sys.stderr)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    return bar, update


def _model_of(weights: str | None) -> str | None:
    """The model a --weights file (or bioimage.io package) was trained for, from its card."""
    from core.models.weights import read_card

    if weights is None:
        return None
    try:
        return read_card(weights).get("model")
    except ValueError as exc:
        raise UserError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    from core.batch import restore_file
    from core.devices import DeviceError
    from core.io import ImageError, read_image
    from core.models.registry import check_params, default_model_name, get_entry, load_model
    from core.roi import RoiError

    out = Path(args.out)
    inputs = [Path(p) for p in args.inputs]
    many = len(inputs) > 1
    if many:
        if out.exists() and not out.is_dir():
            raise UserError(f"{out} must be a folder when several inputs are given")
        out.mkdir(parents=True, exist_ok=True)
    elif out.suffix.lower() not in (".tif", ".tiff", ".png") and not out.is_dir():
        raise UserError(f"{out}: the output must end in .tif, .tiff or .png (or be a folder)")
    if args.tile < 16:
        raise UserError("--tile must be at least 16 pixels")
    if not 0 <= args.overlap < args.tile:
        raise UserError("--overlap must be between 0 and the tile size")

    if args.model is None:
        args.model = _model_of(args.weights) or default_model_name()
    try:
        settings = check_params(get_entry(args.model), model_params(args))
        model = load_model(args.model, weights=args.weights, device=args.device, **settings)
    except (ValueError, DeviceError) as exc:
        raise UserError(str(exc)) from None
    adapting = _adapt_settings(args, many)
    shared = None
    if adapting is not None and args.adapt_on:
        shared = _adapted(Path(args.adapt_on), None, args, adapting, settings)
        if shared is not None:
            model = shared.restorer(args.device, **settings)

    failures = 0
    reports: list[dict] = []
    for inp in inputs:
        dest = output_path(inp, out, many)
        try:
            if dest.exists() and not args.overwrite:
                raise UserError(f"{dest} already exists (use --overwrite to replace it)")
            image = read_image(inp)
            rois = rois_from_args(args, image)
            if rois is not None and len(rois) == 0:
                print(f"deblur: {inp}: no blurred region found; the output is an unchanged copy",
                      file=sys.stderr)
            used, adapted = model, shared
            if adapting is not None and shared is None and not args.adapt_on:
                adapted = _adapted(inp, image, args, adapting, settings, rois)
                used = model if adapted is None else adapted.restorer(args.device, **settings)
            bar, update = _progress_bar(inp.name, args.quiet)
            try:
                restore_file(inp, dest, used, model_name=args.model, weights=args.weights,
                             settings=settings, rois=rois, image=image, tile=args.tile,
                             overlap=args.overlap, seed=args.seed, device=args.device,
                             overwrite=args.overwrite, progress=update,
                             provenance_extra=None if adapted is None else
                             {"adapted": adapted.provenance()})
            finally:
                if bar is not None:
                    bar.close()
            if not args.quiet:
                print(f"{inp} -> {dest}", file=sys.stderr)
            note = getattr(used, "psf_note", "")
            if note and not args.quiet:
                print(f"deblur: {inp.name}: {note}", file=sys.stderr)
            if args.report:
                reports.append(_check_result(inp, dest, image, rois, args.quiet))
        except (ImageError, RoiError, UserError) as exc:
            failures += 1
            fail(str(exc))
        except ValueError as exc:
            failures += 1
            fail(f"{inp}: {exc}")
    if args.report:
        _write_report(Path(args.report), reports)
    return 2 if failures else 0


def _adapt_settings(args: argparse.Namespace, many: bool) -> AdaptSettings | None:
    """The adaptation asked for (None: none), its options checked together."""
    from core.adaptation import ADAPTABLE

    wanted = args.adapt or args.adapt_on or args.save_adapted or args.adapt_steps is not None
    if not wanted:
        return None
    if args.model not in ADAPTABLE:
        raise UserError(f"--adapt works with {', '.join(ADAPTABLE)}, not with {args.model}")
    if args.save_adapted and many and not args.adapt_on:
        raise UserError("--save-adapted with several inputs needs --adapt-on FILE (one adapted "
                        "model to save)")
    if args.save_adapted and Path(args.save_adapted).suffix.lower() != ".safetensors":
        raise UserError(f"{args.save_adapted}: the adapted model is saved as .safetensors")
    if args.save_adapted and Path(args.save_adapted).exists() and not args.overwrite:
        raise UserError(f"{args.save_adapted} already exists (use --overwrite to replace it)")
    try:
        return AdaptSettings(seconds=args.adapt_seconds, steps=args.adapt_steps, seed=args.seed,
                             min_blur_px=args.adapt_min_blur)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _adapted(path: Path, image, args: argparse.Namespace, adapting: AdaptSettings,
             settings: dict, rois=None):
    """The model adapted to `path` (its regions from the command line), or None (said why in
    one line: the shipped model restores)."""
    from core.adaptation import AdaptError, adapt
    from core.io import ImageError, read_image
    from core.roi import RoiError

    if image is None:
        try:
            image = read_image(path)
            rois = rois_from_args(args, image)
        except (ImageError, RoiError) as exc:
            raise UserError(f"--adapt-on: {exc}") from None
    say = (lambda m: None) if args.quiet else (lambda m: print(f"deblur: {m}", file=sys.stderr))
    say(f"{path.name}: learning from its in-focus areas "
        + (f"({adapting.steps} steps)" if adapting.steps else f"(about {adapting.seconds:.0f} s)"))
    try:
        adapted = adapt(image, rois, model=args.model, weights=args.weights, settings=adapting,
                        image_name=path.name, device=args.device)
    except AdaptError as exc:
        print(f"deblur: {path.name}: cannot learn from this image: {exc}; restoring with the "
              "model as it is", file=sys.stderr)
        return None
    say(f"{path.name}: {adapted.words()}")
    if args.save_adapted:
        saved = adapted.save(args.save_adapted)
        say(f"adapted model saved to {saved} (use it with --weights {saved})")
    return adapted


def _check_result(inp: Path, dest: Path, image, rois, quiet: bool) -> dict:
    """Blur and trust check of each region of one restored file (its first plane), printed
    unless quiet, as a dict for --report."""
    from core.blur_estimate import first_plane
    from core.io import read_image
    from core.trust import region_checks, region_line

    out = read_image(dest)
    rows = region_checks(first_plane(image.data, image.axes), first_plane(out.data, out.axes), rois)
    if not quiet:
        for r in rows:
            print(f"deblur: {inp.name}, {r.label}: {region_line(r.estimate.words(), r.check.words())}",
                  file=sys.stderr)
    return {"input": str(inp), "output": str(dest), "regions": [r.as_dict() for r in rows]}


def _write_report(path: Path, reports: list[dict]) -> None:
    import json

    from core.io import atomic_write

    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps({"images": reports}, indent=1) + "\n", encoding="utf-8")
