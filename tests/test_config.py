"""Training configuration: defaults in one place, every shipped config still accepted, and a
mistake in a config file named by its key instead of silently ignored."""

from __future__ import annotations

import pytest

from training.cli import main
from training.config import CONFIG_DIR, ConfigError, defaults, describe, load_config, validate
from training.steps import model_names


def _shipped_for(model: str) -> list[str]:
    """Shipped configs meant for `model`: its own, the shared ones, none of another model's."""
    others = [m for m in model_names() if m != model]
    return [p.stem for p in sorted(CONFIG_DIR.glob("*.toml"))
            if not any(p.stem == o or p.stem.startswith((f"{o}_", f"shipped_{o}", f"gpu_{o}_"))
                       for o in others)]


@pytest.mark.parametrize("model", ["comi", "cyclegan", "ddpm"])
def test_every_shipped_config_loads_for_its_model(model):
    names = _shipped_for(model)
    assert "tiny" in names and model in names
    for name in names:
        cfg = load_config(model, name)
        assert cfg["model_name"] == model and cfg["train"]["steps"] >= 1


def test_the_model_files_override_nothing():
    """comi.toml & co. only exist so `--config comi` keeps working: the defaults are the code's."""
    for model in model_names():
        assert load_config(model, model) == defaults(model)


def test_model_defaults_differ_where_the_model_says():
    assert defaults("ddpm")["optim"]["decay"] == "cosine" and defaults("comi")["optim"]["decay"] == "linear"
    assert defaults("ddpm")["train"]["steps"] == 6000 and defaults("comi")["train"]["steps"] == 4000
    assert "warm_start_steps" in defaults("comi")["loss"]
    assert "warm_start_steps" not in defaults("cyclegan")["loss"]
    assert "loss" not in defaults("ddpm") and "ema" in defaults("ddpm")


def test_overrides_apply_after_the_file(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text("[train]\nsteps = 7\n[optim]\nlr = 1e-3\n[comi.loss]\ncontent = 3.0\n")
    cfg = load_config("comi", f, {"train": {"steps": 9, "patch": None}})
    assert cfg["train"]["steps"] == 9 and cfg["optim"]["lr"] == 1e-3 and cfg["loss"]["content"] == 3.0
    assert cfg["train"]["patch"] == 128                      # None leaves the default


@pytest.mark.parametrize("text, message", [
    ("[train]\nstpes = 10\n", "unknown config key 'stpes' in [train]"),
    ("[trian]\nsteps = 10\n", "unknown config table [trian]"),
    ("[train]\nsteps = 0\n", "train.steps must be at least 1"),
    ("[train]\nsteps = 2.5\n", "train.steps must be a whole number"),
    ("[train]\namp = 1\n", "train.amp must be true or false"),
    ("[optim]\ndecay = \"exp\"\n", "optim.decay must be one of none, linear, cosine"),
    ("[optim]\nlr = \"fast\"\n", "optim.lr must be a number"),
    ("[loss]\ncontent = -1.0\n", "loss.content must be at least 0.0"),
    ("[ema]\ndecay = 0.9\n", "unknown config table [ema]"),
    ("steps = 3\n", "unknown top-level config key 'steps'"),
])
def test_a_config_mistake_is_named(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config("comi", f)


def test_a_mistake_is_one_line_and_exit_2(tmp_path, capsys):
    f = tmp_path / "bad.toml"
    f.write_text("[train]\nbatch_size = -4\n")
    assert main(["--model", "comi", "--data", "synthetic", "--out", str(tmp_path / "run"),
                 "--config", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "train.batch_size must be at least 1" in err
    assert not (tmp_path / "run").exists()


def test_a_resumed_configuration_is_checked_too():
    cfg = defaults("cyclegan")
    cfg["train"]["val_items"] = "many"
    with pytest.raises(ConfigError, match="train.val_items must be a whole number"):
        validate(cfg)
    partial = {"model_name": "ddpm", "train": {"steps": 5}}    # older runs: the rest filled in
    assert validate(partial)["ema"]["decay"] == 0.999


def test_show_config_lists_every_setting(capsys):
    assert main(["--model", "ddpm", "--show-config"]) == 0
    out = capsys.readouterr().out
    assert out == describe("ddpm")
    for table, values in defaults("ddpm").items():
        if isinstance(values, dict):
            assert f"[{table}]" in out
            assert all(f"\n{key} = " in out for key in values)
