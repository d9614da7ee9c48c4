"""Where in a field a training patch goes: biased toward content and toward the blurred region.

Integral images make every candidate window's content and blur share O(1), so a patch position
is drawn among all windows at the cost of a few array operations per field.
"""

from __future__ import annotations

import numpy as np

__all__ = ["choose_window", "Windows", "pad_to"]


def pad_to(x: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pad a (H, W) array so both sides are at least `size`."""
    ph, pw = max(0, size - x.shape[0]), max(0, size - x.shape[1])
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if min(x.shape) > 1 and ph < x.shape[0] and pw < x.shape[1] else "symmetric"
    return np.pad(x, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)), mode=mode)



def _integral(x: np.ndarray) -> np.ndarray:
    s = np.zeros((x.shape[0] + 1, x.shape[1] + 1))
    s[1:, 1:] = np.cumsum(np.cumsum(x, axis=0, dtype=np.float64), axis=1)
    return s


def _box(s: np.ndarray, ys: np.ndarray, xs: np.ndarray, p: int) -> np.ndarray:
    """Mean over the p x p windows starting at (ys[:, None], xs[None, :]) from an integral image."""
    y0, x0 = ys[:, None], xs[None, :]
    return (s[y0 + p, x0 + p] - s[y0, x0 + p] - s[y0 + p, x0] + s[y0, x0]) / (p * p)


def _overlap(ys: np.ndarray, xs: np.ndarray, corners: list[tuple[int, int]], p: int) -> np.ndarray:
    """Largest shared area (fraction of a p x p window) of the windows at (ys[:, None],
    xs[None, :]) with any window at `corners`."""
    out = np.zeros((ys.size, xs.size))
    for cy, cx in corners:
        fy = np.clip(1.0 - np.abs(ys - cy) / p, 0.0, None)
        fx = np.clip(1.0 - np.abs(xs - cx) / p, 0.0, None)
        np.maximum(out, fy[:, None] * fx[None, :], out=out)
    return out


class Windows:
    """The candidate patch windows of one field (corners on a stride grid) with their content
    weight and defocused cover, computed once and shared by every patch cut from the field."""

    def __init__(self, content: np.ndarray, mask: np.ndarray | None, patch: int) -> None:
        h, w = content.shape
        self.h, self.w, self.patch = h, w, patch
        self.stride = max(1, patch // 16)
        self.ys = np.unique(np.r_[np.arange(0, h - patch + 1, self.stride), h - patch])
        self.xs = np.unique(np.r_[np.arange(0, w - patch + 1, self.stride), w - patch])
        s1, s2 = _integral(content), _integral(content * content)
        mean = _box(s1, self.ys, self.xs, patch)
        std = np.sqrt(np.clip(_box(s2, self.ys, self.xs, patch) - mean * mean, 0, None))
        # windows as busy as the busiest tenth weigh 1, empty background ~1/100
        ref = float(np.percentile(std, 90)) or 1.0
        self.weight = np.clip((std / ref) ** 2, 0.01, 1.0)
        self._mask_sum = None if mask is None else _integral(mask)
        self.cover = None if mask is None else _box(self._mask_sum, self.ys, self.xs, patch)

    def choose(self, rng: np.random.Generator, want_blur: bool | None, avoid: tuple[int, int] | None = None,
               spread: list[tuple[int, int]] | None = None, max_overlap: float = 1.0) -> tuple[int, int]:
        """Top-left corner of a patch (see `choose_window`). `spread`: corners of patches already
        cut from this field; the new window shares at most `max_overlap` of its area with any of
        them when the blur/content constraints allow it, else as little as they allow."""
        p, ys, xs, stride = self.patch, self.ys, self.xs, self.stride
        ok = np.ones_like(self.weight, dtype=bool)
        if self.cover is not None and want_blur is not None:
            cover = self.cover
            if want_blur:
                ok = cover >= 0.5
                if not ok.any():
                    ok = cover >= cover.max() - 1e-6
            else:
                ok = cover < 0.5
                if not ok.any():
                    ok = np.ones_like(ok)
        if avoid is not None:
            far = (np.abs(ys[:, None] - avoid[0]) >= p) | (np.abs(xs[None, :] - avoid[1]) >= p)
            if (ok & far).any():
                ok = ok & far
        limit = None
        if spread:
            ov = _overlap(ys, xs, spread, p)
            limit = max(float(max_overlap), float(ov[ok].min()) + 0.05)
            ok = ok & (ov <= limit)
        wts = np.where(ok, self.weight, 0.0).ravel()
        k = int(rng.choice(wts.size, p=wts / wts.sum()))
        iy, ix = divmod(k, xs.size)
        y, x = int(ys[iy]), int(xs[ix])
        # jitter within the stride (sub-stride positions are as good), staying inside the field
        y = int(np.clip(y + rng.integers(0, stride), 0, self.h - p)) if stride > 1 else y
        x = int(np.clip(x + rng.integers(0, stride), 0, self.w - p)) if stride > 1 else x
        if avoid is not None and abs(y - avoid[0]) < p and abs(x - avoid[1]) < p:
            y, x = int(ys[iy]), int(xs[ix])          # jitter must not bring back an overlap
        if limit is not None:              # nor a larger overlap, nor cross the half-defocused line
            worse = float(_overlap(np.array([y]), np.array([x]), spread, p)[0, 0]) > limit
            if self.cover is not None and want_blur is not None:
                at = float(_box(self._mask_sum, np.array([y]), np.array([x]), p)[0, 0])
                worse = worse or (at >= 0.5) != (self.cover[iy, ix] >= 0.5)
            if worse:
                y, x = int(ys[iy]), int(xs[ix])
        return y, x


def choose_window(rng: np.random.Generator, content: np.ndarray, mask: np.ndarray | None, patch: int,
                   want_blur: bool | None, avoid: tuple[int, int] | None = None) -> tuple[int, int]:
    """Top-left corner of a patch: weighted toward content, toward (or away from) the mask.

    want_blur True: windows at least half defocused (the most defocused ones if none is);
    False: windows less than half defocused; None: any. `avoid` is a corner whose window the
    chosen one must not overlap (if the field allows).
    """
    return Windows(content, mask, patch).choose(rng, want_blur, avoid)
