"""LangChain tools over the incident store: ``similar_incidents`` and ``runbook_for_alert``.

Results are bounded JSON-able dicts with ``status`` (``ok``, ``no_data``, ``error``) and a one-line ``summary``,
the same shape as the log and metric tools. A store that fails (server down, directory gone) is an ``error``
result that says memory is unavailable, never an exception that ends the conversation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anomalist.tools.log_tools import ToolPayload, error, no_data, ok
from anomalist.tools.store import StoreFilters, StoreUnavailable
from anomalist.tools.store.seam import IncidentMemory

logger = logging.getLogger(__name__)

MAX_OUTPUT_CHARS = 4000
_TEXT_CHARS = 400
_STEP_CHARS = 240


class SimilarIncidentsArgs(BaseModel):
    """Arguments of ``similar_incidents``."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(default=..., min_length=1, max_length=2000,
                       description="What is happening: symptoms, log templates, alert names, services")
    k: int = Field(default=3, ge=1, le=10, description="How many incidents to return")
    service: str | None = Field(default=None, max_length=200, description="Only incidents of this service")
    min_severity: str | None = Field(default=None, description="Only incidents at least this severe (info..critical)")
    since: str | None = Field(default=None, description="Only incidents that started at or after this ISO time")


class RunbookForAlertArgs(BaseModel):
    """Arguments of ``runbook_for_alert``: an alert's name and/or its text (or any description of the problem)."""

    model_config = ConfigDict(extra="forbid")

    alert_name: str | None = Field(default=None, max_length=200, description="The alertname label, e.g. KubePodCrashLooping")
    summary: str | None = Field(default=None, max_length=2000, description="The alert's summary annotation")
    description: str | None = Field(default=None, max_length=4000,
                                    description="The alert's description, or the problem in your own words")
    labels: dict[str, str] = Field(default_factory=dict, description="Other alert labels (job, namespace, ...)")
    k: int = Field(default=2, ge=1, le=5, description="How many runbooks to return")


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bounded(items: list[dict[str, Any]], budget: int) -> tuple[list[dict[str, Any]], bool]:
    """Keep whole items while their JSON fits ``budget`` characters (at least one, cut if needed)."""
    import json

    kept: list[dict[str, Any]] = []
    used = 0
    for item in items:
        size = len(json.dumps(item, default=str))
        if kept and used + size > budget:
            return kept, True
        kept.append(item)
        used += size
    return kept, False


def _store_error(exc: Exception) -> ToolPayload:
    logger.warning("incident store failed in a tool call: %s", exc)
    return {**error(f"incident memory is unavailable ({exc}); answer without past incidents or runbooks"),
            "degraded": True}


def similar_incidents_tool(store: IncidentMemory, max_chars: int = MAX_OUTPUT_CHARS) -> BaseTool:
    """The ``similar_incidents`` tool bound to ``store``."""

    def run(query: str, k: int = 3, service: str | None = None, min_severity: str | None = None,
            since: str | None = None) -> ToolPayload:
        try:
            filters = StoreFilters.model_validate({
                "services": [service] if service else [], "min_severity": min_severity,
                "since": datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None})
        except (ValidationError, ValueError) as exc:
            return error(f"bad filter: {exc}. min_severity is one of info, low, warning, high, critical; "
                         "since is an ISO time like 2026-11-02T14:05")
        try:
            hits = store.similar_incidents(query, k=k, filters=filters)
        except StoreUnavailable as exc:
            return _store_error(exc)
        except ValueError as exc:
            return error(str(exc))
        if not hits:
            return no_data("no similar incident in memory" + (" for these filters" if not filters.is_empty() else ""))
        items = [{
            "id": h.incident.id, "title": _cut(h.incident.title, 200), "score": round(h.score, 3), "why": h.why,
            "summary": _cut(h.incident.summary, _TEXT_CHARS), "root_cause": _cut(h.incident.root_cause, 300),
            "resolution": _cut(h.incident.resolution, 300), "services": h.incident.services[:5],
            "severity": h.incident.severity,
            "started_at": h.incident.started_at.isoformat() if h.incident.started_at else None,
            "links": h.incident.links[:2],
        } for h in hits]
        kept, truncated = _bounded(items, max_chars)
        return ok(f"{len(kept)} similar incidents (best: {kept[0]['title'][:80]})", incidents=kept,
                  truncated=truncated)

    return StructuredTool.from_function(
        lambda **kw: run(**kw), name="similar_incidents", args_schema=SimilarIncidentsArgs,
        description="Past incidents similar to what is happening now (symptoms, log templates, alert names), "
                    "with their root cause and resolution, and why each matched (exact alert name, keyword, "
                    "semantic). Use it to answer 'have we seen this before?'.",
    )


def runbook_for_alert_tool(store: IncidentMemory, max_chars: int = MAX_OUTPUT_CHARS) -> BaseTool:
    """The ``runbook_for_alert`` tool bound to ``store``."""

    def run(alert_name: str | None = None, summary: str | None = None, description: str | None = None,
            labels: dict[str, str] | None = None, k: int = 2) -> ToolPayload:
        lab = dict(labels or {})
        if alert_name:
            lab["alertname"] = alert_name
        annotations = {key: v for key, v in (("summary", summary), ("description", description)) if v}
        if not lab and not annotations:
            return error("give alert_name, or summary/description text of the alert or problem")
        try:
            hits = store.runbook_for({"labels": lab, "annotations": annotations}, k=k)
        except StoreUnavailable as exc:
            return _store_error(exc)
        except ValueError as exc:
            return error(str(exc))
        if not hits:
            return no_data("no runbook in memory matches this alert")
        items = []
        for h in hits:
            rb = h.runbook
            sections = {}
            for name in ("overview", "diagnosis", "mitigation"):
                sec = rb.sections.get(name)
                if sec is None:
                    continue
                steps = [_cut(s, _STEP_CHARS) for s in sec.steps[:5]]
                sections[name] = {"steps": steps} if steps else {"text": _cut(sec.text, _TEXT_CHARS)}
            items.append({"id": rb.id, "title": rb.title, "score": round(h.score, 3), "why": h.why,
                          "alert_names": rb.alert_names[:5], "source": rb.url or rb.source, "sections": sections})
        kept, truncated = _bounded(items, max_chars)
        return ok(f"runbook {kept[0]['id']} ({', '.join(kept[0]['why'])})", runbooks=kept, truncated=truncated)

    return StructuredTool.from_function(
        lambda **kw: run(**kw), name="runbook_for_alert", args_schema=RunbookForAlertArgs,
        description="The runbook (meaning, diagnosis and mitigation steps) for an alert, by its alert name "
                    "(exact match wins) and/or its summary/description text.",
    )


def make_memory_tools(store: IncidentMemory, max_chars: int = MAX_OUTPUT_CHARS) -> list[BaseTool]:
    """``similar_incidents`` and ``runbook_for_alert`` bound to ``store`` (each result at most ~``max_chars``)."""
    builders: list[Callable[[IncidentMemory, int], BaseTool]] = [similar_incidents_tool, runbook_for_alert_tool]
    return [b(store, max_chars) for b in builders]
