"""Markdown renderer: readable as plain text in a terminal and rendered in chat tools."""

from __future__ import annotations

from datetime import datetime

from anomalist.agent.report import Finding, TriageReport

_SEVERITY_MARK = {"info": "INFO", "warning": "WARNING", "critical": "CRITICAL"}
_MAX_TEMPLATES = 6
_MAX_SAMPLES = 3


def _ts(value: datetime | None) -> str:
    if value is None:
        return "?"
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _span(start: datetime, end: datetime) -> str:
    if start.date() == end.date():
        return f"{_ts(start)} to {end.strftime('%H:%M:%S')}"
    return f"{_ts(start)} to {_ts(end)}"


def _cell(text: str, limit: int = 90) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _line(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cite(ids: list[str]) -> str:
    return " [" + ", ".join(ids) + "]" if ids else ""


def _fmt_num(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def render_markdown(report: TriageReport) -> str:
    """The report as Markdown."""
    out: list[str] = []
    out.append(f"# Triage report: {_SEVERITY_MARK[report.severity]}")
    out.append("")
    meta = [f"report `{report.id}`", f"created {_ts(report.created_at)}", f"schema {report.schema_version}"]
    out.append(" · ".join(meta))
    out.append("")
    out.append(report.summary.text + _cite(report.summary.evidence_ids))
    out.append("")
    if report.llm_summary is not None:
        out.append(f"> Model's summary ({report.versions.llm_model or 'LLM'}): "
                   + _line(report.llm_summary.text, 600) + _cite(report.llm_summary.evidence_ids))
        out.append("")
    if report.degraded:
        out.append("> **Degraded run.** " + "; ".join(f"{d.component} `{d.name}`: {d.reason}" for d in report.degraded))
        out.append("")
    if report.alert is not None:
        a = report.alert
        out.append(
            f"**Alert [{a.id}]** `{a.name}` ({a.status or '?'}, severity {a.severity or '?'}"
            + (f", service {a.service}" if a.service else "")
            + f", since {_ts(a.starts_at)})"
            + (f": {a.summary}" if a.summary else "")
            + (f" ({a.group_alerts} alerts in its group)" if a.group_alerts > 1 else "")
        )
        if a.resolved_at is not None:
            out.append("")
            out.append(f"**Resolved** at {_ts(a.resolved_at)} (Alertmanager); the findings are as triaged when it fired.")
        out.append("")

    out.extend(_root_causes(report))
    out.append("## Findings")
    out.append("")
    if not report.findings:
        out.append("No findings: no logs or metrics were triaged (alert only)." if report.is_alert_only
                   else "No anomalies found.")
        out.append("")
    else:
        out.append("| # | id | severity | span | services | what | score | verdict |")
        out.append("|---|----|----------|------|----------|------|-------|---------|")
        for f in report.findings:
            verdict = "-"
            if f.verdict is not None:
                verdict = f"{'anomalous' if f.verdict.anomalous else 'normal'} {f.verdict.confidence:.2f} ({f.verdict.source})"
            out.append(
                f"| {f.rank} | {f.id} | {f.severity} | {_span(f.start, f.end)} | {_cell(', '.join(f.services) or '-', 40)}"
                f" | {_cell(f.title, 70)} | {f.scores.total:.2f} | {verdict} |"
            )
        out.append("")
        for f in report.findings:
            out.extend(_finding(f))

    if report.similar_incidents:
        out.append("## Similar past incidents")
        out.append("")
        for inc in report.similar_incidents:
            why = ", ".join(inc.why) or "similar"
            line = f"- **[{inc.id}] {inc.title}** (`{inc.incident_id}`, score {inc.score:.2f}, {why})"
            if inc.for_findings:
                line += f", for {', '.join(inc.for_findings)}"
            out.append(line)
            if inc.root_cause:
                out.append(f"  - root cause: {_line(inc.root_cause, 300)}")
            if inc.resolution:
                out.append(f"  - resolution: {_line(inc.resolution, 300)}")
        out.append("")

    if report.runbook is not None:
        rb = report.runbook
        out.append(f"## Runbook [{rb.id}]: {rb.title}")
        out.append("")
        out.append(f"`{rb.runbook_id}` (score {rb.score:.2f}, {', '.join(rb.why) or 'retrieved'})"
                   + (f", source {rb.source}" if rb.source else ""))
        out.append("")
        section = None
        for step in rb.steps:
            if step.section != section:
                if section is not None:
                    out.append("")
                section = step.section
                out.append(f"**{section}**")
                out.append("")
            out.append(f"- [{step.id}] {_line(step.text, 400)}")
        out.append("")

    out.extend(_inputs(report))
    out.append("## Provenance")
    out.append("")
    v = report.versions
    out.append(f"- anomalist {v.anomalist}, report schema {v.schema_version}")
    out.append(f"- LLM: {v.llm_backend or 'none'}" + (f" ({v.llm_model})" if v.llm_model else ""))
    if v.prompts:
        out.append("- prompts: " + ", ".join(f"{k}@{h}" for k, h in sorted(v.prompts.items())))
    if v.detectors:
        out.append("- detectors: " + ", ".join(v.detectors))
    if report.timings:
        out.append("- timings: " + ", ".join(f"{t.stage} {t.seconds:.2f}s" for t in report.timings)
                   + f" (total {report.total_seconds:.2f}s)")
    out.append("")
    return "\n".join(out)


def _root_causes(report: TriageReport) -> list[str]:
    """The ranked root-cause candidates (first in the report: what broke, when, how)."""
    if not report.root_causes and report.rca is None:
        return []
    out = ["## Root cause", ""]
    if not report.root_causes:
        out.append("No root-cause candidate: no service changed clearly against the baseline."
                   + (f" ({report.rca.baseline})" if report.rca else ""))
        out.append("")
        return out
    out.append("| rank | id | service | pod | kind | onset | score | evidence |")
    out.append("|------|----|---------|-----|------|-------|-------|----------|")
    for c in report.root_causes:
        ev = ", ".join(sorted({e.modality for e in c.evidence}))
        out.append(f"| {c.rank} | {c.id} | {_cell(c.service, 40)} | {_cell(c.pod or '-', 40)} | {c.kind} | "
                   f"{_ts(c.onset)}{'' if c.current else ' (earlier)'} | {c.score:.2f} | {ev} |")
    out.append("")
    top = report.root_causes[0]
    out.append(f"**[{top.id}] {top.service}**: " + top.explanation.text + _cite(top.explanation.evidence_ids))
    out.append("")
    if top.llm_explanation is not None:
        out.append("**Model's explanation:** " + _line(top.llm_explanation.text, 800) + _cite(top.llm_explanation.evidence_ids))
        out.append("")
    for c in report.root_causes[:3]:
        if not c.evidence:
            continue
        out.append(f"Evidence for [{c.id}] {c.service}:")
        out.append("")
        for e in c.evidence:
            out.append(f"- [{e.id}] {e.modality} {e.time:%H:%M}: {_line(e.text, 300)} (level {e.level:.2f})")
        out.append("")
    if report.service_graph is not None and report.service_graph.edges:
        g = report.service_graph
        suspects = {c.service for c in report.root_causes[:1]}
        edges = [e for e in g.edges if e.callee in suspects or e.caller in suspects][:12]
        if edges:
            out.append("Calls around the suspect (traces): " + "; ".join(
                f"{e.caller} → {e.callee} {e.calls} calls, p90 {e.p90_ms:.0f} ms"
                + (f" (baseline {e.baseline_p90_ms:.0f} ms)" if e.baseline_p90_ms is not None else "")
                for e in edges if e.p90_ms is not None))
            out.append("")
    if report.rca is not None:
        out.append(f"_Compared with: {report.rca.baseline}; evidence: {', '.join(report.rca.modalities) or 'none'}; "
                   f"bins of {report.rca.resolution}._")
        out.append("")
    return out


def _finding(f: Finding) -> list[str]:
    out = [f"### {f.rank}. [{f.id}] {f.title}", ""]
    out.append(
        f"{f.severity} · {_span(f.start, f.end)} · services: {', '.join(f.services) or '-'} · "
        f"score {f.scores.total:.2f} (strength {f.scores.strength:.2f}, severity {f.scores.severity:.2f}, "
        f"novelty {f.scores.novelty:.2f}" + (f", llm {f.scores.llm:.2f}" if f.scores.llm is not None else "") + ")"
    )
    out.append("")
    out.append("**Why:** " + f.explanation.text + _cite(f.explanation.evidence_ids))
    out.append("")
    if f.llm_explanation is not None:
        out.append("**Model's explanation:** " + _line(f.llm_explanation.text, 800) + _cite(f.llm_explanation.evidence_ids))
        out.append("")
    if f.verdict is not None:
        v = f.verdict
        out.append(
            f"**Verdict:** {'anomalous' if v.anomalous else 'normal'} (confidence {v.confidence:.2f}, "
            f"{v.category}, by {v.source})" + (f": {v.reason}" if v.reason else "") + _cite(v.evidence_ids)
        )
        out.append("")
    if f.templates:
        out.append("| id | template | level | count | baseline/window | new |")
        out.append("|----|----------|-------|-------|-----------------|-----|")
        for t in f.templates[:_MAX_TEMPLATES]:
            out.append(
                f"| {t.id} | `{_cell(t.template, 80)}` | {t.level or '-'} | {t.count} | "
                f"{t.baseline_per_window:.2f} | {'yes' if t.is_new else ''} |"
            )
        if len(f.templates) > _MAX_TEMPLATES:
            out.append(f"| … | {len(f.templates) - _MAX_TEMPLATES} more templates | | | | |")
        out.append("")
        samples = [s for t in f.templates for s in t.samples][:_MAX_SAMPLES]
        if samples:
            out.append("Sample lines (redacted):")
            out.append("")
            out.append("```")
            for s in samples:
                where = f"{s.source}:{s.line_no}" if s.source else f"line {s.line_no}"
                out.append(f"[{s.id}] {where}: {s.text[:300]}")
            out.append("```")
            out.append("")
    if f.metrics:
        out.append("| id | channel | drove | share | baseline mean | span mean | span max | change (σ) |")
        out.append("|----|---------|-------|-------|---------------|-----------|----------|------------|")
        for m in f.metrics:
            out.append(
                f"| {m.id} | {m.channel} | {'yes' if m.drove else ''} | {m.contribution:.2f} | "
                f"{_fmt_num(m.baseline_mean)} | {_fmt_num(m.span_mean)} | {_fmt_num(m.span_max)} | {_fmt_num(m.change)} |"
            )
        out.append("")
    if f.detectors:
        out.append("Detectors: " + "; ".join(
            f"[{d.id}] {d.detector} ({d.source}) {d.strength:.2f} at {_ts(d.start)}" for d in f.detectors
        ))
        out.append("")
    refs = f.similar_incident_ids + ([f.runbook_id] if f.runbook_id else [])
    if refs:
        out.append("See also: " + ", ".join(refs))
        out.append("")
    return out


def _inputs(report: TriageReport) -> list[str]:
    i = report.inputs
    out = ["## Inputs", ""]
    if i.log_sources:
        out.append(
            f"- logs: {', '.join(i.log_sources[:5])}" + (f" (+{len(i.log_sources) - 5})" if len(i.log_sources) > 5 else "")
            + f"; format {i.log_format or '?'}; {i.lines_read:,} lines read, {i.events:,} events, "
            f"{i.lines_unparsed:,} unparsed, {i.lines_skipped:,} skipped; {i.templates:,} templates"
        )
    if i.time_start is not None:
        out.append(f"- time range: {_ts(i.time_start)} to {_ts(i.time_end)}; {i.windows} windows of {i.window}")
    if i.metric_source:
        out.append(f"- metrics: {i.metric_source}; {i.metric_rows:,} rows × {len(i.metric_channels)} channels")
    if i.redacted:
        out.append("- redacted from this report: " + ", ".join(f"{n} {k.lower().replace('_', ' ')}" for k, n in i.redacted.items()))
    for note in i.notes:
        out.append(f"- note: {note}")
    out.append("")
    return out
