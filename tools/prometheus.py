"""Prometheus as a metric source: ``query_range`` over the HTTP API into a :class:`tools.metrics_io.MetricSet`.

One series becomes one channel ``<entity>/<metric>``: the entity is the first of ``pod``, ``instance``, ``service``,
``job`` labels the series has (``ENTITY_LABELS``), the metric is the query's name (or ``__name__``) plus the
remaining distinguishing labels, so the root-cause analysis sees pods and their metrics as it does with files.

Every call is bounded: a timeout, a series limit and a points limit (the query is refused with a clear error when
it would return more), and the step is chosen from the window (``choose_step``) so a long window does not ask for
millions of points. Auth: bearer token (or a token file, re-read on each client), or basic auth; TLS verification
on by default, with a CA bundle or off (``verify``).

Nothing here downloads or caches: each query is one HTTP request to the server the user named.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pandas as pd

from anomalist.tools.errors import InputError
from anomalist.tools.metrics_io import CHANNEL_SEP, MetricSet

logger = logging.getLogger(__name__)

ENTITY_LABELS = ("pod", "instance", "service", "job")
"""Labels that name the entity a series describes, most specific first."""
MAX_POINTS_PER_SERIES = 11_000
"""Prometheus refuses more than 11,000 points per series; ``choose_step`` stays under it."""
TARGET_POINTS = 600
"""Points per series ``choose_step`` aims at (a detector needs hundreds, not tens of thousands)."""
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class PrometheusError(InputError):
    """Prometheus could not be queried, or answered with an error (the message says which and why)."""


@dataclass(frozen=True)
class PrometheusQuery:
    """A PromQL query and the name its series get (``name``; default: the series' ``__name__`` or the query)."""

    expr: str
    name: str | None = None


@dataclass
class PrometheusClient:
    """A small ``/api/v1/query_range`` client (plain httpx).

    Args:
        url: the server's base URL (``http://127.0.0.1:9090``; a path prefix is kept).
        bearer_token / bearer_token_file: ``Authorization: Bearer`` credentials (the file wins, read when built).
        username / password: basic auth (instead of a bearer token).
        verify: TLS verification: True, False, or a CA bundle path.
        timeout_s: per-request timeout (connect and read).
        max_series: a query returning more series is refused (``PrometheusError``) instead of truncated silently.
        max_points: the most points one query may return (series x steps).
    """

    url: str
    bearer_token: str | None = None
    bearer_token_file: str | None = None
    username: str | None = None
    password: str | None = None
    verify: bool | str = True
    timeout_s: float = 10.0
    max_series: int = 500
    max_points: int = 2_000_000
    stats: dict[str, int] = field(default_factory=lambda: {"queries": 0, "series": 0, "points": 0, "errors": 0})

    def __post_init__(self) -> None:
        if not re.match(r"^https?://", self.url or ""):
            raise InputError(f"Prometheus URL must start with http:// or https:// (got {self.url!r})")
        self.url = self.url.rstrip("/")

    def _headers(self) -> dict[str, str]:
        token = self.bearer_token
        if self.bearer_token_file:
            try:
                token = Path(self.bearer_token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise PrometheusError(f"cannot read the Prometheus bearer token file {self.bearer_token_file}: {exc}") \
                    from exc
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _client(self) -> httpx.Client:
        auth = httpx.BasicAuth(self.username, self.password or "") if self.username else None
        return httpx.Client(base_url=self.url, headers=self._headers(), auth=auth, verify=self.verify,
                            timeout=httpx.Timeout(self.timeout_s))

    def query_range(self, expr: str, start: datetime | pd.Timestamp | float, end: datetime | pd.Timestamp | float,
                    step_s: float) -> list[dict[str, Any]]:
        """The ``matrix`` result of ``expr`` over ``[start, end]`` every ``step_s`` seconds (a list of
        ``{"metric": {labels}, "values": [[t, "v"], ...]}``).

        Raises:
            PrometheusError: unreachable, timed out, an HTTP or PromQL error, or a result over the limits.
        """
        t0, t1 = _unix(start), _unix(end)
        if t1 <= t0:
            raise InputError(f"Prometheus query window is empty ({start} .. {end})")
        steps = int((t1 - t0) // step_s) + 1
        if steps > MAX_POINTS_PER_SERIES:
            raise InputError(f"step {step_s:g}s gives {steps} points per series over this window; Prometheus "
                             f"allows {MAX_POINTS_PER_SERIES} (use a larger step)")
        params = {"query": expr, "start": f"{t0:.3f}", "end": f"{t1:.3f}", "step": f"{step_s:g}",
                  "timeout": f"{max(1, int(self.timeout_s))}s"}
        self.stats["queries"] += 1
        try:
            with self._client() as client:
                response = client.post("/api/v1/query_range", data=params)
        except httpx.TimeoutException as exc:
            self.stats["errors"] += 1
            raise PrometheusError(f"Prometheus at {self.url} did not answer within {self.timeout_s:g}s "
                                  f"(query {expr!r})") from exc
        except httpx.HTTPError as exc:
            self.stats["errors"] += 1
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {type(exc).__name__}: {exc}") from exc
        body: dict[str, Any] = {}
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code in (401, 403):
            self.stats["errors"] += 1
            raise PrometheusError(f"Prometheus at {self.url} refused the credentials (HTTP {response.status_code})")
        if response.status_code >= 400 or body.get("status") != "success":
            self.stats["errors"] += 1
            why = body.get("error") or response.text[:300]
            raise PrometheusError(f"Prometheus rejected query {expr!r} (HTTP {response.status_code}, "
                                  f"{body.get('errorType', 'error')}): {why}")
        data = body.get("data") or {}
        if data.get("resultType") != "matrix":
            raise PrometheusError(f"query {expr!r} returned a {data.get('resultType')!r}, not a range (matrix)")
        result = list(data.get("result") or [])
        if len(result) > self.max_series:
            raise PrometheusError(f"query {expr!r} returned {len(result)} series, over the limit of "
                                  f"{self.max_series} (narrow the selector or raise prometheus.max_series)")
        points = sum(len(s.get("values") or []) for s in result)
        if points > self.max_points:
            raise PrometheusError(f"query {expr!r} returned {points} points, over the limit of {self.max_points}")
        self.stats["series"] += len(result)
        self.stats["points"] += points
        return result

    def metric_set(self, queries: Sequence[PrometheusQuery | str], start: datetime | pd.Timestamp | float,
                   end: datetime | pd.Timestamp | float, step_s: float | None = None) -> MetricSet:
        """All ``queries`` over ``[start, end]`` as one :class:`MetricSet` (naive-UTC index, ``step_s`` grid).

        A query that fails is an error (the caller asked for it); a query that matches no series is noted in
        ``skipped`` and the rest are kept. No series at all is an ``InputError``.
        """
        step = step_s or choose_step(start, end)
        series: dict[str, pd.Series] = {}
        entity_of: dict[str, str | None] = {}
        metric_of: dict[str, str] = {}
        skipped: dict[str, str] = {}
        for q in queries:
            q = q if isinstance(q, PrometheusQuery) else PrometheusQuery(str(q))
            result = self.query_range(q.expr, start, end, step)
            if not result:
                skipped[q.expr] = "no series in the window"
                continue
            for s in result:
                labels = dict(s.get("metric") or {})
                entity, metric = series_name(labels, q)
                channel = f"{entity}{CHANNEL_SEP}{metric}" if entity else metric
                values = s.get("values") or []
                idx = pd.to_datetime([float(t) for t, _ in values], unit="s")
                vals = pd.to_numeric(pd.Series([v for _, v in values]), errors="coerce").to_numpy(dtype="float64")
                k = 2
                base = channel
                while channel in series:  # two series with the same name: keep both, numbered
                    channel = f"{base}#{k}"
                    k += 1
                series[channel] = pd.Series(vals, index=idx)
                entity_of[channel] = entity
                metric_of[channel] = metric if channel == base else f"{metric}#{k - 1}"
        if not series:
            raise InputError(f"Prometheus at {self.url}: no series for "
                             + "; ".join(skipped) + f" between {_iso(start)} and {_iso(end)}")
        frame = pd.DataFrame(series).sort_index()
        frame.index.name = "timestamp"
        frame = frame.astype("float64")
        layout = "prometheus"
        return MetricSet(source=f"prometheus:{self.url}", frame=frame, entity_of=entity_of, metric_of=metric_of,
                         skipped=skipped, step=f"{int(step)}s", layout=layout)


def series_name(labels: Mapping[str, str], query: PrometheusQuery) -> tuple[str | None, str]:
    """(entity, metric) of a series: the entity from ``ENTITY_LABELS``, the metric from the query's name (or the
    series' ``__name__``, else the query text) with the labels that are neither identity nor housekeeping."""
    entity = next((labels[k] for k in ENTITY_LABELS if labels.get(k)), None)
    base = query.name or labels.get("__name__") or _short(query.expr)
    used = {"__name__", "job", "instance", "pod", "service", "namespace", "container", "endpoint", "prometheus"}
    extra = [f"{k}={v}" for k, v in sorted(labels.items()) if k not in used and k not in ENTITY_LABELS]
    metric = base + ("{" + ",".join(extra) + "}" if extra else "")
    return entity, metric


def choose_step(start: datetime | pd.Timestamp | float, end: datetime | pd.Timestamp | float, *, minimum_s: float = 15.0) -> float:
    """A step for ``[start, end]``: about ``TARGET_POINTS`` points, at least ``minimum_s`` seconds (a typical scrape
    interval; finer steps only repeat samples), rounded to a whole number of seconds."""
    span = max(_unix(end) - _unix(start), 1.0)
    return float(max(minimum_s, math.ceil(span / TARGET_POINTS)))


def fill(template: str, labels: Mapping[str, str]) -> str:
    """``template`` with ``{{service}}``, ``{{namespace}}``, ``{{pod}}`` (any label) filled from ``labels``.

    Raises:
        InputError: a placeholder whose label the alert does not have (the query would match the wrong series).
    """
    missing = [m for m in _PLACEHOLDER.findall(template) if not labels.get(m)]
    if missing:
        raise InputError(f"query {template!r} needs label(s) {', '.join(sorted(set(missing)))}, which the alert "
                         "does not have")
    return _PLACEHOLDER.sub(lambda m: _escape(labels[m.group(1)]), template)


def selector_query(selector: str) -> str:
    """The PromQL that takes every series matching a label selector (``{namespace="shop",pod=~"checkout-.*"}``)."""
    s = selector.strip()
    if not s.startswith("{"):
        s = "{" + s + "}"
    return s


def generator_expr(generator_url: str | None) -> str | None:
    """The expression behind an alert: ``g0.expr`` of its Prometheus ``generatorURL`` (None when absent)."""
    if not generator_url:
        return None
    try:
        qs = parse_qs(urlparse(generator_url).query)
    except ValueError:
        return None
    values = qs.get("g0.expr") or [""]
    return values[0].strip() or None


def baseline_ranges(start: pd.Timestamp, end: pd.Timestamp, spec: str) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Earlier ranges that say what normal looks like, from ``spec``:

    - ``"preceding:6h"``: the 6 hours before ``start``;
    - ``"offsets:1d,7d"``: the same window shifted back by each offset (same hour a day and a week earlier).
    """
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    try:
        if kind == "preceding":
            d = pd.Timedelta(arg.strip() or "6h")
            return [(start - d, start)]
        if kind == "offsets":
            return [(start - pd.Timedelta(x.strip()), end - pd.Timedelta(x.strip())) for x in arg.split(",") if x.strip()]
    except ValueError as exc:
        raise InputError(f"baseline range {spec!r}: {exc}") from exc
    raise InputError(f"baseline range {spec!r}: expected 'preceding:<duration>' or 'offsets:<d1>,<d2>'")


def concat_sets(sets: Sequence[MetricSet]) -> MetricSet:
    """Several ranges of the same queries as one set (rows of all ranges; the channels they share or not)."""
    if len(sets) == 1:
        return sets[0]
    frame = pd.concat([s.frame for s in sets], axis=0, sort=True).sort_index()
    frame = frame[~frame.index.duplicated(keep="last")]
    entity_of: dict[str, str | None] = {}
    metric_of: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for s in sets:
        entity_of.update(s.entity_of)
        metric_of.update(s.metric_of)
        skipped.update(s.skipped)
    return MetricSet(source=sets[0].source, frame=frame.astype("float64"), entity_of=entity_of, metric_of=metric_of,
                     skipped=skipped, step=sets[0].step, layout=sets[0].layout)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _short(expr: str) -> str:
    s = re.sub(r"\s+", " ", expr.strip())
    return s if len(s) <= 80 else s[:79] + "…"


def _unix(t: datetime | pd.Timestamp | float) -> float:
    if isinstance(t, (int, float)):
        return float(t)  # epoch seconds
    ts = pd.Timestamp(t)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")  # naive times are UTC throughout Anomalist
    return float(ts.timestamp())


def _iso(t: datetime | pd.Timestamp | float) -> str:
    return pd.Timestamp(_unix(t), unit="s").isoformat()


__all__ = ["ENTITY_LABELS", "PrometheusClient", "PrometheusError", "PrometheusQuery", "baseline_ranges",
           "choose_step", "concat_sets", "fill", "generator_expr", "selector_query", "series_name"]
