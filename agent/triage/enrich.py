"""Enrichment of the top findings: similar incidents and the runbook (incident store), LLM judgment and
explanation (LLM layer), all optional: any of them failing leaves a degraded flag and the report goes on.

LLM calls are bounded (top k findings, one judgment + one explanation each, one summary), run concurrently up to
the backend's limit, and share one deadline (``settings.triage.llm_budget_s``): calls still running at the
deadline are abandoned (their threads finish in the background; their results are ignored).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from anomalist.agent.llm.schemas import cite
from anomalist.agent.report import (
    DegradedFlag,
    Explanation,
    Finding,
    RunbookRef,
    RunbookStep,
    SimilarIncident,
    Verdict,
)

if TYPE_CHECKING:
    from anomalist.agent.llm import LLMService
    from anomalist.agent.llm.service import CitedText
    from anomalist.agent.seams import IncidentMemory, Judge
    from anomalist.tools.store import IncidentStore
    from anomalist.tools.store.records import IncidentHit, RunbookHit

logger = logging.getLogger(__name__)

MAX_STEPS = 12


def _short(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def finding_query(f: Finding) -> str:
    """Text that describes a finding for retrieval (templates, services, metrics)."""
    parts = [f.title]
    parts += [t.template for t in f.templates[:5]]
    parts += [m.channel for m in f.metrics if m.drove]
    if f.services:
        parts.append("services: " + ", ".join(f.services))
    return "\n".join(parts)


def alert_query(alert: dict[str, Any]) -> str:
    """Text that describes an alert for retrieval: its name as given (an incident listing that alert among its
    symptoms is an exact match), then its name in words, annotations and identifying label values."""
    from anomalist.tools.alerts import Alert, alert_query_text

    a = Alert.coerce(alert)
    return "\n".join(p for p in (a.name or "", alert_query_text(a)) if p).strip()


# ---- incident store --------------------------------------------------------------------------------------------
def open_store(settings: Any) -> IncidentStore:
    """Open the configured incident store (raises ``tools.store.StoreUnavailable`` when it cannot be used)."""
    from anomalist.tools.store import IncidentStore

    return IncidentStore.from_settings(settings)


@dataclass
class Memory:
    incidents: list[SimilarIncident] = field(default_factory=list)
    by_finding: dict[str, list[str]] = field(default_factory=dict)
    runbook: RunbookRef | None = None
    runbook_for: list[str] = field(default_factory=list)


def retrieve(
    store: IncidentMemory, findings: list[Finding], alert: dict[str, Any] | None, k: int,
    degraded: list[DegradedFlag],
) -> Memory:
    """Similar incidents for each finding and for the alert, and the runbook for the alert (else for the top
    finding). Incidents found for the alert only cite no finding (``for_findings`` empty)."""
    mem = Memory()
    by_store_id: dict[str, SimilarIncident] = {}

    def add(hits: list[IncidentHit], fid: str | None) -> None:
        for hit in hits:
            inc = hit.incident
            if inc.id not in by_store_id:
                by_store_id[inc.id] = SimilarIncident(
                    id=f"I{len(by_store_id) + 1}", incident_id=inc.id, title=inc.title, summary=inc.summary[:1000],
                    root_cause=inc.root_cause or None, resolution=inc.resolution or None,
                    services=list(inc.services), started_at=inc.started_at, score=float(hit.score),
                    why=[str(w) for w in hit.why], for_findings=[],
                )
            if fid is not None:
                si = by_store_id[inc.id]
                si.for_findings.append(fid)
                mem.by_finding.setdefault(fid, []).append(si.id)

    try:
        if k > 0:
            for f in findings:
                add(store.similar_incidents(finding_query(f), k=k), f.id)
            query = alert_query(alert) if alert is not None else ""
            if query:
                add(store.similar_incidents(query, k=k), None)
    except Exception as exc:  # noqa: BLE001 - the store is optional evidence
        logger.warning("similar incidents failed: %s", exc)
        degraded.append(DegradedFlag(component="store", name="similar_incidents", reason=_short(exc)))
    mem.incidents = list(by_store_id.values())
    try:
        if alert is not None:
            hits = store.runbook_for(alert)
        elif findings:
            hits = store.search_runbooks(finding_query(findings[0]), k=1)
        else:
            hits = []
        if hits:
            mem.runbook = _runbook_ref(hits[0])
            mem.runbook_for = [findings[0].id] if findings else []
    except Exception as exc:  # noqa: BLE001
        logger.warning("runbook lookup failed: %s", exc)
        degraded.append(DegradedFlag(component="store", name="runbook", reason=_short(exc)))
    return mem


def _runbook_ref(hit: RunbookHit) -> RunbookRef:
    rb = hit.runbook
    steps: list[RunbookStep] = []
    for name, sec in rb.sections.items():
        texts = list(sec.steps) or [sec.text]
        for t in texts:
            t = t.strip()
            if t and len(steps) < MAX_STEPS:
                steps.append(RunbookStep(id=f"R1.S{len(steps) + 1}", section=str(name).title(), text=t[:800]))
    return RunbookRef(
        id="R1", runbook_id=rb.id, title=rb.title, source=rb.url or rb.source or None, score=float(hit.score),
        why=[str(w) for w in hit.why], steps=steps,
    )


# ---- LLM ---------------------------------------------------------------------------------------------------------
def build_llm(settings: Any) -> LLMService:
    """The LLM layer's service for these settings (raises when it cannot be built)."""
    from anomalist.agent.llm import LLMService

    return LLMService(settings.llm, settings.llm_cache_dir)


