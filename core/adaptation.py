"""Adapting a restoring network to one image: what the app and `deblur predict --adapt` ask for.

The blur deblur repairs is local, so every image also shows its specimen in focus outside the
marked regions. Adaptation fine-tunes the chosen network for a short, timed budget on crops of
those in-focus areas, blurred by the defocus simulator around the blur measured in the regions
(``core.blur_estimate``), with the camera noise measured in the regions; then it checks the
adapted network on in-focus crops it did not train on and keeps the shipped one if adapting did
not help there. Regions that already look sharp have nothing to teach: it declines.

The fine-tuning is training code (``training.adapt``, the one trainer loop): core finds it
through the ``deblur.adapt`` entry point, so core never imports training. This module holds
what both front ends share: the settings, the result's plain words, and the error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["ADAPT_GROUP", "ADAPTABLE", "AdaptError", "AdaptSettings", "Adapted", "adapt",
           "planes_of"]

#: the entry-point group that provides the adaptation (``training.adapt:adapt``)
ADAPT_GROUP = "deblur.adapt"
#: models whose network can be adapted (content-trained residual generators)
ADAPTABLE = ("comi",)


class AdaptError(ValueError):
    """Adaptation cannot run on this image (too little in-focus area, no weights...): one plain
    line; the caller restores with the model as it was."""


@dataclass(frozen=True)
class AdaptSettings:
    """How long and how to adapt. `steps` (when given) fixes the number of steps, which makes a
    run bit-reproducible on one machine; otherwise `seconds` of training decide it."""

    seconds: float = 75.0
    steps: int | None = None
    seed: int = 0
    patch: int = 96
    batch_size: int = 8
    lr: float = 1e-5                  # chosen on the validation split against COMI stage 10
                                      # (3e-5: -0.90 dB mean, 1e-5: -0.67; docs/BENCHMARKS.md)
    no_blur_share: float = 0.15       # crops left sharp: the model learns to leave them alone
    noise: str = "regions"            # whose camera noise the crops get: "regions" (measured
                                      # inside the marked regions, signal-dependent, given to
                                      # blurred and sharp crops alike; chosen on validation:
                                      # docs/BENCHMARKS.md) or "in_focus" (the crops' own areas)
    max_planes: int = 8               # planes of a stack used for crops (evenly chosen)
    accept_margin_db: float = 0.3     # held-out gain the adapted network needs to be kept
                                      # (0.3 chosen on validation: a smaller held-out gain was
                                      # no gain inside the regions)
    sharp_tolerance_db: float = 1.0   # how much more it may change held-out sharp crops
    min_blur_px: float = 6.0          # regions measured less blurred than this (or not measured)
                                      # are left to the shipped model: on the 84 training-split
                                      # tuning cases adapting to blur read under 6 px lost up to
                                      # 1.4 dB (7 cases below -0.3 dB), above it none (chosen
                                      # there, checked on validation: docs/BENCHMARKS.md)

    def __post_init__(self) -> None:
        if self.steps is None and not self.seconds > 0:
            raise ValueError("the adaptation time must be more than 0 seconds")
        if self.steps is not None and self.steps < 1:
            raise ValueError("the number of adaptation steps must be at least 1")
        if self.min_blur_px < 0:
            raise ValueError("the smallest blur to learn for cannot be negative")
        if self.noise not in ("in_focus", "regions"):
            raise ValueError(f"unknown noise source {self.noise!r} (in_focus or regions)")


@dataclass
class Adapted:
    """An adapted network and what was measured while adapting it.

    `kept_original` True: the adapted network did worse than the original on held-out in-focus
    crops of the image, so `network` IS the original (nothing was learned that helps).
    """

    model: str
    network: Any                               # torch.nn.Module, eval mode
    card: dict
    image_name: str
    steps: int
    seconds: float
    blur_range_px: tuple[float, float]
    in_focus_share: float                      # of the image's pixels, that crops came from
    held_out_before_db: float
    held_out_after_db: float
    kept_original: bool = False
    extra: dict = field(default_factory=dict)

    def words(self) -> str:
        """One line for a status bar or the terminal."""
        lo, hi = self.blur_range_px
        steps = f"{self.steps} step" + ("s" if self.steps != 1 else "")
        head = (f"learned from {self.in_focus_share:.0%} of {self.image_name} (its in-focus "
                f"areas) for {self.seconds:.0f} s, {steps}, blur {lo:.1f}-{hi:.1f} px")
        if self.kept_original and self.extra.get("kept_because") == "alters sharp areas":
            return (f"{head}; it changed in-focus areas it did not train on more than the "
                    "shipped model does, so the shipped model is used")
        if self.kept_original:
            return (f"{head}; on in-focus areas it did not train on it was not better than the "
                    f"shipped model ({self.held_out_after_db:.1f} dB against "
                    f"{self.held_out_before_db:.1f}), so the shipped model is used")
        return (f"{head}; on in-focus areas it did not train on: {self.held_out_before_db:.1f} dB "
                f"shipped, {self.held_out_after_db:.1f} dB adapted")

    def restorer(self, device: Any = "auto", **params: Any):
        """A `Restorer` running the adapted network (settings as for the model itself)."""
        import copy

        from core.devices import pick_device
        from core.models.registry import build_restorer, check_params, get_entry

        entry = get_entry(self.model)
        dev = pick_device(device)
        net = copy.deepcopy(self.network).to(dev).eval()
        restorer = build_restorer(entry, net, self.card, dev, check_params(entry, params))
        restorer.adapted = self
        return restorer

    def provenance(self) -> dict:
        """What a restored file records about the adaptation (plain JSON types)."""
        return {"adapted_on": self.image_name, "steps": int(self.steps),
                "seconds": round(float(self.seconds), 1),
                "blur_range_px": [round(float(v), 2) for v in self.blur_range_px],
                "in_focus_share": round(float(self.in_focus_share), 4),
                "held_out_psnr_db": {"before": round(float(self.held_out_before_db), 2),
                                     "after": round(float(self.held_out_after_db), 2)},
                "kept_original": bool(self.kept_original)}

    def save(self, path: str | Path) -> Path:
        """Write the adapted network and its card as a weights file (atomic)."""
        from core.models.weights import save_weights

        state = {k: v.detach().cpu() for k, v in self.network.state_dict().items()}
        return save_weights(path, state, self.card)


def planes_of(image: Any) -> list[np.ndarray]:
    """The YX planes of an image (a `core.io.Image` or an array), as the engine restores them:
    one per channel, z, t and RGB sample."""
    from core.engine import default_axes

    data = np.asarray(getattr(image, "data", image))
    axes = getattr(image, "axes", None) or default_axes(data.ndim, data.shape)
    src = np.moveaxis(data, (axes.index("Y"), axes.index("X")), (-2, -1))
    return [src[idx] for idx in np.ndindex(src.shape[:-2])]


def adapt(image: Any, rois: Any, *, model: str = "comi",
          weights: str | Path | None = None, settings: AdaptSettings | None = None,
          image_name: str = "the image", device: str = "auto",
          progress: Callable[[float, float], None] | None = None,
          cancel: Callable[[], bool] | Any = None) -> Adapted:
    """Adapt `model` (shipped weights, or `weights`) to the in-focus areas of `image` (a
    `core.io.Image` or an array) outside `rois`.

    `progress(done, total)` reports seconds (or steps when ``settings.steps`` is set); `cancel`
    (an Event or a callable) stops at the next step with `core.engine.Cancelled`, and nothing
    is kept. Raises AdaptError (plain words) when this image cannot be learned from.
    """
    if model not in ADAPTABLE:
        raise AdaptError(f"learning from the image is available for {', '.join(ADAPTABLE)}, "
                         f"not for {model}")
    found = [ep for ep in entry_points(group=ADAPT_GROUP) if ep.name == "adapt"]
    if not found:
        raise AdaptError("learning from the image needs deblur's training package, which is "
                         "not installed")
    return found[0].load()(planes_of(image), rois, model=model, weights=weights,
                           settings=settings or AdaptSettings(), image_name=image_name,
                           device=device, progress=progress, cancel=cancel)
