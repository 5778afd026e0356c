"""Thresholds on anomaly scores, and what follows from them: a quantile of training scores, POT/SPOT (extreme value
theory), the robust rule for scores of the data a model was fitted on, anomalous spans and their strength.

This module is the one home of these rules: the triage, the chat tools and ``anomalist detect`` all call it.

POT/SPOT follow Siffer et al., "Anomaly Detection in Streams with Extreme Value Theory" (KDD 2017): the excesses
of the scores over a high initial threshold ``t`` are modelled by a generalised Pareto distribution (GPD), and the
threshold with exceedance probability ``risk`` is ``z = t + sigma/gamma * ((risk * n / n_t) ** -gamma - 1)``.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

logger = logging.getLogger(__name__)

ThresholdMethod = Literal["quantile", "pot", "robust"]

MAX_FLAGGED_SHARE = 0.5
"""Anomalies are rare: a model that flags more than this share of the rows it judges does not fit the data (e.g.
PCA learned from too few windows); its output is set aside (see :func:`implausible`)."""


def quantile_threshold(scores: np.ndarray, q: float = 0.99) -> float:
    """The ``q`` quantile of the finite ``scores``."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    finite = _finite(scores)
    return float(np.quantile(finite, q))


def _finite(scores: np.ndarray) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64).ravel()
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        raise ValueError("no finite score to set a threshold from")
    return finite


def _fit_gpd(excesses: np.ndarray) -> tuple[float, float]:
    """(gamma, sigma) of a GPD fitted to positive excesses by maximum likelihood (method of moments fallback)."""
    if excesses.size < 10 or np.ptp(excesses) <= 0:
        mean = float(excesses.mean()) if excesses.size else 0.0
        return 0.0, max(mean, 1e-12)
    try:
        gamma, _, sigma = stats.genpareto.fit(excesses, floc=0.0)
    except (ValueError, RuntimeError, FloatingPointError):  # pragma: no cover - scipy optimiser failure
        gamma, sigma = math.nan, math.nan
    if not (np.isfinite(gamma) and np.isfinite(sigma) and sigma > 0):
        m, v = float(excesses.mean()), float(excesses.var())
        gamma = 0.5 * (1.0 - m * m / v) if v > 0 else 0.0
        sigma = 0.5 * m * (m * m / v + 1.0) if v > 0 else m
    return float(gamma), float(max(sigma, 1e-12))


def _pot_z(t: float, gamma: float, sigma: float, risk: float, n: int, n_t: int) -> float:
    r = risk * n / max(n_t, 1)
    if abs(gamma) < 1e-8:
        return t - sigma * math.log(r)
    return t + sigma / gamma * (r ** (-gamma) - 1.0)


def pot_threshold(scores: np.ndarray, risk: float = 1e-3, init_q: float = 0.98) -> float:
    """Peaks-over-threshold threshold: exceeded with probability ``risk`` under the fitted tail.

    Args:
        scores: Training (calibration) scores; non-finite values are ignored.
        risk: Target exceedance probability (e.g. 1e-3), in (0, 1).
        init_q: Quantile giving the initial threshold ``t`` whose excesses are modelled.
    """
    if not 0.0 < risk < 1.0:
        raise ValueError(f"risk must be in (0, 1), got {risk}")
    if not 0.0 < init_q < 1.0:
        raise ValueError(f"init_q must be in (0, 1), got {init_q}")
    finite = _finite(scores)
    t = float(np.quantile(finite, init_q))
    exc = finite[finite > t] - t
    if exc.size == 0:
        return t
    gamma, sigma = _fit_gpd(exc)
    z = _pot_z(t, gamma, sigma, risk, finite.size, exc.size)
    return float(max(z, t))


def robust_threshold(scores: np.ndarray, k: float = 6.0) -> float:
    """``median + k * 1.4826 * MAD`` of the finite scores: stays below anomalies even when they make up a large
    share (up to half) of the scores, e.g. when a detector is fitted on the very data it judges."""
    finite = _finite(scores)
    med = float(np.median(finite))
    mad = 1.4826 * float(np.median(np.abs(finite - med)))
    if mad <= 0:
        mad = float(np.std(finite)) or 1e-12
    return med + k * mad


def robust_bounds(scores: np.ndarray | pd.Series, k: float) -> tuple[float, float]:
    """``(threshold, median)`` of the finite ``scores`` by :func:`robust_threshold` (``inf`` and 0 when none is
    finite); the median is the scale of :func:`span_strength`."""
    v = np.asarray(scores, dtype="float64")
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("inf"), 0.0
    return float(robust_threshold(v, k=k)), float(np.median(v))


def implausible(scores: np.ndarray | pd.Series, threshold: float, max_share: float = MAX_FLAGGED_SHARE) -> str | None:
    """Why scores flagged at ``threshold`` cannot be trusted (more than ``max_share`` of the rows flagged), or None."""
    v = np.asarray(scores, dtype="float64")
    share = float(np.mean(v > threshold)) if v.size else 0.0
    if share <= max_share:
        return None
    return (f"flagged {share:.0%} of the {v.size} rows it judged (more than {max_share:.0%}): the model does not "
            "fit this data; its output was set aside")


