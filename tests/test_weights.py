"""Weights files: safetensors + card round trip, and a clear WeightsError naming the file for every
way a file can be wrong (missing, corrupt, truncated, no card, other model, wrong tensors)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from core.models.ddpm import ConditionalDDPM
from core.models.registry import build_from_card, load_network, make_card
from core.models.resnet_generator import ResnetGenerator
from core.models.weights import CARD_KEY, WeightsError, load_weights, resolve_weights, save_weights

TINY = dict(ngf=4, n_down=2, n_blocks=1)



@pytest.fixture
def saved(tmp_path):
    net = ResnetGenerator(**TINY)
    card = make_card("comi", net, training={"steps": 10, "command": "deblur-train --model comi"},
                     validation={"psnr": 30.0, "ssim": 0.9})
    return save_weights(tmp_path / "comi.safetensors", net.state_dict(), card), net


def test_round_trip_writes_safetensors_and_card(saved, tmp_path):
    path, net = saved
    state, card = load_weights(path, "comi")
    assert set(state) == set(net.state_dict())
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert card["architecture"] == net.config and card["training"]["steps"] == 10
    assert "VGG19" in card["notes"] and "REPLACED" in card["notes"]
    assert json.loads(path.with_suffix(".json").read_text()) == card
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comi.json", "comi.safetensors"]  # no temp files
    loaded, _ = load_network(path, "comi")
    assert isinstance(loaded, ResnetGenerator) and not loaded.training


def test_ddpm_card_carries_the_diffusion_settings(tmp_path):
    net = ConditionalDDPM(dim=8, dim_mults=(1, 2), timesteps=50, objective="eps", residual=False)
    path = save_weights(tmp_path / "d.safetensors", net.state_dict(), make_card("ddpm", net))
    loaded, card = load_network(path, "ddpm")
    assert card["architecture"]["objective"] == "eps" and loaded.timesteps == 50 and not loaded.residual


def _message(exc_info) -> str:
    return str(exc_info.value)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError) as e:
        load_weights(tmp_path / "nope.safetensors")
    assert "nope.safetensors" in _message(e) and "does not exist" in _message(e)


@pytest.mark.parametrize("damage", ["random", "truncated", "empty", "pickle"])
def test_corrupt_files(saved, tmp_path, damage):
    path, net = saved
    bad = tmp_path / f"bad_{damage}.safetensors"
    if damage == "random":
        bad.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                      dtype=torch.uint8).numpy().tobytes())
    elif damage == "truncated":
        bad.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    elif damage == "empty":
        bad.write_bytes(b"")
    else:
        torch.save(net.state_dict(), bad)                       # a pickle, never loaded
    with pytest.raises(WeightsError) as e:
        load_weights(bad, "comi")
    assert bad.name in _message(e) and "safetensors" in _message(e)
    assert isinstance(e.value, ValueError)


def test_no_card(tmp_path):
    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(bare))
    with pytest.raises(WeightsError) as e:
        load_weights(bare)
    assert "bare.safetensors" in _message(e) and "no model card" in _message(e)
    # a card beside the file is accepted (hand-copied weights)
    bare.with_suffix(".json").write_text(json.dumps({"model": "comi", "architecture": {}}))
    assert load_weights(bare)[1]["model"] == "comi"


def test_card_for_another_model(saved):
    path, _ = saved
    with pytest.raises(WeightsError) as e:
        load_weights(path, "cyclegan")
    assert str(path) in _message(e) and "trained for 'comi', not 'cyclegan'" in _message(e)
    from core.models.registry import load_model
    with pytest.raises(ValueError, match="not 'ddpm'"):
        load_model("ddpm", weights=path, device="cpu")


def test_missing_unexpected_and_wrong_shapes(saved, tmp_path):
    path, net = saved
    state, card = load_weights(path)
    sd = dict(state)
    key = "net.0.0.weight"
    sd[key] = torch.zeros(5, 1, 7, 7)                           # was (4, 1, 7, 7)
    sd.pop("net.0.1.bias")
    sd["extra.weight"] = torch.zeros(1)
    bad = save_weights(tmp_path / "shapes.safetensors", sd, card)
    with pytest.raises(WeightsError) as e:
        load_network(bad, "comi")
    msg = _message(e)
    assert "shapes.safetensors" in msg and "net.0.1.bias" in msg and "extra.weight" in msg
    assert f"'{key}' has shape (5, 1, 7, 7) in the file but the network expects (4, 1, 7, 7)" in msg


def test_architecture_that_does_not_fit(tmp_path):
    with pytest.raises(WeightsError, match="x.safetensors.*does not fit the comi network"):
        build_from_card({"model": "comi", "architecture": {"ngf": 4, "wings": 2}}, tmp_path / "x.safetensors")
    with pytest.raises(WeightsError, match="does not fit the comi network.*unknown generator kind"):
        build_from_card({"model": "comi", "architecture": {"kind": "vit"}})
    with pytest.raises(WeightsError, match="unknown model"):
        build_from_card({"model": "vgg", "architecture": {}})


def test_metadata_card_is_used_when_json_is_gone(saved):
    path, _ = saved
    path.with_suffix(".json").unlink()
    assert load_weights(path, "comi")[1]["model"] == "comi"
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        assert json.loads(f.metadata()[CARD_KEY])["model"] == "comi"


def test_no_shipped_weights_gives_a_clear_error(tmp_path, monkeypatch):
    import core.models.weights as weights
    from core.models.registry import load_model

    monkeypatch.setattr(weights, "default_weights_path", lambda model: tmp_path / f"{model}.safetensors")
    for name in ("comi", "cyclegan", "ddpm"):
        with pytest.raises(WeightsError, match=f"No trained weights for '{name}' yet: train with "
                                               "deblur-train or pass --weights FILE"):
            load_model(name, device="cpu")
    assert resolve_weights("comi", tmp_path / "given.safetensors") == tmp_path / "given.safetensors"


def test_saved_weights_are_readable_by_colleagues(tmp_path):
    """Atomic saving goes through a private temp file; the result gets normal permissions."""
    import os
    import stat

    net = ResnetGenerator(ngf=4, n_down=1, n_blocks=1)
    path = save_weights(tmp_path / "w.safetensors", net.state_dict(), make_card("comi", net))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask


def test_a_runs_own_note_comes_before_the_models_general_notes():
    """The model panel shows the notes: what this run did differently is read first."""
    from core.models.comi import COMI
    card = make_card("comi", COMI().g_deblur, notes="Trained on content terms only.")
    assert card["notes"].startswith("Trained on content terms only. COMI (Zhang")
    assert "REPLACED" in card["notes"]
