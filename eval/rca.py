"""``anomalist eval rca``: root-cause localisation on real fault-injection data, through the same ``triage()``.

For each labelled case of a Nezha-style export (``eval.nezha``): write the telemetry of all pods from 15 minutes
before to 5 minutes after ``inject_time`` as a cluster writes it (pod log files, per-pod metric files, spans),
triage it against the fault-free phase (``normal/``) as the baseline, and score the report's ranked root-cause
candidates against the label:

- AC@k: the share of cases whose injected service is among the first k candidates (k = 1, 3); Avg@5 the mean of
  AC@1..AC@5 (the RCA literature's AS@k / Avg@k).
- fault-kind accuracy: the first candidate's kind against the injected type (``return``/``exception`` -> code,
  ``cpu_*`` -> cpu, ...).
- onset error: minutes between the first candidate's onset and ``inject_time`` (and the same for the candidate
  that names the injected service, when there is one).
- seconds per case (the whole triage, embedded LLM included).
- finding@1: the share of cases whose first finding (the report's ranked anomalies, not the root-cause list) is
  the injected fault: its span overlaps ``[inject_time, +5 min)`` and it names the injected service; once as the
  report ranks them (the incident at hand first, ``agent.triage.rank.incident_focus``) and once by the findings'
  totals alone (the triage weights), so both are checked on real faults, not only on the demo.

Two plain baselines are scored in the same run, on the same inputs: the service with the most *new* error-level
log lines (events absent from the baseline), and the pod with the largest metric z-shift (|mean in the batch -
baseline mean| / baseline SD, the largest over its channels).

Leave-one-fault-type-out (``--lofo``, default on): the ranking's constants (``agent.rca.RCAParams``) are chosen on
a small grid by AC@1 (then Avg@5) over the cases of the other fault types and scored on the held-out type; the
figures of the held-out types are pooled. No label is read by the triage; the grid search only re-ranks the
evidence the triage computed.
"""

from __future__ import annotations

import itertools
import logging
import math
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Group
from rich.table import Table

from anomalist.eval.nezha import Case, NezhaData

logger = logging.getLogger(__name__)

K = 5


def run(data: Path, *, cases: list[str] | None = None, limit: int | None = None, lofo: bool = True,
        llm_backend: str = "local", base_url: str | None = None, model: str | None = None) -> dict[str, Any]:
    """Evaluate root-cause localisation on the export at ``data``; returns the JSON object of the suite."""
    from anomalist.agent.baseline import Baseline
    from anomalist.agent.settings import load_settings
    from anomalist.agent.triage import triage

    ds = NezhaData.load(data)
    chosen = [c for c in ds.cases if not cases or c.id in cases or c.inject_time.strftime("%H:%M") in cases]
    if limit:
        chosen = chosen[:limit]
    work = Path(tempfile.mkdtemp(prefix="anomalist-eval-rca-"))
    llm: dict[str, Any] = {"backend": llm_backend}
    if base_url:
        llm["base_url"] = base_url
    if model:
        llm["model"] = model
    settings = load_settings(overrides={"data_dir": str(work / "data"), "llm": llm})
    t0 = time.perf_counter()
    normal = ds.write_normal(work / "normal")
    baseline = Baseline.build(settings, logs=[normal.logs] if normal.logs else None, metrics=normal.metrics,
                              traces=normal.traces)
    baseline_s = time.perf_counter() - t0
    rows: list[dict[str, Any]] = []
    kept: list[tuple[Case, Any]] = []
    for case in chosen:
        out = work / case.id
        w = ds.write_case(case, out)
        t = time.perf_counter()
        diag: dict[str, Any] = {}
        report = triage([w.logs] if w.logs else None, w.metrics, settings=settings, traces=w.traces,
                        baseline=baseline, diagnostics=diag)
        secs = time.perf_counter() - t
        ctx = diag.get("rca")
        row = _score_case(case, [(c.service, c.kind, pd.Timestamp(c.onset)) for c in report.root_causes], secs)
        row.update(_finding_checks(case, report.findings))
        row["notes"] = w.notes
        row["log_records"], row["spans"], row["metric_files"] = w.log_records, w.spans, w.metric_files
        row["degraded"] = [f"{d.component}:{d.name}" for d in report.degraded]
        if ctx is not None and ctx.inputs is not None:
            row["baseline_new_errors"] = _rank_of(case.service, new_error_ranking(ctx.inputs))
            row["baseline_metric_z"] = _rank_of(case.service, metric_z_ranking(ctx.inputs))
            kept.append((case, ctx))
        rows.append(row)
        logger.info("%s %s %s: rank %s (%.1fs)", case.id, case.service, case.fault_type, row["rank"], secs)
    result: dict[str, Any] = {
        "data": str(data), "cases": rows, "total": _totals(rows),
        "baselines": {
            "most_new_error_lines": _rank_totals([r.get("baseline_new_errors") for r in rows]),
            "largest_metric_z_shift": _rank_totals([r.get("baseline_metric_z") for r in rows]),
        },
        "baseline_seconds": round(baseline_s, 2), "notes": ds.notes + normal.notes,
        "llm_backend": llm_backend,
    }
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_type.setdefault(r["fault_type"], []).append(r)
    result["by_fault_type"] = {k: _totals(v) for k, v in sorted(by_type.items())}
    better = max(result["baselines"]["most_new_error_lines"]["ac@1"], result["baselines"]["largest_metric_z_shift"]["ac@1"])
    result["total"]["ratio_vs_best_baseline_ac@1"] = (round(result["total"]["ac@1"] / better, 3) if better else None)
    if lofo and len(by_type) > 1 and kept:
        from anomalist.agent.rca import compute_signals

        sigs = [(case, ctx.inputs, compute_signals(ctx.inputs)) for case, ctx in kept]
        result["lofo"] = leave_one_type_out(sigs, GRID)
        result["lofo_scales"] = leave_one_type_out(sigs, SCALE_GRID)
    return result


