"""The Trainer and the per-model steps on tiny networks and a tiny in-memory data set.

Covers: losses fall, exact resume (SIGINT mid-run -> checkpoint -> resume == uninterrupted),
keep-last-K, a damaged newest checkpoint is skipped, the log/plot/grid outputs, the data order
as a pure function of (seed, step), and export -> load_model -> engine.restore for each model.
"""

from __future__ import annotations

import copy
import os
import signal
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from training.checkpoint import list_checkpoints, load_latest
from training.config import load_config
from training.schedules import lr_lambda
from training.steps import Precision, build_steps
from training.plots import read_log
from training.sample_order import Positions, batch_positions
from training.trainer import Trainer, TrainingDiverged, TrainingInterrupted

MODELS = ["comi", "cyclegan", "ddpm"]

CPU = torch.device("cpu")


class ToyPairs(Dataset):
    """Smooth random textures and their Gaussian-blurred versions, plus a random flip per item.

    The flip draws from the global torch RNG, as an augmenting dataset would: exact resume must
    hold even so.
    """

    def __init__(self, n: int, patch: int = 32, seed: int = 0, augment: bool = True) -> None:
        rng = np.random.default_rng(seed)
        self.sharp, self.blurred = [], []
        for _ in range(n):
            s = ndimage.gaussian_filter(rng.random((patch, patch)), 1.0)
            s = ((s - s.min()) / (s.max() - s.min())).astype(np.float32)
            self.sharp.append(torch.from_numpy(s)[None])
            self.blurred.append(torch.from_numpy(ndimage.gaussian_filter(s, 1.5))[None])
        self.augment = augment

    def __len__(self) -> int:
        return len(self.sharp)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        b, s = self.blurred[i], self.sharp[i]
        if self.augment and torch.rand(()) < 0.5:
            b, s = b.flip(-1), s.flip(-1)
        return {"blurred": b.clone(), "sharp": s.clone()}


def tiny_cfg(model: str, **train) -> dict:
    cfg = load_config(model, "tiny")
    cfg["data"]["source"] = "toy"
    cfg["train"].update(train)
    if model != "ddpm":
        cfg["loss"]["pool_size"] = 3          # small pool: swaps (and its RNG) happen early
    return cfg


def make_trainer(model: str, run: Path, cfg: dict, n_train: int = 6, **kw) -> Trainer:
    steps = build_steps(model, cfg, CPU, Precision(CPU, bool(cfg["train"]["amp"])))
    return Trainer(steps, ToyPairs(n_train), ToyPairs(2, seed=1, augment=False), run, cfg,
                   quiet=True, **kw)


# ----------------------------------------------------------------------------- data order

def test_positions_are_disjoint_and_deterministic() -> None:
    seen = [list(batch_positions(s, 3, r, 2)) for s in range(4) for r in range(2)]
    flat = [p for b in seen for p in b]
    assert flat == list(range(24))                        # every position once, ranks disjoint
    ds = ToyPairs(5)
    a, b = Positions(ds, seed=7), Positions(ds, seed=7)
    torch.manual_seed(0)
    first = [a[p]["sharp"] for p in range(12)]
    torch.manual_seed(123)                               # global RNG state must not matter
    second = [b[p]["sharp"] for p in reversed(range(12))][::-1]
    assert all(torch.equal(x, y) for x, y in zip(first, second))
    # each epoch visits every item once
    ids = [next(i for i, s in enumerate(ds.sharp) if torch.equal(s, x) or torch.equal(s.flip(-1), x))
           for x in first[:5]]
    assert sorted(ids) == list(range(5))


def test_lr_schedules() -> None:
    f = lr_lambda(100, decay="linear", decay_start=0.5)
    assert f(0) == 1.0 and f(49) == 1.0 and f(75) == pytest.approx(0.5) and f(100) == 0.0
    g = lr_lambda(100, warmup=10, decay="cosine")
    assert g(0) == pytest.approx(0.1) and g(10) == pytest.approx(1.0) and g(100) == pytest.approx(0.0)


# ----------------------------------------------------------------------------- learning

# the loss that must fall: content / cycle for the GANs (the adversarial terms need not)
WATCH = {"comi": "content", "cyclegan": "cycle", "ddpm": "loss"}
# how far it must fall in 40 steps: COMI's residual U-Net starts at the input's own error (close
# to the identity), so 5 % lower already means it restores better than doing nothing
FALL = {"comi": 0.95, "cyclegan": 0.8, "ddpm": 0.8}


