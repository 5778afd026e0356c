"""Honest time-series anomaly metrics. Every name says its protocol; point adjustment appears only as
``f1_point_adjusted``.

Conventions: ``labels`` are 0/1 per row, ``scores`` higher = more anomalous. Non-finite scores (warm-up) are set
to the lowest finite score, i.e. never flagged before any real row. Metrics that need both classes return NaN when
the labels have only one (such series are left out of means by ``nanmean``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def _prep(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    finite = np.isfinite(s)
    if not finite.any():
        s = np.zeros_like(s)
    elif not finite.all():
        s = np.where(finite, s, s[finite].min())
    return y, s


def auc_pr(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve (average precision, step-wise, no interpolation)."""
    y, s = _prep(labels, scores)
    if not y.any() or y.all():
        return float("nan")
    return float(average_precision_score(y, s))


def auc_roc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve."""
    y, s = _prep(labels, scores)
    if not y.any() or y.all():
        return float("nan")
    return float(roc_auc_score(y, s))


def segments(labels: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs of 1 as (start, end) row positions, end inclusive."""
    y = np.asarray(labels).astype(np.int8).ravel()
    d = np.diff(np.concatenate([[0], y, [0]]))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1) - 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _weighted_ap(weights: np.ndarray, scores: np.ndarray) -> float:
    """Average precision where each row is worth ``weights`` in [0, 1] of a positive (ties grouped)."""
    order = np.argsort(-scores, kind="stable")
    s, w = scores[order], weights[order]
    tp = np.cumsum(w)
    k = np.arange(1, len(s) + 1)
    last = np.r_[s[1:] != s[:-1], True]  # the last row of each group of tied scores
    tp, k = tp[last], k[last]
    total = tp[-1]
    if total <= 0:
        return float("nan")
    precision = tp / k
    recall = tp / total
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def vus_pr(labels: np.ndarray, scores: np.ndarray, max_buffer: int = 100, n_levels: int = 11) -> float:
    """Volume under the PR surface (after Paparrizos et al., VLDB 2022), simplified.

    For buffer lengths ``l`` in ``linspace(0, max_buffer, n_levels)`` each anomaly segment is widened by ``l / 2``
    rows on both sides with soft labels ``sqrt(1 - d / (l / 2))`` at distance ``d``; the range AUC-PR is the average
    precision with those soft labels, and VUS-PR is its mean over the buffer lengths. (The original's existence
    reward is left out.) At ``l = 0`` this is plain AUC-PR.
    """
    y, s = _prep(labels, scores)
    if not y.any() or y.all():
        return float("nan")
    segs = segments(y)
    n = len(y)
    vals = []
    for buf in np.linspace(0, max_buffer, n_levels):
        half = buf / 2.0
        w = y.astype(np.float64)
        if half >= 1:
            reach = int(np.floor(half))
            ramp = np.sqrt(1.0 - np.arange(1, reach + 1) / (half + 1e-12))
            for a, b in segs:
                left = np.arange(a - 1, a - 1 - reach, -1)
                right = np.arange(b + 1, b + 1 + reach)
                for idx in (left, right):
                    ok = (idx >= 0) & (idx < n)
                    w[idx[ok]] = np.maximum(w[idx[ok]], ramp[ok])
        vals.append(_weighted_ap(w, s))
    return float(np.nanmean(vals))


def _thresholds(s: np.ndarray, n: int = 400) -> np.ndarray:
    uniq = np.unique(s)
    if len(uniq) <= n:
        return uniq
    return np.unique(np.quantile(s, np.linspace(0.0, 1.0, n)))


def f1_best(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best point-wise F1 over all thresholds, without point adjustment."""
    y, s = _prep(labels, scores)
    if not y.any():
        return float("nan")
    order = np.argsort(-s, kind="stable")
    ss, yy = s[order], y[order]
    tp = np.cumsum(yy)
    k = np.arange(1, len(ss) + 1)
    last = np.r_[ss[1:] != ss[:-1], True]
    tp, k = tp[last], k[last]
    f1 = 2 * tp / (k + y.sum())
    return float(f1.max())


def _event_f1_at(y: np.ndarray, y_segs: list[tuple[int, int]], pred: np.ndarray) -> float:
    if not pred.any():
        return 0.0
    recall = sum(bool(pred[a : b + 1].any()) for a, b in y_segs) / len(y_segs)
    precision = float((pred & y).sum()) / float(pred.sum())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def f1_event(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best event-level F1 over thresholds, as the composite F-score of Garg et al. (2021): recall = share of
    true events with at least one flagged row (event-wise), precision = share of flagged rows that are anomalous
    (point-wise, so flagging everything does not pay)."""
    y, s = _prep(labels, scores)
    y_segs = segments(y)
    if not y_segs:
        return float("nan")
    return float(max(_event_f1_at(y, y_segs, s >= t) for t in _thresholds(s, 200)))


def f1_point_adjusted(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best F1 with point adjustment (a true event counts as fully detected once any of its rows is flagged).

    Reported only under this name: it is known to inflate results (Kim et al., AAAI 2022).
    """
    y, s = _prep(labels, scores)
    y_segs = segments(y)
    if not y_segs:
        return float("nan")
    n_pos = int(y.sum())
    seg_id = np.full(len(y), -1)
    for i, (a, b) in enumerate(y_segs):
        seg_id[a : b + 1] = i
    # The highest score inside each event: the event is detected at every threshold at or below it.
    seg_max = np.array([s[a : b + 1].max() for a, b in y_segs])
    seg_len = np.array([b - a + 1 for a, b in y_segs])
    neg_scores = np.sort(s[~y])[::-1]
    best = 0.0
    for t in _thresholds(s, 400):
        tp = int(seg_len[seg_max >= t].sum())
        fp = int(np.searchsorted(-neg_scores, -t, side="right"))
        if tp == 0:
            continue
        prec, rec = tp / (tp + fp), tp / n_pos
        best = max(best, 2 * prec * rec / (prec + rec))
    return float(best)


def hit_rate(ranked_channels: Sequence[str], truth: Sequence[str], p: float) -> float:
    """Interpretation HitRate@P%: share of the true channels among the top ``floor(p * |truth|)`` ranked ones."""
    if not truth:
        return float("nan")
    k = int(np.floor(p * len(truth) + 1e-9))
    top = set(list(ranked_channels)[:k])
    return len(top & set(truth)) / len(truth)


def all_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Every score-based metric of the time-series suite."""
    return {
        "auc_pr": auc_pr(labels, scores),
        "vus_pr": vus_pr(labels, scores),
        "auc_roc": auc_roc(labels, scores),
        "f1_best": f1_best(labels, scores),
        "f1_event": f1_event(labels, scores),
        "f1_point_adjusted": f1_point_adjusted(labels, scores),
    }


def nanmean(values: Sequence[float] | Mapping[str, float]) -> float:
    """Mean of the finite values (NaN when there are none)."""
    vals = np.asarray(list(values.values()) if isinstance(values, Mapping) else list(values), dtype=np.float64)
    vals = vals[np.isfinite(vals)]
    return float(vals.mean()) if vals.size else float("nan")
