"""`deblur-train` end to end: bad input exits 2 with one line, a run writes every output and a
loadable model, SIGKILL and SIGTERM leave a run that --resume finishes."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from training.checkpoint import list_checkpoints
from training.cli import main

ROOT = Path(__file__).resolve().parents[1]



def _run_main(argv: list[str], capsys) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:                 # argparse errors
        rc = int(exc.code)
    return rc, capsys.readouterr().err


# ----------------------------------------------------------------------------- bad input

def test_bad_inputs_exit_2(tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "run")
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[train\nsteps = ", encoding="utf-8")
    typo = tmp_path / "typo.toml"
    typo.write_text("[train]\nstepz = 3\n", encoding="utf-8")
    occupied = tmp_path / "occupied"
    (occupied / "checkpoints").mkdir(parents=True)
    (occupied / "checkpoints" / "step_000010.pt").write_bytes(b"x")
    cases = {
        "missing data": ["--model", "comi", "--data", str(tmp_path / "nope"), "--out", out],
        "unknown model": ["--model", "unet9000", "--data", "synthetic", "--out", out],
        "no model": ["--data", "synthetic", "--out", out],
        "unreadable config": ["--model", "ddpm", "--data", "synthetic", "--out", out,
                              "--config", str(bad_toml)],
        "missing config": ["--model", "ddpm", "--data", "synthetic", "--out", out,
                           "--config", str(tmp_path / "none.toml")],
        "config typo": ["--model", "ddpm", "--data", "synthetic", "--out", out,
                        "--config", str(typo)],
        "bad architecture": ["--model", "ddpm", "--data", "synthetic", "--out", out,
                             "--config", "tiny", "--patch", "8"],
        "run exists": ["--model", "ddpm", "--data", "synthetic", "--out", str(occupied)],
        "nothing to export": ["--out", out, "--export-only"],
        "bad device": ["--model", "ddpm", "--data", "synthetic", "--out", out, "--device", "tpu"],
        "average without export": ["--model", "comi", "--data", "synthetic", "--out", out,
                                   "--average", "3"],
    }
    for name, argv in cases.items():
        rc, err = _run_main(argv, capsys)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert rc == 2, f"{name}: exit {rc}, stderr {err!r}"
        assert len(lines) == 1 and lines[0].startswith("deblur-train: error: "), f"{name}: {err!r}"
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- a whole run

def test_a_fault_in_training_is_one_plain_line_and_a_report(tmp_path: Path, capsys, monkeypatch
                                                             ) -> None:
    import training.cli as cli

    def broken(args, argv):
        raise RuntimeError("shapes do not match")

    monkeypatch.setattr(cli, "run", broken)
    rc, err = _run_main(["--model", "comi", "--config", "tiny", "--out", str(tmp_path / "r")], capsys)
    lines = err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and "Traceback" not in err
    assert "deblur-train: internal error (RuntimeError: shapes do not match)" in lines[0]
    assert "checkpoints saved so far are complete" in lines[0]
    report = Path(lines[0].split("The details are in ")[1].split("; please")[0])
    assert "shapes do not match" in report.read_text() and "--config tiny" in report.read_text()


def test_train_export_and_reexport(tmp_path: Path, capsys) -> None:
    run = tmp_path / "my run"
    argv = ["--model", "comi", "--data", "synthetic", "--out", str(run), "--config", "tiny",
            "--steps", "6", "--val-every", "3", "--quiet"]
    rc, err = _run_main(argv, capsys)
    assert rc == 0, err
    for name in ("config.toml", "run.json", "log.csv", "loss.png", "comi.safetensors",
                 "comi.json", "val/step_000003.png", "val/step_000006.png"):
        assert (run / name).is_file(), name
    card = json.loads((run / "comi.json").read_text())
    assert card["training"]["steps"] == 6
    assert card["training"]["data"] == "synthetic"
    assert shlex.split(card["training"]["command"])[-len(argv):] == argv
    assert card["architecture"]["ngf"] == 8
    assert card["validation"]["psnr"] > 0
    # --export-only rewrites the same weights from the newest checkpoint
    before = (run / "comi.safetensors").read_bytes()
    (run / "comi.safetensors").unlink()
    rc, err = _run_main(["--out", str(run), "--export-only", "-q"], capsys)
    assert rc == 0, err
    from safetensors.torch import load_file
    a = load_file(str(run / "comi.safetensors"))
    from safetensors.torch import load as load_bytes
    b = load_bytes(before)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    again = json.loads((run / "comi.json").read_text())     # and keeps what only training knew
    assert again["training"]["steps_per_s"] == card["training"]["steps_per_s"] > 0
    # a finished run resumed to a larger total continues
    rc, err = _run_main(["--out", str(run), "--resume", "--steps", "8", "-q"], capsys)
    assert rc == 0, err
    card = json.loads((run / "comi.json").read_text())
    assert card["training"]["steps"] == 8 and len(card["training"]["resumed_with"]) == 1

    # fine-tuning: a new run starts from the exported weights; a config that sets another
    # architecture than the file's (not a widening of it) is refused before anything is written
    weights = run / "comi.safetensors"
    deeper = tmp_path / "deeper.toml"
    deeper.write_text((ROOT / "training" / "configs" / "tiny.toml").read_text(encoding="utf-8")
                      .replace("n_down = 1\nenc_convs = 1\n\n[comi.loss]", "n_down = 2\nenc_convs = 1\n\n[comi.loss]"),
                      encoding="utf-8")
    rc, err = _run_main(["--model", "comi", "--data", "synthetic", "--out", str(tmp_path / "deep"),
                         "--config", str(deeper), "--init", str(weights), "-q"], capsys)
    assert rc == 2 and "comi.safetensors" in err and "n_down 1 (here: 2)" in err, err
    assert not (tmp_path / "deep" / "checkpoints").exists()
    tuned = tmp_path / "tuned"
    rc, err = _run_main(["--model", "comi", "--data", "synthetic", "--out", str(tuned),
                         "--config", "tiny", "--steps", "2", "--init", str(weights), "-q"], capsys)
    assert rc == 0, err
    card = json.loads((tuned / "comi.json").read_text())
    assert card["training"]["config"]["train"]["init"] == str(weights)
    # the card tells the whole chain: what the starting file was trained on, how long
    assert card["training"]["started_from"]["file"] == str(weights)
    assert card["training"]["started_from"]["training"]["steps"] == 8


def test_export_averages_the_newest_checkpoints(tmp_path: Path, capsys) -> None:
    """--export-only --average K writes the mean of the exported network over the newest K
    checkpoints, and the card says which steps went into it."""
    from safetensors.torch import load_file

    run = tmp_path / "run"
    rc, err = _run_main(["--model", "cyclegan", "--data", "synthetic", "--out", str(run),
                         "--config", "tiny", "--steps", "6", "--checkpoint-every", "2",
                         "--keep", "5", "-q"], capsys)
    assert rc == 0, err
    states = [torch.load(p, weights_only=True)["steps"]["modules"]["g_deblur"]
              for _, p in list_checkpoints(run)]
    assert len(states) == 3
    rc, err = _run_main(["--out", str(run), "--export-only", "--average", "3", "-q"], capsys)
    assert rc == 0, err
    exported = load_file(str(run / "cyclegan.safetensors"))
    for k, v in exported.items():
        mean = sum(s[k].double() for s in states) / 3
        assert torch.allclose(v.double(), mean, atol=1e-6), k
    assert not torch.equal(exported[k], states[-1][k])
    card = json.loads((run / "cyclegan.json").read_text())
    assert card["training"]["averaged_steps"] == [2, 4, 6]
    rc, err = _run_main(["--out", str(run), "--export-only", "--average", "4", "-q"], capsys)
    assert rc == 2 and "only 3 readable checkpoint" in err
    # one chosen checkpoint, beside the newest export (for choosing on the validation split)
    rc, err = _run_main(["--out", str(run), "--export-only", "--step", "4", "-q"], capsys)
    assert rc == 0, err
    step4 = load_file(str(run / "cyclegan.step_4.safetensors"))
    assert all(torch.equal(step4[k], states[1][k]) for k in step4)
    assert json.loads((run / "cyclegan.step_4.json").read_text())["training"]["steps"] == 4
    rc, err = _run_main(["--out", str(run), "--export-only", "--step", "5", "-q"], capsys)
    assert rc == 2 and "no readable checkpoint of step 5" in err


# ----------------------------------------------------------------------------- kill and resume

def _spawn(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "training", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoints(proc: subprocess.Popen, run: Path, n: int, after: int = -1,
                          timeout: float = 120.0) -> list[int]:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        steps = [s for s, _ in list_checkpoints(run) if s > after]
        if len(steps) >= n:
            return steps
        if proc.poll() is not None:
            raise AssertionError(f"training ended early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no checkpoint appeared in time")


def test_sigkill_then_resume(tmp_path: Path) -> None:
    """kill -9 after the 2nd checkpoint; --resume skips a damaged newer file, finishes, exports."""
    run = tmp_path / "run"
    base = ["--out", str(run), "--config", "tiny", "--checkpoint-every", "3", "--val-every", "0",
            "-q"]
    proc = _spawn(["--model", "cyclegan", "--data", "synthetic", "--steps", "100000", *base])
    _wait_for_checkpoints(proc, run, 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    proc.stdout.close(), proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    last = list_checkpoints(run)[-1][0]
    assert not (run / "cyclegan.safetensors").exists()
    # a damaged newer checkpoint (as a kill during a copy would leave) is skipped
    (run / "checkpoints" / f"step_{last + 1:06d}.pt").write_bytes(b"\x80\x02truncated")

    target = last + 4
    proc = _spawn(["--resume", "--steps", str(target), *base])
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "skipping unreadable checkpoint" in err
    card = json.loads((run / "cyclegan.json").read_text())
    assert card["training"]["steps"] == target
    assert len(card["training"]["resumed_with"]) == 1
    assert "--resume" in card["training"]["resumed_with"][0]
    assert [s for s, _ in list_checkpoints(run)][-1] == target
    assert (run / "checkpoints" / f"step_{last + 1:06d}.pt.damaged").is_file()
    from training.plots import read_log
    steps = [int(r["step"]) for r in read_log(run / "log.csv")]
    assert steps == sorted(set(steps)) and steps[-1] == target     # no duplicated rows


def test_sigterm_saves_and_exits_143(tmp_path: Path, capsys) -> None:
    """SIGTERM: the step finishes, a checkpoint is saved, exit 143, one line, no export."""
    run = tmp_path / "run"

    def terminate_after_first_checkpoint() -> None:
        t0 = time.monotonic()
        while not list_checkpoints(run) and time.monotonic() - t0 < 120:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=terminate_after_first_checkpoint, daemon=True)
    watcher.start()
    rc, err = _run_main(["--model", "ddpm", "--data", "synthetic", "--out", str(run), "--config",
                         "tiny", "--steps", "100000", "--checkpoint-every", "2", "--val-every",
                         "0", "-q"], capsys)
    watcher.join(5)
    assert rc == 143, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deblur-train: stopped by SIGTERM at step")
    assert "--resume" in lines[0]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert list_checkpoints(run) and not (run / "ddpm.safetensors").exists()