@pytest.mark.parametrize("model", MODELS)
def test_loss_decreases(model: str, tmp_path: Path) -> None:
    cfg = tiny_cfg(model, steps=40, val_every=0, checkpoint_every=0, log_every=10)
    cfg["optim"]["decay"] = "none"
    seen: list[float] = []
    trainer = make_trainer(model, tmp_path, cfg, n_train=2,
                           on_step=lambda s, losses: seen.append(losses[WATCH[model]]))
    result = trainer.fit()
    assert result.steps == 40 and len(seen) == 40
    assert all(np.isfinite(seen))
    first, last = np.mean(seen[:5]), np.mean(seen[-5:])
    assert last < FALL[model] * first, f"{WATCH[model]} went {first:.4f} -> {last:.4f}"
    # outputs of a finished run
    rows = read_log(tmp_path / "log.csv")
    assert [int(r["step"]) for r in rows] == [10, 20, 30, 40]
    assert rows[-1]["val_psnr"] != "" and rows[0]["val_psnr"] == ""
    assert (tmp_path / "loss.png").stat().st_size > 1000
    assert (tmp_path / "val" / "step_000040.png").is_file()
    assert [s for s, _ in list_checkpoints(tmp_path)] == [40]
    assert set(result.validation) >= {"psnr", "ssim", "psnr_blurred", "ssim_blurred", "sharpness"}


# ----------------------------------------------------------------------------- resume

def _all_state(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {}
    for name, m in trainer.steps.modules.items():
        for k, v in m.state_dict().items():
            out[f"{name}.{k}"] = v.detach().clone()
    return out


@pytest.mark.parametrize("model,amp", [("comi", False), ("cyclegan", False), ("ddpm", False),
                                       ("comi", True), ("ddpm", True)])
def test_resume_is_exact(model: str, amp: bool, tmp_path: Path) -> None:
    """SIGINT at step 7 -> checkpoint -> resume to 12 == an uninterrupted 12-step run."""
    cfg = tiny_cfg(model, steps=12, checkpoint_every=4, val_every=6, log_every=2, amp=amp)

    whole = make_trainer(model, tmp_path / "whole", copy.deepcopy(cfg))
    whole.fit()

    def interrupt(step: int, _losses: dict) -> None:
        if step == 7:
            os.kill(os.getpid(), signal.SIGINT)          # the real handler: finish step, save

    first = make_trainer(model, tmp_path / "split", copy.deepcopy(cfg), on_step=interrupt)
    with pytest.raises(TrainingInterrupted) as info:
        first.fit()
    assert info.value.exit_code == 130 and info.value.step == 7
    assert [s for s, _ in list_checkpoints(tmp_path / "split")] == [4, 7]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # handlers restored

    torch.manual_seed(999)                               # resume must not depend on this
    second = make_trainer(model, tmp_path / "split", copy.deepcopy(cfg))
    result = second.fit(resume=True)
    assert result.steps == 12

    a, b = _all_state(whole), _all_state(second)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    for name, opt in whole.steps.optimizers.items():
        sa, sb = opt.state_dict()["state"], second.steps.optimizers[name].state_dict()["state"]
        for i in sa:
            assert torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"])
    # the resumed log continues the first one without duplicates
    steps_logged = [int(r["step"]) for r in read_log(tmp_path / "split" / "log.csv")]
    assert steps_logged == [int(r["step"]) for r in read_log(tmp_path / "whole" / "log.csv")]
    assert [s for s, _ in list_checkpoints(tmp_path / "split")] == [7, 8, 12]   # keep 3


def test_damaged_newest_checkpoint_is_skipped(tmp_path: Path) -> None:
    cfg = tiny_cfg("ddpm", steps=8, checkpoint_every=4, val_every=0)
    make_trainer("ddpm", tmp_path, cfg).fit()
    (step_new, newest), = [c for c in list_checkpoints(tmp_path) if c[0] == 8]
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 3])           # as if killed while copying
    with pytest.warns(RuntimeWarning, match="skipping unreadable checkpoint"):
        step, state = load_latest(tmp_path)
    assert step == 4 and state["step"] == 4
    # and a resumed run continues from there to the end
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        t = make_trainer("ddpm", tmp_path, cfg)
        assert t.fit(resume=True).steps == 8


