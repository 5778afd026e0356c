"""Where telemetry lives, resolved for one time window: Prometheus queries, journald, and files/globs.

The CLI (``anomalist triage --prometheus``, ``anomalist ask --prometheus``) and the service (a service's
``server.sources`` / ``server.metrics_sources``, for an alert) both come here, so a service's sources mean the same
thing everywhere. Everything read is counted in ``notes`` (what was queried, how many series, what was skipped).
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from anomalist.agent.settings import JournaldSource, LogSource, MetricSource, PrometheusSettings, Settings
from anomalist.tools.errors import InputError
from anomalist.tools.metrics_io import MetricSet
from anomalist.tools.prometheus import (
    PrometheusClient,
    PrometheusQuery,
    baseline_ranges,
    concat_sets,
    fill,
    generator_expr,
    selector_query,
)

logger = logging.getLogger(__name__)

MAX_FILES_PER_SERVICE = 200  # a glob that matches more is cut to the newest (and the cut is noted)


@dataclass
class PromMetrics:
    """Metrics pulled from Prometheus for a window, and the baseline pulled for the earlier range(s)."""

    metrics: MetricSet
    baseline: MetricSet | None
    queries: list[str]
    notes: list[str] = field(default_factory=list)


def prometheus_client(ps: PrometheusSettings, url: str | None = None) -> PrometheusClient:
    """A client for ``url`` (default: ``prometheus.url``) with the configured credentials and bounds."""
    target = url or ps.url
    if not target:
        raise InputError("no Prometheus URL: give --prometheus URL or set prometheus.url")
    verify: bool | str = ps.ca_file if (ps.verify and ps.ca_file) else ps.verify
    return PrometheusClient(
        url=target, bearer_token=ps.bearer_token.get_secret_value() if ps.bearer_token else None,
        bearer_token_file=ps.bearer_token_file, username=ps.username,
        password=ps.password.get_secret_value() if ps.password else None, verify=verify, timeout_s=ps.timeout_s,
        max_series=ps.max_series, max_points=ps.max_points,
    )


def prometheus_metrics(ps: PrometheusSettings, queries: Sequence[PrometheusQuery], start: pd.Timestamp,
                       end: pd.Timestamp, *, url: str | None = None, baseline: str | None = None) -> PromMetrics:
    """``queries`` over ``[start, end]``, and over the baseline range(s) (``baseline``, default
    ``prometheus.baseline``; ``"none"`` for none). A baseline range that returns nothing is noted, not fatal."""
    if not queries:
        raise InputError("no Prometheus query given (--query PROMQL, or a service's prometheus.queries/selector)")
    client = prometheus_client(ps, url)
    ms = client.metric_set(queries, start, end, ps.step_s)
    step = float(ms.step.rstrip("s")) if ms.step else None
    notes = [f"prometheus {client.url}: {len(queries)} quer{'ies' if len(queries) != 1 else 'y'}, "
             f"{ms.frame.shape[1]} series, {len(ms.frame)} steps of {ms.step} from {start:%Y-%m-%d %H:%M} to "
             f"{end:%H:%M} UTC"]
    notes += [f"prometheus: {q}: {why}" for q, why in ms.skipped.items()]
    spec = (baseline or ps.baseline).strip()
    base: MetricSet | None = None
    if spec.lower() != "none":
        parts: list[MetricSet] = []
        for a, b in baseline_ranges(start, end, spec):
            try:
                parts.append(client.metric_set(queries, a, b, step))
            except InputError as exc:
                notes.append(f"prometheus baseline {a:%Y-%m-%d %H:%M}–{b:%H:%M}: {exc}")
        if parts:
            base = concat_sets(parts)
            notes.append(f"prometheus baseline ({spec}): {base.frame.shape[1]} series, {len(base.frame)} steps")
    return PromMetrics(metrics=ms, baseline=base, queries=[q.expr for q in queries], notes=notes)


def service_queries(src: MetricSource, labels: Mapping[str, str], *, alert_generator_url: str | None = None,
                    include_alert_expr: bool = True) -> list[PrometheusQuery]:
    """A service's Prometheus queries for an alert: its named queries and selector, with ``{{label}}``
    placeholders filled from the alert's labels, plus the alert's own expression (``generatorURL``'s
    ``g0.expr``). A query whose placeholder the alert cannot fill is left out (logged), not sent half-filled."""
    out: list[PrometheusQuery] = []
    p = src.prometheus
    if p is not None:
        for name, expr in p.queries.items():
            try:
                out.append(PrometheusQuery(fill(expr, labels), name=name))
            except InputError as exc:
                logger.warning("prometheus query %s left out: %s", name, exc)
        if p.selector:
            try:
                out.append(PrometheusQuery(selector_query(fill(p.selector, labels))))
            except InputError as exc:
                logger.warning("prometheus selector left out: %s", exc)
    if include_alert_expr:
        alert_expr = generator_expr(alert_generator_url)
        if alert_expr and all(q.expr != alert_expr for q in out):
            out.append(PrometheusQuery(alert_expr, name=f"alert:{labels.get('alertname', 'expr')}"))
    return out


def metric_source(value: str | MetricSource | None) -> MetricSource | None:
    """A ``server.metrics_sources`` value as a :class:`MetricSource` (a plain string is a path)."""
    if value is None:
        return None
    return MetricSource(path=value) if isinstance(value, str) else value


def metric_paths(sources: Mapping[str, str | MetricSource]) -> dict[str, str]:
    """The file/directory metric sources only (name -> path), e.g. for the chat tools."""
    out: dict[str, str] = {}
    for name, v in sources.items():
        src = metric_source(v)
        if src is not None and src.path:
            out[name] = src.path
    return out


def log_files(entries: Sequence[str | LogSource]) -> list[str]:
    """The glob patterns of a service's log sources (plain strings and ``files``)."""
    out: list[str] = []
    for e in entries:
        if isinstance(e, str):
            out.append(e)
        else:
            out += list(e.files)
    return out


