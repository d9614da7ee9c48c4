"""One prepared run on a lent GPU (issue 14): check the CUDA paths, then train all three
models for as long as the lease allows, and leave weights and logs in one folder.

Nothing is fetched: the real training planes travel as a pack
(``python -m training.real_splits CACHE FILE.trainpack.npz``). What it does, in order:

1. starts the three training runs (configs ``gpu_<model>_real``, each from the shipped
   weights) in the background, so the GPU works from the first minute;
2. meanwhile (a thread) runs the CUDA checks: ``deblur predict --device cuda`` on the samples with every
   model (and once with ``--adapt``), a few ``deblur-train --device cuda`` steps of each model
   (tiny config, exported and restored with), and ``deblur bench --speed-only --device cuda``;
3. after `--probe` seconds reads each run's step rate from its log.csv, stops it (SIGTERM: a
   checkpoint is saved) and resumes it with ``--steps N``, N what fits before the deadline, so
   each learning-rate schedule runs to its end instead of being cut off;
4. exports the final weights and a mid-run checkpoint (CycleGAN: the mean of its last three)
   into OUT, with every log packed in OUT/logs.tar.gz.

    python benchmarks/gpu_train.py --out $OUT --pool .gpu/real.trainpack.npz --budget 420
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("comi", "ddpm", "cyclegan")
WORKERS = {"comi": 5, "ddpm": 5, "cyclegan": 4}
START = time.monotonic()


def say(msg: str) -> None:
    print(f"[{time.monotonic() - START:6.1f}s] {msg}", flush=True)


def run(cmd: list[str], log: Path, timeout: float, until: float | None = None) -> int:
    """Run `cmd` to the end (or `timeout`, or `until` seconds after START), its output appended
    to `log`; its exit status (124: timed out, 125: no time left to start it)."""
    if until is not None:
        timeout = min(timeout, until - (time.monotonic() - START))
        if timeout < 5:
            say("no time left for: " + " ".join(cmd))
            return 125
    say("$ " + " ".join(cmd))
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        try:
            rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, cwd=ROOT).returncode
        except subprocess.TimeoutExpired:
            rc = 124
        fh.write(f"-> exit {rc}\n")
    say(f"  exit {rc}")
    return rc


def resume_cmd(run_dir: Path, steps: int | None = None) -> list[str]:
    """Continue `run_dir` (to `steps` in all, or to the total it had)."""
    return ["deblur-train", "--out", str(run_dir), "--resume", "-q"] + (["--steps", str(steps)] if steps else [])


def train_cmd(model: str, run_dir: Path, args: argparse.Namespace) -> list[str]:
    cmd = ["deblur-train", "--model", model, "--data", "synthetic", "--real-pool", args.pool,
           "--config", f"gpu_{model}_real", "--init", f"resources/weights/{model}.safetensors",
           "--device", args.device, "--workers", str(args.workers.get(model, WORKERS[model])),
           "--checkpoint-every", "250", "--out", str(run_dir), "-q"]
    if args.batch:
        cmd += ["--batch-size", str(args.batch)]
    return cmd


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    say("& " + " ".join(cmd))
    fh = open(log, "a")
    fh.write("$ " + " ".join(cmd) + "\n")
    fh.flush()
    return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)


def progress(run_dir: Path) -> tuple[float, int] | None:
    """(steps per second over the recent rows of log.csv, last step), or None."""
    try:
        with open(run_dir / "log.csv") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("step")]
    except OSError:
        return None
    if len(rows) < 3:
        return None
    a, b = rows[max(1, len(rows) - 20)], rows[-1]       # skip the first row (start-up)
    ds, dt = int(b["step"]) - int(a["step"]), float(b["elapsed_s"]) - float(a["elapsed_s"])
    return (ds / dt if dt > 0 else 0.0), int(b["step"])


def stop(proc: subprocess.Popen, grace: float = 60.0) -> int:
    """SIGTERM (the trainer saves a checkpoint after the current step), then wait."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def cuda_checks(args: argparse.Namespace, logs: Path) -> None:
    """The CUDA paths a user takes: predict with every model, adapt, train, speed; all done
    by `--checks-until` seconds after the start."""
    log = logs / "cuda_checks.log"
    pred = logs / "predict"
    pred.mkdir(exist_ok=True)
    samples = ["resources/samples/nuclei_blurred.tif", "resources/samples/tissue_blurred.png"]
    for model in ("comi", "cyclegan", "ddpm", "richardson-lucy"):
        run(["deblur", "predict", *samples, "--device", args.device, "--model", model,
             "-o", str(pred / model), "--report", str(pred / f"{model}.report.json"), "-q"], log, 120, args.checks_until)
    run(["deblur", "predict", samples[0], "--device", args.device, "--adapt", "--adapt-steps", "100",
         "-o", str(pred / "comi_adapted.tif"), "-q"], log, 120, args.checks_until)
    for model in MODELS:
        tiny = logs / f"tiny_{model}"
        if run(["deblur-train", "--model", model, "--data", "synthetic", "--config", "tiny",
                "--steps", "6", "--device", args.device, "--out", str(tiny), "-q"], log, 120, args.checks_until) == 0:
            steps = ["--steps", "4"] if model == "ddpm" else []
            run(["deblur", "predict", samples[0], "--device", args.device, "--weights",
                 str(tiny / f"{model}.safetensors"), *steps, "-o", str(pred / f"tiny_{model}.tif"),
                 "-q"], log, 60, args.checks_until)
    run(["deblur", "bench", "--speed-only", "--device", args.device, "--json",
         "--out", str(logs / "speed_cuda.md")], log, 150, args.checks_until)


