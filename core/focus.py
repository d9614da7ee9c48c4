"""Where is the image out of focus? A local sharpness map and blurred regions as ROIs.

The measure is the share of a window's structure energy that sits at fine scales. The plane is
reduced to a pyramid of 2 x 2 means; at each level the band-pass detail (a 5-point Laplacian)
is squared and averaged over the window, the energy the image's own noise puts into that band
is subtracted, and

    focus = E(2-4 px) / (E(2-4 px) + E(8-16 px))

Defocus of a few pixels wipes out the 2-4 px band while the 8-16 px structure survives, so
blurred areas score about 0 and in-focus ones clearly more (typically 0.1-0.9 depending on the
texture). Being a ratio, it does not depend on brightness: a dim but sharp cell scores like a
bright one. The 1-2 px band is not used because in microscopy it mostly holds noise.

Noise is modelled per plane as a function of intensity, var = a + b * I (camera noise is
Poisson-Gaussian: a bright nucleus can be 10-30 x noisier than the background), so each window
gets the noise energy its own brightness implies. A single noise level for the whole plane
leaves the noise of bright blurred areas in their fine band, and they look sharp.

If an image has almost no 2-4 px detail anywhere (oversampled data), or the 2-4 px detail of
its sharp parts is lost in the noise, the bands move one octave coarser (4-8 px vs 16-32 px).

Windows whose structure is not clearly above the noise, or negligible next to the image's own
structure (empty background, flat areas), cannot be judged: they get the label `NO_CONTENT` (-1)
instead of a focus value and are never called blurred. The focus values are smoothed a little
(in the log domain, over the windows with content) so that texture does not make them jumpy.

Everything is computed on a coarse grid (one value every `step` px, windows of `window` px)
and upsampled, so an 8192 x 8192 plane takes about a second or two.

``core.blurred_regions`` turns the map into ROIs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from core.io import finite_copy

__all__ = ["NO_CONTENT", "focus_map", "focus_grid", "FocusGrid", "LOG_FLOOR", "COARSE_LEVEL"]

NO_CONTENT = -1.0          # focus value of windows with no structure to judge
_FINE = 1                  # pyramid level (2**k px per px) of the fine detail band (2-4 px) ...
COARSE_LEVEL = 3                # ... and of the coarse structure band (8-16 px) defocus keeps longest
_REF_PERCENTILE = 75       # "the sharp parts": this percentile over the windows with content
_MIN_FINE_SHARE = 0.05     # below this typical fine share, use the next octave (oversampled data)
_MIN_FINE_SNR = 4.0        # ... or when the typical fine signal is below 4 sampling spreads
_LAPLACE_GAIN = 20.0       # white noise of variance s2 gives a 5-point Laplacian variance 20*s2
_CONTENT_Z = 4.0           # structure must exceed the noise by this many standard errors ...
_NOISE_UNCERTAINTY = 0.3   # ... plus this share of the noise energy (the noise level is estimated)
_CONTENT_REL = 0.008       # ... and 0.8 % of the 90th percentile of structure in the image
_NOISE_BINS = 16           # intensity bins of the noise model ...
_NOISE_QUANTILE = 0.25     # ... fitted through their lower part (structure only adds to a bin)
_NOISE_SAMPLES = 1 << 20   # at most this many pixels are binned
_SMOOTH = 0.5              # focus is smoothed with a Gaussian of sigma = this * window (px)
LOG_FLOOR = 1e-3          # focus values below this count as this in the log domain


@dataclass
class FocusGrid:
    """Focus on the coarse grid: cell (i, j) covers rows i*step:(i+1)*step, cols j*step:..."""

    focus: np.ndarray        # float32 (gh, gw), NO_CONTENT where `content` is False
    content: np.ndarray      # bool (gh, gw)
    step: int
    shape: tuple[int, int]   # (H, W) of the plane
    levels: tuple[int, int] = (1, 3)   # pyramid levels of the fine and coarse bands used
    footprint: int = 56      # side (px) of the area each value depends on
    # noise-corrected band energies behind `focus` (before smoothing) and the sampling spread
    # of the fine one; the automatic threshold tests its seeds with them
    fine: np.ndarray | None = None
    coarse: np.ndarray | None = None
    fine_spread: np.ndarray | None = None


def _half(x: np.ndarray) -> np.ndarray:
    """2 x 2 block mean in float32 (an odd last row/column is dropped)."""
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    out = x[0:h:2, 0:w:2].astype(np.float32)
    out += x[1:h:2, 0:w:2]
    out += x[0:h:2, 1:w:2]
    out += x[1:h:2, 1:w:2]
    out *= np.float32(0.25)
    return out


def _laplace_energy(x: np.ndarray) -> np.ndarray:
    """Squared 5-point Laplacian (the band-pass detail of one level), for the interior pixels
    x[1:-1, 1:-1]; `_window_means` accounts for the 1 px offset."""
    if min(x.shape) < 3:
        return np.zeros((1, 1), dtype=np.float32)
    band = x[1:-1, 1:-1] * np.float32(4.0)
    band -= x[:-2, 1:-1]
    band -= x[2:, 1:-1]
    band -= x[1:-1, :-2]
    band -= x[1:-1, 2:]
    band *= band
    return band


def _prefix_at(e: np.ndarray, cuts: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums of `e` along `axis` before each of the sorted positions `cuts` (0..n)."""
    n = e.shape[axis]
    starts = cuts[cuts < n]
    seg = np.add.reduceat(e, starts, axis=axis).astype(np.float64)  # short runs: float32 is exact enough
    shape = list(seg.shape)
    shape[axis] = 1
    prefix = np.concatenate([np.zeros(shape), np.cumsum(seg, axis=axis)], axis=axis)
    bounds = np.append(starts, n)
    return prefix, bounds


