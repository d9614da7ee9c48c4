"""How a model describes itself, once: the `ModelEntry` each model module exports as ``MODEL``.

The registry (``core.models.registry``), the weights loader, ``deblur-train --model`` and the
table of training steps are all derived from these descriptions, so adding a model means adding
one module under ``core/models/`` (and, if it trains, one under ``training/steps/``).
This module imports no model and no registry: model modules import it, never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.models.weights import default_weights_path

__all__ = ["Param", "ModelEntry", "KINDS", "AUTO"]

#: the value of a setting the model measures on the image itself (Param.auto)
AUTO = "auto"

#: what a model is, in the registry's words: a classical method (no weights), a GAN (its trained
#: generator restores) or a diffusion model (sampled step by step)
KINDS = ("classical", "gan", "diffusion")


@dataclass(frozen=True)
class Param:
    """A user-settable model parameter, described for the CLI and the GUI."""

    default: Any
    type: type
    help: str
    label: str = ""          # short plain label for the GUI
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    auto: bool = False       # the value may also be "auto": the model measures it on the image
    off: Any = None          # the value that turns the setting off: shown as "off", not a number

    def check(self, name: str, value: Any) -> Any:
        """Convert and range-check a value, with a message a user understands."""
        if self.auto and isinstance(value, str) and value.strip().lower() == AUTO:
            return AUTO
        try:
            value = self.type(value)
        except (TypeError, ValueError):
            what = f"a {self.type.__name__}" + (f" or {AUTO!r}" if self.auto else "")
            raise ValueError(f"{name} must be {what}, got {value!r}") from None
        if self.min is not None and value < self.min:
            raise ValueError(f"{name} must be at least {self.min}, got {value}")
        if self.max is not None and value > self.max:
            raise ValueError(f"{name} must be at most {self.max}, got {value}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{name} must be one of {', '.join(map(str, self.choices))}")
        return value


@dataclass
class ModelEntry:
    """Everything the application and the trainer need to know about one model.

    Parameters
    ----------
    name : the name users type (``--model comi``) and weights files are named after.
    kind : one of `KINDS`.
    display_name : how pickers and tables name it for biologists.
    summary : one plain sentence for biologists: what it is.
    good_for, caution : what it is good for, and what it may do wrong (the card leads with
        these: ``core.models.plain``).
    build : ``build(net, card, device, **params) -> Restorer``. For models with a `network`,
        the registry loads the weights file first and passes the network and its card;
        a classical model gets ``net=None, card={}``.
    network : ``network(**card["architecture"]) -> nn.Module``, the exported (inference)
        network a weights file holds; None for classical methods.
    presets : named sizes per training-config table: ``presets["model"]["cpu"]`` are the
        `network` kwargs that ``[model] preset = "cpu"`` selects (GANs also have
        ``presets["discriminator"]``).
    params : user settings with defaults, ranges and help.
    card_notes : what every trained file of this model shares, written into its card.
    steps : ``"module:Class"`` of its training steps (``training.steps``); None if it does not
        train. A string, because core never imports training.
    order : position in pickers and tables (lower first).
    """

    name: str
    kind: str
    summary: str
    build: Callable[..., Any]
    display_name: str = ""
    good_for: str = ""
    caution: str = ""
    network: Callable[..., Any] | None = None
    presets: dict[str, dict[str, dict]] = field(default_factory=dict)
    params: dict[str, Param] = field(default_factory=dict)
    card_notes: str = ""
    steps: str | None = None
    order: int = 100
    default_weights: Path | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"model {self.name!r}: kind must be one of {', '.join(KINDS)}")
        if not self.display_name:
            self.display_name = self.name
        if self.default_weights is None and self.network is not None:
            self.default_weights = default_weights_path(self.name)

    @property
    def needs_weights(self) -> bool:
        return self.network is not None

    def has_weights(self) -> bool:
        return self.default_weights is not None and Path(self.default_weights).is_file()
