"""Multi-process training under torchrun with the gloo backend (CPU), 2 processes.

1. `torchrun --nproc_per_node 2 -m training ...` runs, only rank 0 writes, the export loads.
2. A script under torchrun trains each model with DDP and saves every rank's weights: they
   must be identical although the ranks train on different batches (gradients were averaged).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _torchrun(args: list[str], tmp_path: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           *args]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_torchrun_cli_two_processes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    res = _torchrun(["-m", "training", "--model", "cyclegan", "--data", "synthetic", "--out",
                     str(run), "--config", "tiny", "--steps", "4", "--val-every", "2", "-q"],
                    tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    card = json.loads((run / "cyclegan.json").read_text())
    assert card["training"]["world_size"] == 2
    assert card["training"]["command"].startswith("torchrun --nproc_per_node 2 -m training")
    assert (run / "checkpoints" / "step_000004.pt").is_file()
    from core.models.registry import load_model
    assert load_model("cyclegan", weights=run / "cyclegan.safetensors", device="cpu") is not None


WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import torch, torch.distributed as dist
    sys.path.insert(0, {tests!r})
    from test_trainer import ToyPairs, tiny_cfg
    from training.steps import Precision, build_steps
    from training.sample_order import dist_info
    from training.trainer import Trainer

    info = dist_info()
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    out = Path({out!r})
    cpu = torch.device("cpu")
    for model in ("comi", "cyclegan", "ddpm"):
        cfg = tiny_cfg(model, steps=4, val_every=0, checkpoint_every=0)
        steps = build_steps(model, cfg, cpu, Precision(cpu, False))
        Trainer(steps, ToyPairs(8), ToyPairs(2, seed=1, augment=False), out / model, cfg,
                info, quiet=True).fit()
        state = {{f"{{k}}.{{n}}": v for k, m in steps.modules.items()
                  for n, v in m.state_dict().items()}}
        torch.save(state, out / f"{{model}}_rank{{info.rank}}.pt")
    dist.barrier()
    dist.destroy_process_group()
""")


def test_ddp_ranks_stay_in_sync(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(ROOT / "tests"), out=str(tmp_path)))
    res = _torchrun([str(script)], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    for model in ("comi", "cyclegan", "ddpm"):
        a = torch.load(tmp_path / f"{model}_rank0.pt", weights_only=True)
        b = torch.load(tmp_path / f"{model}_rank1.pt", weights_only=True)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.allclose(a[k], b[k], atol=1e-6), f"{model}: {k} differs between ranks"
        # only rank 0 wrote the run folder
        assert (tmp_path / model / "log.csv").is_file()
