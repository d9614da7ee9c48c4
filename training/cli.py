"""`deblur-train`: train COMI, CycleGAN or the DDPM headless (DESIGN §2).

    deblur-train --model comi --data synthetic --out runs/comi
    deblur-train --model cyclegan --data sharp/ --blurred blurred/ --out runs/cg --config cyclegan_gpu
    deblur-train --out runs/comi --resume                 # continue a stopped or killed run
    deblur-train --out runs/comi --export-only            # weights + card from the newest checkpoint
    torchrun --nproc_per_node 4 -m training --model ddpm --data synthetic --out runs/ddpm

Configuration (``training.config``) is layered: the model's defaults (``deblur-train --model
comi --show-config`` prints them all), then ``--config FILE`` (a path, or the name of a shipped
config such as ``tiny`` or ``ddpm_gpu``; tables under ``[<model>]`` in that file apply to that
model only), then command-line flags. The resolved configuration is written to
``RUN/config.toml``; ``--resume`` starts from it.

Exit status: 0 done, 2 bad input (one ``deblur-train: error: ...`` line on stderr), 130/143 stopped
by Ctrl-C/SIGTERM after saving a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from core.crash_report import internal_error
from core.io import atomic_write
from core.models.registry import get_entry, list_entries, read_card
from training.config import (ConfigError, describe, format_toml, load_config, read_toml,
                             resolve_config_path, validate)
from training.steps import model_names

__all__ = ["main", "UsageError"]

PROG = "deblur-train"


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


# ============================================================================ configuration

def _config(fn, *args, **kwargs):
    """Call a ``training.config`` function; its ConfigError is the user's error (exit 2)."""
    try:
        return fn(*args, **kwargs)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def adopt_init_architecture(cfg: dict[str, Any], config: str | None) -> None:
    """A GAN fine-tune (``[train] init``) whose config leaves the generator alone trains the
    ``--init`` file's generator, whatever its size: fine-tuning the shipped COMI needs no
    knowledge of how wide it is. A config that sets ``[model]`` keeps it (and a wider one
    widens the file's network, `load_weights_into`)."""
    init = cfg["train"]["init"]
    if not init or get_entry(cfg["model_name"]).kind != "gan":
        return
    if config is not None:
        over = _config(read_toml, _config(resolve_config_path, str(config)))
        if "model" in over or "model" in over.get(cfg["model_name"], {}):
            return
    try:
        card = read_card(init)          # the card only; a missing or bad file is reported by init_from
    except ValueError as exc:
        raise UsageError(f"--init: {exc}") from None
    if card.get("model") in _gan_names() and isinstance(card.get("architecture"), dict):
        cfg["model"] = {"preset": cfg["model"].get("preset", "cpu"), **card["architecture"]}


def _gan_names() -> set[str]:
    return {e.name for e in list_entries() if e.kind == "gan"}


