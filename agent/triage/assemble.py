"""Triage assembly: the findings, memory and LLM judgments become one :class:`~agent.report.TriageReport`; the
summary is composed from the evidence (every claim cites an id); the alert-only report."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd

from anomalist.agent import __version__
from anomalist.agent.report import (
    AlertRef,
    DegradedFlag,
    Explanation,
    Finding,
    InputSummary,
    RootCause,
    Severity,
    StageTiming,
    TriageReport,
    Versions,
    max_severity,
)
from anomalist.agent.settings import Settings
from anomalist.agent.triage.enrich import Judged, Memory
from anomalist.agent.triage.evidence import build_timeline
from anomalist.agent.triage.inputs import LogData
from anomalist.agent.triage.rank import W_LLM, finding_severity, rank_findings


def assemble(
    settings: Settings, findings: list[Finding], memory: Memory, judged: Judged | None, alert_ref: AlertRef | None,
    inputs: InputSummary, logdata: LogData | None, mdf: pd.DataFrame | None, detectors_ran: list[str], *,
    degraded: list[DegradedFlag], timings: dict[str, float], redact: Callable[[str], str],
) -> TriageReport:
    """The report: memory and LLM judgments attached to the findings, the LLM's score blended into the rank
    (weight ``W_LLM``), findings re-ranked, the summary composed from the evidence, versions and timings."""
    for f in findings:
        f.similar_incident_ids = list(memory.by_finding.get(f.id, []))
        if memory.runbook is not None and f.id in memory.runbook_for:
            f.runbook_id = memory.runbook.id
        if judged is not None:
            v = judged.verdicts.get(f.id)
            if v is not None:
                f.verdict = v
                llm_score = v.confidence if v.anomalous else 1.0 - v.confidence
                f.scores.llm = round(llm_score, 4)
                f.scores.total = round((1 - W_LLM) * f.scores.total + W_LLM * llm_score, 4)
                f.severity = finding_severity(f.scores.strength, f.scores.severity, f.scores.total, v.anomalous)  # type: ignore[assignment]
            f.llm_explanation = judged.explanations.get(f.id)
    rank_findings(findings)
    severity = max_severity([f.severity for f in findings])
    summary = compose_summary(findings, memory, severity)
    versions = Versions(anomalist=__version__, detectors=detectors_ran,
                        llm_backend=(judged.backend if judged else None) or (settings.llm.backend if judged else None),
                        llm_model=judged.model if judged else None, prompts=dict(judged.prompts) if judged else {})
    stage_timings = [StageTiming(stage=k, seconds=round(v, 4)) for k, v in timings.items()]  # type: ignore[arg-type]
    return TriageReport(
        id=uuid.uuid4().hex[:16], created_at=datetime.now(UTC).replace(tzinfo=None), severity=severity,
        summary=summary, llm_summary=judged.summary if judged is not None else None, alert=alert_ref, findings=findings, similar_incidents=memory.incidents, runbook=memory.runbook,
        degraded=degraded, timings=stage_timings, versions=versions, inputs=inputs,
        timeline=build_timeline(findings, logdata, mdf, redact),
    )


def compose_summary(findings: list[Finding], memory: Memory, severity: str) -> Explanation:
    """The report's summary, composed from the evidence (each claim cites it)."""
    if not findings:
        return Explanation(text="No anomalies found: no detector flagged a span strongly enough.", evidence_ids=[],
                           source="template")
    f = findings[0]
    ids = [f.id]
    text = (f"Severity {severity}: {len(findings)} finding{'s' if len(findings) > 1 else ''}. "
            f"Top: {f.title} between {f.start:%Y-%m-%d %H:%M} and {f.end:%H:%M}"
            + (f" ({', '.join(f.services)})" if f.services else "") + ".")
    if f.verdict is not None:
        v = f.verdict
        text += (f" The {'model' if v.source.startswith('llm') else 'semantic prior'} judged it "
                 f"{'anomalous' if v.anomalous else 'normal'} (confidence {v.confidence:.2f}).")
    if f.similar_incident_ids:
        inc = next(i for i in memory.incidents if i.id == f.similar_incident_ids[0])
        text += f" It resembles past incident {inc.incident_id} ({inc.title})."
        ids.append(inc.id)
    if f.runbook_id and memory.runbook is not None:
        text += f" Runbook: {memory.runbook.title}."
        ids.append(memory.runbook.id)
    return Explanation(text=text, evidence_ids=ids, source="template")


def with_cause(summary: Explanation, cause: RootCause) -> Explanation:
    """The summary led by the top root cause (cited)."""
    who = cause.service + (f" (pod {cause.pod})" if cause.pod else "")
    text = (f"Most likely root cause: {who}, {cause.kind} fault from {cause.onset:%Y-%m-%d %H:%M} [{cause.id}]. "
            + summary.text)
    return Explanation(text=text, evidence_ids=list(dict.fromkeys([cause.id, *summary.evidence_ids])),
                       source=summary.source)


def alert_severity(label: str | None) -> Severity:
    """The report severity for an alert's ``severity`` label (Alertmanager / PagerDuty spellings; a firing alert
    without a known label counts as a warning)."""
    from anomalist.tools.store.records import normalize_severity

    sev = normalize_severity(label)
    if sev in ("critical", "high"):
        return "critical"
    if sev in ("info", "low"):
        return "info"
    return "warning"


def alert_only_report(settings: Settings, ref: AlertRef, memory: Memory, reasons: dict[str, str],
                      degraded: list[DegradedFlag], retrieve_s: float) -> TriageReport:
    """The report of an alert alone (no logs, no metrics): the alert, its runbook and similar incidents."""
    severity = alert_severity(ref.severity)
    ids = [ref.id]
    when = f" since {ref.starts_at:%Y-%m-%d %H:%M} UTC" if ref.starts_at else ""
    label = f"severity label {ref.severity!r}" if ref.severity else "no severity label"
    text = (f"Severity {severity} (from the alert's {label}): alert {ref.name} is {ref.status or 'firing'}"
            f" for service {ref.service or '(none named)'}{when}" + (f": {ref.summary.rstrip('.')}." if ref.summary else "."))
    logs_r, metrics_r = reasons["logs"], reasons["metrics"]
    text += (f" No logs or metrics were triaged: {logs_r}" + ("" if logs_r == metrics_r else f"; {metrics_r}") + ".")
    if memory.runbook is not None:
        rb = memory.runbook
        text += f" Runbook: {rb.title}" + (f" ({len(rb.steps)} steps)." if rb.steps else ".")
        ids.append(rb.id)
    if memory.incidents:
        inc = memory.incidents[0]
        text += f" It resembles past incident {inc.incident_id} ({inc.title})."
        ids.append(inc.id)
    inputs = InputSummary(window=settings.triage.window,
                          notes=[f"alert only: {logs_r}", f"alert only: {metrics_r}"])
    return TriageReport(
        id=uuid.uuid4().hex[:16], created_at=datetime.now(UTC).replace(tzinfo=None), severity=severity,
        summary=Explanation(text=text, evidence_ids=ids, source="template"), llm_summary=None, alert=ref,
        similar_incidents=memory.incidents, runbook=memory.runbook, degraded=degraded,
        timings=[StageTiming(stage="retrieve", seconds=round(retrieve_s, 4))],
        versions=Versions(anomalist=__version__), inputs=inputs,
    )