def journald_sources(entries: Sequence[str | LogSource]) -> list[JournaldSource]:
    return [e.journald for e in entries if not isinstance(e, str) and e.journald is not None]


def expand_globs(patterns: Sequence[str], notes: list[str] | None = None) -> list[Path]:
    """Files matching ``patterns`` (recursive ``**``), newest ``MAX_FILES_PER_SERVICE`` when more match."""
    files: list[Path] = []
    for pattern in patterns:
        for match in sorted(glob.glob(pattern, recursive=True)):
            path = Path(match)
            if path.is_file():
                files.append(path)
    files = list(dict.fromkeys(files))
    if len(files) > MAX_FILES_PER_SERVICE:
        msg = f"{len(files)} log files match; using the newest {MAX_FILES_PER_SERVICE}"
        logger.warning(msg)
        if notes is not None:
            notes.append(msg)
        files = sorted(files, key=lambda p: p.stat().st_mtime)[-MAX_FILES_PER_SERVICE:]
    return files


def read_journald(src: JournaldSource, start: pd.Timestamp, end: pd.Timestamp, target: Path,
                  notes: list[str] | None = None) -> Path | None:
    """The journal entries of ``src`` in ``[start, end]`` written to ``target`` (JSON lines); None when empty."""
    from anomalist.tools.journald import read_journal

    rep = read_journal(target, since=start, until=end, units=src.units, identifiers=src.identifiers,
                       directory=src.directory, file=src.file, journalctl=src.journalctl,
                       max_entries=src.max_entries, timeout_s=src.timeout_s)
    if notes is not None:
        notes += rep.lines()
    return target if rep.written else None


def window_of(settings: Settings, start: pd.Timestamp | None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The window an alert (starting at ``start``; default now) is triaged over: ``server.alert_lookback_minutes``
    before it to a quarter of that after it, never past now (naive UTC)."""
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    t = _naive_utc(start) if start is not None else now
    lookback = pd.Timedelta(minutes=settings.server.alert_lookback_minutes)
    return t - lookback, min(t + lookback / 4, now)


def _naive_utc(t: pd.Timestamp) -> pd.Timestamp:
    t = pd.Timestamp(t)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t
