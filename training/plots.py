"""What a training run draws: validation grids (PNG) and loss curves, with Pillow only."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from core.io import atomic_write

__all__ = ["save_grid", "plot_curves", "read_log"]


# ============================================================================ plots and images

def _to_u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_grid(path: Path, columns: Sequence[np.ndarray], titles: Sequence[str]) -> Path:
    """A PNG with one row per item and one column per array (each (N, 1, H, W) in [0, 1]).

    Why PNG and not TIFF: it is for looking at during training, in any image viewer.
    """
    from PIL import Image, ImageDraw

    scale = max(1, math.ceil(96 / columns[0].shape[-1]))     # small patches: enlarge (nearest)
    columns = [np.repeat(np.repeat(c, scale, axis=-2), scale, axis=-1) for c in columns]
    n, _, h, w = columns[0].shape
    pad, head = 4, 16
    width = len(columns) * (w + pad) + pad
    height = head + n * (h + pad) + pad
    canvas = np.full((height, width), 255, np.uint8)
    for c, col in enumerate(columns):
        for r in range(n):
            y0, x0 = head + pad + r * (h + pad), pad + c * (w + pad)
            canvas[y0:y0 + h, x0:x0 + w] = _to_u8(col[r, 0])
    img = Image.fromarray(canvas, mode="L")
    draw = ImageDraw.Draw(img)
    for c, t in enumerate(titles):
        draw.text((pad + c * (w + pad) + 2, 2), t, fill=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        img.save(tmp, format="PNG")
    return path


_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _panel(draw, box: tuple[int, int, int, int], series: dict[str, tuple[np.ndarray, np.ndarray]],
           xlabel: str, ylabel: str, log_y: bool, x_range: tuple[float, float]) -> None:
    """One line chart with axes, ticks, labels and a legend, drawn with PIL."""
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline=(0, 0, 0))
    ys = [v for _, (_, y) in series.items() for v in y if np.isfinite(v) and (v > 0 or not log_y)]
    if not ys:
        draw.text((x0 + 8, y0 + 8), "no data yet", fill=(0, 0, 0))
        return
    tf = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    lo, hi = tf(min(ys)), tf(max(ys))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    span = hi - lo
    lo, hi = lo - 0.05 * span, hi + 0.05 * span
    xa, xb = x_range
    xb = xb if xb > xa else xa + 1

    def px(x: float, y: float) -> tuple[float, float]:
        return (x0 + (x - xa) / (xb - xa) * (x1 - x0), y1 - (tf(y) - lo) / (hi - lo) * (y1 - y0))

    for t in _nice_ticks(xa, xb):
        X = x0 + (t - xa) / (xb - xa) * (x1 - x0)
        draw.line([(X, y1), (X, y1 + 4)], fill=(0, 0, 0))
        draw.text((X - 10, y1 + 6), f"{t:g}", fill=(0, 0, 0))
    if log_y:                                  # one tick per decade (every 2nd if many)
        decades = list(range(math.ceil(lo), math.floor(hi) + 1))
        ticks = [float(d) for d in decades[::1 if len(decades) <= 6 else 2]]
        if len(ticks) < 2:                     # less than a decade: plain values, log-placed
            ticks = [math.log10(v) for v in _nice_ticks(10 ** lo, 10 ** hi, 4) if v > 0]
    else:
        ticks = _nice_ticks(lo, hi)
    for t in ticks:
        if not lo <= t <= hi:
            continue
        Y = y1 - (t - lo) / (hi - lo) * (y1 - y0)
        draw.line([(x0 - 4, Y), (x0, Y)], fill=(0, 0, 0))
        draw.line([(x0 + 1, Y), (x1 - 1, Y)], fill=(230, 230, 230))
        label = f"{10 ** t:.3g}" if log_y else f"{t:.3g}"
        draw.text((x0 - 8 - 6 * len(label), Y - 6), label, fill=(0, 0, 0))
    draw.text(((x0 + x1) // 2 - 3 * len(xlabel), y1 + 20), xlabel, fill=(0, 0, 0))
    draw.text((x0, y0 - 14), ylabel, fill=(0, 0, 0))
    for k, (name, (x, y)) in enumerate(series.items()):
        colour = _COLOURS[k % len(_COLOURS)]
        pts = [px(a, b) for a, b in zip(x, y) if np.isfinite(b) and (b > 0 or not log_y)]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        elif pts:
            draw.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=colour)
    draw.rectangle([x1 - 124, y0 + 3, x1 - 3, y0 + 9 + 13 * len(series)], fill=(255, 255, 255),
                   outline=(200, 200, 200))
    for k, name in enumerate(series):
        ly = y0 + 6 + 13 * k
        draw.line([(x1 - 120, ly + 6), (x1 - 104, ly + 6)], fill=_COLOURS[k % len(_COLOURS)],
                  width=3)
        draw.text((x1 - 100, ly), name, fill=(0, 0, 0))


def read_log(path: Path) -> list[dict[str, str]]:
    """Rows of a RUN/log.csv (empty list if there is none)."""
    if not Path(path).is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def plot_curves(rows: list[dict[str, str]], loss_names: Sequence[str], path: Path) -> Path:
    """RUN/loss.png: training losses (log scale) and validation PSNR against step.

    Drawn with PIL because matplotlib is not a dependency; axes, ticks, labels and a legend are
    enough to see whether a run is learning.
    """
    from PIL import Image, ImageDraw

    def col(name: str) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for r in rows:
            v = r.get(name, "")
            if v not in ("", None):
                xs.append(float(r["step"]))
                ys.append(float(v))
        return np.asarray(xs), np.asarray(ys)

    W, H = 900, 620
    img = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    steps = [float(r["step"]) for r in rows] or [0.0]
    xr = (0.0, max(steps))
    losses = {n: col(n) for n in loss_names}
    _panel(draw, (80, 30, W - 20, 330), losses, "step", "training loss (log scale)", True, xr)
    val = {"restored": col("val_psnr"), "blurred input": col("val_psnr_blurred")}
    _panel(draw, (80, 390, W - 20, H - 40), val, "step", "validation PSNR (dB)", False, xr)
    with atomic_write(path) as tmp:
        img.save(tmp, format="PNG")
    return path
