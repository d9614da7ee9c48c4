""""Match the input": a learned model's result pulled toward what the input supports.

A network trained on every blur from 0.5 to 40 px has to stay safe on all of them, so on any one
region it restores less than the input allows. The blur of each region is measured against the
image's in-focus areas (`core.blur_estimate`); a Richardson-Lucy step that starts from the
network's result (not from the blurred input, as plain deconvolution does) then moves the result
toward agreeing with the input once blurred by that PSF, while keeping what the network got
right (its denoising, its shapes).

Measured (docs/BENCHMARKS.md, "Match the input"): one step raised the real validation images'
mean gain by +0.19 dB for COMI, +0.33 for CycleGAN and +0.31 for the DDPM, and the test
split's blurred regions by +0.31 dB for COMI; but the test split also holds sharp regions
whose blur the estimate misread (7.7 px on a sharp fluorescence field), and there the step
sharpened noise and lost up to 7 dB. So it is OFF by default, a setting for regions the user
knows are blurred, and since then it only uses a blur measured with confidence (the rule
below, chosen on the training split: +0.19 dB on its tuning cases, none made worse by more
than 0.3 dB).

Only a blur the measurement is sure of is used: regions that look sharp, whose blur cannot be
measured, could be under 2 px or reads over 30 px are left as the model made them (the note
after a run says which), and so is a run without regions (there is no in-focus part to
measure against). The step runs through the same `Tiler` as the models, so memory stays
bounded and cancel is honoured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from core.models.spec import Param
from core.roi import RoiSet
from core.tiling import Tiler

__all__ = ["MATCH_PARAM", "MATCH_KEY", "InputMatch"]

#: the model setting's name (``--param match_steps=1`` turns it on)
MATCH_KEY = "match_steps"
MATCH_PARAM = Param(0, int, "after the model, this many Richardson-Lucy steps with the blur "
                    "measured on each region pull the result toward what the input supports; "
                    "for regions you know are blurred (a sharp region whose blur is misread "
                    "comes out worse), 0 = off, 1 is best", label="Match the input (steps)",
                    min=0, max=5, off=0)


#: the step needs a blur the measurement is sure of: the lower end of its range at least this.
#: Of 126 sharp regions cut from the training planes, the estimate read 18 as blurred, 16 of
#: them with a range reaching below 2 px; the 6 blurred tuning cases read that way gained
#: nothing from the step on average (-0.17 dB)
MIN_LOW_PX = 2.0
#: estimates beyond this sit at the top of the measured range; on the training-split cases they
#: were misreads (a sharp field read as 41 px, a 6 px blur as 48 px, which the step made 6 dB worse)
MAX_RADIUS_PX = 30.0


@dataclass(frozen=True)
class _RegionBlur:
    box: tuple[int, int, int, int]       # y0, y1, x0, x1 of the ROI's pixels
    radius_px: float


def _why_not(est) -> str | None:
    """Why a region's estimate is not safe to match with (None: it is)."""
    if est.radius_px is None:
        return "blur not measured"
    if est.looks_sharp:
        return "looks sharp"
    if est.low_px is None or est.low_px < MIN_LOW_PX:
        return f"its blur could be under {MIN_LOW_PX:g} px"
    if est.radius_px > MAX_RADIUS_PX:
        return f"blur over {MAX_RADIUS_PX:g} px cannot be measured reliably"
    return None


class InputMatch:
    """The measured blur of each ROI, and the step that applies it to a restored crop."""

    def __init__(self, steps: int, blurs: list[_RegionBlur], device: torch.device,
                 note: str = "") -> None:
        self.steps = int(steps)
        self.blurs = blurs
        self.device = device
        #: what was matched and what not, in plain words (shown after a run)
        self.note = note
        self._rl: dict[float, object] = {}

    @classmethod
    def measure(cls, plane: np.ndarray, rois: RoiSet | None, steps: int,
                device: torch.device = torch.device("cpu"), estimates: list | None = None,
                ) -> "InputMatch | None":
        """Measure every ROI of `plane` (Y, X, or Y, X, S judged on its mean); None when the
        step is off or there are no ROIs. Only regions whose blur is measured with confidence
        (`_why_not`) are matched; the note says which were left as the model made them.
        `estimates`: `estimate_regions(plane, rois)` when the caller has it already."""
        if steps <= 0 or rois is None or not rois.rois:
            return None
        from core.blur_estimate import estimate_regions

        h, w = np.shape(plane)[:2]                  # estimate_regions judges RGB on its mean
        blurs, matched, skipped = [], [], []
        if estimates is None:
            estimates = estimate_regions(plane, rois)
        for i, (roi, est) in enumerate(zip(rois.rois, estimates), start=1):
            why = _why_not(est)
            bx0, by0, bx1, by1 = roi.bounds()       # the ROI's box, clipped to the image
            y0, y1 = max(0, math.floor(by0)), min(h, math.ceil(by1))
            x0, x1 = max(0, math.floor(bx0)), min(w, math.ceil(bx1))
            if why is None and y1 > y0 and x1 > x0:
                blurs.append(_RegionBlur((y0, y1, x0, x1), float(est.radius_px)))
                matched.append(f"{i} ({est.radius_px:.1f} px)")
            elif why is not None:
                skipped.append(f"{i} ({why})")
        parts = []
        if matched:
            parts.append("matched the input with the measured blur in region " + ", ".join(matched))
        if skipped:
            parts.append(("not in region " if matched else "did not match the input in region ")
                         + ", ".join(skipped))
        return cls(steps, blurs, device, "; ".join(parts))

    def radius_in(self, y0: int, y1: int, x0: int, x1: int) -> float | None:
        """The blur radius for a crop of the plane: that of the measured ROI covering most of it
        (ROIs close enough to be restored together share one step), None if none is inside."""
        best, best_area = None, 0
        for b in self.blurs:
            h = min(y1, b.box[1]) - max(y0, b.box[0])
            w = min(x1, b.box[3]) - max(x0, b.box[2])
            if h > 0 and w > 0 and h * w > best_area:
                best, best_area = b.radius_px, h * w
        return best

    def _deconvolver(self, radius: float):
        from core.blur_estimate import psf_for_radius
        from core.models.classical import RichardsonLucy

        if radius not in self._rl:
            self._rl[radius] = RichardsonLucy(psf_for_radius(radius), iterations=self.steps,
                                              device=self.device)
        return self._rl[radius]

    def apply(self, x: np.ndarray, y: np.ndarray, box: tuple[int, int, int, int], *,
              tile: int, overlap: int, batch_size: int,
              on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """`y`, a model's result for the normalised crop `x` at `box` (y0, y1, x0, x1) of the
        plane, after the Richardson-Lucy steps with its ROI's blur; `y` itself where no
        measured ROI lies in the crop."""
        radius = self.radius_in(*box)
        if radius is None:
            return y
        rl = self._deconvolver(radius)
        tiler = Tiler(tile=tile, overlap=overlap, margin=rl.margin, device=self.device,
                      batch_size=batch_size, on_batch=on_batch)
        both = torch.from_numpy(np.stack([np.asarray(x, np.float32), np.asarray(y, np.float32)]))
        out = tiler.map(lambda t: rl.iterate(t[:, :1], t[:, 1:]), both)
        return out[0].numpy()