@dataclass
class Judged:
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    explanations: dict[str, Explanation] = field(default_factory=dict)
    summary: Explanation | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    model: str | None = None
    backend: str | None = None


def judge_findings(
    llm: Judge,
    findings: list[Finding],
    valid_ids: set[str],
    budget_s: float,
    concurrency: int,
    degraded: list[DegradedFlag],
    summary_input: Callable[[], Any] | None = None,
    explain_k: int | None = None,
    examples: dict[str, list[str]] | None = None,
) -> Judged:
    """LLM verdicts and explanations for ``findings`` (the top k) within ``budget_s`` seconds in total.

    ``examples``: per finding id, labelled past incidents (see ``incident_examples``) that its explanation gets as
    few-shot context."""
    out = Judged()
    info = _safe(llm.info)
    out.model = info.get("model") if info is not None else None
    out.backend = info.get("backend") if info is not None else None
    deadline = time.monotonic() + max(budget_s, 0.0)
    stop = threading.Event()
    errors: list[str] = []
    pool = _DaemonPool(max(1, concurrency))
    futures: dict[Future[Any], tuple[str, str]] = {}
    try:
        # Judgments first (they rank and label findings), then explanations; calls run in this order.
        for f in findings:
            g = llm_view(f)
            futures[pool.submit(_guarded, stop, errors, llm.judge_log if g.templates else llm.judge_metric, g)] = (f.id, "judge")
        for f in findings[: len(findings) if explain_k is None else explain_k]:
            ex = (examples or {}).get(f.id) or None
            futures[pool.submit(_guarded, stop, errors, _explain, llm, llm_view(f), ex)] = (f.id, "explain")
        done, not_done = wait_futures(futures, timeout=max(deadline - time.monotonic(), 0.0))
        for fut in done:
            fid, kind = futures[fut]
            res = fut.result()
            if res is None:
                continue
            if kind == "judge":
                out.verdicts[fid] = _verdict(res, valid_ids, fid)
                _prompt(out, res)
            else:
                e = _explanation(res, valid_ids, fid)
                if e is not None:
                    out.explanations[fid] = e
                    _prompt(out, res)
        if not_done:
            stop.set()
            for fut in not_done:
                fut.cancel()
            degraded.append(DegradedFlag(component="llm", name="budget", reason=(
                f"{len(not_done)} of {len(futures)} LLM calls did not finish within the {budget_s:g}s budget")))
        if summary_input is not None and not stop.is_set() and time.monotonic() < deadline:
            fut = pool.submit(_guarded, stop, errors, llm.summarize, *summary_input())
            try:
                res = fut.result(timeout=max(deadline - time.monotonic(), 0.0))
                out.summary = _explanation(res, valid_ids, None) if res is not None else None
                if res is not None:
                    _prompt(out, res)
            except FutureTimeout:
                stop.set()
                degraded.append(DegradedFlag(component="llm", name="summary", reason=f"summary not done within the {budget_s:g}s budget"))
    finally:
        pool.shutdown()
    if errors:
        degraded.append(DegradedFlag(component="llm", name="calls", reason=f"{len(errors)} LLM call(s) failed; first: {errors[0]}"))
    return out