def span_strength(peak: float, threshold: float, median: float) -> float:
    """Scale-free strength in 0..1 of a span's peak score: ``0.5 + 0.5 * tanh((peak - th) / (th - median))``, so
    0.5 at the threshold and near 1 at twice its distance from the median. NaN or infinite peaks have strength 0."""
    if not math.isfinite(peak):
        return 0.0
    spread = threshold - median
    if not math.isfinite(spread) or spread <= 0:
        spread = abs(threshold) if math.isfinite(threshold) and threshold != 0 else 1.0
    return float(min(1.0, max(0.0, 0.5 + 0.5 * math.tanh((peak - threshold) / spread))))


def score_spans(scores: pd.Series, threshold: float, step: pd.Timedelta | None = None, *,
                max_gap: int = 1) -> list[tuple[pd.Timestamp, pd.Timestamp, float, int, int]]:
    """Runs of ``scores > threshold`` as ``(start, end, peak, first row, last row)``; ``end`` is the last flagged
    row's index + ``step`` (the end of its bin; without ``step`` the last flagged row's index itself).

    Flagged rows separated by at most ``max_gap`` unflagged rows form one span. NaN never flags.
    """
    v = scores.to_numpy(dtype="float64")
    flagged = np.flatnonzero((v > threshold) & np.isfinite(v))
    if flagged.size == 0:
        return []
    runs: list[tuple[int, int]] = []
    run_start = prev = int(flagged[0])
    for i in flagged[1:]:
        i = int(i)
        if i - prev > max_gap + 1:
            runs.append((run_start, prev))
            run_start = i
        prev = i
    runs.append((run_start, prev))
    out = []
    for a, b in runs:
        end = scores.index[b] + step if step is not None else scores.index[b]
        out.append((scores.index[a], end, float(np.nanmax(v[a: b + 1])), a, b))
    return out


def fit_threshold(scores: np.ndarray, method: ThresholdMethod = "quantile", q: float = 0.99) -> float:
    """Threshold from training scores. ``quantile``: the ``q`` quantile; ``pot``: POT with risk ``1 - q``;
    ``robust``: median + 6 robust SDs (for fitting on contaminated data; ``q`` unused)."""
    if method == "quantile":
        return quantile_threshold(scores, q)
    if method == "pot":
        return pot_threshold(scores, risk=1.0 - q)
    if method == "robust":
        return robust_threshold(scores)
    raise ValueError(f"threshold method must be 'quantile', 'pot' or 'robust', got {method!r}")


class Spot:
    """Streaming POT (SPOT): calibrate on initial scores, then flag and update on each new score.

    Scores above the current threshold ``z_`` are alarms and do not update the model; scores between the initial
    threshold ``t_`` and ``z_`` are peaks that refit the tail, as in Siffer et al. (2017).

    Args:
        risk: Exceedance probability of the alarm threshold.
        init_q: Quantile of the calibration scores giving the peak threshold ``t``.
        refit_every: Refit the GPD after this many new peaks (refitting on every peak is slow and barely changes it).
    """

    def __init__(self, risk: float = 1e-3, init_q: float = 0.98, refit_every: int = 10) -> None:
        self.risk = risk
        self.init_q = init_q
        self.refit_every = refit_every

    def fit(self, init_scores: np.ndarray) -> Spot:
        """Calibrate on initial (mostly normal) scores. Returns ``self``."""
        finite = _finite(init_scores)
        if finite.size < 20:
            raise ValueError(f"SPOT needs at least 20 calibration scores, got {finite.size}")
        self.t_ = float(np.quantile(finite, self.init_q))
        self.peaks_ = list(finite[finite > self.t_] - self.t_)
        self.n_ = int(finite.size)
        self._new_peaks = 0
        self._refit()
        return self

    def _refit(self) -> None:
        exc = np.asarray(self.peaks_, dtype=np.float64)
        if exc.size == 0:
            self.gamma_, self.sigma_, self.z_ = 0.0, 1e-12, self.t_
            return
        self.gamma_, self.sigma_ = _fit_gpd(exc)
        self.z_ = max(self.t_, _pot_z(self.t_, self.gamma_, self.sigma_, self.risk, self.n_, exc.size))

    def update(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Process new scores in order. Returns (alarm flags, threshold in force at each step). NaN never alarms."""
        if not hasattr(self, "z_"):
            raise ValueError("Spot is not calibrated: call fit() first")
        arr = np.asarray(scores, dtype=np.float64).ravel()
        alarms = np.zeros(arr.size, dtype=bool)
        thresholds = np.empty(arr.size, dtype=np.float64)
        for i, x in enumerate(arr):
            thresholds[i] = self.z_
            if not np.isfinite(x):
                continue
            if x > self.z_:
                alarms[i] = True
                continue
            self.n_ += 1
            if x > self.t_:
                self.peaks_.append(x - self.t_)
                self._new_peaks += 1
                if self._new_peaks >= self.refit_every:
                    self._new_peaks = 0
                    self._refit()
        return alarms, thresholds