# ---- scoring ---------------------------------------------------------------------------------------------------
def _rank_of(service: str, ranking: list[str]) -> int | None:
    return ranking.index(service) + 1 if service in ranking else None


def _score_case(case: Case, cands: list[tuple[str, str, pd.Timestamp]], secs: float) -> dict[str, Any]:
    services = [s for s, _, _ in cands]
    rank = _rank_of(case.service, services)
    top = cands[0] if cands else None
    true = next((c for c in cands if c[0] == case.service), None)
    return {
        "id": case.id, "inject_time": case.inject_time.isoformat(sep=" "), "service": case.service,
        "fault_type": case.fault_type, "kind": case.kind, "rank": rank,
        "top": [{"service": s, "kind": k, "onset": o.isoformat(sep=" ")} for s, k, o in cands[:K]],
        "kind_predicted": top[1] if top else None, "kind_correct": bool(top and top[1] == case.kind),
        "onset_error_min": _minutes(top[2], case.inject_time) if top else None,
        "onset_error_min_true_service": _minutes(true[2], case.inject_time) if true else None,
        "seconds": round(secs, 2),
    }


def _minutes(a: pd.Timestamp, b: pd.Timestamp) -> float:
    return round(abs((a - b).total_seconds()) / 60.0, 2)


def _rank_totals(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks) or 1
    ac = {k: sum(1 for r in ranks if r is not None and r <= k) / n for k in range(1, K + 1)}
    return {"ac@1": round(ac[1], 4), "ac@3": round(ac[3], 4), "avg@5": round(float(np.mean(list(ac.values()))), 4)}


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = dict(_rank_totals([r["rank"] for r in rows]))
    out["n"] = len(rows)
    out["kind_accuracy"] = round(float(np.mean([r["kind_correct"] for r in rows])), 4) if rows else None
    on = [r["onset_error_min"] for r in rows if r["onset_error_min"] is not None]
    out["onset_error_min_p50"] = round(float(np.median(on)), 2) if on else None
    out["onset_error_min_p90"] = round(float(np.quantile(on, 0.9)), 2) if on else None
    ont = [r["onset_error_min_true_service"] for r in rows if r["onset_error_min_true_service"] is not None]
    out["onset_error_min_p50_true_service"] = round(float(np.median(ont)), 2) if ont else None
    if rows and "top_finding_is_fault" in rows[0]:
        out["finding@1"] = round(float(np.mean([r["top_finding_is_fault"] for r in rows])), 4)
        out["finding@1_by_total"] = round(float(np.mean([r["top_finding_is_fault_by_total"] for r in rows])), 4)
        out["fault_in_findings"] = round(float(np.mean([r["fault_in_findings"] for r in rows])), 4)
    secs = [r["seconds"] for r in rows]
    out["seconds_per_case"] = round(float(np.mean(secs)), 2) if secs else None
    out["seconds_per_case_max"] = round(float(np.max(secs)), 2) if secs else None
    return out


