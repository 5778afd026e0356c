"""``anomalist eval llm``: zero-shot judgment of labelled log templates, on two sets side by side.

The sets (:mod:`eval.llm_sets`, where the labelling rules are written down): ``bgl``, the Loghub-2k BGL templates (a
template is anomalous when any of its lines carries an alert tag), and ``nezha``, the Nezha TrainTicket templates
(normal = seen in the fault-free phase; anomalous = written only by the root-cause service during code-level fault
windows). Every template is judged once by ``LLMService`` as in triage (redaction, injection filter, prompt, label
likelihood or structured output, semantic prior); the verdict carries the LLM's and the prior's probabilities, so
one pass gives all three rows:
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anomalist.eval.llm_sets import SET_NAMES, SetName
from anomalist.tools.errors import InputError

logger = logging.getLogger(__name__)

KEYWORDS = re.compile(
    r"(?i)error|fail|fatal|exception|panic|abort|crash|timeout|timed out|refused|denied|kill|segfault|unable"
    r"|cannot|can not|critical|corrupt"
)


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
    """One row per ground-truth template of a Loghub system (see :func:`eval.llm_sets.loghub_templates`)."""
    from anomalist.eval.llm_sets import loghub_templates

    return loghub_templates(data, system)


def _head(df: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """At most ``limit`` templates, the first ones of each label in the set's proportion (a quick check still has
    both classes)."""
    if not limit or limit >= len(df):
        return df
    if df["label"].isna().any() or df["label"].nunique() < 2:
        return df.head(limit).reset_index(drop=True)
    pos = df.index[df["label"] == 1]
    n_pos = min(len(pos), max(1, round(limit * len(pos) / len(df))))
    keep = set(pos[:n_pos]) | set(df.index[df["label"] == 0][: limit - n_pos])
    return df.loc[sorted(keep)].reset_index(drop=True)


def _settings(backend: str, base_url: str | None, model: str | None) -> Any:
    from anomalist.agent.settings import load_settings

    llm: dict[str, Any] = {"backend": backend}
    if backend == "openai":
        llm |= {"base_url": base_url, "model": model}
    elif model:
        llm["model_path"] = model
    return load_settings(overrides={"llm": llm}).llm


def run(data: Path, system: str = "BGL", backend: str = "local", base_url: str | None = None,
        model: str | None = None, limit: int | None = None) -> dict[str, Any]:
    """Judge every template of the Loghub ``system`` and score the LLM, the prior, their combination and two
    baselines (one set; :func:`run_sets` runs several side by side)."""
    df = _head(load_templates(Path(data), system), limit)
    with _Judge(backend, base_url, model) as judge:
        return judge.score(df, system)


def run_sets(sets: list[SetName], data: Path | None = None, nezha: Path | None = None, backend: str = "local",
             base_url: str | None = None, model: str | None = None, limit: int | None = None,
             system: str = "BGL") -> dict[str, Any]:
    """Judge the chosen labelled sets with one LLM service: ``{"sets": {name: result}}`` where each result has the
    keys of :func:`run` (``llm``, ``prior``, ``combined``, ``baselines`` with precision/recall/f1/auc_pr).

    Args:
        sets: names from ``eval.llm_sets.SET_NAMES``.
        data: the Loghub-2k folder (for ``bgl``); system: its system (default BGL; any with a ``Label`` column).
        nezha: the Nezha export folder (for ``nezha``).
        limit: judge at most this many templates per set (both labels kept, in proportion).
    """
    from anomalist.eval.llm_sets import nezha_templates

    if not sets:
        raise ValueError("sets must name at least one set")
    bad = [s for s in sets if s not in SET_NAMES]
    if bad:
        raise ValueError(f"unknown set(s) {bad}; choose from {list(SET_NAMES)}")
    frames: dict[SetName, tuple[pd.DataFrame, str, float]] = {}
    for name in sets:
        t0 = time.perf_counter()
        if name == "bgl":
            if data is None:
                raise InputError("set bgl needs the Loghub-2k folder (--data)")
            df, label = load_templates(Path(data), system), system
        else:
            if nezha is None:
                raise InputError("set nezha needs the Nezha export folder (--nezha)")
            df, label = nezha_templates(Path(nezha)), "Nezha TrainTicket"
        frames[name] = (_head(df, limit), label, time.perf_counter() - t0)
    out: dict[str, Any] = {"sets": {}}
    with _Judge(backend, base_url, model) as judge:
        for name, (df, label, build_s) in frames.items():
            out["sets"][name] = judge.score(df, label) | {"set": name, "build_seconds": round(build_s, 2)}
    return out


def _text(value: Any) -> str | None:
    """A column value as text, or None where the set has none (None or NaN)."""
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


class _Judge:
    """One ``LLMService`` (warmed up once, temporary cache) that scores labelled template frames."""

    def __init__(self, backend: str, base_url: str | None, model: str | None) -> None:
        self.backend = backend
        self.base_url = base_url
        self.model = model

    def __enter__(self) -> _Judge:
        from anomalist.agent.llm import LLMError, LLMService
        from anomalist.agent.llm.schemas import LogFindingInput

        if self.backend == "openai" and not self.base_url:
            raise InputError("--backend openai needs --base-url")
        self.settings = _settings(self.backend, self.base_url, self.model)
        self._tmp = tempfile.TemporaryDirectory(prefix="anomalist-eval-llm-")
        self.svc = LLMService(self.settings, cache_dir=Path(self._tmp.name))
        t0 = time.perf_counter()
        try:
            self.svc.judge_log(LogFindingInput(id="W", templates=[{"id": "W.T1", "template": "service started"}]))
        except LLMError as exc:
            self._tmp.cleanup()
            raise InputError(f"the LLM backend is unusable: {exc}") from exc
        self.warmup_s = time.perf_counter() - t0
        return self

    def __exit__(self, *exc: object) -> None:
        self._tmp.cleanup()

    def score(self, df: pd.DataFrame, system: str) -> dict[str, Any]:
        """Judge every row of ``df`` (columns of :func:`eval.llm_sets.loghub_templates`) and score the rows."""
        from anomalist.agent.llm import LLMError
        from anomalist.agent.llm.schemas import LogFindingInput

        svc, settings, backend = self.svc, self.settings, self.backend
        findings = [LogFindingInput(
            id=f"T{i + 1}",
            templates=[{"id": f"T{i + 1}.T1", "template": r.template, "level": _text(r.level),
                        "component": _text(r.component), "count": int(r.count)}],
            samples=[{"id": f"T{i + 1}.L1", "text": r.sample}] if r.sample != r.template else [],
        ) for i, r in enumerate(df.itertuples())]
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
        return _result(df, system, backend, info, svc, verdicts, errors, stats, judge_s, cpu_s, self.warmup_s, workers)


def _result(df: pd.DataFrame, system: str, backend: str, info: dict[str, Any], svc: Any, verdicts: list[Any],
            errors: list[str], stats: dict[str, int], judge_s: float, cpu_s: float, warmup_s: float,
            workers: int) -> dict[str, Any]:
    n = len(df)
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
    if dump:  # per-template scores for error analysis (not part of the JSON contract); "{system}" in the path
        dump = dump.replace("{system}", re.sub(r"\W+", "_", system))  # keeps one file per set
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


_ROWS = (("LLM", "llm"), ("semantic prior", "prior"), ("combined", "combined"))


def _rows(result: dict[str, Any]) -> list[tuple[str, dict[str, Any] | None]]:
    rows = [(name, result.get(key)) for name, key in _ROWS]
    base = result.get("baselines") or {}
    return rows + [("baseline: keyword", base.get("keyword")), ("baseline: level", base.get("level"))]


def _caption(result: dict[str, Any]) -> str:
    return (f"{result['system']}: {result['n_templates']} templates ({result['n_anomalous']} anomalous); valid verdicts "
            f"{result['valid_verdicts']:.0%}; {result['calls_per_s']} judgments/s with {result['workers']} workers "
            f"(load {result['load_avg_1m']}); mean tokens {result['mean_prompt_tokens']} in / "
            f"{result['mean_completion_tokens']} out; cache hits {result['cache_hits']}")


def render(result: dict[str, Any]) -> Any:
    """A rich table of the result: one set (:func:`run`), or several side by side (:func:`run_sets`)."""
    from rich.table import Table

    results = list(result["sets"].values()) if "sets" in result else [result]
    first = results[0]
    names = " and ".join(r["system"] for r in results)
    t = Table(title=f"LLM judgment of {names} templates ({first['model']}, {first['judge_method']})")
    t.add_column("method")
    for r in results:
        for col in ("P", "R", "F1", "AUC-PR", "flagged"):
            t.add_column(f"{r.get('set', r['system'])} {col}" if len(results) > 1 else col, justify="right")
    per_set = [_rows(r) for r in results]
    for k, (name, _) in enumerate(per_set[0]):
        cells = [name]
        for rows in per_set:
            m = rows[k][1]
            cells += (["-"] * 5 if m is None else [
                f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}",
                "-" if m["auc_pr"] is None else f"{m['auc_pr']:.3f}", str(m["n_flagged"])])
        t.add_row(*cells)
    t.caption = "\n".join(_caption(r) for r in results)
    return t
