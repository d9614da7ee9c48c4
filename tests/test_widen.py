"""Widening a trained generator (training.widen): the wider network starts out restoring exactly
as the trained one did, its new channels then learn something of their own, and deblur-train
--init takes a narrower file of the same U-Net."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.models.unet_generator import UNetGenerator
from training.cli import main
from training.widen import can_widen, widen_unet


def _trained_like(net: UNetGenerator, seed: int = 0) -> UNetGenerator:
    """Random weights large enough that LeakyReLU is far from linear everywhere."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return net


@pytest.mark.parametrize("widths", [[24, 32, 64], [16, 48, 64], [20, 40, 80]])
def test_widened_generator_restores_exactly_as_before(widths) -> None:
    old = _trained_like(UNetGenerator(ngf=16, n_down=2))
    new = UNetGenerator(n_down=2, widths=widths)
    widen_unet(old, new, seed=3)
    x = torch.rand(2, 1, 40, 52)
    with torch.no_grad():
        a, b = old(x), new(x)
    assert (a - x).abs().max() > 1.0          # the network does change the image
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-5 * a.abs().max().item())


def test_copied_channels_learn_apart() -> None:
    """Each copy gets its own share of the old weight, so one training step moves the copies
    differently: they do not stay twins forever (which would add no capacity)."""
    old = _trained_like(UNetGenerator(ngf=8, n_down=1))
    new = UNetGenerator(n_down=1, widths=[12, 16])
    widen_unet(old, new, seed=0)
    conv = new.encoders[0][1][0]                     # reads and writes the widened level
    twin_of = [int(torch.nonzero((conv.weight[8 + k] == conv.weight[:8]).flatten(1).all(1))[0])
               for k in range(4)]                    # channels 8..11 are copies of these
    x, y = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    torch.nn.functional.mse_loss(new(x), y).backward()
    grad = conv.weight.grad
    for k, j in enumerate(twin_of):
        assert grad[j].abs().max() > 0
        assert not torch.allclose(grad[8 + k], grad[j], rtol=0.2, atol=0)


def test_only_a_wider_same_shape_unet_is_a_widening() -> None:
    base = UNetGenerator(ngf=16, n_down=2)
    assert can_widen(base, UNetGenerator(n_down=2, widths=[32, 32, 64]))
    assert can_widen(base, UNetGenerator(ngf=16, n_down=2))
    assert not can_widen(base, UNetGenerator(n_down=2, widths=[8, 32, 64]))       # narrower
    assert not can_widen(base, UNetGenerator(ngf=16, n_down=3))                    # other depth
    assert not can_widen(base, UNetGenerator(ngf=16, n_down=2, dec_convs=2))
    with pytest.raises(ValueError, match="not the old U-Net"):
        widen_unet(base, UNetGenerator(ngf=8, n_down=2))
    with pytest.raises(ValueError, match="n_down \\+ 1 = 3"):
        UNetGenerator(n_down=2, widths=[16, 32])


def test_train_init_from_a_narrower_file_widens_it(tmp_path: Path, capsys) -> None:
    def run(argv: list[str]) -> tuple[int, str]:
        rc = main(argv + ["-q"])
        return rc, capsys.readouterr().err

    narrow = tmp_path / "narrow"
    rc, err = run(["--model", "comi", "--data", "synthetic", "--out", str(narrow),
                   "--config", "tiny", "--steps", "2"])
    assert rc == 0, err
    cfg = tmp_path / "wide.toml"
    cfg.write_text((Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny.toml")
                   .read_text(encoding="utf-8").replace("[comi.model]\nngf = 8\n",
                                                        "[comi.model]\nwidths = [12, 16]\n"),
                   encoding="utf-8")
    wide = tmp_path / "wide"
    rc, err = run(["--model", "comi", "--data", "synthetic", "--out", str(wide), "--config", str(cfg),
                   "--steps", "2", "--init", str(narrow / "comi.safetensors")])
    assert rc == 0, err
    card = json.loads((wide / "comi.json").read_text())
    assert card["architecture"]["widths"] == [12, 16]
    assert card["training"]["started_from"]["widened_from"]["ngf"] == 8
    from core.models.registry import load_network
    net, _ = load_network(wide / "comi.safetensors")
    assert net.head.in_channels == 12


def test_fine_tune_without_model_settings_trains_the_init_files_network(tmp_path: Path, capsys) -> None:
    """`deblur-train --init resources/weights/comi.safetensors` must work whatever width the
    shipped COMI has: a config that says nothing about [model] trains the file's network."""
    narrow = tmp_path / "narrow"
    assert main(["--model", "comi", "--data", "synthetic", "--out", str(narrow), "--config", "tiny",
                 "--steps", "2", "-q"]) == 0
    tiny = (Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny.toml").read_text(encoding="utf-8")
    cfg = tmp_path / "no_model.toml"
    cfg.write_text(tiny.split("[comi.model]")[0], encoding="utf-8")      # [train], [data], [optim]
    tuned = tmp_path / "tuned"
    rc = main(["--model", "comi", "--data", "synthetic", "--out", str(tuned), "--config", str(cfg),
               "--steps", "2", "--init", str(narrow / "comi.safetensors"), "-q"])
    assert rc == 0, capsys.readouterr().err
    card = json.loads((tuned / "comi.json").read_text())
    first = json.loads((narrow / "comi.json").read_text())
    assert card["architecture"] == first["architecture"] and card["architecture"]["ngf"] == 8
