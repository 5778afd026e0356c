"""The chat agent's tools, assembled from ``tools/`` (logs, metrics, memory) plus ``run_triage``, and its prompt."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ConfigDict, Field

from anomalist.agent.seams import IncidentMemory, Judge
from anomalist.agent.settings import Settings
from anomalist.tools.errors import InputError
from anomalist.tools.log_tools import LogWorkspace, error, make_log_tools, ok
from anomalist.tools.metric_tools import make_metric_tools


class RunTriageArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(None, description="Log source name; omitted = all sources")
    with_metrics: bool = Field(True, description="Include the metrics (when configured)")


def report_digest(report: Any, k: int = 5) -> dict[str, Any]:
    """The part of a ``TriageReport`` a chat answer needs (bounded: top ``k`` findings, 3 templates each)."""
    findings = []
    for f in report.findings[:k]:
        findings.append({
            "id": f.id, "rank": f.rank, "title": f.title, "severity": f.severity,
            "start": f.start.isoformat(), "end": f.end.isoformat(), "services": f.services[:5],
            "templates": [{"id": t.id, "template": t.template[:200], "count": t.count, "new": t.is_new}
                          for t in f.templates[:3]],
            "metrics": [{"id": m.id, "channel": m.channel, "drove": m.drove, "span_mean": m.span_mean,
                         "baseline_mean": m.baseline_mean} for m in f.metrics[:3]],
            "verdict": None if f.verdict is None else {"anomalous": f.verdict.anomalous,
                                                       "confidence": f.verdict.confidence,
                                                       "category": f.verdict.category},
            "explanation": f.explanation.text[:500],
        })
    return {
        "report_id": report.id, "severity": report.severity, "report_summary": report.summary.text[:800],
        "root_causes": [{"rank": c.rank, "service": c.service, "pod": c.pod, "kind": c.kind,
                         "onset": c.onset.isoformat(), "score": c.score} for c in report.root_causes[:3]],
        "findings": findings,
        "runbook": None if report.runbook is None else {"id": report.runbook.id, "title": report.runbook.title,
                                                        "steps": [s.text[:200] for s in report.runbook.steps[:5]]},
        "similar_incidents": [{"id": i.id, "title": i.title, "score": round(i.score, 3)}
                              for i in report.similar_incidents[:3]],
        "degraded": [f"{d.component}:{d.name}: {d.reason}"[:200] for d in report.degraded],
    }


def make_triage_tool(ws: LogWorkspace, settings: Settings, store: IncidentMemory | None = None, llm: Judge | None = None,
                     on_report: Callable[[Any], None] | None = None) -> BaseTool:
    """``run_triage``: the full triage pipeline over a workspace source (and its metrics)."""

    def run_triage(source: str | None = None, with_metrics: bool = True) -> dict[str, Any]:
        from anomalist.agent.triage import triage
        from anomalist.tools.logread import expand_sources

        if not ws.sources:
            return error("no log sources are configured, so there is nothing to triage")
        if source not in (None, "", "*", "all") and source not in ws.sources:
            return error(f"unknown source {source!r}; known sources: {', '.join(ws.source_names())}")
        patterns = ws.sources[source] if source in ws.sources else [p for v in ws.sources.values() for p in v]
        metrics = None
        if with_metrics and ws.metrics:
            metrics = ws.metrics.get(source or "") or ws.metrics[sorted(ws.metrics)[0]]
        try:
            report = triage(expand_sources(patterns), metrics, None, settings=settings, store=store, llm=llm)
        except InputError as exc:
            return error(f"triage could not use the input: {exc}")
        if on_report is not None:
            on_report(report)
        digest = report_digest(report)
        return ok(f"triage: severity {report.severity}, {len(report.findings)} findings", **digest)

    return StructuredTool.from_function(
        run_triage, name="run_triage", args_schema=RunTriageArgs,
        description="Run a full triage of the logs (and metrics): ranked findings with new or spiking log "
                    "templates, metric anomalies, similar past incidents and the runbook. Slow; use it for 'what is "
                    "wrong' questions.",
    )


def memory_tools(store: IncidentMemory | None) -> list[BaseTool]:
    """The incident store's tools (``similar_incidents``, ``runbook_for_alert``) from ``tools.memory_tools``."""
    if store is None:
        return []
    from anomalist.tools import memory_tools as mt

    return list(mt.make_memory_tools(store))


@dataclass
class Toolset:
    """Tools plus what the system prompt says about them."""

    tools: list[BaseTool]
    workspace: LogWorkspace
    notes: list[str] = field(default_factory=list)

    def system_prompt(self, plans: bool) -> str:
        """The ``chat_system`` prompt (``prompts/chat_system.j2``) with these tools and sources as context."""
        from anomalist import prompts
        lines = [f"Log sources: {', '.join(self.workspace.source_names()) or 'none'}.",
                 f"Metrics: {', '.join(sorted(self.workspace.metrics)) or 'none'}."]
        if plans:
            lines.append("Call tools to gather evidence, then answer. Tools: " + ", ".join(t.name for t in self.tools))
        else:
            lines.append("The tool results for this question are given to you; answer only from them.")
        lines.append("Tool results carry evidence ids E1, E2, ...: cite them in square brackets, e.g. [E1].")
        lines.extend(self.notes)
        # Only the system block is used: the question arrives as the conversation's human message.
        rendered = prompts.load("chat_system").render(context=" ".join(lines), question="(asked below)")
        return rendered.system.strip()

    @property
    def prompt_version(self) -> str:
        from anomalist import prompts
        return prompts.load("chat_system").version


def build_toolset(settings: Settings, *, logs: dict[str, list[str]], metrics: dict[str, str],
                  store: IncidentMemory | None = None, llm: Judge | None = None, on_report: Callable[[Any], None] | None = None) -> Toolset:
    """All chat tools over ``logs``/``metrics`` (source name -> paths), the store and the triage pipeline."""
    from anomalist.tools.redact import Redactor

    redact = Redactor.from_settings(settings.llm).redact_text
    ws = LogWorkspace(
        sources=logs, metrics=metrics, fmt=settings.logs.format, max_line_bytes=settings.logs.max_line_bytes,
        json_fields={"message": settings.logs.json_message_field, "timestamp": settings.logs.json_timestamp_field,
                     "level": settings.logs.json_level_field},
        redact=redact,
    )
    tools: list[BaseTool] = []
    notes: list[str] = []
    if logs:
        tools.extend(make_log_tools(ws))
    else:
        notes.append("No log sources are configured.")
    if metrics:
        tools.extend(make_metric_tools(ws, settings.detectors.metric_detector,
                                       settings.detectors.params_for(settings.detectors.metric_detector),
                                       robust_k=settings.triage.metric_robust_k,
                                       min_strength=settings.triage.min_strength))
    else:
        notes.append("No metrics are configured.")
    mem = memory_tools(store)
    if not mem:
        notes.append("The incident store is not available: no similar incidents or runbooks.")
    tools.extend(mem)
    if logs:
        tools.append(make_triage_tool(ws, settings, store=store, llm=llm, on_report=on_report))
    return Toolset(tools=tools, workspace=ws, notes=notes)
