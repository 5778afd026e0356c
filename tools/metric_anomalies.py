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
import math
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
    from anomalist.detectors import get_detector
    from anomalist.detectors.thresholds import (
        MAX_FLAGGED_SHARE,
        implausible,
        robust_bounds,
        score_spans,
        span_strength,
    )

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


def metric_summary(df: pd.DataFrame, channel: str, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, float | None]:
    """Baseline (before ``start``; else outside the span) and in-span statistics of one channel, and the change in
    baseline standard deviations."""
    col = df[channel].astype("float64")
    inside = (df.index >= start) & (df.index < end)
    before = df.index < start
    base = col[before] if before.sum() >= 5 else col[~inside]
    span = col[inside]
    bm, bs = _finite_stat(base.mean()), _finite_stat(base.std())
    sm = _finite_stat(span.mean())
    change: float | None = None
    if bm is not None and sm is not None:
        scale = bs if bs and bs > 1e-12 else max(abs(bm) * 0.01, 1e-9)
        change = (sm - bm) / scale
    return {
        "baseline_mean": bm, "baseline_std": bs, "span_mean": sm,
        "span_max": _finite_stat(span.max()), "span_min": _finite_stat(span.min()), "change": change,
    }


MOVED_MIN_Z = 4.0


def moved_channels(df: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, *, min_z: float = MOVED_MIN_Z,
                   limit: int = 6) -> dict[str, float]:
    """Channels whose mean inside [start, end) moved at least ``min_z`` baseline standard deviations (largest
    first): metrics that corroborate a finding even when the metric detector did not flag the span itself."""
    out: dict[str, float] = {}
    inside = (df.index >= start) & (df.index < end)
    if not inside.any():
        return out
    for ch in df.select_dtypes(include="number").columns:
        z = metric_summary(df, str(ch), start, end)["change"]
        if z is not None and math.isfinite(z) and abs(z) >= min_z:
            out[str(ch)] = float(z)
    return dict(sorted(out.items(), key=lambda kv: -abs(kv[1]))[:limit])


def _finite_stat(v: object) -> float | None:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None

def channel_shifts(df: pd.DataFrame, lo: pd.Timestamp, hi: pd.Timestamp, *, min_z: float = MOVED_MIN_Z,
                   min_rows: int = 3, min_reference: int = 10, limit: int = 6) -> list[dict[str, Any]]:
    """Per channel, the sustained shift inside ``[lo, hi]`` that moved furthest from what came before it: the
    segment ``[t, u)`` of at least ``min_rows`` rows whose mean is the most baseline standard deviations away from
    the mean of every row before ``t`` (at least ``min_reference`` of them), judged with :func:`metric_summary`, the
    statistic the triage reports. Channels that moved at least ``min_z`` come back, largest first: what a single
    channel shows when the multivariate detector flags no span."""
    if not isinstance(df.index, pd.DatetimeIndex) or len(df) < min_reference + min_rows:
        return []
    idx = df.index
    rows = np.flatnonzero((idx >= lo) & (idx <= hi))
    if rows.size < min_rows:
        return []
    out: list[dict[str, Any]] = []
    for ch in df.select_dtypes(include="number").columns:
        x = df[ch].to_numpy(dtype="float64")
        ok = np.isfinite(x)
        xv = np.where(ok, x, 0.0)
        c1, c2, cn = (np.concatenate([[0.0], np.cumsum(v)]) for v in (xv, xv * xv, ok.astype("float64")))
        best: tuple[float, int, int] | None = None
        for t in rows:
            nb = cn[t]
            if nb < min_reference:
                continue
            mb = c1[t] / nb
            sb = math.sqrt(max(c2[t] / nb - mb * mb, 0.0) * nb / max(nb - 1, 1))
            scale = sb if sb > 1e-12 else max(abs(mb) * 0.01, 1e-9)
            u = np.arange(t + min_rows, rows[-1] + 2)
            if u.size == 0:
                continue
            n = cn[u] - cn[t]
            m = np.divide(c1[u] - c1[t], n, out=np.full(u.size, np.nan), where=n > 0)
            z = (m - mb) / scale
            if not np.isfinite(z).any():
                continue
            k = int(np.nanargmax(np.abs(z)))
            if best is None or abs(z[k]) > abs(best[0]):
                best = (float(z[k]), int(t), int(u[k]))
        if best is None or abs(best[0]) < min_z:
            continue
        _, first, stop = best
        start = idx[first]
        end = (idx[stop] if stop < len(idx) else
               idx[-1] + (idx[-1] - idx[-2] if len(idx) > 1 else pd.Timedelta(seconds=1)))
        summ = metric_summary(df, str(ch), start, end)
        if summ["change"] is None or abs(summ["change"]) < min_z:
            continue
        out.append({"channel": str(ch), "start": start.isoformat(), "end": end.isoformat(), "rows": stop - first,
                    "change_sd": round(float(summ["change"]), 1), "before_mean": _round(summ["baseline_mean"]),
                    "during_mean": _round(summ["span_mean"]), "during_max": _round(summ["span_max"])})
    out.sort(key=lambda d: -abs(d["change_sd"]))
    return out[:limit]


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)
