"""Shared numerics of the time-series detectors: per-channel scaling, sliding windows, window-to-row mapping."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class Scaler:
    """Per-channel standardisation learned on training data (NaN ignored; constant channels get unit scale)."""

    def __init__(self, center: np.ndarray, scale: np.ndarray) -> None:
        self.center = center
        self.scale = scale

    @classmethod
    def fit(cls, a: np.ndarray) -> Scaler:
        center = np.nanmean(a, axis=0)
        scale = np.nanstd(a, axis=0)
        # A constant training channel keeps unit scale: any later change is measured in its raw units.
        scale = np.where(np.isfinite(scale) & (scale > 1e-8), scale, 1.0)
        return cls(center.astype(np.float64), scale.astype(np.float64))

    def transform(self, a: np.ndarray, clip: float = 1e3) -> np.ndarray:
        """Standardised float32 copy; masked (NaN) cells become 0 (the training centre) and carry no evidence."""
        z = (a - self.center) / self.scale
        z = np.nan_to_num(z, nan=0.0, posinf=clip, neginf=-clip)
        return np.clip(z, -clip, clip).astype(np.float32)


def windows(z: np.ndarray, w: int) -> np.ndarray:
    """Sliding windows of ``w`` rows: (T, C) -> (T - w + 1, w, C), a read-only view (no copy)."""
    if len(z) < w:
        raise ValueError(f"need at least {w} rows for windows of {w}, got {len(z)}")
    return sliding_window_view(z, (w, z.shape[1]))[:, 0]  # (N, w, C)


def batches(n: int, size: int) -> Iterator[slice]:
    """Slices covering ``range(n)`` in chunks of ``size`` (bounded memory)."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def spread_windows(values: np.ndarray, n_rows: int, w: int) -> np.ndarray:
    """Map per-window values back to rows: each row gets the mean over the windows that cover it.

    ``values`` is (N,) one value per window, or (N, w, ...) one value per window step (e.g. per-step, per-channel
    reconstruction errors). Window i covers rows i .. i + w - 1. Returns (n_rows,) or (n_rows, ...).
    """
    n_win = values.shape[0]
    if n_win != n_rows - w + 1:
        raise ValueError(f"{n_win} windows do not tile {n_rows} rows with window {w}")
    per_step = values.ndim >= 2 and values.shape[1] == w
    tail = values.shape[2:] if per_step else values.shape[1:]
    total = np.zeros((n_rows, *tail), dtype=np.float64)
    count = np.zeros(n_rows, dtype=np.float64)
    for k in range(w):
        total[k : k + n_win] += values[:, k] if per_step else values
        count[k : k + n_win] += 1.0
    return total / count.reshape((-1,) + (1,) * len(tail))


def smooth(scores: np.ndarray, k: int) -> np.ndarray:
    """Centred moving average of width ``k`` (edges use the available neighbours; NaN are ignored)."""
    if k <= 1:
        return scores.astype(np.float64, copy=True)
    s = np.asarray(scores, dtype=np.float64)
    ok = np.isfinite(s)
    vals = np.where(ok, s, 0.0)
    kernel = np.ones(k)
    num = np.convolve(vals, kernel, mode="same")
    den = np.convolve(ok.astype(np.float64), kernel, mode="same")
    out = np.full_like(s, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    out[~ok] = np.nan
    return out


def train_val_split(n: int, val_fraction: float) -> tuple[slice, slice]:
    """Chronological split: the last ``val_fraction`` of ``n`` items is validation (at least one of each)."""
    n_val = int(round(n * val_fraction))
    n_val = min(max(n_val, 1), n - 1) if n >= 2 else 0
    return slice(0, n - n_val), slice(n - n_val, n)