def test_divergence_stops_before_saving_nan(tmp_path: Path) -> None:
    """NaN weights end the run at once: the good checkpoints are not pruned by NaN ones."""
    cfg = tiny_cfg("ddpm", steps=20, checkpoint_every=2, val_every=0, keep_checkpoints=2)
    trainer = make_trainer("ddpm", tmp_path, cfg)
    real_step = trainer.steps.train_step

    def poisoned(batch, step):
        losses = real_step(batch, step)
        if step == 4:                                   # the 5th step blows up
            with torch.no_grad():
                next(trainer.steps.modules["ddpm"].parameters()).fill_(float("nan"))
            losses["loss"] = float("nan")
        return losses

    trainer.steps.train_step = poisoned
    with pytest.raises(TrainingDiverged, match="diverged at step 5.*checkpoint is step 4"):
        trainer.fit()
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 4]


def test_unpaired_validation_reports_sharpness_only(tmp_path: Path) -> None:
    cfg = tiny_cfg("cyclegan", steps=2, val_every=0, checkpoint_every=0)
    steps = build_steps("cyclegan", cfg, CPU, Precision(CPU, False))
    result = Trainer(steps, ToyPairs(4), ToyPairs(2, seed=1), tmp_path, cfg, quiet=True,
                     val_paired=False).fit()
    assert set(result.validation) == {"sharpness", "sharpness_blurred"}
    assert read_log(tmp_path / "log.csv")[-1]["val_psnr"] == ""


# ----------------------------------------------------------------------------- export

@pytest.mark.parametrize("model", MODELS)
def test_export_load_predict(model: str, tmp_path: Path) -> None:
    from core.engine import restore
    from core.models.registry import load_model, read_card
    from training.export import export_run

    cfg = tiny_cfg(model, steps=4, val_every=0, checkpoint_every=0)
    trainer = make_trainer(model, tmp_path, cfg)
    result = trainer.fit()
    path = export_run(trainer.steps, tmp_path, dict(
        cfg=cfg, commands=["deblur-train --model x"], wall_time_s=result.wall_time_s,
        trained_steps=result.steps, validation=result.validation, device="cpu"))
    assert path == tmp_path / f"{model}.safetensors" and path.with_suffix(".json").is_file()
    card = read_card(path)
    assert card["model"] == model and card["training"]["steps"] == 4
    assert card["training"]["command"] == "deblur-train --model x"
    assert set(card["validation"]) >= {"psnr", "ssim", "psnr_blurred", "ssim_blurred"}
    assert card["normalisation"]["kind"] == "percentile"
    if model == "comi":
        assert "REPLACED" in card["notes"]

    params = {"steps": 2} if model == "ddpm" else {}
    restorer = load_model(model, weights=path, device="cpu", **params)
    image = (np.random.default_rng(0).random((48, 40)) * 4000).astype(np.uint16)
    out = restore(image, restorer, tile=32, overlap=8)
    assert out.shape == image.shape and out.dtype == image.dtype
    # the exported network is the trained one: same output on a patch as in training
    net = trainer.steps.export_network()[0]
    reloaded = restorer.net
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        if model == "ddpm":
            t = torch.tensor([5])
            assert net.predictor is not None                  # predict-and-refine is the default
            base = net.base(x)
            assert torch.allclose(base, reloaded.float().base(x), atol=1e-5)
            cond = net.condition(x, base)
            assert torch.allclose(net.denoise(x, cond, t), reloaded.float().denoise(x, cond, t), atol=1e-5)
        else:
            assert torch.allclose(net(x), reloaded.float()(x.contiguous()), atol=1e-5)


def test_comi_warm_start_trains_only_the_deblurring_generator_first(tmp_path: Path) -> None:
    """Content-only pre-training: g_deblur learns, the other three networks wait their turn."""
    cfg = tiny_cfg("comi", steps=30, val_every=0, checkpoint_every=0, log_every=10)
    cfg["loss"]["warm_start_steps"] = 20
    cfg["optim"]["decay"] = "none"
    seen: list[dict] = []
    warm = make_trainer("comi", tmp_path / "warm", {**cfg, "train": {**cfg["train"], "steps": 20}},
                        n_train=2, on_step=lambda s, losses: seen.append(losses))
    start = _all_state(warm)
    warm.fit()
    after = _all_state(warm)
    changed = {k.split(".")[0] for k in start if not torch.equal(start[k], after[k])}
    assert changed == {"g_deblur"}
    assert all(l["d"] == 0 and l["cycle"] == 0 for l in seen)
    assert np.mean([l["content"] for l in seen[-5:]]) < np.mean([l["content"] for l in seen[:5]])
    seen.clear()
    make_trainer("comi", tmp_path / "full", cfg, n_train=2,
                 on_step=lambda s, losses: seen.append(losses)).fit()
    assert len(seen) == 30 and seen[-1]["d"] > 0 and seen[-1]["cycle"] > 0