class _DaemonPool:
    """A few daemon worker threads: a call abandoned at the deadline never keeps the process from exiting
    (``ThreadPoolExecutor`` joins its workers at interpreter exit, so a stalled LLM call would hold the CLI)."""

    def __init__(self, workers: int):
        self._q: queue.Queue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = queue.Queue()
        self._threads = [threading.Thread(target=self._work, name=f"triage-llm-{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        self._q.put((fut, fn, args))
        return fut

    def _work(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            fut, fn, args = item
            if not fut.set_running_or_notify_cancel():
                continue  # cancelled at the deadline before it started
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - delivered to the waiting side
                fut.set_exception(exc)

    def shutdown(self) -> None:
        """Let the workers exit once the queue is drained (cancelled items are skipped); never waits."""
        for _ in self._threads:
            self._q.put(None)


LLM_TEMPLATES = 4
LLM_METRICS = 4


def llm_view(f: Finding) -> Finding:
    """The part of a finding the LLM sees: its most telling templates (new and severe first, one sample line
    each) and metrics. Prompt length is what a small CPU model pays for; the ids stay those of the report."""
    return f.model_copy(update={
        "templates": [t.model_copy(update={"samples": t.samples[:1]}) for t in f.templates[:LLM_TEMPLATES]],
        "metrics": sorted(f.metrics, key=lambda m: (not m.drove, -abs(m.change or 0.0)))[:LLM_METRICS],
    })


def _safe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001
        return None


def _guarded(stop: threading.Event, errors: list[str], fn: Callable[..., Any], *args: Any) -> Any:
    """Run one LLM call unless the budget ran out or the LLM proved unavailable; errors are collected."""
    if stop.is_set():
        return None
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - typed LLM errors and anything else: the triage goes on
        from anomalist.agent.llm.errors import LLMUnavailable

        errors.append(_short(exc))
        if isinstance(exc, LLMUnavailable):
            stop.set()  # circuit open: do not queue more calls on a dead backend
        return None


def _explain(llm: Judge, f: Finding, examples: list[str] | None = None) -> Explanation:
    return llm.explain([f], None, examples=examples)


def incident_examples(memory: Memory, k: int = 3) -> dict[str, list[str]]:
    """Per finding id, its retrieved past incidents as labelled few-shot examples for the explanation prompt:
    "[I1] past incident ID: title. Root cause: ... Resolution: ..." (bounded), best first."""
    by_id = {i.id: i for i in memory.incidents}
    out: dict[str, list[str]] = {}
    for fid, ids in memory.by_finding.items():
        rows = []
        for iid in ids[:k]:
            inc = by_id.get(iid)
            if inc is None:
                continue
            text = f"[{inc.id}] past incident {inc.incident_id}: {inc.title}."
            if inc.root_cause:
                text += f" Root cause: {inc.root_cause[:200]}."
            if inc.resolution:
                text += f" Resolution: {inc.resolution[:200]}."
            rows.append(text[:600])
        if rows:
            out[fid] = rows
    return out


def _prompt(out: Judged, res: Verdict | Explanation | CitedText) -> None:
    if res.prompt_name and res.prompt_version:
        out.prompts[res.prompt_name] = res.prompt_version


def _verdict(res: Verdict, valid: set[str], fid: str) -> Verdict:
    ids, who, rejected = cite(res.evidence_ids, valid, [fid])
    # One Verdict type: the LLM layer's, kept with its provenance; its evidence ids narrowed to the report's.
    return res.model_copy(update={"confidence": float(min(max(res.confidence, 0.0), 1.0)),
                                  "category": res.category or "unknown", "reason": res.reason[:1000],
                                  "evidence_ids": ids, "cited": "filled" if res.cited == "filled" else who,
                                  "rejected_ids": [*res.rejected_ids, *rejected]})


def _explanation(res: Explanation | CitedText, valid: set[str], fid: str | None) -> Explanation | None:
    text = str(res) if isinstance(res, str) else res.text
    if not text.strip():
        return None
    cited, who, rejected = cite(res.evidence_ids, valid, [fid] if fid is not None else [])
    if not cited:
        return None  # a claim without evidence stays out of the report
    prior = res if isinstance(res, Explanation) else None
    return Explanation(text=_dedupe_sentences(str(text))[:2000], evidence_ids=cited, source="llm",
                       cited="filled" if prior is not None and prior.cited == "filled" else who,
                       rejected_ids=[*(prior.rejected_ids if prior is not None else []), *rejected])


def _dedupe_sentences(text: str) -> str:
    """Small models loop ("X. X. X."): keep each sentence once, in order."""
    import re

    seen: set[str] = set()
    out: list[str] = []
    for sent in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
        key = sent.strip().lower()
        if key and key not in seen:
            seen.add(key)
            out.append(sent.strip())
    return " ".join(out)
