"""Self-contained HTML renderer: one page, inline CSS and SVG plots, no scripts and no external assets."""

from __future__ import annotations

from datetime import datetime
from html import escape

from anomalist.agent.render.svg import PALETTE, line_chart, service_graph
from anomalist.agent.report import Finding, TriageReport

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:960px;color:#222}
h1{font-size:1.5em;margin-bottom:4px}h2{margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;font-size:.85em}.sev{padding:2px 8px;border-radius:4px;color:#fff;font-weight:600}
.sev-info{background:#5b8def}.sev-warning{background:#e69b00}.sev-critical{background:#d0302f}
table{border-collapse:collapse;width:100%;font-size:.86em;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}th{background:#f3f3f3}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em}
pre{background:#f6f6f6;padding:8px;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
.cite{color:#666;font-size:.85em}.degraded{background:#fff4e0;border-left:4px solid #e69b00;padding:8px}
.finding{border:1px solid #e3e3e3;border-radius:6px;padding:8px 14px;margin:12px 0}
svg.chart{display:block;margin:6px 0}svg .ct{font-size:12px;font-weight:600}
svg .yl{font-size:10px;text-anchor:end;fill:#555}svg .xl{font-size:10px;text-anchor:middle;fill:#555}
svg .sl{font-size:10px;fill:#a00}svg .lg{font-size:10px;fill:#333}.sw{display:inline-block;width:10px;height:10px}
"""


def _ts(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "?"


def _cite(ids: list[str]) -> str:
    if not ids:
        return ""
    links = ", ".join(f'<a href="#{escape(i)}">{escape(i)}</a>' for i in ids)
    return f' <span class="cite">[{links}]</span>'


def _sev(sev: str) -> str:
    return f'<span class="sev sev-{escape(sev)}">{escape(sev.upper())}</span>'


def render_html(report: TriageReport) -> str:
    """The report as one self-contained HTML page (plots as inline SVG)."""
    h: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Anomalist triage {escape(report.severity)}: {escape(report.id)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<h1 id="top">Triage report {_sev(report.severity)}</h1>',
        f'<div class="meta">report {escape(report.id)} · created {_ts(report.created_at)} · schema '
        f"{escape(report.schema_version)} · total {report.total_seconds:.2f}s</div>",
        f'<p id="summary">{escape(report.summary.text)}{_cite(report.summary.evidence_ids)}</p>',
    ]
    if report.llm_summary is not None:
        h.append(f'<p class="cite">Model\'s summary ({escape(report.versions.llm_model or "LLM")}): '
                 f"{escape(report.llm_summary.text)}{_cite(report.llm_summary.evidence_ids)}</p>")
    if report.degraded:
        items = "".join(
            f"<li><b>{escape(d.component)}</b> <code>{escape(d.name)}</code>: {escape(d.reason)}</li>" for d in report.degraded
        )
        h.append(f'<div class="degraded" id="degraded"><b>Degraded run</b><ul>{items}</ul></div>')
    if report.alert is not None:
        a = report.alert
        h.append(
            f'<p id="{escape(a.id)}"><b>Alert [{escape(a.id)}]</b> <code>{escape(a.name)}</code> '
            f"({escape(a.status or '?')}, severity {escape(a.severity or '?')}"
            + (f", service {escape(a.service)}" if a.service else "")
            + f", since {_ts(a.starts_at)})" + (f": {escape(a.summary)}" if a.summary else "")
            + (f" ({a.group_alerts} alerts in its group)" if a.group_alerts > 1 else "") + "</p>"
        )
        if a.resolved_at is not None:
            h.append(f'<p class="resolved" id="resolved"><b>Resolved</b> at {_ts(a.resolved_at)} (Alertmanager); '
                     "the findings are as triaged when it fired.</p>")

    h.extend(_root_causes(report))
    h.append("<h2>Findings</h2>")
    if not report.findings:
        h.append("<p>No findings: no logs or metrics were triaged (alert only).</p>" if report.is_alert_only
                 else "<p>No anomalies found.</p>")
    else:
        h.append(
            '<table id="findings"><thead><tr><th>#</th><th>id</th><th>severity</th><th>span</th><th>services</th>'
            "<th>what</th><th>score</th><th>verdict</th></tr></thead><tbody>"
        )
        for f in report.findings:
            verdict = "-"
            if f.verdict is not None:
                verdict = f"{'anomalous' if f.verdict.anomalous else 'normal'} {f.verdict.confidence:.2f} ({escape(f.verdict.source)})"
            h.append(
                f'<tr><td>{f.rank}</td><td><a href="#{escape(f.id)}">{escape(f.id)}</a></td><td>{_sev(f.severity)}</td>'
                f"<td>{_ts(f.start)} – {_ts(f.end)}</td><td>{escape(', '.join(f.services) or '-')}</td>"
                f"<td>{escape(f.title)}</td><td>{f.scores.total:.2f}</td><td>{verdict}</td></tr>"
            )
        h.append("</tbody></table>")

    h.extend(_plots(report))
    for f in report.findings:
        h.extend(_finding(f))

    if report.similar_incidents:
        h.append("<h2>Similar past incidents</h2><ul>")
        for inc in report.similar_incidents:
            h.append(
                f'<li id="{escape(inc.id)}"><b>[{escape(inc.id)}] {escape(inc.title)}</b> '
                f"<code>{escape(inc.incident_id)}</code> score {inc.score:.2f} ({escape(', '.join(inc.why) or 'similar')})"
                + (f", for {_cite(inc.for_findings)}" if inc.for_findings else "")
                + (f"<br>{escape(inc.summary)}" if inc.summary else "")
                + (f"<br><i>root cause:</i> {escape(inc.root_cause)}" if inc.root_cause else "")
                + (f"<br><i>resolution:</i> {escape(inc.resolution)}" if inc.resolution else "")
                + "</li>"
            )
        h.append("</ul>")

    if report.runbook is not None:
        rb = report.runbook
        h.append(f'<h2 id="{escape(rb.id)}">Runbook [{escape(rb.id)}]: {escape(rb.title)}</h2>')
        h.append(
            f"<p><code>{escape(rb.runbook_id)}</code> score {rb.score:.2f} ({escape(', '.join(rb.why) or 'retrieved')})"
            + (f", source {escape(rb.source)}" if rb.source else "") + "</p>"
        )
        section = None
        for step in rb.steps:
            if step.section != section:
                if section is not None:
                    h.append("</ul>")
                section = step.section
                h.append(f"<h3>{escape(section)}</h3><ul>")
            h.append(f'<li id="{escape(step.id)}">[{escape(step.id)}] {escape(step.text)}</li>')
        if section is not None:
            h.append("</ul>")

    h.extend(_footer(report))
    h.append("</body></html>")
    return "\n".join(h)


def _root_causes(report: TriageReport) -> list[str]:
    if not report.root_causes and report.rca is None:
        return []
    out = ['<h2 id="root-cause">Root cause</h2>']
    if not report.root_causes:
        out.append("<p>No root-cause candidate: no service changed clearly against the baseline.</p>")
    else:
        out.append('<table id="root-causes"><thead><tr><th>rank</th><th>id</th><th>service</th><th>pod</th><th>kind</th>'
                   "<th>onset</th><th>score</th><th>evidence</th></tr></thead><tbody>")
        for c in report.root_causes:
            ev = ", ".join(sorted({e.modality for e in c.evidence}))
            out.append(f'<tr id="{escape(c.id)}"><td>{c.rank}</td><td>{escape(c.id)}</td><td><b>{escape(c.service)}</b></td>'
                       f"<td>{escape(c.pod or '-')}</td><td>{escape(c.kind)}</td>"
                       f"<td>{_ts(c.onset)}{'' if c.current else ' (earlier)'}</td><td>{c.score:.2f}</td>"
                       f"<td>{escape(ev)}</td></tr>")
        out.append("</tbody></table>")
        top = report.root_causes[0]
        out.append(f"<p><b>[{escape(top.id)}] {escape(top.service)}:</b> {escape(top.explanation.text)}"
                   f"{_cite(top.explanation.evidence_ids)}</p>")
        if top.llm_explanation is not None:
            out.append(f"<p><b>Model's explanation:</b> {escape(top.llm_explanation.text)}"
                       f"{_cite(top.llm_explanation.evidence_ids)}</p>")
        for c in report.root_causes[:3]:
            if c.evidence:
                items = "".join(f'<li id="{escape(e.id)}">[{escape(e.id)}] {escape(e.modality)} {e.time:%H:%M}: '
                                f"{escape(e.text)} (level {e.level:.2f})</li>" for e in c.evidence)
                out.append(f"<p>Evidence for [{escape(c.id)}] {escape(c.service)}:</p><ul>{items}</ul>")
    if report.service_graph is not None and report.service_graph.nodes:
        out.append(service_graph(report.service_graph))
    if report.rca is not None:
        out.append(f'<p class="cite">Compared with: {escape(report.rca.baseline)}; evidence: '
                   f"{escape(', '.join(report.rca.modalities) or 'none')}; bins of {escape(report.rca.resolution)}.</p>")
    return out


def _plots(report: TriageReport) -> list[str]:
    tl = report.timeline
    all_ts = [t for s in tl.metrics + tl.template_counts for t in s.timestamps]
    if not all_ts:
        return []
    t0, t1 = min(all_ts), max(all_ts)
    out = ['<h2 id="plots">Timeline</h2>']
    for s in tl.metrics:
        out.append(line_chart([s], tl.spans, title=f"metric {s.name}", t0=t0, t1=t1, height=150))
    if tl.template_counts:
        out.append(
            line_chart(tl.template_counts, tl.spans, title="template counts per window", t0=t0, t1=t1, height=220,
                       legend=False)
        )
        legend = "".join(
            f'<li><span class="sw" style="background:{PALETTE[i % len(PALETTE)]}"></span> <code>{escape(s.name)}</code></li>'
            for i, s in enumerate(tl.template_counts)
        )
        out.append(f'<ul class="legend">{legend}</ul>')
    return out


def _finding(f: Finding) -> list[str]:
    out = [f'<div class="finding" id="{escape(f.id)}"><h3>{f.rank}. [{escape(f.id)}] {escape(f.title)} {_sev(f.severity)}</h3>']
    llm = f", llm {f.scores.llm:.2f}" if f.scores.llm is not None else ""
    out.append(
        f"<p>{_ts(f.start)} – {_ts(f.end)} · services: {escape(', '.join(f.services) or '-')} · score {f.scores.total:.2f} "
        f"(strength {f.scores.strength:.2f}, severity {f.scores.severity:.2f}, novelty {f.scores.novelty:.2f}{llm})</p>"
    )
    out.append(f"<p><b>Why:</b> {escape(f.explanation.text)}{_cite(f.explanation.evidence_ids)}</p>")
    if f.llm_explanation is not None:
        out.append(f"<p><b>Model's explanation:</b> {escape(f.llm_explanation.text)}{_cite(f.llm_explanation.evidence_ids)}</p>")
    if f.verdict is not None:
        v = f.verdict
        out.append(
            f"<p><b>Verdict:</b> {'anomalous' if v.anomalous else 'normal'} (confidence {v.confidence:.2f}, "
            f"{escape(v.category)}, by {escape(v.source)})" + (f": {escape(v.reason)}" if v.reason else "")
            + _cite(v.evidence_ids) + "</p>"
        )
    if f.templates:
        out.append("<table><tr><th>id</th><th>template</th><th>level</th><th>count</th><th>baseline/window</th><th>new</th></tr>")
        for t in f.templates:
            out.append(
                f'<tr id="{escape(t.id)}"><td>{escape(t.id)}</td><td><code>{escape(t.template)}</code></td>'
                f"<td>{escape(t.level or '-')}</td><td>{t.count}</td><td>{t.baseline_per_window:.2f}</td>"
                f"<td>{'yes' if t.is_new else ''}</td></tr>"
            )
        out.append("</table>")
        samples = [s for t in f.templates for s in t.samples]
        if samples:
            lines = "\n".join(
                f'<span id="{escape(s.id)}">[{escape(s.id)}] {escape(s.source or "")}:{s.line_no or ""} {escape(s.text[:400])}</span>'
                for s in samples
            )
            out.append(f"<p>Sample lines (redacted):</p><pre>{lines}</pre>")
    if f.metrics:
        out.append(
            "<table><tr><th>id</th><th>channel</th><th>drove</th><th>share</th><th>baseline mean</th>"
            "<th>span mean</th><th>span max</th><th>change (σ)</th></tr>"
        )
        for m in f.metrics:
            out.append(
                f'<tr id="{escape(m.id)}"><td>{escape(m.id)}</td><td>{escape(m.channel)}</td><td>{"yes" if m.drove else ""}</td>'
                f"<td>{m.contribution:.2f}</td><td>{_num(m.baseline_mean)}</td><td>{_num(m.span_mean)}</td>"
                f"<td>{_num(m.span_max)}</td><td>{_num(m.change)}</td></tr>"
            )
        out.append("</table>")
    if f.detectors:
        items = "".join(
            f'<li id="{escape(d.id)}">[{escape(d.id)}] {escape(d.detector)} ({escape(d.source)}) strength {d.strength:.2f}, '
            f"score {d.score:.3g}, {_ts(d.start)} – {_ts(d.end)}</li>"
            for d in f.detectors
        )
        out.append(f"<p>Detectors:</p><ul>{items}</ul>")
    refs = f.similar_incident_ids + ([f.runbook_id] if f.runbook_id else [])
    if refs:
        out.append(f"<p>See also:{_cite(refs)}</p>")
    out.append("</div>")
    return out


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def _footer(report: TriageReport) -> list[str]:
    i, v = report.inputs, report.versions
    out = ['<h2 id="inputs">Inputs and provenance</h2><ul>']
    if i.log_sources:
        out.append(
            f"<li>logs: {escape(', '.join(i.log_sources[:10]))}; format {escape(i.log_format or '?')}; "
            f"{i.lines_read:,} lines read, {i.events:,} events, {i.lines_unparsed:,} unparsed, {i.lines_skipped:,} skipped; "
            f"{i.templates:,} templates; {i.windows} windows of {escape(i.window or '?')}</li>"
        )
    if i.metric_source:
        out.append(f"<li>metrics: {escape(i.metric_source)}; {i.metric_rows:,} rows × {len(i.metric_channels)} channels</li>")
    if i.redacted:
        out.append("<li>redacted from this report: " + escape(", ".join(f"{n} {k.lower().replace('_', ' ')}"
                                                                     for k, n in i.redacted.items())) + "</li>")
    for note in i.notes:
        out.append(f"<li>note: {escape(note)}</li>")
    out.append(f"<li>anomalist {escape(v.anomalist)}; LLM {escape(v.llm_backend or 'none')}"
               + (f" ({escape(v.llm_model)})" if v.llm_model else "") + "</li>")
    if v.prompts:
        out.append("<li>prompts: " + escape(", ".join(f"{k}@{x}" for k, x in sorted(v.prompts.items()))) + "</li>")
    if v.detectors:
        out.append("<li>detectors: " + escape(", ".join(v.detectors)) + "</li>")
    if report.timings:
        out.append("<li>timings: " + escape(", ".join(f"{t.stage} {t.seconds:.2f}s" for t in report.timings)) + "</li>")
    out.append("</ul>")
    return out