def test_temp_file_of_a_run_killed_mid_save_is_cleaned_up(tmp_path: Path) -> None:
    from training.checkpoint import save_checkpoint

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    stale = folder / ".step_000010.pt.1a2b3c4d.part"      # what a SIGKILL during torch.save leaves
    stale.write_bytes(b"half a checkpoint")
    save_checkpoint(tmp_path, 20, {"step": 20})
    assert not stale.exists()
    assert [p.name for p in folder.iterdir()] == ["step_000020.pt"]


def test_ddpm_predictor_starts_from_a_generator_weights_file(tmp_path: Path) -> None:
    """[diffusion] predictor_init loads a trained generator (e.g. COMI's) into the predictor;
    a file of another architecture is refused with its name."""
    from core.models.generators import make_generator
    from core.models.registry import make_card
    from core.models.weights import WeightsError, save_weights

    cfg = tiny_cfg("ddpm")
    gen = make_generator(**cfg["model"]["predictor"])
    path = save_weights(tmp_path / "comi.safetensors", gen.state_dict(), make_card("comi", gen))
    cfg["diffusion"]["predictor_init"] = str(path)
    steps = build_steps("ddpm", cfg, CPU, Precision(CPU, False))
    for name in ("ddpm", "ema"):
        loaded = steps.modules[name].predictor.state_dict()
        assert all(torch.equal(v, loaded[k]) for k, v in gen.state_dict().items())
    other = make_generator(kind="unet", ngf=6, n_down=1)
    bad = save_weights(tmp_path / "other.safetensors", other.state_dict(), make_card("comi", other))
    cfg["diffusion"]["predictor_init"] = str(bad)
    with pytest.raises(WeightsError, match="other.safetensors"):
        build_steps("ddpm", cfg, CPU, Precision(CPU, False))


@pytest.mark.parametrize("model", ["comi", "cyclegan", "ddpm"])
def test_fine_tuning_starts_from_a_weights_file(model: str, tmp_path: Path) -> None:
    """--init loads a trained model's weights into the network that gets exported (and the
    DDPM's EMA copy), so fine-tuning on your images starts from the shipped model."""
    from core.models.registry import make_card
    from core.models.weights import save_weights

    cfg = tiny_cfg(model)
    trained = build_steps(model, cfg, CPU, Precision(CPU, False))
    net, _ = trained.export_network()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))               # "trained": unlike a fresh initialisation
    path = save_weights(tmp_path / f"{model}.safetensors", net.state_dict(), make_card(model, net))
    fresh = build_steps(model, cfg, CPU, Precision(CPU, False))
    card = fresh.init_from(str(path))
    assert card["model"] == model
    for target in fresh.init_targets():
        assert all(torch.equal(v, target.state_dict()[k]) for k, v in net.state_dict().items())


@pytest.mark.parametrize("model", ["comi", "cyclegan"])
def test_one_freak_batch_cannot_flood_the_optimiser(model: str) -> None:
    """A batch with values in the thousands (a sparse field after percentile normalisation) once
    made Adam's second moments huge and stalled COMI for a thousand steps; [optim] grad_clip
    bounds every gradient the optimisers see."""
    cfg = tiny_cfg(model)
    cfg["optim"]["grad_clip"] = 5.0
    if model == "comi":
        cfg["loss"]["warm_start_steps"] = 1          # step 0 content-only, step 1 the full losses
    steps = build_steps(model, cfg, CPU, Precision(CPU, False))
    data = ToyPairs(2, augment=False)
    freak = {"blurred": torch.stack(data.blurred) * 3000, "sharp": torch.stack(data.sharp) * 3000}
    for step in range(2):
        steps.train_step(freak, step)
    for opt in steps.optimizers.values():
        v = [s["exp_avg_sq"].max() for s in opt.state.values() if "exp_avg_sq" in s]
        assert v and max(float(x) for x in v) <= 25.0


def test_comi_card_says_which_losses_the_run_used() -> None:
    """A run that never left the content-only warm start must not be carded as adversarially
    trained; one that did says when the full losses began."""
    cfg = tiny_cfg("comi")
    steps_total = cfg["train"]["steps"]
    cfg["loss"]["warm_start_steps"] = steps_total
    note = build_steps("comi", cfg, CPU, Precision(CPU, False)).export_network()[1]
    assert "content terms only" in note and "then with all" not in note
    cfg["loss"]["warm_start_steps"] = 1
    note = build_steps("comi", cfg, CPU, Precision(CPU, False)).export_network()[1]
    assert "first 1 steps" in note and "all the COMI losses" in note