def _window_means(e: np.ndarray, scale: int, centres_y: np.ndarray, centres_x: np.ndarray,
                  window: float) -> np.ndarray:
    """Mean of `e` (interior of a level with `scale` plane px per px) over windows on the grid.

    A summed-area table evaluated only at the rows and columns where windows start and end.
    """
    h, w = e.shape
    half = window / 2.0
    # level coordinates -> interior coordinates (shifted by the 1 px Laplacian border)
    y0 = np.clip(np.floor((centres_y - half) / scale) - 1, 0, h - 1).astype(np.intp)
    y1 = np.clip(np.ceil((centres_y + half) / scale) - 1, y0 + 1, h).astype(np.intp)
    x0 = np.clip(np.floor((centres_x - half) / scale) - 1, 0, w - 1).astype(np.intp)
    x1 = np.clip(np.ceil((centres_x + half) / scale) - 1, x0 + 1, w).astype(np.intp)
    ycuts = np.unique(np.concatenate([[0], y0, y1]))
    rows, ybounds = _prefix_at(e, ycuts, axis=0)
    band = rows[np.searchsorted(ybounds, y1)] - rows[np.searchsorted(ybounds, y0)]   # (gh, w)
    xcuts = np.unique(np.concatenate([[0], x0, x1]))
    cols, xbounds = _prefix_at(band, xcuts, axis=1)
    total = cols[:, np.searchsorted(xbounds, x1)] - cols[:, np.searchsorted(xbounds, x0)]
    count = (y1 - y0)[:, None] * (x1 - x0)[None, :]
    return total / count


