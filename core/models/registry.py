"""The one model registry: name -> its description (`ModelEntry`), its network, weights and card.

Every module of ``core.models`` that exports a ``MODEL`` description is a model; nothing else
lists the models. The CLI, the GUI, the benchmark and ``deblur-train`` all go through
`list_entries` / `load_model`, so a model added as a module appears everywhere at once.
Model modules never import this one (the descriptions are data), so there is no import cycle.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.devices import pick_device
from core.input_match import MATCH_KEY
from core.models.base import Restorer
from core.models.spec import ModelEntry, Param
from core.models.weights import (WeightsError, check_state_dict, json_clean, load_weights,
                                 read_card, resolve_weights)
from core.normalize import P_HIGH, P_LOW

__all__ = ["Param", "ModelEntry", "register", "get_entry", "list_entries", "load_model", "build_restorer",
           "default_model_name", "check_params", "read_card", "make_card", "build_from_card",
           "load_network"]

_REGISTRY: dict[str, ModelEntry] = {}
_loaded = False


def register(entry: ModelEntry) -> None:
    """Add a model that lives outside ``core.models`` (a later registration of the same name
    replaces the earlier one)."""
    _REGISTRY[entry.name] = entry


def _load_builtins() -> None:
    """Import every module of ``core.models`` and register the ``MODEL`` each one exports."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import core.models as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        entry = getattr(module, "MODEL", None)
        if isinstance(entry, ModelEntry):
            _REGISTRY.setdefault(entry.name, entry)


def list_entries() -> list[ModelEntry]:
    """Every registered model, in display order (`ModelEntry.order`, then name)."""
    _load_builtins()
    return sorted(_REGISTRY.values(), key=lambda e: (e.order, e.name))


def default_model_name() -> str:
    """The model a new user gets: the first in display order that can run here (has weights)."""
    entries = list_entries()
    for e in entries:
        if not e.needs_weights or e.has_weights():
            return e.name
    return next(e.name for e in entries if not e.needs_weights)


def get_entry(name: str) -> ModelEntry:
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(_REGISTRY) or "none"
        raise ValueError(f"unknown model {name!r} (available: {known})") from None


def check_params(entry: ModelEntry, params: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in, values converted; an unknown parameter is an error, not ignored."""
    out = {k: p.default for k, p in entry.params.items()}
    for key, value in params.items():
        if value is None:
            continue
        if key not in entry.params:
            allowed = ", ".join(entry.params) or "none"
            raise ValueError(f"model {entry.name!r} has no setting {key!r} (its settings: {allowed})")
        out[key] = entry.params[key].check(key, value)
    return out


def load_model(name: str, weights: str | Path | None = None, device: str | torch.device = "auto",
               **params: Any) -> Restorer:
    """Build a ready-to-run model; weights None means the shipped default weights."""
    entry = get_entry(name)
    dev = pick_device(device)
    checked = check_params(entry, params)
    if entry.network is None:
        if weights is not None:
            raise ValueError(f"{name} is a classical method and takes no weights file")
        return entry.build(None, {}, dev, **checked)
    net, card = load_network(resolve_weights(name, weights), name, dev)
    return build_restorer(entry, net, card, dev, checked)


def build_restorer(entry: ModelEntry, net: nn.Module, card: dict, device: torch.device,
                   checked: dict[str, Any]) -> Restorer:
    """A learned model's `Restorer` from its network and checked settings (`check_params`).
    "Match the input" is a step the engine adds after the model (core.input_match), not the
    model's own computation: the restorer only carries that setting."""
    params = dict(checked)
    match_steps = params.pop(MATCH_KEY, 0)
    restorer = entry.build(net, card, device, **params)
    restorer.match_steps = int(match_steps)
    return restorer


# ----------------------------------------------------------------------------- networks and cards

def make_card(model: str, net: nn.Module, **sections: Any) -> dict:
    """A model card: model name, architecture (= ``net.config``), the model's `card_notes`.

    Extra keyword sections (``normalisation``, ``training``, ``validation``, ``notes``...) are
    copied in; a given ``notes`` (what this run did differently) comes first, then the model's
    own notes (what every run of this model shares), so a reader sees the particular first.
    """
    entry = _trainable_entry(model, "model")
    config = getattr(net, "config", None)
    if not isinstance(config, dict):
        raise WeightsError(f"{type(net).__name__} has no .config dict to record its architecture")
    card: dict[str, Any] = {
        "model": model,
        "network": type(net).__name__,
        "architecture": dict(config),
        "normalisation": {"kind": "percentile", "p_low": P_LOW, "p_high": P_HIGH},
    }
    extra = sections.pop("notes", None)
    card.update(sections)
    notes = entry.card_notes
    card["notes"] = notes if not extra else f"{extra} {notes}".strip()
    return json_clean(card)


def _trainable_entry(model: Any, where: str) -> ModelEntry:
    """The entry of a model that has a network, or a WeightsError naming `where`."""
    _load_builtins()
    entry = _REGISTRY.get(model) if isinstance(model, str) else None
    if entry is None or entry.network is None:
        known = ", ".join(e.name for e in list_entries() if e.network is not None)
        raise WeightsError(f"{where}: unknown model {model!r} (known: {known})")
    return entry


def build_from_card(card: dict, path: str | Path | None = None) -> nn.Module:
    """Construct the (untrained) network a card describes: its model's ``network(**architecture)``."""
    where = f"weights file {path}" if path is not None else "model card"
    entry = _trainable_entry(card.get("model"), where)
    try:
        return entry.network(**card["architecture"])
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{where}: its architecture {card['architecture']} does not fit "
                           f"the {entry.name} network: {exc}") from None


def load_network(path: str | Path, expected_model: str | None = None,
                 device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Weights file -> (network in eval mode on `device`, card); every failure is a WeightsError."""
    state, card = load_weights(path, expected_model)
    net = build_from_card(card, path)
    check_state_dict(net, state, path)
    net.load_state_dict(state, strict=True)
    return net.to(device).eval(), card
