"""Triage detection: the log detectors over the batch's window counts (cross-fitted, so an incident never sets the
threshold that judges it) and the metric detector (the shared operation, ``tools.metric_anomalies``), as hits.

Every detector runs in its own ``try``: one that fails on odd input becomes a degraded flag, not a failed triage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from anomalist.agent.report import DegradedFlag
from anomalist.agent.settings import Settings
from anomalist.agent.triage.inputs import LogData, _short
from anomalist.agent.triage.rank import MAX_CHANNELS_PER_HIT, Hit, driving_templates, hits_from_scores

logger = logging.getLogger(__name__)


def crossfit_scores(
    make: Callable[[], Any], X: Any, n: int, fraction: float, min_fit: int
) -> list[tuple[pd.Series, float, float]]:
    """Score every row out of sample with two models (2-fold cross-fitting in time).

    Model A learns from the leading ``fraction`` of the rows and scores the rest; model B learns from the rest and
    scores the leading part. So an incident is never part of the data that set the threshold that judges it
    (unless it spans the split). With too few rows for two folds, one model learns from all rows (in sample).

    Returns ``(scores of the rows this model judges, threshold, median training score)`` per model.
    """
    split = int(round(n * fraction))
    folds = [(slice(0, split), slice(split, n)), (slice(split, n), slice(0, split))]
    if split < min_fit or n - split < min_fit:
        folds = [(slice(0, n), slice(0, n))]
    out = []
    for fit_rows, score_rows in folds:
        det = make()
        train = X.iloc[fit_rows]
        det.fit(train)
        all_scores = det.score(X)
        tr = all_scores.iloc[fit_rows].to_numpy(dtype="float64")
        tr = tr[np.isfinite(tr)]
        out.append((all_scores.iloc[score_rows], float(det.threshold_), float(np.median(tr)) if tr.size else 0.0, det))
    return out  # type: ignore[return-value]


def run_log_detectors(
    data: LogData, settings: Settings, degraded: list[DegradedFlag], tick: Callable[[str, float, str], None]
) -> tuple[list[Hit], list[str]]:
    """Cross-fit and score each configured log detector on the batch's window counts; returns hits and the names
    of the detectors that ran. See :func:`crossfit_scores`."""
    from anomalist.detectors import get_detector

    names = list(settings.triage.log_detectors)
    counts = data.counts
    hits: list[Hit] = []
    ran: list[str] = []
    for i, name in enumerate(names):
        tick("log_detectors", i / max(len(names), 1), name)
        try:
            if name == "deeplog":
                raise ValueError("deeplog scores template sequences; batch triage uses window counts (not run)")
            params = settings.detectors.params_for(name)
            folds = crossfit_scores(partial(get_detector, name, **params), counts, len(counts),
                                    settings.triage.baseline_fraction, MIN_FIT_WINDOWS)
            found = [
                h
                for scores, th, med, _ in _plausible(folds, name, degraded)
                for h in hits_from_scores(scores, th, detector=name, source="log", step=data.window, median=med)
            ]
        except Exception as exc:  # noqa: BLE001 - one detector failing must not fail the triage
            logger.warning("log detector %s failed: %s", name, exc)
            degraded.append(DegradedFlag(component="detector", name=name, reason=_short(exc)))
            continue
        ran.append(name)
        for h in found:
            if h.strength < settings.triage.min_strength:
                continue
            h.template_ids = driving_templates(counts, h.start, h.end)
            if h.template_ids:
                hits.append(h)
    tick("log_detectors", 1.0, f"{len(hits)} hits")
    return hits, ran


MIN_FIT_WINDOWS = 6  # windows a log model must be fitted on


def _plausible(folds: list[Any], name: str, degraded: list[DegradedFlag]) -> list[Any]:
    from anomalist.detectors.thresholds import implausible

    kept = []
    for fold in folds:
        why = implausible(fold[0], fold[1])
        if why:
            degraded.append(DegradedFlag(component="detector", name=name, reason=why))
            continue
        kept.append(fold)
    return kept


def run_metric_detector(
    df: pd.DataFrame, settings: Settings, degraded: list[DegradedFlag], tick: Callable[[str, float, str], None]
) -> tuple[list[Hit], list[str]]:
    """The configured metric detector (``auto``) over the batch's metrics, by the shared operation
    (:func:`tools.metric_anomalies.detect_metric_anomalies`: in-sample scores, flagged above
    ``settings.triage.metric_robust_k`` robust SDs of them), as hits with the channels that drove them."""
    from anomalist.tools.metric_anomalies import detect_metric_anomalies

    name = settings.detectors.metric_detector
    tick("metrics", 0.2, name)
    try:
        found = detect_metric_anomalies(df, name, settings.detectors.params_for(name),
                                        robust_k=settings.triage.metric_robust_k,
                                        min_strength=settings.triage.min_strength, max_channels=MAX_CHANNELS_PER_HIT)
    except Exception as exc:  # noqa: BLE001
        logger.warning("metric detector %s failed: %s", name, exc)
        degraded.append(DegradedFlag(component="detector", name=name, reason=_short(exc)))
        return [], []
    if found.implausible:
        degraded.append(DegradedFlag(component="detector", name=name, reason=found.implausible))
    hits = [Hit(source="metric", detector=name, start=sp.start, end=sp.end, score=sp.peak, strength=sp.strength,
                channels=sp.channels, contributions=dict(sp.contributions)) for sp in found.spans]
    tick("metrics", 1.0, f"{len(hits)} hits")
    return hits, [name]
