"""One description per model: the registry, the weights loader, `deblur-train --model` and the
steps table all come from the `MODEL` each model module exports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.models import registry
from core.models.base import Restorer
from core.models.spec import ModelEntry, Param
from training.steps import model_names, steps_class
from training.steps.base import ModelSteps


def test_every_shipped_model_is_found_from_its_module():
    names = [e.name for e in registry.list_entries()]
    assert names[:4] == ["comi", "ddpm", "cyclegan", "richardson-lucy"]      # display order
    for e in registry.list_entries():
        assert e.display_name and e.summary and e.kind in ("classical", "gan", "diffusion")
        assert e.needs_weights == (e.network is not None)


def test_trainable_models_and_their_steps_come_from_the_descriptions():
    trainable = [e.name for e in registry.list_entries() if e.steps]
    assert list(model_names()) == trainable == ["comi", "ddpm", "cyclegan"]
    for name in trainable:
        cls = steps_class(name)
        assert issubclass(cls, ModelSteps) and cls.name == name
    with pytest.raises(ValueError, match="richardson-lucy"):
        steps_class("richardson-lucy")


def test_the_weights_loader_builds_each_network_from_its_description(tmp_path):
    from core.models.weights import save_weights

    for e in registry.list_entries():
        if e.network is None:
            continue
        arch = dict(e.presets["model"]["cpu"])
        if e.name == "ddpm":
            arch.update(dim=8, dim_mults=(1, 2), timesteps=10, predictor=None)
        net = e.network(**arch)
        path = save_weights(tmp_path / f"{e.name}.safetensors", net.state_dict(), registry.make_card(e.name, net))
        loaded, card = registry.load_network(path, e.name)
        assert type(loaded) is type(net) and card["notes"] == e.card_notes


class _Halve(Restorer):
    name = "halve"

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def restore_plane(self, x, tiler, seed=0):
        return tiler.map(lambda t: t * self.factor, torch.from_numpy(np.ascontiguousarray(x))[None])[0].numpy()


def test_a_model_added_as_a_description_runs_everywhere(capsys):
    """What ARCHITECTURE.md promises: one description, and the CLI, loader and engine know it."""
    from core.cli import main
    from core.engine import restore

    entry = ModelEntry(name="halve", kind="classical", display_name="Halve", order=50,
                       summary="Halves every pixel (a test model).",
                       build=lambda net, card, device, factor: _Halve(factor),
                       params={"factor": Param(0.5, float, "the factor", min=0.0, max=1.0)})
    registry.register(entry)
    try:
        model = registry.load_model("halve", factor=0.25)
        ramp = np.tile(np.arange(100, 1124, 32, dtype=np.uint16), (32, 1))
        out = restore(ramp, model, device="cpu")
        assert out.dtype == np.uint16 and out.mean() < 0.6 * ramp.mean()
        with pytest.raises(ValueError, match="at most 1.0"):
            registry.load_model("halve", factor=2)
        assert main(["models"]) == 0 and "halve" in capsys.readouterr().out
    finally:
        registry._REGISTRY.pop("halve", None)
