"""``anomalist triage``: logs (and metrics, and an alert) in, a ranked and explained report out."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from anomalist.agent.cli.common import EXIT_INPUT, EXIT_OK, EXIT_SEVERITY, err_console, fail, get_settings
from anomalist.tools.errors import InputError

_STAGE_LABEL = {
    "parse": "read + parse logs",
    "log_detectors": "log detectors",
    "metrics": "metrics + detector",
    "rank": "group + rank + evidence",
    "retrieve": "incidents + runbook",
    "llm": "LLM judgment",
    "report": "report",
}
_SEV_STYLE = {"info": "blue", "warning": "yellow", "critical": "bold red"}


def register(app: typer.Typer) -> None:
    """Add ``triage`` to ``app``."""
    app.command("triage")(triage_command)


def triage_command(
    ctx: typer.Context,
    paths: Annotated[list[str] | None, typer.Argument(help="Log files, directories, globs, or '-' for stdin.")] = None,
    metrics: Annotated[Path | None, typer.Option("--metrics", "-m", help="Metrics: a CSV (a time column + numeric channels), a long CSV (time, entity, metric, value), or a directory of per-pod/per-entity CSVs.")] = None,
    traces: Annotated[list[Path] | None, typer.Option("--traces", help="Span files or directories (CSV, JSON lines, Jaeger JSON): the service call graph for root-cause analysis; repeatable.")] = None,
    baseline: Annotated[list[Path] | None, typer.Option("--baseline", "-b", help="Fault-free logs (files/dirs) to compare against, or a baseline profile .json from 'anomalist baseline build'; repeatable.")] = None,
    baseline_metrics: Annotated[Path | None, typer.Option("--baseline-metrics", help="Fault-free metrics (same layouts as --metrics).")] = None,
    baseline_traces: Annotated[list[Path] | None, typer.Option("--baseline-traces", help="Fault-free spans; repeatable.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="Report format (markdown | json | html; default: from --out, else markdown), or else the log format (a preset such as HDFS or app, or a custom header format), as in 'anomalist parse'.")] = None,
    log_format: Annotated[str | None, typer.Option("--log-format", help="Log format preset or custom header format; default: detect.")] = None,
    alert: Annotated[Path | None, typer.Option("--alert", help="Alertmanager webhook JSON (v4 payload) or a single alert.")] = None,
    out: Annotated[list[Path] | None, typer.Option("--out", "-o", help="Write the report here (.md, .json or .html; repeat for several) instead of stdout.")] = None,
    fail_on: Annotated[str | None, typer.Option("--fail-on", help="Exit 3 when the report reaches this severity: warning | critical.")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, max=50, help="Findings enriched with memory and LLM judgment.")] = None,
    window: Annotated[str | None, typer.Option("--window", help="Time window of the log detectors, e.g. 5min.")] = None,
    llm_budget: Annotated[float | None, typer.Option("--llm-budget", min=0.0, help="Seconds the triage may wait on the LLM in total.")] = None,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="Run without the LLM (marked degraded).")] = False,
    engine: Annotated[str | None, typer.Option("--engine", help="local (default) | ray: read, parse and count as Ray tasks over shards.")] = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Ray cluster to join: auto, or ray://host:port (default: start a local one).")] = None,
    prometheus: Annotated[str | None, typer.Option("--prometheus", help="Prometheus base URL to pull metrics from (instead of --metrics); credentials and limits from the prometheus.* settings.")] = None,
    query: Annotated[list[str] | None, typer.Option("--query", help="PromQL for --prometheus (repeatable; NAME=PROMQL names the series). With --alert, the alert's own expression (generatorURL) is queried too.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Start of the Prometheus window (ISO time, or a duration back from --until such as 2h); default: the alert's window, else 1h.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="End of the Prometheus window (ISO time; default: now, or the alert's window).")] = None,
    prom_baseline: Annotated[str | None, typer.Option("--prom-baseline", help="Prometheus baseline range: preceding:6h | offsets:1d,7d | none (default: prometheus.baseline).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or summary table.")] = False,
) -> None:
    """Triage logs (and metrics): detect, group, rank, recall similar incidents and the runbook, explain.

    Exit codes: 0 done, 2 unusable input, 3 when --fail-on's severity is reached.
    """
    from anomalist.agent.render import FORMATS, format_for_path, render

    if metrics is not None and prometheus:
        raise fail("give --metrics or --prometheus, not both")
    if query and not prometheus:
        raise fail("--query needs --prometheus URL")
    if not paths and metrics is None and alert is None and not traces and not prometheus:
        raise fail("give log PATHs, --metrics CSV and/or --alert JSON (an alert alone: its runbook and similar incidents)")
    if fmt is not None and fmt not in FORMATS:
        # Not a report format: the log format, as `anomalist parse --format` takes it (the two sets are disjoint).
        if log_format is not None:
            raise fail(f"--format must be one of {', '.join(FORMATS)} when --log-format is given, got {fmt!r}")
        fmt, log_format = None, fmt
    if fail_on is not None and fail_on not in ("warning", "critical"):
        raise fail(f"--fail-on must be 'warning' or 'critical', got {fail_on!r}")
    outs = list(out or [])
    if window is not None:
        from anomalist.agent.triage.inputs import to_timedelta

        try:
            to_timedelta(window)
        except ValueError as exc:
            raise fail(str(exc)) from exc
    alert_obj = _read_alert(alert) if alert is not None else None
    if engine is not None and engine not in ("local", "ray"):
        raise fail(f"--engine must be 'local' or 'ray', got {engine!r}")
    settings = get_settings(
        ctx,
        logs={"format": log_format},
        triage={"top_k": top_k, "window": window, "fail_on": fail_on, "llm_budget_s": llm_budget, "engine": engine,
                "ray_address": ray_address},
        llm={"backend": "none"} if no_llm else {},
    )
    if settings.triage.engine == "ray":
        from anomalist.agent.scale import INSTALL_HINT, ray_available

        if not ray_available():
            raise fail(INSTALL_HINT, EXIT_INPUT)

    from anomalist.agent.triage import triage

    show = not quiet
    metric_input: Any = metrics
    try:
        prom = None
        if prometheus:
            prom = prometheus_input(settings, prometheus, query or [], alert_obj, since, until, prom_baseline)
            metric_input = prom.metrics
            if show:
                for note in prom.notes:
                    err_console.print(f"[dim]{note}[/dim]")
        base = load_baseline(settings, baseline, baseline_metrics, baseline_traces)
        if base is None and prom is not None and prom.baseline is not None:
            from anomalist.agent.baseline import Baseline

            base = Baseline.build(settings, metrics=prom.baseline)
        kwargs: dict[str, Any] = {"settings": settings, "traces": [str(t) for t in traces] if traces else None,
                                  "baseline": base}
        if show:
            with _Bars() as bars:
                report = triage(paths or None, metric_input, alert_obj, progress=bars.update, **kwargs)
        else:
            report = triage(paths or None, metric_input, alert_obj, **kwargs)
    except InputError as exc:
        raise fail(str(exc), EXIT_INPUT) from exc

    if not outs:
        typer.echo(render(report, fmt or "markdown"))  # type: ignore[arg-type]
    for path in outs:
        text = render(report, fmt or format_for_path(str(path)))  # type: ignore[arg-type]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise fail(f"cannot write {path}: {exc}", 1) from exc
    if show:
        _summary(report, outs)
    threshold = settings.triage.fail_on
    from anomalist.agent.report import severity_at_least

    if threshold is not None and severity_at_least(report.severity, threshold):
        err_console.print(f"severity {report.severity} reaches --fail-on {threshold}: exit {EXIT_SEVERITY}")
        raise typer.Exit(EXIT_SEVERITY)
    raise typer.Exit(EXIT_OK)


def prometheus_input(settings: Any, url: str, queries: list[str], alert: dict[str, Any] | None, since: str | None,
                     until: str | None, baseline: str | None) -> Any:
    """Metrics (and their baseline) pulled from Prometheus for the command line's window and queries."""
    import pandas as pd

    from anomalist.agent.sources import prometheus_metrics, window_of
    from anomalist.tools.alerts import Alert
    from anomalist.tools.prometheus import PrometheusQuery, fill, generator_expr

    labels: dict[str, str] = {}
    gen: str | None = None
    start_at: pd.Timestamp | None = None
    if alert is not None:
        one = Alert.coerce(alert)
        labels, gen = dict(one.labels), one.generatorURL
        start_at = pd.Timestamp(one.startsAt) if one.startsAt else None
    qs: list[PrometheusQuery] = []
    for q in queries:
        name, sep, expr = q.partition("=")
        named = bool(sep) and re.fullmatch(r"[A-Za-z_][\w:.-]*", name.strip()) and not expr.startswith("=")
        text = expr.strip() if named else q.strip()
        qs.append(PrometheusQuery(fill(text, labels), name.strip() if named else None))
    alert_expr = generator_expr(gen) if settings.prometheus.alert_expr else None
    if alert_expr and all(q.expr != alert_expr for q in qs):
        qs.append(PrometheusQuery(alert_expr, f"alert:{labels.get('alertname', 'expr')}"))
    start, end = window_of(settings, start_at) if alert is not None else (None, None)
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    end = _when(until, now) if until else (end or now)
    if since:
        start = end - pd.Timedelta(since) if _is_duration(since) else _when(since, now)
    elif start is None:
        start = end - pd.Timedelta(hours=1)
    if start >= end:
        raise InputError(f"the Prometheus window is empty ({start} .. {end})")
    return prometheus_metrics(settings.prometheus, qs, start, end, url=url, baseline=baseline)


