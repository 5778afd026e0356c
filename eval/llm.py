"""``anomalist eval llm``: zero-shot judgment of a Loghub system's templates.

Ground truth: a template is anomalous when any of its lines carries an alert tag (the ``Label`` column of the
structured CSV is not ``-``; BGL and Thunderbird have it). Every template is judged once by ``LLMService`` as in
triage (redaction, injection filter, prompt, label likelihood or structured output, semantic prior); the verdict
carries the LLM's and the prior's probabilities, so one pass gives all three rows:
- ``llm``: the LLM alone (``p >= 0.5``), ``prior``: the semantic prior alone, ``combined``: the blended verdict.
- baselines: a keyword rule over the template text, and the log level (FATAL/ERROR-like levels).
AUC-PR is computed on the probabilities; precision/recall/F1 on the binary verdicts. Nothing is tuned here.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tools.errors import InputError

logger = logging.getLogger(__name__)

KEYWORDS = re.compile(
    r"(?i)error|fail|fatal|exception|panic|abort|crash|timeout|timed out|refused|denied|kill|segfault|unable"
    r"|cannot|can not|critical|corrupt"
)
BAD_LEVELS = {"FATAL", "ERROR", "ERR", "CRITICAL", "CRIT", "SEVERE", "FAILURE", "EMERG", "ALERT", "PANIC"}
_SEVERITY_ORDER = ["PANIC", "EMERG", "FATAL", "FAILURE", "CRITICAL", "CRIT", "ALERT", "SEVERE", "ERROR", "ERR"]


def _metrics(y: np.ndarray, pred: np.ndarray, score: np.ndarray | None) -> dict[str, float | None]:
    from sklearn.metrics import average_precision_score

    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    auc = float(average_precision_score(y, score)) if score is not None and y.any() else None
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4),
            "auc_pr": None if auc is None else round(auc, 4), "n_flagged": int(pred.sum())}


def load_templates(data: Path, system: str) -> pd.DataFrame:
    """One row per ground-truth template: template, label (or NaN), level, component, count, a sample line."""
    from eval.loghub import load_system

    gt = load_system(data, system, "original").ground_truth()
    if gt.empty:
        raise InputError(f"{system}: the structured CSV is empty")
    has_label = "Label" in gt.columns
    rows = []
    for tpl, g in gt.groupby("EventTemplate", sort=False):
        levels = Counter(g["Level"]) if "Level" in g.columns else Counter()
        comps = Counter(g["Component"]) if "Component" in g.columns else Counter()
        rows.append({
            "template": str(tpl),
            "label": int((g["Label"] != "-").any()) if has_label else np.nan,
            "level": levels.most_common(1)[0][0] if levels else None,
            "bad_level": int(any(str(lv).upper() in BAD_LEVELS for lv in levels)),
            "component": comps.most_common(1)[0][0] if comps else None,
            "count": len(g),
            "sample": str(g["Content"].iloc[0]),
        })
    return pd.DataFrame(rows)


def _settings(backend: str, base_url: str | None, model: str | None) -> Any:
    from agent.settings import load_settings

    llm: dict[str, Any] = {"backend": backend}
    if backend == "openai":
        llm |= {"base_url": base_url, "model": model}
    elif model:
        llm["model_path"] = model
    return load_settings(overrides={"llm": llm}).llm


def run(data: Path, system: str = "BGL", backend: str = "local", base_url: str | None = None,
        model: str | None = None, limit: int | None = None) -> dict[str, Any]:
    """Judge every template of ``system`` and score the LLM, the prior, their combination and two baselines."""
    from agent.llm import LLMError, LLMService
    from agent.llm.schemas import LogFindingInput

    if backend == "openai" and not base_url:
        raise InputError("--backend openai needs --base-url")
    df = load_templates(Path(data), system)
    if limit:
        df = df.head(limit).reset_index(drop=True)
    settings = _settings(backend, base_url, model)
    findings = [LogFindingInput(
        id=f"T{i + 1}",
        templates=[{"id": f"T{i + 1}.T1", "template": r.template, "level": r.level, "component": r.component,
                    "count": int(r.count)}],
        samples=[{"id": f"T{i + 1}.L1", "text": r.sample}] if r.sample != r.template else [],
    ) for i, r in enumerate(df.itertuples())]

    with tempfile.TemporaryDirectory(prefix="anomalist-eval-llm-") as tmp:
        svc = LLMService(settings, cache_dir=Path(tmp))
        t0 = time.perf_counter()
        try:
            svc.judge_log(LogFindingInput(id="W", templates=[{"id": "W.T1", "template": "service started"}]))
        except LLMError as exc:
            raise InputError(f"the LLM backend is unusable: {exc}") from exc
        warmup_s = time.perf_counter() - t0
        base_stats = dict(svc.stats)
        workers = settings.local_instances if backend == "local" else settings.concurrency
        verdicts: list[Any] = [None] * len(findings)
        errors: list[str] = []

        def _one(i: int) -> None:
            try:
                verdicts[i] = svc.judge_log(findings[i])
            except LLMError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

        t0, c0 = time.perf_counter(), time.process_time()
        svc.prime_prior(list(df["template"]))  # one batched embedding pass (part of the judging time)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(_one, range(len(findings))))
        judge_s = time.perf_counter() - t0
        cpu_s = time.process_time() - c0
        stats = {k: svc.stats[k] - base_stats.get(k, 0) for k in svc.stats}
        info = svc.info()

    n = len(findings)
    ok = [v for v in verdicts if v is not None]
    # The prior for every template, as the service computes it (same redaction, memoised: no second pass).
    prior = svc.prior()
    p_prior_all = (prior.score([svc.redactor.redact(svc.injection.strip(t)[0])[0] for t in df["template"]])
                   if prior is not None else np.full(n, np.nan))
    # A failed call flags nothing for the LLM row; the combined row then falls back to the prior, as triage does.
    p_llm = np.array([v.scores.get("llm", v.p_anomalous) if v else 0.0 for v in verdicts])
    p_prior = np.array([v.scores.get("prior", p_prior_all[i]) if v else p_prior_all[i] for i, v in enumerate(verdicts)])
    p_comb = np.array([v.p_anomalous if v else p_prior[i] for i, v in enumerate(verdicts)])
    out: dict[str, Any] = {
        "system": system, "backend": backend, "model": info["model"], "judge_method": info["judge_method"],
        "prompt_version": info["prompts"]["judge_log"], "n_templates": n,
        "n_anomalous": None if df["label"].isna().any() else int(df["label"].sum()),
        "valid_verdicts": round(len(ok) / n, 4) if n else 0.0, "errors": len(errors), "first_error": errors[0] if errors else None,
        "calls_per_s": round(n / judge_s, 3) if judge_s > 0 else None, "judge_seconds": round(judge_s, 2),
        "warmup_seconds": round(warmup_s, 2), "workers": workers, "cpu_seconds": round(cpu_s, 2),
        "judgments_per_cpu_s": round(n / cpu_s, 3) if cpu_s > 0 else None,
        "mean_prompt_tokens": round(stats["prompt_tokens"] / max(n, 1), 1),
        "mean_completion_tokens": round(stats["completion_tokens"] / max(n, 1), 1),
        "cache_hits": stats["cache_hits"], "prior_weight": info["prior_weight"],
        "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    dump = os.environ.get("ANOMALIST_EVAL_LLM_DUMP")
    if dump:  # per-template scores for error analysis (not part of the JSON contract)
        df.assign(p_llm=p_llm, p_prior=p_prior, p_combined=p_comb).to_csv(dump, index=False)
    if out["n_anomalous"] is None:
        out |= {"llm": None, "prior": None, "combined": None, "baselines": None,
                "note": f"{system} has no per-line alert labels: judgments ran, metrics are not defined",
                "flagged_fraction": round(float((p_comb >= 0.5).mean()), 4)}
        return out
    y = df["label"].astype(int).to_numpy()
    kw = np.array([int(bool(KEYWORDS.search(t))) for t in df["template"]])
    lv = df["bad_level"].astype(int).to_numpy()
    out["llm"] = _metrics(y, (p_llm >= 0.5).astype(int), p_llm)
    out["prior"] = None if np.isnan(p_prior).any() else _metrics(y, (p_prior >= 0.5).astype(int), p_prior)
    out["combined"] = _metrics(y, (p_comb >= 0.5).astype(int), p_comb)
    out["baselines"] = {"keyword": _metrics(y, kw, kw.astype(float)), "level": _metrics(y, lv, lv.astype(float))}
    return out


def render(result: dict[str, Any]) -> Any:
    """A rich table of the result."""
    from rich.table import Table

    t = Table(title=f"LLM judgment of {result['system']} templates ({result['model']}, {result['judge_method']})")
    for col in ("method", "precision", "recall", "F1", "AUC-PR", "flagged"):
        t.add_column(col, justify="right" if col != "method" else "left")
    rows = [("LLM", result.get("llm")), ("semantic prior", result.get("prior")), ("combined", result.get("combined"))]
    if result.get("baselines"):
        rows += [("baseline: keyword", result["baselines"]["keyword"]), ("baseline: level", result["baselines"]["level"])]
    for name, m in rows:
        if m is None:
            t.add_row(name, "-", "-", "-", "-", "-")
        else:
            t.add_row(name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}",
                      "-" if m["auc_pr"] is None else f"{m['auc_pr']:.3f}", str(m["n_flagged"]))
    t.caption = (f"{result['n_templates']} templates ({result['n_anomalous']} anomalous); valid verdicts "
                 f"{result['valid_verdicts']:.0%}; {result['calls_per_s']} judgments/s with {result['workers']} workers "
                 f"(load {result['load_avg_1m']}); mean tokens {result['mean_prompt_tokens']} in / "
                 f"{result['mean_completion_tokens']} out; cache hits {result['cache_hits']}")
    return t
