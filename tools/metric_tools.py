"""LangChain tool over metrics: ``detect_metric_anomalies`` in a time range (the configured detector).

The detector is fitted on the whole series of the named source (so the range is judged against the rest) and
scores the same rows (higher = more anomalous). A row is anomalous when its score is a robust outlier among the
series' scores (median + ``robust_k`` x 1.4826 x MAD): the detector's own ``threshold_`` is a high quantile of its
training scores, and here the training rows include the incident, so it would sit inside it (the triage pipeline
uses the same rule). The anomalous spans that overlap the asked range come back with the channels that drove them
(``Detector.explain``).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ConfigDict, Field

from tools.errors import InputError
from tools.log_tools import LogWorkspace, ToolPayload, error, no_data, ok, resolve_time

logger = logging.getLogger(__name__)

MAX_SPANS = 10


class MetricAnomalyArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str | None = Field(None, description="Range start: ISO time, clock time (14:05) or end-30m")
    end: str | None = Field(None, description="Range end, same forms as start")
    channels: list[str] | None = Field(None, max_length=50, description="Only these metric columns; omitted = all")
    source: str | None = Field(None, description="Metrics source name; omitted = the only (or first) one")


def robust_threshold(scores: pd.Series, k: float) -> tuple[float, float]:
    """``(median + k * 1.4826 * MAD, median)`` of the finite ``scores`` (``k`` robust SDs above the median)."""
    v = scores.to_numpy(dtype="float64")
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("inf"), 0.0
    med = float(np.median(v))
    scale = 1.4826 * float(np.median(np.abs(v - med)))
    if scale <= 1e-12:
        scale = float(np.std(v)) or 1.0
    return med + k * scale, med


def _spans(flags: np.ndarray, index: pd.DatetimeIndex) -> list[tuple[int, int]]:
    """Runs of True in ``flags`` as (first row, last row) pairs."""
    out: list[tuple[int, int]] = []
    start = None
    for i, flag in enumerate(flags):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            out.append((start, i - 1))
            start = None
    if start is not None:
        out.append((start, len(flags) - 1))
    return out


class MetricAnomalyTool:
    """Fits the detector once per (source, channels, file version) and answers range questions from its scores.

    Args:
        ws: the workspace whose ``metrics`` sources may be read.
        detector: a registered time-series detector name (``auto`` = the ensemble).
        detector_params: parameters of that detector (e.g. seed).
        robust_k: robust standard deviations above the median score that make a row anomalous.
        max_cached: fitted results kept.
    """

    def __init__(self, ws: LogWorkspace, detector: str = "auto", detector_params: dict[str, Any] | None = None,
                 robust_k: float = 5.0, max_cached: int = 4):
        self.ws = ws
        self.detector = detector
        self.detector_params = detector_params or {}
        self.robust_k = robust_k
        self.max_cached = max_cached
        self._cache: OrderedDict[tuple[Any, ...], tuple[pd.DataFrame, pd.Series, float, float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def _path(self, source: str | None) -> tuple[str, Path]:
        if not self.ws.metrics:
            raise InputError("no metrics are configured (pass --metrics, or set server.metrics_sources)")
        if source is None or source in ("", "*", "all"):
            name = sorted(self.ws.metrics)[0]
        elif source in self.ws.metrics:
            name = source
        else:
            raise ValueError(f"unknown metrics source {source!r}; known: {', '.join(sorted(self.ws.metrics))}")
        return name, Path(self.ws.metrics[name])

    def _scored(self, source: str | None, channels: list[str] | None) -> tuple[pd.DataFrame, pd.Series, float, float,
                                                                                 Any, list[str]]:
        from detectors import get_detector
        from tools.metrics_io import read_metrics

        name, path = self._path(source)
        stat = path.stat()
        key = (name, stat.st_mtime_ns, stat.st_size, tuple(channels or ()))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                frame, scores, thr, med, det = self._cache[key]
                return frame, scores, thr, med, det, []
            frame, report = read_metrics(path)
            notes = report.lines() if hasattr(report, "lines") else []
            numeric = frame.select_dtypes(include="number")
            if channels:
                unknown = [c for c in channels if c not in numeric.columns]
                if unknown:
                    raise ValueError(f"unknown channels {unknown}; available: {', '.join(map(str, numeric.columns))}")
                numeric = numeric[channels]
            det = get_detector(self.detector, **self.detector_params)
            if hasattr(det, "fit_score"):
                # In-sample scores where a window cannot vouch for itself (the detector's own protocol for data
                # without separate training rows).
                scores = det.fit_score(numeric)
            else:
                det.fit(numeric)
                scores = det.score(numeric)
            thr, med = robust_threshold(scores, self.robust_k)
            self._cache[key] = (numeric, scores, thr, med, det)
            while len(self._cache) > self.max_cached:
                self._cache.popitem(last=False)
            return numeric, scores, thr, med, det, notes

    def __call__(self, start: str | None = None, end: str | None = None, channels: list[str] | None = None,
                 source: str | None = None) -> ToolPayload:
        try:
            frame, scores, thr, med, det, notes = self._scored(source, channels)
        except InputError as exc:
            return error(f"the metrics cannot be used: {exc}")
        if frame.empty or not isinstance(frame.index, pd.DatetimeIndex):
            return no_data("the metrics hold no time-indexed rows", reader_notes=notes[:5])
        d0, d1 = frame.index.min(), frame.index.max()
        lo = resolve_time(start, d0, d1) if start else d0
        hi = resolve_time(end, d0, d1) if end else d1
        if lo > hi:
            return error(f"start {lo} is after end {hi}; swap them")
        values = scores.to_numpy(dtype=float)
        flags = np.nan_to_num(values, nan=-np.inf) > thr
        spans = []
        for a, b in _spans(flags, frame.index):
            s_start, s_end = frame.index[a], frame.index[b]
            if s_end < lo or s_start > hi:
                continue
            peak = float(np.nanmax(values[a: b + 1]))
            try:
                contrib = det.explain(frame, (s_start, s_end))
                drivers = {str(k): round(float(v), 3) for k, v in contrib.head(3).items() if v > 0}
            except Exception as exc:  # noqa: BLE001 - an explanation is extra, the span stands without it
                logger.debug("explain failed: %s", exc)
                drivers = {}
            window = frame.loc[s_start:s_end]
            before = frame.loc[: s_start].iloc[:-1].tail(30)
            changes = {
                ch: {"before_mean": _r(before[ch].mean()), "span_mean": _r(window[ch].mean()),
                     "span_max": _r(window[ch].max())}
                for ch in drivers
            }
            spans.append({"start": s_start.isoformat(), "end": s_end.isoformat(), "rows": b - a + 1,
                          "peak_score": round(peak, 4),
                          # 1.0 = at the threshold; 2.0 = twice as far above the median score as the threshold.
                          "strength": round((peak - med) / (thr - med), 2) if thr > med else None,
                          "drivers": drivers, "values": changes})
        spans.sort(key=lambda s: -s["peak_score"])
        rng = {"start": lo.isoformat(), "end": hi.isoformat()}
        if not spans:
            in_range = scores[(scores.index >= lo) & (scores.index <= hi)]
            top = float(in_range.max()) if len(in_range) and not in_range.isna().all() else None
            return no_data(f"no anomalous span between {lo} and {hi} ({self.detector}, threshold {thr:.3g})",
                           range=rng, max_score_in_range=_r(top), threshold=_r(thr), channels=list(map(str,
                                                                                                     frame.columns)))
        return ok(f"{len(spans)} anomalous spans between {lo} and {hi}; strongest {spans[0]['start']} driven by "
                  f"{', '.join(spans[0]['drivers']) or 'unknown channels'}",
                  detector=self.detector, threshold=_r(thr), range=rng, spans=spans[:MAX_SPANS],
                  channels=list(map(str, frame.columns)), reader_notes=notes[:5])


def _r(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return None
    try:
        return round(float(value), 4)
    except (TypeError, ValueError):
        return None


def make_metric_tools(ws: LogWorkspace, detector: str = "auto", detector_params: dict[str, Any] | None = None,
                      robust_k: float = 5.0) -> list[BaseTool]:
    """The metric tools bound to ``ws.metrics``."""
    run: Callable[..., ToolPayload] = MetricAnomalyTool(ws, detector, detector_params, robust_k=robust_k)
    names = ", ".join(sorted(ws.metrics)) or "(none)"
    return [
        StructuredTool.from_function(
            lambda **kw: run(**kw), name="detect_metric_anomalies", args_schema=MetricAnomalyArgs,
            description=f"Anomalous spans in the metrics (latency, error rate, CPU, disk, ...) in a time range, with "
                        f"the channels that drove them and their values before and during. Metrics: {names}.",
        )
    ]
