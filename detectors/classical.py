"""Classical time-series baselines: robust rolling z-score, IsolationForest on windows, PCA reconstruction on windows.

All three are the baselines the generative models and ``auto`` are measured against; they are kept honest (no
smoothing or ensembling inside them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from anomalist.detectors._iforest import ArrayForest
from anomalist.detectors._prep import Scaler, batches, spread_windows, windows
from anomalist.detectors.base import TimeSeriesDetector
from anomalist.detectors.thresholds import ThresholdMethod


class _Scaled(TimeSeriesDetector):
    """A detector that standardises channels with training statistics; ``window`` rows per sample."""

    window: int
    scaler_: Scaler

    @property
    def min_rows(self) -> int:
        return max(2, int(self.window))

    def _check_window(self) -> None:
        if not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"window must be an int >= 1, got {self.window!r}")

    def _scaler_state(self) -> dict[str, np.ndarray]:
        return {"center": self.scaler_.center, "scale": self.scaler_.scale}

    def _load_scaler(self, arrays: dict[str, np.ndarray]) -> None:
        self.scaler_ = Scaler(arrays["center"], arrays["scale"])

    def _channel_scores(self, a: np.ndarray, index: pd.Index) -> np.ndarray:
        """Default evidence per channel: absolute standardised deviation from the training centre."""
        return np.abs(self.scaler_.transform(a)).astype(np.float64)


class ZScoreDetector(_Scaled):
    """Robust rolling z-score: ``|x - rolling median| / (1.4826 * rolling MAD)``, max over channels.

    Uses only the past ``window`` rows of the series being scored (so its first ``window - 1`` rows score NaN:
    warm-up). The MAD is floored at ``mad_floor`` times the channel's training scale, so flat stretches do not
    divide by zero. Training only sets that scale and the threshold.

    Args:
        window: Rows of history for the rolling median/MAD (>= 3).
        mad_floor: Floor of the robust scale, as a fraction of the training standard deviation.
        threshold: ``quantile`` or ``pot`` (on training scores).
        threshold_q: Quantile (or 1 - risk for POT).
    """

    name = "zscore"

    def __init__(
        self, window: int = 60, mad_floor: float = 0.05, threshold: ThresholdMethod = "quantile", threshold_q: float = 0.99
    ) -> None:
        self.window = window
        self.mad_floor = mad_floor
        self.threshold = threshold
        self.threshold_q = threshold_q

    def _z(self, a: np.ndarray) -> np.ndarray:
        """(T, C) robust z of each row against the ``window`` rows ending at it (NaN in warm-up / masked cells)."""
        w = self.window
        z = np.full(a.shape, np.nan)
        if len(a) < w:
            return z
        floor = self.mad_floor * self.scaler_.scale
        view = sliding_window_view(a, (w, a.shape[1]))[:, 0]  # (T - w + 1, w, C)
        for sl in batches(len(view), 1024):
            chunk = view[sl]
            median = np.nanmedian if np.isnan(chunk).any() else np.median
            with np.errstate(all="ignore"):
                med = median(chunk, axis=1)  # (B, C)
                mad = 1.4826 * median(np.abs(chunk - med[:, None, :]), axis=1)
            rows = np.arange(sl.start, sl.stop) + w - 1
            z[rows] = np.abs(a[rows] - med) / np.maximum(mad, floor[None, :])
        return z

    def _fit(self, a: np.ndarray, index: pd.Index) -> np.ndarray:
        self._check_window()
        if self.window < 3:
            raise ValueError(f"zscore window must be >= 3, got {self.window}")
        self.scaler_ = Scaler.fit(a)
        return self._score(a, index)

    def _score(self, a: np.ndarray, index: pd.Index) -> np.ndarray:
        z = self._z(a)
        with np.errstate(all="ignore"):
            out = np.nanmax(np.where(np.isfinite(z), z, -np.inf), axis=1)
        out[~np.isfinite(out)] = np.nan
        return out

    def _channel_scores(self, a: np.ndarray, index: pd.Index) -> np.ndarray:
        return np.nan_to_num(self._z(a), nan=0.0, posinf=0.0)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"columns": self.columns_}, self._scaler_state()

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.columns_ = list(meta["columns"])
        self._load_scaler(arrays)


class IForestDetector(_Scaled):
    """IsolationForest on flattened windows of standardised channels (window scores spread back to rows).

    A channel that was constant in training is never split on, so later changes of it are invisible to the forest
    (a property of isolation trees); ``explain`` still reports its deviation.

    Args:
        window: Rows per window (1 = plain per-row IsolationForest).
        n_trees: Number of trees.
        max_samples: Sub-sample size per tree.
        seed: Random seed (deterministic given the data).
        threshold: ``quantile`` or ``pot`` (on training scores).
        threshold_q: Quantile (or 1 - risk for POT).
    """

    name = "iforest"

    def __init__(
        self,
        window: int = 10,
        n_trees: int = 100,
        max_samples: int = 256,
        seed: int = 0,
        threshold: ThresholdMethod = "quantile",
        threshold_q: float = 0.99,
    ) -> None:
        self.window = window
        self.n_trees = n_trees
        self.max_samples = max_samples
        self.seed = seed
        self.threshold = threshold
        self.threshold_q = threshold_q

    def _fit(self, a: np.ndarray, index: pd.Index) -> np.ndarray:
        self._check_window()
        self.scaler_ = Scaler.fit(a)
        w = windows(self.scaler_.transform(a), self.window)
        self.forest_ = ArrayForest.train(w.reshape(len(w), -1), self.n_trees, self.max_samples, self.seed)
        return self._score(a, index)

    def _score(self, a: np.ndarray, index: pd.Index) -> np.ndarray:
        w = windows(self.scaler_.transform(a), self.window)
        s = self.forest_.score(w.reshape(len(w), -1))  # (N,)
        return spread_windows(s, len(a), self.window)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {**self._scaler_state(), **{f"forest_{k}": v for k, v in self.forest_.arrays.items()}}
        return {"columns": self.columns_, "psi": self.forest_.psi}, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.columns_ = list(meta["columns"])
        self._load_scaler(arrays)
        self.forest_ = ArrayForest({k: arrays[f"forest_{k}"] for k in ArrayForest.ARRAY_NAMES}, int(meta["psi"]))


class PCADetector(_Scaled):
    """PCA reconstruction error on flattened windows of standardised channels.

    The per-step, per-channel squared errors are averaged over the windows covering each row; the row score is their
    sum over channels, and ``explain`` uses them per channel.

    Args:
        window: Rows per window (1 = plain PCA on rows).
        variance: Fraction of training variance the kept components explain (0 < variance < 1).
        trim: 0 = plain PCA (the baseline). > 0: refit once without the training windows whose error exceeds
            median + 6 robust SDs (at most this fraction), so anomalies inside the training data do not become
            components.
        threshold: ``quantile`` or ``pot`` (on training scores).
        threshold_q: Quantile (or 1 - risk for POT).
    """

    name = "pca"

    def __init__(
        self,
        window: int = 10,
        variance: float = 0.9,
        trim: float = 0.0,
        threshold: ThresholdMethod = "quantile",
        threshold_q: float = 0.99,
    ) -> None:
        self.window = window
        self.variance = variance
        self.trim = trim
        self.threshold = threshold
        self.threshold_q = threshold_q

    def _fit(self, a: np.ndarray, index: pd.Index) -> np.ndarray:
        self._check_window()
        if not 0.0 < self.variance < 1.0:
            raise ValueError(f"variance must be in (0, 1), got {self.variance}")
        self.scaler_ = Scaler.fit(a)
        w = windows(self.scaler_.transform(a), self.window)
        flat = w.reshape(len(w), -1).astype(np.float64)  # (N, w*C)
        self._svd(flat)
        if self.trim > 0:
            err = self._window_errors(flat)
            med = float(np.median(err))
            mad = 1.4826 * float(np.median(np.abs(err - med)))
            cut = max(med + 6.0 * mad, float(np.quantile(err, 1.0 - self.trim)))
            keep = err <= cut
            if 2 <= keep.sum() < len(err):
                self._svd(flat[keep])
        return self._score(a, index)

    def _svd(self, flat: np.ndarray) -> None:
        self.mean_ = flat.mean(axis=0)
        _, sv, vt = np.linalg.svd(flat - self.mean_, full_matrices=False)
        var = sv**2
        ratio = np.cumsum(var) / var.sum() if var.sum() > 0 else np.ones_like(var)
        k = int(np.searchsorted(ratio, self.variance) + 1)
        self.components_ = vt[: min(k, len(vt))]  # (k, w*C)

    def _window_errors(self, flat: np.ndarray) -> np.ndarray:
        x = flat - self.mean_
        r = x - (x @ self.components_.T) @ self.components_
        return (r**2).sum(axis=1)

    def _errors(self, a: np.ndarray) -> np.ndarray:
        """Per-row, per-channel squared reconstruction error (T, C)."""
        w = windows(self.scaler_.transform(a), self.window)
        n, ww, c = w.shape
        err = np.empty((n, ww, c), dtype=np.float32)
        for sl in batches(n, 8192):
            x = w[sl].reshape(-1, ww * c).astype(np.float64) - self.mean_
            r = x - (x @ self.components_.T) @ self.components_
            err[sl] = (r**2).reshape(-1, ww, c)
        return spread_windows(err, len(a), self.window)

    def _score(self, a: np.ndarray, index: pd.Index) -> np.ndarray:
        return self._errors(a).sum(axis=1)

    def _channel_scores(self, a: np.ndarray, index: pd.Index) -> np.ndarray:
        return self._errors(a)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {**self._scaler_state(), "mean": self.mean_, "components": self.components_}
        return {"columns": self.columns_}, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.columns_ = list(meta["columns"])
        self._load_scaler(arrays)
        self.mean_ = arrays["mean"]
        self.components_ = arrays["components"]
