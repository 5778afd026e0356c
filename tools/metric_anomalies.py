"""Detect metric anomalies in a batch: the one operation behind the triage, the chat tool and ``anomalist detect``.

detector -> scores -> threshold -> spans -> strength -> channels that drove each span (``Detector.explain``).

Fitted on the batch itself (no separate training rows), the detector's scores are judged by the robust rule
(``detectors.thresholds.robust_threshold``: median + ``k`` robust SDs of the batch's scores), not by its own
``threshold_``: that is a high quantile of its training scores, and the training rows *are* the batch, incident
included, so it would sit inside the incident. Why not cross-fitting as for logs: service metrics drift (traffic
ramps, disks filling slowly), so a model of the first part of a batch calls the whole rest anomalous. The robust
rule on in-sample scores is immune to both as long as anomalous rows are a minority. With separate training rows
(``train=``), the detector's own threshold applies.

A model that flags more than ``detectors.thresholds.MAX_FLAGGED_SHARE`` of the rows does not fit the data (e.g. PCA learned from too
few windows): the result says so (``implausible``) and carries no spans.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

MAX_GAP = 2  # unflagged rows that do not split a span
MAX_CHANNELS = 6  # channels kept per span (the strongest contributions)


@dataclass
class MetricSpan:
    """One anomalous span: ``[start, end)`` (``end`` = the last flagged row + one step), rows ``first..last``."""

    start: pd.Timestamp
    end: pd.Timestamp
    peak: float
    strength: float  # 0..1, 0.5 at the threshold (``detectors.thresholds.span_strength``)
    first: int
    last: int
    contributions: dict[str, float] = field(default_factory=dict)  # channel -> share of the span's score
    explain_error: str | None = None

    @property
    def rows(self) -> int:
        return self.last - self.first + 1

    @property
    def channels(self) -> list[str]:
        return list(self.contributions)


@dataclass
class MetricAnomalies:
    """What :func:`detect_metric_anomalies` found. ``spans`` are in time order; see ``implausible``."""

    detector: str
    scores: pd.Series
    threshold: float
    median: float
    step: pd.Timedelta
    spans: list[MetricSpan]
    flagged_share: float
    implausible: str | None = None  # why the output was set aside (then ``spans`` is empty)


def index_step(index: pd.Index) -> pd.Timedelta:
    """The median spacing of a time index (one minute for a non-time or one-row index)."""
    if isinstance(index, pd.DatetimeIndex) and len(index) > 1:
        return pd.Timedelta(int(np.median(np.diff(index.asi8))), unit="ns")
    return pd.Timedelta(minutes=1)


def detect_metric_anomalies(
    frame: pd.DataFrame, detector: str, params: dict[str, Any] | None = None, *, robust_k: float,
    train: pd.DataFrame | None = None, max_gap: int = MAX_GAP, min_strength: float = 0.0, explain: bool = True,
    max_channels: int = MAX_CHANNELS, max_flagged_share: float | None = None,
) -> MetricAnomalies:
    """Score ``frame``'s numeric columns with ``detector`` and return its anomalous spans (see the module docstring).

    Args:
        frame: rows in time order; non-numeric columns are ignored.
        detector / params: a registered time-series detector and its parameters.
        robust_k: robust standard deviations above the median score that flag a row (in-sample scoring).
        train: fit on these rows (same channels) and use the detector's own threshold; None = fit on ``frame``.
        max_gap: flagged rows this many unflagged rows apart form one span.
        min_strength: spans weaker than this are dropped.
        explain: attach each span's driving channels (``Detector.explain``).
        max_flagged_share: above this share of flagged rows the output is set aside (default
            ``detectors.thresholds.MAX_FLAGGED_SHARE``).

    Raises:
        ValueError / TypeError: the detector cannot use the data (too few rows, no numeric column, ...).
    """
    from detectors import get_detector
    from detectors.thresholds import MAX_FLAGGED_SHARE, implausible, robust_bounds, score_spans, span_strength

    numeric = frame.select_dtypes(include="number")
    det = get_detector(detector, **(params or {}))
    if train is None:
        scores = det.fit_score(numeric)  # in-sample: a detector keeps a window from vouching for itself if it can
        threshold, median = robust_bounds(scores, robust_k)
    else:
        det.fit(train.select_dtypes(include="number"))
        scores = det.score(numeric)
        threshold = float(det.threshold_)
        median = robust_bounds(scores, robust_k)[1]
    step = index_step(numeric.index)
    vals = scores.to_numpy(dtype="float64")
    share = float(np.mean(vals > threshold)) if vals.size else 0.0
    out = MetricAnomalies(detector=detector, scores=scores, threshold=threshold, median=median, step=step, spans=[],
                          flagged_share=share)
    out.implausible = implausible(vals, threshold, MAX_FLAGGED_SHARE if max_flagged_share is None else max_flagged_share)
    if out.implausible:
        return out
    for start, end, peak, a, b in score_spans(scores, threshold, step, max_gap=max_gap):
        span = MetricSpan(start=pd.Timestamp(start), end=pd.Timestamp(end), peak=peak,
                          strength=span_strength(peak, threshold, median), first=a, last=b)
        if span.strength < min_strength:
            continue
        if explain:
            try:
                contrib = det.explain(numeric, (numeric.index[a], numeric.index[b]))
                top = contrib[contrib > 0].head(max_channels)
                span.contributions = {str(c): float(v) for c, v in top.items()}
            except Exception as exc:  # noqa: BLE001 - an explanation is extra evidence, the span stands without it
                logger.info("explain failed for %s: %s", detector, exc)
                span.explain_error = f"{type(exc).__name__}: {exc}"
        out.spans.append(span)
    return out