def _write_text_atomic(path: Path, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# ============================================================================ arguments

class _Parser(argparse.ArgumentParser):
    """argparse with our error format: one line, exit status 2 (no usage dump)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG, description="Train a deblurring model (COMI, CycleGAN or a conditional DDPM) "
        "headless, with checkpoints, resume, validation and export to a .safetensors model "
        "the deblur app and `deblur predict --weights` load.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  deblur-train --model comi --data synthetic --out runs/comi\n"
               "  deblur-train --model cyclegan --data sharp/ --blurred blurred/ --out runs/cg\n"
               "  deblur-train --out runs/comi --resume\n"
               "  torchrun --nproc_per_node 2 -m training --model ddpm --data synthetic "
               "--out runs/ddpm")
    p.add_argument("--model", choices=model_names(), help="which model to train (read from RUN on --resume)")
    p.add_argument("--data", help="folder of sharp images, or 'synthetic' for generated specimens")
    p.add_argument("--blurred", help="folder of blurred images: same names as --data for paired "
                   "training (COMI), any names for unpaired (CycleGAN); default: simulate blur")
    p.add_argument("--real-pool", metavar="CACHE",
                   help="mix the training split of these real images (python -m training.real_images "
                        "CACHE) into synthetic data")
    p.add_argument("--real-share", type=float, metavar="F",
                   help="share of the fields cut from the real images (default 0.5)")
    p.add_argument("--out", help="run folder (checkpoints, log, samples, weights); required")
    p.add_argument("--config", help="TOML file or shipped config name (tiny, comi_gpu, ...) "
                   "layered over the model's defaults")
    p.add_argument("--steps", type=int, help="total optimisation steps (on --resume: the new total)")
    p.add_argument("--init", metavar="WEIGHTS",
                   help="start from a trained weights file (e.g. resources/weights/comi.safetensors) "
                        "to fine-tune it on your images; trains that file's network unless "
                        "the config sets [model]")
    p.add_argument("--resume", action="store_true",
                   help="continue RUN from its newest readable checkpoint")
    p.add_argument("--export-only", action="store_true",
                   help="only write RUN/<model>.safetensors + card from the newest checkpoint")
    p.add_argument("--step", type=int, metavar="N",
                   help="with --export-only: export the checkpoint of step N (to "
                        "RUN/<model>.step_N.safetensors) instead of the newest")
    p.add_argument("--average", type=int, default=1, metavar="K",
                   help="with --export-only: export the mean of the weights of the newest K "
                        "checkpoints (steadier than any single one)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--batch-size", type=int, help="patches per step (per process under torchrun)")
    p.add_argument("--patch", type=int, help="patch size in pixels")
    p.add_argument("--seed", type=int, help="random seed (data order, initialisation, noise)")
    p.add_argument("--workers", type=int, help="data-loading worker processes")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed precision (bf16 autocast on CPU, AMP on CUDA)")
    p.add_argument("--val-every", type=int, help="validate every N steps")
    p.add_argument("--checkpoint-every", type=int, help="save a checkpoint every N steps")
    p.add_argument("--keep", type=int, help="checkpoints to keep (newest first)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or status lines")
    p.add_argument("--show-config", action="store_true",
                   help="print every setting of --model with its default and meaning, and exit")
    return p


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    data = {}
    if args.data is not None:
        data["source"] = args.data
        data["blurred"] = args.blurred or ""
    elif args.blurred is not None:
        data["blurred"] = args.blurred
    if args.real_pool is not None:
        data["real_pool"] = args.real_pool
    if args.real_share is not None:
        data["real_share"] = args.real_share
    return {
        "train": {"steps": args.steps, "batch_size": args.batch_size, "patch": args.patch,
                  "seed": args.seed, "num_workers": args.workers, "amp": args.amp,
                  "val_every": args.val_every, "checkpoint_every": args.checkpoint_every,
                  "keep_checkpoints": args.keep, "init": args.init},
        "data": data,
    }


def _command(argv: Sequence[str]) -> str:
    """The exact command as a user would retype it (shell-quoted)."""
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else PROG
    if prog in ("__main__.py", "-m", "-c", ""):
        prog = "python -m training"
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            n = os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"])
            prog = f"torchrun --nproc_per_node {n} -m training"
    return " ".join([prog, shlex.join(list(argv))]).strip()


def _check_data(cfg: dict[str, Any]) -> None:
    src = cfg["data"]["source"]
    if not src:
        raise UsageError("--data is required (a folder of sharp images, or 'synthetic')")
    if src != "synthetic" and not Path(src).is_dir():
        raise UsageError(f"data folder {src} does not exist (use a folder or 'synthetic')")
    blurred = cfg["data"]["blurred"]
    if blurred and not Path(blurred).is_dir():
        raise UsageError(f"blurred folder {blurred} does not exist")
    pool = cfg["data"]["real_pool"]
    from training.real_splits import is_pack
    if pool and src != "synthetic":
        raise UsageError("--real-pool mixes real images into synthetic data: use it with --data synthetic")
    if pool and not is_pack(pool) and not (Path(pool) / "manifest.json").is_file():
        raise UsageError(f"real image pool {pool} has no manifest.json; fetch it first: "
                         f"python -m training.real_images {pool}")


# ============================================================================ running

def _setup_process(device_name: str):
    """Device, thread count and (under torchrun) the process group for this process."""
    from core.devices import DeviceError, pick_device
    from training.sample_order import dist_info

    info = dist_info()
    try:
        device = pick_device(device_name)
    except DeviceError as exc:
        raise UsageError(str(exc)) from None
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", info.local_rank if info.distributed else torch.cuda.current_device())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if "OMP_NUM_THREADS" not in os.environ:      # the user's setting wins; else share the cores
        try:
            cores = len(os.sched_getaffinity(0))     # what this process may use (containers, taskset)
        except AttributeError:
            cores = os.cpu_count() or 1
        local = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size if info.distributed else 1))
        torch.set_num_threads(max(1, cores // max(1, local)))
    if info.distributed:
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, info


def _degradation(cfg: dict[str, Any]):
    """The DefocusConfig from ``[degradation]`` (empty table = the simulator's defaults)."""
    table = cfg["degradation"]
    from core.defocus import DefocusConfig
    if not table:
        return DefocusConfig()
    try:
        return DefocusConfig.from_dict(table)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"[degradation] does not fit DefocusConfig: {exc}") from None


def _datasets(cfg: dict[str, Any], paired: bool, degradation):
    """(train, val, val_paired, real_images). Unpaired training validates on simulated pairs when
    the blur is simulated anyway (synthetic or sharp folders): PSNR/SSIM then still mean
    something. `real_images`: what of the real-image pool is mixed in (for the card), or None."""
    from training.data import make_datasets

    d, t = cfg["data"], cfg["train"]
    blurred = d["blurred"] or None

    def build(paired_: bool):
        return make_datasets(d["source"], blurred, patch=int(t["patch"]), seed=int(t["seed"]),
                             val_fraction=float(d["val_fraction"]), paired=paired_,
                             degradation=degradation, field=int(d["field"]) or None,
                             patches_per_field=int(d["patches_per_field"]),
                             real_planes=real, real_share=float(d["real_share"]))

    try:
        real = None
        if d["real_pool"]:
            from training.real_splits import load_train_planes
            real = load_train_planes(d["real_pool"], lambda s: print(f"{PROG}: {s}", file=sys.stderr))
        used = None
        if real:
            from training.real_splits import plane_counts
            used = {"share": float(d["real_share"]), "planes": plane_counts(real),
                    "split": "training split of training.real_splits (validation packages' unseen "
                             "images and the areas outside their bench crops; test packages never)"}
        train_ds, val_ds = build(paired)
        if not paired and blurred is None:
            return train_ds, build(True)[1], True, used
        return train_ds, val_ds, paired, used
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(f"cannot load training data: {exc}") from None


def _build_steps(cfg: dict[str, Any], device: torch.device):
    from training.steps import Precision, build_steps

    amp = bool(cfg["train"]["amp"]) and device.type != "mps"
    try:
        return build_steps(cfg["model_name"], cfg, device, Precision(device, amp))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"the configuration does not fit the {cfg['model_name']} networks: {exc}") from None


