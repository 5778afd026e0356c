"""LangChain tool over metrics: ``detect_metric_anomalies`` in a time range (the configured detector).

It answers from the same operation as the triage (:func:`tools.metric_anomalies.detect_metric_anomalies`: the
detector fitted on the whole series of the named source, in-sample scores flagged above ``robust_k`` robust SDs of
them, spans that may bridge ``MAX_GAP`` quiet rows, weak spans dropped, each explained by its channels), on the
metrics read the same way (:func:`tools.metrics_io.load_metric_set`), so the chat and the triage report the same
spans. The spans that overlap the asked range come back with their driving channels and values before and during,
and, per channel, the sustained shift that moved furthest in the range (``channel_shifts``: the same statistic the
triage reports as "+N SD"), so a jump one channel shows is named even when the multivariate detector flags no span.
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

from anomalist.tools.errors import InputError
from anomalist.tools.log_tools import LogWorkspace, ToolPayload, error, no_data, ok, resolve_time
from anomalist.tools.metric_anomalies import MetricAnomalies, channel_shifts, detect_metric_anomalies

logger = logging.getLogger(__name__)

MAX_SPANS = 10
DRIVERS_SHOWN = 3


class MetricAnomalyArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str | None = Field(None, description="Range start: ISO time, clock time (14:05) or end-30m")
    end: str | None = Field(None, description="Range end, same forms as start")
    channels: list[str] | None = Field(None, max_length=50, description="Only these metric columns; omitted = all")
    source: str | None = Field(None, description="Metrics source name; omitted = the only (or first) one")


class MetricAnomalyTool:
    """Runs the shared detection once per (source, channels, file version) and answers range questions from it.

    Args:
        ws: the workspace whose ``metrics`` sources may be read.
        detector: a registered time-series detector name (``auto`` = the ensemble).
        detector_params: parameters of that detector (e.g. seed).
        robust_k: robust standard deviations above the median score that make a row anomalous.
        min_strength: spans weaker than this are not reported (the triage's ``min_strength``).
        max_cached: results kept.
    """

    def __init__(self, ws: LogWorkspace, detector: str = "auto", detector_params: dict[str, Any] | None = None,
                 robust_k: float = 5.0, min_strength: float = 0.0, max_cached: int = 4):
        self.ws = ws
        self.detector = detector
        self.detector_params = detector_params or {}
        self.robust_k = robust_k
        self.min_strength = min_strength
        self.max_cached = max_cached
        self._cache: OrderedDict[tuple[Any, ...], tuple[pd.DataFrame, MetricAnomalies]] = OrderedDict()
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

    def _scored(self, source: str | None, channels: list[str] | None) -> tuple[pd.DataFrame, MetricAnomalies, list[str]]:
        from anomalist.tools.metrics_io import load_metric_set

        name, path = self._path(source)
        stat = path.stat()
        key = (name, stat.st_mtime_ns, stat.st_size, tuple(channels or ()))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                frame, found = self._cache[key]
                return frame, found, []
            mset, _, notes = load_metric_set(path)
            numeric = mset.frame.select_dtypes(include="number")
            if channels:
                unknown = [c for c in channels if c not in numeric.columns]
                if unknown:
                    raise ValueError(f"unknown channels {unknown}; available: {', '.join(map(str, numeric.columns))}")
                numeric = numeric[channels]
            try:
                found = detect_metric_anomalies(numeric, self.detector, self.detector_params, robust_k=self.robust_k,
                                                min_strength=self.min_strength)
            except ValueError as exc:  # the detector cannot run on these rows (too few, ...): shifts still can
                found = MetricAnomalies(detector=self.detector, scores=pd.Series(np.nan, index=numeric.index),
                                        threshold=float("nan"), median=float("nan"), step=pd.Timedelta(minutes=1),
                                        spans=[], flagged_share=0.0, implausible=f"it cannot run here: {exc}")
            self._cache[key] = (numeric, found)
            while len(self._cache) > self.max_cached:
                self._cache.popitem(last=False)
            return numeric, found, notes

    def __call__(self, start: str | None = None, end: str | None = None, channels: list[str] | None = None,
                 source: str | None = None) -> ToolPayload:
        try:
            frame, found, notes = self._scored(source, channels)
        except InputError as exc:
            return error(f"the metrics cannot be used: {exc}")
        if frame.empty or not isinstance(frame.index, pd.DatetimeIndex):
            return no_data("the metrics hold no time-indexed rows", reader_notes=notes[:5])
        d0, d1 = frame.index.min(), frame.index.max()
        lo = resolve_time(start, d0, d1) if start else d0
        hi = resolve_time(end, d0, d1) if end else d1
        if lo > hi:
            return error(f"start {lo} is after end {hi}; swap them")
        thr, med, scores = found.threshold, found.median, found.scores
        spans = []
        for sp in found.spans:
            s_start, s_last = frame.index[sp.first], frame.index[sp.last]
            if s_last < lo or s_start > hi:
                continue
            drivers = {c: round(v, 3) for c, v in list(sp.contributions.items())[:DRIVERS_SHOWN]}
            window = frame.loc[s_start:s_last]
            before = frame.loc[: s_start].iloc[:-1].tail(30)
            changes = {
                ch: {"before_mean": _r(before[ch].mean()), "span_mean": _r(window[ch].mean()),
                     "span_max": _r(window[ch].max())}
                for ch in drivers
            }
            spans.append({"start": sp.start.isoformat(), "end": sp.end.isoformat(), "rows": sp.rows,
                          "peak_score": round(sp.peak, 4),
                          # 1.0 = at the threshold; 2.0 = twice as far above the median score as the threshold.
                          "strength": round((sp.peak - med) / (thr - med), 2) if thr > med else None,
                          "drivers": drivers, "values": changes})
        spans.sort(key=lambda s: -s["peak_score"])
        rng = {"start": lo.isoformat(), "end": hi.isoformat()}
        # Per channel, the sustained shift that moved furthest (the statistic the triage reports as "+N SD"):
        # what one channel shows even when the multivariate detector flags no span.
        shifts = channel_shifts(frame, lo, hi)
        shift_text = "; ".join(f"{d['channel']} {d['change_sd']:+.0f} SD from {d['start'][11:16]}" for d in shifts[:3])
        if found.implausible and not shifts:
            return no_data(f"the {self.detector} detector does not fit these metrics: {found.implausible}", range=rng)
        if not spans:
            in_range = scores[(scores.index >= lo) & (scores.index <= hi)]
            top = float(in_range.max()) if len(in_range) and not in_range.isna().all() else None
            detector_says = (f"the {self.detector} detector does not fit these metrics: {found.implausible}"
                             if found.implausible else
                             f"no multivariate span above the {self.detector} threshold {thr:.3g}")
            if shifts:
                return ok(f"{len(shifts)} channels shifted between {lo} and {hi} ({shift_text}); {detector_says}",
                          detector=self.detector, threshold=_r(thr), range=rng, spans=[], channel_shifts=shifts,
                          max_score_in_range=_r(top), channels=list(map(str, frame.columns)), reader_notes=notes[:5])
            return no_data(f"no anomalous span or channel shift between {lo} and {hi} ({detector_says})",
                           range=rng, max_score_in_range=_r(top), threshold=_r(thr), channels=list(map(str,
                                                                                                     frame.columns)))
        return ok(f"{len(spans)} anomalous spans between {lo} and {hi}; strongest {spans[0]['start']} driven by "
                  f"{', '.join(spans[0]['drivers']) or 'unknown channels'}"
                  + (f"; shifted channels: {shift_text}" if shifts else ""),
                  detector=self.detector, threshold=_r(thr), range=rng, spans=spans[:MAX_SPANS], channel_shifts=shifts,
                  channels=list(map(str, frame.columns)), reader_notes=notes[:5])


def _r(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return None
    try:
        return round(float(value), 4)
    except (TypeError, ValueError):
        return None


def make_metric_tools(ws: LogWorkspace, detector: str = "auto", detector_params: dict[str, Any] | None = None,
                      robust_k: float = 5.0, min_strength: float = 0.0) -> list[BaseTool]:
    """The metric tools bound to ``ws.metrics``."""
    run: Callable[..., ToolPayload] = MetricAnomalyTool(ws, detector, detector_params, robust_k=robust_k,
                                                        min_strength=min_strength)
    names = ", ".join(sorted(ws.metrics)) or "(none)"
    return [
        StructuredTool.from_function(
            lambda **kw: run(**kw), name="detect_metric_anomalies", args_schema=MetricAnomalyArgs,
            description=f"Anomalous spans in the metrics (latency, error rate, CPU, disk, ...) in a time range, with "
                        f"the channels that drove them and their values before and during. Metrics: {names}.",
        )
    ]