def export(model: str, run_dir: Path, out: Path, logs: Path) -> None:
    """Final weights (CycleGAN: mean of the last three checkpoints) and a mid-run checkpoint."""
    log = logs / f"export_{model}.log"
    ckpts = sorted(int(p.stem.split("_")[1]) for p in (run_dir / "checkpoints").glob("step_*.pt"))
    if not ckpts:
        say(f"{model}: no checkpoint to export")
        return
    last = ckpts[-1]
    if model == "cyclegan":
        avg = len(ckpts) >= 3 and run(["deblur-train", "--out", str(run_dir), "--export-only",
                                        "--average", "3"], log, 120) == 0
        if not avg:
            run(["deblur-train", "--out", str(run_dir), "--export-only"], log, 120)
        picks = [(run_dir / "cyclegan.safetensors", f"cyclegan_gpu_{'avg3_' if avg else ''}{last}")]
    else:
        run(["deblur-train", "--out", str(run_dir), "--export-only"], log, 120)
        picks = [(run_dir / f"{model}.safetensors", f"{model}_gpu_{last}")]
        mid = min(ckpts, key=lambda s: abs(s - last / 2))
        if mid != last and run(["deblur-train", "--out", str(run_dir), "--export-only", "--step", str(mid)],
                               log, 120) == 0:
            picks.append((run_dir / f"{model}.step_{mid}.safetensors", f"{model}_gpu_{mid}"))
    for src, name in picks:
        if src.is_file():
            shutil.copy2(src, out / f"{name}.safetensors")
            shutil.copy2(src.with_suffix(".json"), logs / f"{name}.json")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for weights and logs.tar.gz")
    ap.add_argument("--pool", required=True, help="pack of the real training planes")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds from start to the end of training")
    ap.add_argument("--probe", type=float, default=100.0, help="seconds before the step rate is read")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, help="override every run's batch size (CPU rehearsal)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated models to train")
    ap.add_argument("--workers", default="", help="data workers per model, e.g. ddpm=8,cyclegan=7")
    ap.add_argument("--no-checks", action="store_true", help="skip the CUDA checks")
    ap.add_argument("--checks-until", type=float, default=230.0, help="seconds by which the checks end")
    args = ap.parse_args(argv)
    args.workers = {k: int(v) for k, v in (w.split("=") for w in args.workers.split(",") if w)}
    models = [m for m in args.models.split(",") if m]
    out = Path(args.out).resolve()
    logs, runs = out / "logs", Path(os.environ.get("GPU_RUNS", "/tmp/gpu_runs"))
    logs.mkdir(parents=True, exist_ok=True)
    runs.mkdir(parents=True, exist_ok=True)
    deadline = args.budget
    procs = {m: start(train_cmd(m, runs / m, args), logs / f"train_{m}.log") for m in models}
    checks = threading.Thread(target=cuda_checks, args=(args, logs), daemon=True)
    if not args.no_checks:
        checks.start()
    while time.monotonic() - START < args.probe and any(p.poll() is None for p in procs.values()):
        time.sleep(2)
    for m, proc in procs.items():
        rc = stop(proc)
        rate = progress(runs / m)
        left = deadline - (time.monotonic() - START) - 25.0          # restart costs ~15-25 s
        if rc not in (0, 130, 143) or left < 20:
            say(f"{m}: not resumed (exit {rc}, {left:.0f} s left)")
            continue
        total = None                      # rate unknown: go on until the deadline stops it
        if rate is not None:
            steps_per_s, step = rate
            total = max(int(step + steps_per_s * left * 0.9) // 50 * 50, step + 50)
        say(f"{m}: step rate {rate}: resumed to {total or 'its old total of'} steps")
        procs[m] = start(resume_cmd(runs / m, total), logs / f"train_{m}.log")
    while any(p.poll() is None for p in procs.values()):
        if time.monotonic() - START > deadline + 20:
            say("past the deadline: stopping the runs")
            for proc in procs.values():
                stop(proc)
        time.sleep(2)
    if checks.is_alive():
        checks.join(max(0.0, args.checks_until + 10 - (time.monotonic() - START)))
    for m in models:
        export(m, runs / m, out, logs)
        for name in ("log.csv", "run.json", "config.toml"):
            if (runs / m / name).is_file():
                shutil.copy2(runs / m / name, logs / f"{m}_{name}")
    for tiny in logs.glob("tiny_*"):          # what came back is small: the check's logs only
        shutil.rmtree(tiny / "checkpoints", ignore_errors=True)
        for weights in tiny.glob("*.safetensors"):
            weights.unlink()
    say("packing logs")
    with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
        tar.add(logs, arcname="logs")
    shutil.rmtree(logs)
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