def _noise_model(plane: np.ndarray, lo: float, scale: float) -> tuple[float, float, float]:
    """Noise variance as a function of intensity, var = a + b * I, in the normalised units.

    Pixels are binned by their local (3 x 3) mean; in each bin the noise level is the median
    of |Immerkaer's mask response| (edges are sparse, so the median is set by the noise). A
    line is fitted through the bins by least asymmetric deviation at a low quantile (texture
    and edges only ever raise a bin's estimate, so the line follows the quieter bins). Large
    planes are sampled with up to 8 x 8 tiles of 256 px spread over the field. Returns
    (a, b, floor): the variance is never taken below `floor` (half the quietest bin's).
    """
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    h, w = plane.shape
    tile = 256
    if h * w <= 16 * tile * tile:
        tiles = [plane]
    else:
        ys = np.linspace(0, max(h - tile, 0), min(8, max(1, h // tile))).astype(int)
        xs = np.linspace(0, max(w - tile, 0), min(8, max(1, w // tile))).astype(int)
        tiles = [plane[y:y + tile, c:c + tile] for y in ys for c in xs]
    resp, level = [], []
    for t in tiles:
        if min(t.shape) < 3:
            continue
        t = (t.astype(np.float32) - np.float32(lo)) * np.float32(1.0 / scale)
        resp.append(np.abs(ndimage.convolve(t, k, mode="reflect")[1:-1, 1:-1]).ravel())
        level.append(ndimage.uniform_filter(t, 3, mode="reflect")[1:-1, 1:-1].ravel())
    if not resp:
        return 0.0, 0.0, 0.0
    r, m = np.concatenate(resp), np.concatenate(level)
    stride = max(1, r.size // _NOISE_SAMPLES)
    r, m = r[::stride], m[::stride]
    # |N(0, 6 sigma)| has median 0.6745 * 6 sigma
    to_var = 1.0 / (0.6745 * 6.0) ** 2
    edges = np.unique(np.quantile(m, np.linspace(0.0, 1.0, _NOISE_BINS + 1)))
    if len(edges) < 2:
        s2 = float(np.median(r)) ** 2 * to_var
        return s2, 0.0, 0.5 * s2
    idx = np.clip(np.searchsorted(edges, m, side="right") - 1, 0, len(edges) - 2)
    order = np.argsort(idx, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(idx, minlength=len(edges) - 1))])
    ms, vs = [], []
    for b0, b1 in zip(bounds[:-1], bounds[1:]):
        if b1 - b0 >= 64:
            sel = order[b0:b1]
            ms.append(float(np.median(m[sel])))
            vs.append(float(np.median(r[sel])) ** 2 * to_var)
    if not vs:
        s2 = float(np.median(r)) ** 2 * to_var
        return s2, 0.0, 0.5 * s2
    mv, vv = np.array(ms), np.array(vs)
    floor = 0.5 * float(vv.min())
    if len(vv) < 3 or vv.max() <= 0:
        return float(np.median(vv)), 0.0, floor
    # candidate lines: flat through each bin, and through every pair of bins (slope >= 0);
    # keep the one with the least pinball loss of the relative residuals
    i, j = np.triu_indices(len(vv), 1)
    ok = mv[j] - mv[i] > 1e-12
    slopes = np.maximum((vv[j] - vv[i])[ok] / (mv[j] - mv[i])[ok], 0.0)
    bs = np.concatenate([np.zeros(len(vv)), slopes])
    as_ = np.concatenate([vv, vv[i][ok] - slopes * mv[i][ok]])
    res = (vv[None, :] - (as_[:, None] + bs[:, None] * mv[None, :])) / np.maximum(vv, 1e-30)[None, :]
    loss = np.where(res >= 0, _NOISE_QUANTILE * res, (_NOISE_QUANTILE - 1.0) * res).sum(axis=1)
    best = int(np.argmin(loss))
    return float(as_[best]), float(bs[best]), floor


def focus_grid(plane: np.ndarray, *, window: int = 32, step: int | None = None) -> FocusGrid:
    """Focus and content on the coarse grid (see the module docstring for the measure).

    Parameters
    ----------
    plane : 2-D array, any real dtype; NaN/Inf are replaced by the plane median first.
    window : side of the square window (px) each value summarises.
    step : grid spacing (px); default window // 2.
    """
    plane = np.asarray(plane)
    if plane.ndim != 2:
        raise ValueError(f"focus needs a 2-D plane, got shape {plane.shape}")
    if plane.dtype.kind not in "uif":
        raise ValueError(f"focus needs a numeric plane, got {plane.dtype}")
    window = max(4, int(window))
    step = max(1, int(step if step is not None else window // 2))
    h, w = plane.shape
    x, _ = finite_copy(plane)
    # work relative to the plane's range so float32 sums stay accurate for any dtype
    sample = x[:: max(1, h // 512), :: max(1, w // 512)].astype(np.float64)
    lo, hi = np.percentile(sample, [0.5, 99.5])
    scale = float(hi - lo) if hi > lo else 1.0

    gh, gw = math.ceil(h / step), math.ceil(w / step)
    cy = np.minimum((np.arange(gh) + 0.5) * step, h - 0.5)
    cx = np.minimum((np.arange(gw) + 0.5) * step, w - 0.5)
    noise_a, noise_b, noise_floor = _noise_model(x, lo, scale)
    # pyramid of 2 x 2 means, normalised once at level 1 (a quarter of the pixels)
    first = _half(x) if min(h, w) >= 2 else x.astype(np.float32)
    first -= np.float32(lo)
    first *= np.float32(1.0 / scale)
    pyramid = {1: first}
    for k in range(2, COARSE_LEVEL + 2):
        prev = pyramid[k - 1]
        pyramid[k] = _half(prev) if min(prev.shape) >= 2 else prev
    cache: dict[tuple[int, float], np.ndarray] = {}

    def energy(k: int, win: float) -> np.ndarray:
        """Mean squared band-pass detail of level k over each window."""
        if (k, win) not in cache:
            cache[k, win] = _window_means(_laplace_energy(pyramid[k]), 2**k, cy, cx, win)
        return cache[k, win]

    def noise_var(win: float) -> np.ndarray:
        """Pixel noise variance over each window: the model is linear in intensity, so the
        window's mean intensity gives its mean noise variance."""
        if (-1, win) not in cache:
            mean = _window_means(pyramid[1][1:-1, 1:-1], 2, cy, cx, win)
            cache[-1, win] = np.maximum(noise_a + noise_b * mean, noise_floor)
        return cache[-1, win]

    m = _measure(energy, noise_var, (h, w), _FINE, COARSE_LEVEL, window)
    content = m["content"]
    if content.any() and (
            float(np.percentile(m["focus"][content], _REF_PERCENTILE)) < _MIN_FINE_SHARE
            or float(np.percentile(m["snr"][content], _REF_PERCENTILE)) < _MIN_FINE_SNR):
        # hardly any 2-4 px detail anywhere (an oversampled or wholly soft image), or the
        # sharp parts' 2-4 px detail is lost in the noise: judge one octave coarser so the
        # sharp parts still stand out from the blurred ones
        m = _measure(energy, noise_var, (h, w), _FINE + 1, COARSE_LEVEL + 1, window)
    focus, content = m["focus"], m["content"]
    if content.any() and _SMOOTH > 0:
        focus = _smooth_log(focus, content, _SMOOTH * window / step)
    return FocusGrid(focus=focus, content=content, step=step, shape=(h, w), levels=m["levels"],
                     footprint=_footprint(window, m["levels"][1]), fine=m["fine"],
                     coarse=m["coarse"], fine_spread=m["fine_spread"])


def _smooth_log(focus: np.ndarray, content: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian mean of log focus over the windows with content (normalised convolution);
    windows without content stay NO_CONTENT."""
    c = content.astype(np.float32)
    logf = np.log(np.maximum(focus, LOG_FLOOR)).astype(np.float32) * c
    num = ndimage.gaussian_filter(logf, sigma, mode="nearest")
    den = ndimage.gaussian_filter(c, sigma, mode="nearest")
    out = np.exp(num / np.maximum(den, 1e-6))
    return np.where(content, np.minimum(out, 1.0), NO_CONTENT).astype(np.float32)


def _measure(energy, noise_var, shape: tuple[int, int], fine_level: int, coarse_level: int,
             window: int) -> dict:
    """Noise-corrected fine share and content flags on the grid for one pair of levels."""
    h, w = shape
    # A Laplacian at level k reaches 1.5 * 2**k px beyond its window; widen the finer levels'
    # windows so every band sees the same footprint (else coarse bands see structure that the
    # fine bands do not, and the ratio is biased near edges).
    footprint = _footprint(window, coarse_level)
    var = noise_var(footprint)
    signal, noise, spread = {}, {}, {}
    for k in (fine_level, fine_level + 1, coarse_level):
        win = footprint - 3 * 2**k
        noise[k] = _LAPLACE_GAIN * var / 4**k
        n_samples = max(1.0, min(win, h) / 2**k) * max(1.0, min(win, w) / 2**k)
        spread[k] = noise[k] * math.sqrt(2.0 / n_samples)
        signal[k] = np.maximum(energy(k, win) - noise[k], 0.0)
    fine, coarse = signal[fine_level], signal[coarse_level]
    # content: structure at the scales defocus leaves clearly above the noise, and not
    # negligible next to the image's own structure (a faint shading is not content)
    mid = fine_level + 1
    judge = signal[mid] + coarse
    noise_floor = (_CONTENT_Z * np.hypot(spread[mid], spread[coarse_level])
                   + _NOISE_UNCERTAINTY * (noise[mid] + noise[coarse_level]))
    above_noise = judge > noise_floor
    rel_floor = _CONTENT_REL * float(np.percentile(judge[above_noise], 90)) if above_noise.any() else 0.0
    content = above_noise & (judge > max(rel_floor, 1e-12))
    focus = np.full(fine.shape, NO_CONTENT, dtype=np.float32)
    focus[content] = (fine[content] / np.maximum(fine[content] + coarse[content], 1e-30)).astype(np.float32)
    return {"focus": focus, "content": content, "levels": (fine_level, coarse_level),
            "fine": fine, "coarse": coarse, "fine_spread": spread[fine_level],
            "snr": fine / np.maximum(spread[fine_level], 1e-30)}


def _upsample(grid: FocusGrid) -> np.ndarray:
    """Bilinear upsampling of the focus values; NO_CONTENT cells stay exactly NO_CONTENT."""
    h, w = grid.shape
    step = grid.step
    vals = grid.focus.astype(np.float32)
    if grid.content.any() and not grid.content.all():
        # fill empty cells with the nearest content value so interpolation does not mix in -1
        idx = ndimage.distance_transform_edt(~grid.content, return_distances=False,
                                             return_indices=True)
        vals = vals[idx[0], idx[1]]
    elif not grid.content.any():
        return np.full((h, w), NO_CONTENT, dtype=np.float32)

    def axis_weights(n: int, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = (np.arange(n) + 0.5) / step - 0.5
        i0 = np.clip(np.floor(pos).astype(np.intp), 0, g - 1)
        i1 = np.minimum(i0 + 1, g - 1)
        t = np.clip(pos - i0, 0.0, 1.0).astype(np.float32)
        return i0, i1, t

    y0, y1, ty = axis_weights(h, vals.shape[0])
    x0, x1, tx = axis_weights(w, vals.shape[1])
    rows = vals[y0] * (1 - ty)[:, None] + vals[y1] * ty[:, None]          # (h, gw)
    out = rows[:, x0] * (1 - tx)[None, :]
    out += rows[:, x1] * tx[None, :]
    if not grid.content.all():
        empty = ~grid.content
        out[empty[np.arange(h) // step][:, np.arange(w) // step]] = NO_CONTENT
    return out


def focus_map(plane: np.ndarray, *, window: int = 32, step: int | None = None) -> np.ndarray:
    """Local sharpness, float32 of the plane's shape: 0 (blurred) .. 1 (sharp), -1 = no content.

    Contrast-normalised (see the module docstring), so dim sharp areas are not called blurred,
    and empty background gets `NO_CONTENT` rather than a low value. Computed on a grid of
    `step` px (default window // 2) and upsampled bilinearly. These are the values an explicit
    `threshold` of ``core.blurred_regions.blurred_regions`` is compared with.
    """
    return _upsample(focus_grid(plane, window=window, step=step))


def _footprint(window: int, coarse_level: int = COARSE_LEVEL) -> int:
    """Side (px) of the area every focus value depends on (window + the coarsest filter)."""
    return max(4, int(window)) + 3 * 2**coarse_level