def _is_duration(text: str) -> bool:
    return bool(re.fullmatch(r"\s*\d+(\.\d+)?\s*(s|m|min|h|d|w)\s*", text))


def _when(text: str, now: Any) -> Any:
    import pandas as pd

    try:
        t = pd.Timestamp(text)
    except ValueError as exc:
        raise InputError(f"not a time: {text!r} (ISO 8601, e.g. 2026-12-03T10:00:00Z)") from exc
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t


def load_baseline(settings: Any, logs: list[Path] | None, metrics: Path | None, traces: list[Path] | None) -> Any:
    """The baseline from the command line: a saved profile (one ``.json`` given to ``--baseline``, which may be
    combined with nothing else), or fault-free logs / metrics / traces; None when nothing is given."""
    from anomalist.agent.baseline import Baseline

    logs = list(logs or [])
    profiles = [p for p in logs if p.is_file() and p.suffix.lower() == ".json" and _is_profile(p)]
    if profiles:
        if len(logs) > 1 or metrics is not None or traces:
            raise fail("--baseline PROFILE.json is a whole baseline: give it alone (no other --baseline* option)")
        return Baseline.load(profiles[0])
    if not logs and metrics is None and not traces:
        return None
    return Baseline.build(settings, logs=[str(p) for p in logs] or None, metrics=metrics,
                          traces=[str(t) for t in traces] if traces else None)