def _run_info(run: Path) -> dict[str, Any]:
    p = run / "run.json"
    if p.is_file():
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            pass
    return {}


def _export_only(args: argparse.Namespace, run: Path) -> int:
    from training.checkpoint import load_newest
    from training.export import export_run

    if args.average < 1:
        raise UsageError(f"--average must be at least 1, got {args.average}")
    found = load_newest(run, args.average, up_to=args.step)
    if not found:
        raise UsageError(f"{run} has no readable checkpoint to export")
    if args.step is not None and found[-1][0] != args.step:
        raise UsageError(f"{run} has no readable checkpoint of step {args.step} "
                         f"(the nearest before it: {found[-1][0]})")
    if len(found) < args.average:
        raise UsageError(f"--average {args.average}: {run} has only {len(found)} readable "
                         "checkpoint(s)")
    step, state = found[-1]
    cfg = _config(validate, state["config"], f"{run} checkpoint")
    if args.model and args.model != cfg["model_name"]:
        raise UsageError(f"{run} holds a {cfg['model_name']} run, not {args.model}")
    device = torch.device("cpu")
    steps = _build_steps(cfg, device)
    steps.load_averaged([s["steps"] for _, s in found])
    info = _run_info(run)
    rate = None                      # the training speed, known only to the run's own export
    card_path = run / f"{cfg['model_name']}.json"
    if card_path.is_file():
        try:
            rate = json.loads(card_path.read_text(encoding="utf-8"))["training"].get("steps_per_s")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            rate = None
    path = export_run(steps, run, dict(steps_per_s=rate,
        cfg=cfg, commands=info.get("commands", []), wall_time_s=float(state.get("elapsed_s", 0)),
        trained_steps=step, validation=dict(state.get("validation", {})),
        device=info.get("device", "unknown"), world_size=int(state.get("world_size", 1)),
        validation_step=state.get("validation_step"), degradation=info.get("degradation"),
        started_from=info.get("started_from"), averaged_steps=[s for s, _ in found],
        real_images=info.get("real_images")),
        dest=None if args.step is None else run / f"{cfg['model_name']}.step_{args.step}.safetensors")
    if not args.quiet:
        what = (f"mean of steps {', '.join(str(s) for s, _ in found)}" if len(found) > 1
                else f"step {step}")
        print(f"exported {path} ({what})", file=sys.stderr)
    return 0


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Set up, train, export; returns the exit status (raises UsageError on bad input)."""
    from training.checkpoint import list_checkpoints, load_latest

    if args.show_config:
        if not args.model:
            raise UsageError("--show-config needs --model")
        print(_config(describe, args.model), end="")
        return 0
    if not args.out:
        raise UsageError("--out is required (the run folder)")
    run_dir = Path(args.out)
    if args.step is not None and not args.export_only:
        raise UsageError("--step applies to --export-only (export the checkpoint of that step)")
    if args.average != 1 and not args.export_only:
        raise UsageError("--average applies to --export-only (export the mean of the newest "
                         "checkpoints of a run)")
    if args.export_only:
        return _export_only(args, run_dir)

    has_ckpt = bool(list_checkpoints(run_dir))
    saved = run_dir / "config.toml"
    if args.resume and (saved.is_file() or has_ckpt):
        if saved.is_file():
            base = _config(read_toml, saved)
        else:
            found = load_latest(run_dir)
            if found is None:
                raise UsageError(f"{run_dir} has no readable checkpoint or config.toml")
            base = found[1]["config"]
        if args.model and args.model != base.get("model_name"):
            raise UsageError(f"{run_dir} holds a {base.get('model_name')} run, not {args.model}")
        if args.config and not args.quiet:
            print(f"{PROG}: note: --config is ignored on --resume: the run keeps "
                  f"{saved} (command-line flags still apply)", file=sys.stderr)
        cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
        for table, values in _overrides(args).items():
            cfg.setdefault(table, {}).update({k: v for k, v in values.items() if v is not None})
        cfg = _config(validate, cfg, str(saved))
    else:
        if has_ckpt:
            raise UsageError(f"{run_dir} already holds a training run (checkpoints/); pass "
                             "--resume to continue it or choose another --out")
        if args.resume and not args.quiet:
            print(f"{PROG}: no checkpoint in {run_dir}, starting a new run", file=sys.stderr)
        if not args.model:
            raise UsageError("--model is required (comi, cyclegan or ddpm)")
        cfg = _config(load_config, args.model, args.config, _overrides(args))
        adopt_init_architecture(cfg, args.config)
    _check_data(cfg)

    device, info = _setup_process(args.device)
    from training.export import export_run
    from training.trainer import Trainer, TrainingDiverged, TrainingInterrupted

    steps = _build_steps(cfg, device)
    record = _run_info(run_dir)
    init = cfg["train"]["init"]
    if init and not (args.resume and has_ckpt):     # on resume the checkpoint has the weights
        from core.models.weights import WeightsError
        try:
            init_card = steps.init_from(init)
        except WeightsError as exc:
            raise UsageError(f"--init: {exc}") from None
        record["started_from"] = {"file": init, "model": init_card.get("model"),
                                  "training": init_card.get("training", {}),
                                  "validation": init_card.get("validation", {})}
        for key in ("widened_from", "blur_channel_added_to", "blur_channel_dropped_from"):
            if key in init_card:
                record["started_from"][key] = init_card[key]
        if info.is_main and not args.quiet:
            widened = " (widened: same function, more channels)" if "widened_from" in init_card else ""
            print(f"{PROG}: starting from the weights in {init}{widened}", file=sys.stderr)
    degradation = _degradation(cfg)
    train_ds, val_ds, val_paired, real_images = _datasets(cfg, steps.paired, degradation)
    if real_images:
        record["real_images"] = real_images
    if cfg["data"]["blurred"]:
        degradation = None              # real blurred images: nothing was simulated

    commands = list(record.get("commands", [])) + [_command(argv)]
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_text_atomic(saved, f"# resolved configuration of this run ({PROG})\n"
                           + format_toml(cfg))
        from training.export import _jsonable
        record.update(model=cfg["model_name"], commands=commands, device=str(device),
                      world_size=info.world_size, torch=torch.__version__,
                      degradation=_jsonable(degradation),
                      started=record.get("started", time.strftime("%Y-%m-%dT%H:%M:%S")))
        _write_text_atomic(run_dir / "run.json", json.dumps(record, indent=2, default=str) + "\n")

    trainer = Trainer(steps, train_ds, val_ds, run_dir, cfg, info, quiet=args.quiet,
                      val_paired=val_paired)
    try:
        result = trainer.fit(resume=args.resume)
    except TrainingInterrupted as exc:
        if info.is_main:
            print(f"{PROG}: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except TrainingDiverged as exc:
        if info.is_main:
            print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
        return 1
    if info.is_main:
        path = export_run(steps, run_dir, dict(
            cfg=cfg, commands=commands, wall_time_s=result.wall_time_s,
            trained_steps=result.steps, validation=result.validation, device=str(device),
            degradation=degradation, world_size=info.world_size, steps_per_s=result.steps_per_s,
            validation_step=result.steps, started_from=record.get("started_from"),
            real_images=record.get("real_images")))
        if not args.quiet:
            v = result.validation
            gain = (f"; validation PSNR {v['psnr_blurred']:.2f} -> {v['psnr']:.2f} dB"
                    if "psnr" in v else
                    f"; validation sharpness {v['sharpness_blurred']:.3g} -> {v['sharpness']:.3g}")
            print(f"{PROG}: done, {result.steps} steps in {result.wall_time_s:.0f} s{gain}; "
                  f"exported {path}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `deblur-train` and `python -m training`; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return run(args, argv)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: stopped", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: one plain line, the traceback in a report
        return internal_error(PROG, exc, argv,
                              kept="the checkpoints saved so far are complete (continue with --resume)",
                              memory_advice="try a smaller --batch-size or --patch")
    finally:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