def _finding_checks(case: Case, findings: list[Any]) -> dict[str, Any]:
    """Whether the report's first finding is the injected fault: its span overlaps [inject_time, +5 min) and it
    names the injected service. Once as ranked (focus first, see ``agent.triage.rank``), once by totals alone."""
    lo, hi = case.inject_time, case.inject_time + pd.Timedelta(minutes=5)

    def is_fault(f: Any) -> bool:
        return bool(pd.Timestamp(f.start) < hi and pd.Timestamp(f.end) > lo and case.service in f.services)

    by_total = sorted(findings, key=lambda f: -f.scores.total)
    return {"findings": len(findings),
            "top_finding_is_fault": bool(findings) and is_fault(findings[0]),
            "top_finding_is_fault_by_total": bool(by_total) and is_fault(by_total[0]),
            "fault_in_findings": any(is_fault(f) for f in findings)}


# ---- plain baselines (same inputs as the triage's root-cause stage) ---------------------------------------------
def new_error_ranking(inp: Any) -> list[str]:
    """Services by their number of new error-level log lines (events the baseline never had), most first."""
    from anomalist.agent.rca.evidence import level_class

    if inp.log_cells is None or inp.base_log_cells is None:
        return []
    cells = inp.log_cells.groupby(level=[1, 2]).sum()
    known = set(inp.base_log_cells.index)
    counts: dict[str, int] = {}
    for (svc, ev), n in cells.items():
        if (svc, ev) not in known and level_class(inp.levels.get(ev)) == "error":
            counts[str(svc)] = counts.get(str(svc), 0) + int(n)
    return [s for s, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n > 0]


def metric_z_ranking(inp: Any) -> list[str]:
    """Services by the largest plain z-shift of one of their pods' channels, largest first."""
    if inp.metrics is None or inp.base_metrics is None:
        return []
    best: dict[str, float] = {}
    for c in inp.metrics.columns:
        ent = inp.entity_of.get(str(c))
        if not ent or c not in inp.base_metrics.columns:
            continue
        b = inp.base_metrics[c].to_numpy(dtype="float64")
        b = b[np.isfinite(b)]
        x = inp.metrics[c].to_numpy(dtype="float64")
        x = x[np.isfinite(x)]
        if len(b) < 2 or not len(x):
            continue
        sd = float(b.std())
        if not sd > 0:
            continue
        z = abs(float(x.mean()) - float(b.mean())) / sd
        svc = inp.service_of_entity.get(ent, ent)
        best[svc] = max(best.get(svc, 0.0), z)
    return [s for s, _ in sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))]


# ---- leave one fault type out ------------------------------------------------------------------------------------
GRID: dict[str, tuple[Any, ...]] = {
    "log_scale": (2.0, 3.0, 4.0),
    "metric_scale": (5.0, 10.0, 20.0),
    "recency": (("decay", 5.0), ("decay", 10.0), ("ongoing", 10.0)),
    "mentions": ("emitter", "named", "ignore"),
    "common_mode": (False, True),
    "propagation": (0.0, 0.5),
}
"""The ranking constants the protocol chooses among (everything else in the analysis is a statistic);
``recency`` pairs are (recency, half_life_min)."""


SCALE_GRID: dict[str, tuple[Any, ...]] = {k: GRID[k] for k in ("log_scale", "metric_scale", "recency")}
"""The constants that are scales (the mechanism switches stay at their defaults)."""


def _params(values: dict[str, Any]) -> Any:
    from anomalist.agent.rca import RCAParams

    d = dict(values)
    d["recency"], d["half_life_min"] = d.pop("recency")
    return RCAParams(**d)


