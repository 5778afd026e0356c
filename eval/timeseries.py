"""``anomalist eval timeseries``: every time-series detector side by side on NAB or SMD.

Protocol: SMD fits on ``train`` and scores ``test``; NAB fits on the first 15 % of each series (its probationary
period) and scores the rest. Metrics per series (see ``eval.ts_metrics``), then the mean over series that have both
classes (NaN-aware). SMD also reports interpretation HitRate@100 % / @150 % from ``explain`` on each labelled
segment (mean over segments). Every registered time-series detector runs by default, the classical baselines
included, all with their default parameters.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from anomalist import detectors as registry
from anomalist.eval import ts_data
from anomalist.eval.ts_metrics import all_metrics, hit_rate, nanmean

logger = logging.getLogger(__name__)

METRICS = ("auc_pr", "vus_pr", "auc_roc", "f1_best", "f1_event", "f1_point_adjusted")
EXPLAIN_CONTEXT = 200  # rows of context before a segment handed to explain() (windows and rolling statistics need it)


def _series(data: Path, fmt: str) -> list[ts_data.Series]:
    if fmt == "smd":
        return list(ts_data.load_smd(data))
    if fmt == "nab":
        return list(ts_data.load_nab(data))
    raise ValueError(f"format must be 'nab' or 'smd', got {fmt!r}")


def _hit_rates(det: Any, s: ts_data.Series) -> tuple[float, float]:
    h100, h150 = [], []
    for a, b, dims in s.interpretation:
        lo = max(0, a - EXPLAIN_CONTEXT)
        part = s.test.iloc[lo : b + 1]
        contrib = det.explain(part, (s.test.index[a], s.test.index[b]))
        ranked = [c for c in contrib.index if contrib[c] > 0]
        h100.append(hit_rate(ranked, dims, 1.0))
        h150.append(hit_rate(ranked, dims, 1.5))
    return nanmean(h100), nanmean(h150)


def evaluate_one(name: str, s: ts_data.Series, with_explain: bool) -> dict[str, Any]:
    """Fit/score one detector on one series; its metrics, timings and (optionally) hit rates."""
    det = registry.get_detector(name)
    t0 = time.perf_counter()
    det.fit(s.train)
    t1 = time.perf_counter()
    scores = det.score(s.test).to_numpy()
    t2 = time.perf_counter()
    row: dict[str, Any] = dict(all_metrics(s.labels, scores))
    row["fit_s"], row["score_s"] = t1 - t0, t2 - t1
    if with_explain and s.interpretation:
        row["hitrate@100"], row["hitrate@150"] = _hit_rates(det, s)
    return row


def run(data: Path, fmt: str, detectors: list[str] | None = None) -> dict[str, Any]:
    """Run the suite; returns ``{"detectors": {NAME: {metric: mean, ...}}, "series": N}``."""
    names = detectors or registry.available("timeseries")
    unknown = [n for n in names if n not in registry.available("timeseries")]
    if unknown:
        raise ValueError(f"unknown time-series detectors {unknown}; available: {registry.available('timeseries')}")
    series = _series(Path(data), fmt)
    per: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for s in series:
        for name in names:
            logger.info("eval timeseries: %s on %s", name, s.name)
            try:
                per[name].append(evaluate_one(name, s, with_explain=fmt == "smd"))
            except ValueError as exc:  # e.g. a series too short for a window: counted, not hidden
                logger.warning("eval timeseries: %s failed on %s: %s", name, s.name, exc)
                per[name].append({"error": str(exc)})
    out: dict[str, Any] = {}
    for name, rows in per.items():
        ok = [r for r in rows if "error" not in r]
        agg: dict[str, Any] = {m: nanmean([r[m] for r in ok]) for m in METRICS}
        agg["fit_s"] = float(sum(r["fit_s"] for r in ok))
        agg["score_s"] = float(sum(r["score_s"] for r in ok))
        agg["hitrate@100"] = nanmean([r.get("hitrate@100", np.nan) for r in ok]) if fmt == "smd" else None
        agg["hitrate@150"] = nanmean([r.get("hitrate@150", np.nan) for r in ok]) if fmt == "smd" else None
        agg["failed"] = len(rows) - len(ok)
        out[name] = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in agg.items()}
    return {"detectors": out, "series": len(series)}


def render(result: dict[str, Any]) -> Table:
    """A rich table: one row per detector (means over series; times are totals)."""
    table = Table(title=f"time-series detectors ({result['series']} series; means over series with anomalies)")
    cols = [*METRICS, "hitrate@100", "hitrate@150", "fit_s", "score_s", "failed"]
    table.add_column("detector")
    for c in cols:
        table.add_column(c, justify="right")
    for name, row in result["detectors"].items():
        cells = []
        for c in cols:
            v = row.get(c)
            cells.append("-" if v is None else (f"{v:.1f}" if c.endswith("_s") else (str(v) if c == "failed" else f"{v:.3f}")))
        table.add_row(name, *cells)
    return table
