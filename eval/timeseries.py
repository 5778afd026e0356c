"""``anomalist eval timeseries``: every time-series detector side by side on NAB or SMD.

Protocol: SMD fits on ``train`` and scores ``test``; NAB fits on the first 15 % of each series (its probationary
period) and scores the rest. Metrics per series (see ``eval.ts_metrics``), then the mean over series that have both
classes (NaN-aware). SMD also reports interpretation HitRate@100 % / @150 % from ``explain`` on each labelled
segment (mean over segments). Every registered time-series detector runs by default, the classical baselines
included, all with their default parameters.

``--cv`` is the tuning protocol: leave one series group out (a machine on SMD, a folder such as ``realTraffic`` on
NAB). Every configuration of ``auto`` in :data:`AUTO_CONFIGS` and every classical baseline (default parameters) is
evaluated once on every series. For each group, the ``auto`` configuration with the best mean AUC-PR on the *other*
groups is chosen and the held-out group is scored with it; the baseline is chosen the same way among zscore /
iforest / pca. The pooled left-out figures (means over held-out groups) are what a choice made on these data is
worth on a system it was not chosen on; the all-in figures are the default configuration on every group.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table

from anomalist import detectors as registry
from anomalist.detectors.auto import MEMBERS, AutoDetector, WindowKNN
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


def _row(det: Any, s: ts_data.Series, scores: np.ndarray, fit_s: float, score_s: float, with_explain: bool
         ) -> dict[str, Any]:
    row: dict[str, Any] = dict(all_metrics(s.labels, scores))
    row["fit_s"], row["score_s"] = fit_s, score_s
    if with_explain and s.interpretation:
        row["hitrate@100"], row["hitrate@150"] = _hit_rates(det, s)
    return row


def evaluate_one(name: str, s: ts_data.Series, with_explain: bool) -> dict[str, Any]:
    """Fit/score one detector on one series; its metrics, timings and (optionally) hit rates."""
    det = registry.get_detector(name)
    t0 = time.perf_counter()
    det.fit(s.train)
    t1 = time.perf_counter()
    scores = det.score(s.test).to_numpy()
    t2 = time.perf_counter()
    return _row(det, s, scores, t1 - t0, t2 - t1, with_explain)


def _aggregate(rows: list[dict[str, Any]], fmt: str) -> dict[str, Any]:
    ok = [r for r in rows if "error" not in r]
    agg: dict[str, Any] = {m: nanmean([r[m] for r in ok]) for m in METRICS}
    agg["fit_s"] = float(sum(r["fit_s"] for r in ok))
    agg["score_s"] = float(sum(r["score_s"] for r in ok))
    agg["hitrate@100"] = nanmean([r.get("hitrate@100", np.nan) for r in ok]) if fmt == "smd" else None
    agg["hitrate@150"] = nanmean([r.get("hitrate@150", np.nan) for r in ok]) if fmt == "smd" else None
    agg["failed"] = len(rows) - len(ok)
    return {k: _finite(v) for k, v in agg.items()}


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not np.isfinite(v) else v


def run(data: Path, fmt: str, detectors: list[str] | None = None, cv: bool = False) -> dict[str, Any]:
    """Run the suite; returns ``{"detectors": {NAME: {metric: mean, ...}}, "series": N}``.

    With ``cv``, also ``cv`` (leave-one-group-out figures, see :func:`cross_validate`) and ``all_in`` (the default
    configuration on every group, and each configuration's all-in means); ``auto``'s row in ``detectors`` is then
    the default configuration of the grid (the same detector).
    """
    names = detectors or registry.available("timeseries")
    unknown = [n for n in names if n not in registry.available("timeseries")]
    if unknown:
        raise ValueError(f"unknown time-series detectors {unknown}; available: {registry.available('timeseries')}")
    series = _series(Path(data), fmt)
    with_explain = fmt == "smd"
    per: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    cfg_rows: dict[str, list[dict[str, Any]]] = {}
    if cv:
        cfg_rows = _evaluate_configs(series, with_explain)
    for s_i, s in enumerate(series):
        for name in names:
            if cv and name == "auto":
                per[name].append(cfg_rows[DEFAULT_CONFIG][s_i])
                continue
            if cv and name in cfg_rows:
                per[name].append(cfg_rows[name][s_i])
                continue
            logger.info("eval timeseries: %s on %s", name, s.name)
            per[name].append(_safe(name, s, with_explain))
    out = {name: _aggregate(rows, fmt) for name, rows in per.items()}
    result: dict[str, Any] = {"detectors": out, "series": len(series)}
    if cv:
        groups = [group_of(s, fmt) for s in series]
        auc = {c: _by_group(rows, groups, "auc_pr") for c, rows in cfg_rows.items()}
        hr = {c: _by_group(rows, groups, "hitrate@150") for c, rows in cfg_rows.items()}
        autos = [c for c in AUTO_CONFIGS]
        bases = [b for b in registry.CLASSICAL]
        result["cv"] = cross_validate(auc, hr, autos, bases)
        result["cv"]["configs"] = [{"name": c, "members": [dict(m) for m in AUTO_CONFIGS[c]]} for c in autos]
        result["all_in"] = _all_in(auc, hr, autos, bases)
    return result


def _safe(name: str, s: ts_data.Series, with_explain: bool) -> dict[str, Any]:
    try:
        return evaluate_one(name, s, with_explain)
    except ValueError as exc:  # e.g. a series too short for a window: counted, not hidden
        logger.warning("eval timeseries: %s failed on %s: %s", name, s.name, exc)
        return {"error": str(exc)}


# --------------------------------------------------------------------------------------------------------------
# --cv: leave one series group out
# --------------------------------------------------------------------------------------------------------------
_DEFAULT_KNN: dict[str, Any] = dict(MEMBERS[0][2])  # auto's one member as shipped (WindowKNN defaults for the rest)


def _knn(**change: Any) -> dict[str, Any]:
    return {**_DEFAULT_KNN, **change}


# Candidate configurations of ``auto``: name -> WindowKNN parameters of each member (members normalised on their
# own held-out training scores and averaged, as ``AutoDetector`` does). The first is ``auto`` as shipped. A
# multi-member configuration reuses the fitted single-member configurations with the same parameters.
AUTO_CONFIGS: dict[str, tuple[dict[str, Any], ...]] = {
    "knn-w40-k5": (_knn(),),
    "knn-w20-k5": (_knn(window=20),),
    "knn-w80-k5": (_knn(window=80),),
    "knn-w40-k3": (_knn(k=3),),
    "knn-w40-k10": (_knn(k=10),),
    "knn-w40-k5-plain": (_knn(robust=False),),
    "knn-w40-k5-notrim": (_knn(trim=0.0),),
    "multiscale-w20-40-80": (_knn(window=20), _knn(), _knn(window=80)),
}
DEFAULT_CONFIG = next(iter(AUTO_CONFIGS))


class ConfiguredAuto(AutoDetector):
    """``auto`` with one ``WindowKNN`` member of the given parameters (windows shrink for short inputs as in
    ``AutoDetector``). Eval only: not registered, and not saved (its state would load as the shipped ``auto``)."""

    def __init__(self, knn: dict[str, Any] | None = None, threshold: Any = "quantile", threshold_q: float = 0.99
                 ) -> None:
        super().__init__(threshold=threshold, threshold_q=threshold_q)
        self.knn = knn

    def _members(self, n_rows: int) -> list[tuple[str, Any]]:
        p = dict(self.knn if self.knn is not None else _DEFAULT_KNN)
        p["window"] = int(min(p["window"], max(1, n_rows // 4)))
        return [("knn", WindowKNN(**p))]


def _combine(parts: list[AutoDetector]) -> AutoDetector:
    """One ``AutoDetector`` whose members are those of the fitted ``parts`` (each keeps its own normalisation):
    exactly the ensemble ``AutoDetector`` builds from those members, without fitting them again."""
    comb = AutoDetector()
    comb.columns_ = list(parts[0].columns_)
    comb.members_ = [m for p in parts for m in p.members_]
    comb.norm_ = np.vstack([p.norm_ for p in parts])
    comb.threshold_ = float("nan")  # not used by any metric; set so the fitted checks pass
    return comb


def _mean_scores(cols: list[np.ndarray]) -> np.ndarray:
    """``AutoDetector._score`` from its members' normalised scores: the mean of the finite ones per row."""
    m = np.column_stack(cols)
    ok = np.isfinite(m)
    n = ok.sum(axis=1)
    return np.divide(np.where(ok, m, 0.0).sum(axis=1), n, out=np.full(len(m), np.nan), where=n > 0)


def _member_key(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={params[k]}" for k in sorted(params))


def _evaluate_configs(series: list[ts_data.Series], with_explain: bool) -> dict[str, list[dict[str, Any]]]:
    """Rows (one per series, in order) of every configuration in :data:`AUTO_CONFIGS` and every classical baseline.
    Each distinct member is fitted and scores once per series; only the fitted detectors of one series are held."""
    rows: dict[str, list[dict[str, Any]]] = {c: [] for c in [*AUTO_CONFIGS, *registry.CLASSICAL]}
    for s in series:
        fitted: dict[str, tuple[AutoDetector, np.ndarray, float, float] | str] = {}
        for members in AUTO_CONFIGS.values():
            for params in members:
                key = _member_key(params)
                if key in fitted:
                    continue
                logger.info("eval timeseries --cv: knn %s on %s", key, s.name)
                try:
                    t0 = time.perf_counter()
                    det = ConfiguredAuto(knn=params)
                    det.fit(s.train)
                    t1 = time.perf_counter()
                    sc = det.score(s.test).to_numpy()
                    fitted[key] = (det, sc, t1 - t0, time.perf_counter() - t1)
                except ValueError as exc:
                    logger.warning("eval timeseries --cv: knn %s failed on %s: %s", key, s.name, exc)
                    fitted[key] = str(exc)
        for cfg, members in AUTO_CONFIGS.items():
            got = [fitted[_member_key(p)] for p in members]
            errors = [g for g in got if isinstance(g, str)]
            if errors:
                rows[cfg].append({"error": errors[0]})
                continue
            parts = [g for g in got if not isinstance(g, str)]
            ens: AutoDetector = parts[0][0] if len(parts) == 1 else _combine([p[0] for p in parts])
            sc = parts[0][1] if len(parts) == 1 else _mean_scores([p[1] for p in parts])
            rows[cfg].append(_row(ens, s, sc, sum(p[2] for p in parts), sum(p[3] for p in parts), with_explain))
        for name in registry.CLASSICAL:
            logger.info("eval timeseries --cv: %s on %s", name, s.name)
            rows[name].append(_safe(name, s, with_explain))
    return rows


def group_of(s: ts_data.Series, fmt: str) -> str:
    """The series group held out together: the machine on SMD, the folder (category) on NAB."""
    return s.name.split("/", 1)[0] if fmt == "nab" else s.name


def _by_group(rows: list[dict[str, Any]], groups: list[str], metric: str) -> dict[str, float]:
    """Mean of ``metric`` per group over its series (NaN-aware; failed series count as NaN)."""
    out: dict[str, list[float]] = {}
    for r, g in zip(rows, groups, strict=True):
        v = r.get(metric)
        out.setdefault(g, []).append(float("nan") if v is None else float(v))
    return {g: nanmean(v) for g, v in out.items()}


def select_config(auc: dict[str, dict[str, float]], candidates: list[str], groups: list[str]) -> str:
    """The candidate with the best mean AUC-PR over ``groups`` (groups without a figure are skipped); ties and
    candidates without any figure fall back to the earlier candidate (the default first)."""
    if not candidates or not groups:
        raise ValueError("select_config needs at least one candidate and one group")
    means = {c: nanmean([auc[c][g] for g in groups]) for c in candidates}
    scored = [c for c in candidates if np.isfinite(means[c])]
    if not scored:
        return candidates[0]
    return max(scored, key=lambda c: (means[c], -candidates.index(c)))


def _ratio(a: float, b: float) -> float:
    return a / b if np.isfinite(a) and np.isfinite(b) and b > 0 else float("nan")


def cross_validate(auc: dict[str, dict[str, float]], hr: dict[str, dict[str, float]], autos: list[str],
                   bases: list[str]) -> dict[str, Any]:
    """Leave-one-group-out figures from per-configuration group means (``auc``/``hr``: config -> group -> value).

    For each group that has an AUC-PR (both classes), ``auto``'s configuration and the baseline are each selected
    on the other groups only (:func:`select_config`) and the held-out group is scored with them; ``pooled`` is the
    mean over held-out groups, ``ratio`` = auto / baseline there.
    """
    groups = list(next(iter(auc.values())))
    held: dict[str, dict[str, Any]] = {}
    for g in groups:
        if not any(np.isfinite(auc[c][g]) for c in autos):
            continue  # no anomaly in this group: nothing to score it on
        rest = [o for o in groups if o != g]
        a = select_config(auc, autos, rest) if rest else autos[0]
        b = select_config(auc, bases, rest) if rest else bases[0]
        held[g] = {"auto_config": a, "auto_auc_pr": auc[a][g], "auto_hitrate@150": hr[a][g],
                   "baseline": b, "baseline_auc_pr": auc[b][g], "baseline_hitrate@150": hr[b][g]}
    pooled = {k: nanmean([h[k] for h in held.values()]) for k in
              ("auto_auc_pr", "auto_hitrate@150", "baseline_auc_pr", "baseline_hitrate@150")}
    pooled["ratio"] = _ratio(pooled["auto_auc_pr"], pooled["baseline_auc_pr"])
    return {"groups": {g: {k: _finite(v) for k, v in h.items()} for g, h in held.items()},
            "pooled": {k: _finite(v) for k, v in pooled.items()}}


def _all_in(auc: dict[str, dict[str, float]], hr: dict[str, dict[str, float]], autos: list[str], bases: list[str]
            ) -> dict[str, Any]:
    """The default configuration and the best baseline on every group (the baseline is chosen on the figures it
    is scored on, so this ratio flatters the baseline's side), and each configuration's all-in means."""
    groups = [g for g in next(iter(auc.values())) if any(np.isfinite(auc[c][g]) for c in autos)]
    mean = {c: nanmean([auc[c][g] for g in groups]) for c in auc}
    best_base = select_config(auc, bases, groups)
    default = autos[0]
    out = {"auto_config": default, "auto_auc_pr": mean[default],
           "auto_hitrate@150": nanmean([hr[default][g] for g in groups]), "baseline": best_base,
           "baseline_auc_pr": mean[best_base], "ratio": _ratio(mean[default], mean[best_base]),
           "best_auto_config_all_in": select_config(auc, autos, groups)}
    res: dict[str, Any] = {k: _finite(v) for k, v in out.items()}
    res["configs"] = {c: {"auc_pr": _finite(mean[c]), "hitrate@150": _finite(nanmean([hr[c][g] for g in groups]))}
                      for c in auc}
    return res


def render(result: dict[str, Any]) -> Table | Group:
    """A rich table: one row per detector (means over series; times are totals); with ``--cv``, a second one with
    the left-out figures per held-out group, pooled, and all-in."""
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
    if "cv" not in result:
        return table
    return Group(table, _render_cv(result))


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def _render_cv(result: dict[str, Any]) -> Table:
    cv, all_in = result["cv"], result["all_in"]
    t = Table(title="Leave one group out: auto configuration and baseline chosen on the other groups")
    for col in ("held-out group", "auto config", "auto AUC-PR", "auto HR@150", "baseline", "baseline AUC-PR"):
        t.add_column(col, justify="left" if col in ("held-out group", "auto config", "baseline") else "right")
    for g, h in cv["groups"].items():
        t.add_row(g, h["auto_config"], _fmt(h["auto_auc_pr"]), _fmt(h["auto_hitrate@150"]), h["baseline"],
                  _fmt(h["baseline_auc_pr"]))
    p = cv["pooled"]
    t.add_row("[bold]pooled left-out[/bold]", f"ratio {_fmt(p['ratio'])}", _fmt(p["auto_auc_pr"]),
              _fmt(p["auto_hitrate@150"]), "", _fmt(p["baseline_auc_pr"]))
    t.add_row("all-in", f"{all_in['auto_config']} (ratio {_fmt(all_in['ratio'])})", _fmt(all_in["auto_auc_pr"]),
              _fmt(all_in["auto_hitrate@150"]), all_in["baseline"], _fmt(all_in["baseline_auc_pr"]))
    return t
