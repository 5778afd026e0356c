"""JSON renderer: the report's schema, verbatim."""

from __future__ import annotations

from anomalist.agent.report import TriageReport


def render_json(report: TriageReport, indent: int | None = 2) -> str:
    """The report as JSON (validates against ``TriageReport.model_json_schema()``)."""
    return report.model_dump_json(indent=indent)