def leave_one_type_out(sigs: list[tuple[Case, Any, Any]], grid: dict[str, tuple[Any, ...]]) -> dict[str, Any]:
    """Choose ``RCAParams`` on ``grid`` over all fault types but one, score on that one; pooled over the held-out
    types. ``sigs``: (case, RCA inputs, their ``compute_signals`` output) per case."""
    from anomalist.agent.rca import RCAParams, analyze

    keys = list(grid)
    configs = [_params({**dict(zip(keys, values, strict=True)), **({} if "recency" in keys else {"recency": ("decay", 5.0)})})
               for values in itertools.product(*grid.values())]
    ranks: dict[int, list[int | None]] = {}
    for i, p in enumerate(configs):
        ranks[i] = [_rank_of(case.service, [c.service for c in analyze(inp, p, limit=K, signals=sg).candidates])
                    for case, inp, sg in sigs]
    types = sorted({case.fault_type for case, _, _ in sigs})
    default = RCAParams()
    d_idx = next((i for i, p in enumerate(configs) if p == default), None)
    folds: dict[str, Any] = {}
    pooled: list[int | None] = []
    for held in types:
        train = [j for j, (case, _, _) in enumerate(sigs) if case.fault_type != held]
        test = [j for j, (case, _, _) in enumerate(sigs) if case.fault_type == held]
        best = max(range(len(configs)), key=lambda i: (_objective([ranks[i][j] for j in train]), i == d_idx))
        held_ranks = [ranks[best][j] for j in test]
        pooled += held_ranks
        folds[held] = {"n": len(test), "chosen": asdict(configs[best]), "held_out": _rank_totals(held_ranks),
                       "train": _rank_totals([ranks[best][j] for j in train])}
    all_best = max(range(len(configs)), key=lambda i: (_objective(ranks[i]), i == d_idx))
    return {
        "grid": {k: [list(x) if isinstance(x, tuple) else x for x in v] for k, v in grid.items()},
        "configs": len(configs), "folds": folds,
        "held_out_pooled": _rank_totals(pooled),
        "all_in_best": {"params": asdict(configs[all_best]), **_rank_totals(ranks[all_best])},
        "default": {"params": asdict(default), **(_rank_totals(ranks[d_idx]) if d_idx is not None else {})},
    }


def _objective(ranks: list[int | None]) -> tuple[float, float]:
    t = _rank_totals(ranks)
    return (t["ac@1"], t["avg@5"])


# ---- rendering ---------------------------------------------------------------------------------------------------
def render(result: dict[str, Any]) -> Any:
    t = Table(title=f"Root-cause localisation: {len(result['cases'])} cases ({result['data']})")
    for col in ("case", "true service", "type", "rank", "top candidate", "kind", "onset err (min)", "s"):
        t.add_column(col)
    for r in result["cases"]:
        top = r["top"][0] if r["top"] else {"service": "-", "kind": "-"}
        t.add_row(r["inject_time"][11:16], r["service"], r["fault_type"], str(r["rank"] or "-"), top["service"],
                  f"{r['kind_predicted'] or '-'}{'' if r['kind_correct'] else ' ✗'}",
                  "-" if r["onset_error_min"] is None else f"{r['onset_error_min']:.1f}", f"{r['seconds']:.1f}")
    s = Table(title="Totals")
    for col in ("", "AC@1", "AC@3", "Avg@5", "kind acc", "onset p50", "onset p90", "s/case"):
        s.add_column(col)
    tot = result["total"]
    s.add_row("anomalist", _f(tot["ac@1"]), _f(tot["ac@3"]), _f(tot["avg@5"]), _f(tot["kind_accuracy"]),
              _f(tot["onset_error_min_p50"]), _f(tot["onset_error_min_p90"]), _f(tot["seconds_per_case"]))
    for name, b in result["baselines"].items():
        s.add_row(name, _f(b["ac@1"]), _f(b["ac@3"]), _f(b["avg@5"]), "", "", "", "")
    for key, label in (("lofo_scales", "leave-one-type-out, scales"), ("lofo", "leave-one-type-out, all options")):
        if key in result:
            lo = result[key]["held_out_pooled"]
            s.add_row(label, _f(lo["ac@1"]), _f(lo["ac@3"]), _f(lo["avg@5"]), "", "", "", "")
    return Group(t, s)


def _f(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"