def _is_profile(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as fh:
            head = fh.read(200)
    except OSError:
        return False
    return '"anomalist-baseline-profile"' in head


def _read_alert(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise fail(f"cannot read alert {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise fail(f"alert {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise fail(f"alert {path} must hold a JSON object (an Alertmanager payload or one alert)")
    return data


class _Bars:
    """One rich progress bar per triage stage, on stderr."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<22}"), BarColumn(), TextColumn("{task.fields[msg]}"), TimeElapsedColumn(),
            console=err_console, transient=False,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _Bars:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for task in self.tasks.values():
            self.progress.update(task, completed=100)
        self.progress.__exit__(None, None, None)

    def update(self, stage: str, fraction: float, message: str) -> None:
        if stage not in self.tasks:
            for other in self.tasks.values():  # stages run in order: an earlier one is done
                self.progress.update(other, completed=100)
            self.tasks[stage] = self.progress.add_task(_STAGE_LABEL.get(stage, stage), total=100, msg="")
        kw: dict[str, Any] = {"completed": max(0.0, min(fraction, 1.0)) * 100}
        if message:
            kw["msg"] = message
        self.progress.update(self.tasks[stage], **kw)


def _summary(report: Any, outs: list[Path]) -> None:
    table = Table(title=f"Triage: [{_SEV_STYLE[report.severity]}]{report.severity.upper()}[/] "
                        f"({len(report.findings)} findings, {report.total_seconds:.1f}s)", title_justify="left")
    for col in ("#", "id", "severity", "span", "services", "what", "score", "verdict"):
        table.add_column(col, overflow="fold")
    for f in report.findings[:10]:
        v = "-" if f.verdict is None else f"{'anomalous' if f.verdict.anomalous else 'normal'} {f.verdict.confidence:.2f}"
        table.add_row(str(f.rank), f.id, f"[{_SEV_STYLE[f.severity]}]{f.severity}[/]",
                      f"{f.start:%m-%d %H:%M}–{f.end:%H:%M}", ", ".join(f.services), f.title, f"{f.scores.total:.2f}", v)
    err_console.print(table)
    if report.degraded:
        err_console.print("[yellow]degraded:[/yellow] " + "; ".join(f"{d.component} {d.name}: {d.reason}" for d in report.degraded))
    if report.findings:
        top = report.findings[0]
        err_console.print(f"[bold]Top finding {top.id}[/bold]: {top.title}", markup=True, highlight=False)
        err_console.print(f"why: {top.explanation.text}", markup=False, highlight=False)
        if top.similar_incident_ids:
            inc = next(i for i in report.similar_incidents if i.id == top.similar_incident_ids[0])
            err_console.print(f"seen before: {inc.incident_id} {inc.title} (score {inc.score:.2f})", markup=False)
        if top.runbook_id and report.runbook is not None:
            steps = "; ".join(s.text for s in report.runbook.steps[:3])
            err_console.print(f"runbook: {report.runbook.title}: {steps}", markup=False, highlight=False)
    else:
        err_console.print(f"summary: {report.summary.text}", markup=False, highlight=False)
    for path in outs:
        err_console.print(f"report written to {path}", markup=False)
