"""Prometheus metrics of the HTTP service, in a registry of its own (no module-level singletons)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServiceMetrics:
    """Counters, histograms and gauges exposed at ``GET /metrics``.

    Args:
        queue_depth: returns the number of triages waiting for a worker.
        running: returns the number of triages running now.
        llm_stats: returns ``{"calls": n, "failures": m}`` of every LLM call the process made (chat and triage).
    """

    def __init__(
        self,
        queue_depth: Callable[[], int],
        running: Callable[[], int],
        llm_stats: Callable[[], dict[str, int]],
    ):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "anomalist_http_requests", "HTTP requests by route and status", ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "anomalist_http_request_seconds", "HTTP request latency (until the response is complete)",
            ["method", "route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.triages = Counter("anomalist_triages", "Finished triages by outcome", ["kind", "outcome"],
                               registry=self.registry)
        self.degraded = Counter("anomalist_degraded_triages", "Triages whose report ran degraded",
                                registry=self.registry)
        self.triage_seconds = Histogram("anomalist_triage_seconds", "Triage run time", ["kind"],
                                        registry=self.registry, buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600))
        self.alerts = Counter("anomalist_alerts", "Alerts received by status and handling",
                              ["status", "handling"], registry=self.registry)
        self.webhook_posts = Counter("anomalist_outgoing_webhook_posts", "Reports posted to the outgoing webhook",
                                     ["outcome"], registry=self.registry)
        self.store_seconds = Histogram("anomalist_store_seconds", "Incident store search latency", ["operation"],
                                       registry=self.registry,
                                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.store_errors = Counter("anomalist_store_errors", "Incident store searches that failed", ["operation"],
                                    registry=self.registry)
        self.prometheus_queries = Counter("anomalist_prometheus_queries", "Prometheus queries made for alerts",
                                          ["outcome"], registry=self.registry)
        self.chat_turns = Counter("anomalist_chat_turns", "Chat turns by outcome", ["outcome"],
                                  registry=self.registry)
        self.registry.register(_Live(queue_depth, running, llm_stats))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class TimedMemory:
    """An incident store whose searches are timed and counted (``anomalist_store_seconds``, ``_errors``); every
    other attribute is the store's own."""

    _TIMED = ("similar_incidents", "search_runbooks", "runbook_for")

    def __init__(self, store: Any, metrics: ServiceMetrics):
        self._store = store
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name not in self._TIMED:
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            except Exception:
                self._metrics.store_errors.labels(name).inc()
                raise
            finally:
                self._metrics.store_seconds.labels(name).observe(time.perf_counter() - started)

        return timed


class _Live:
    """Values read at scrape time: queue depth, running triages, LLM calls and failures."""

    def __init__(self, queue_depth: Callable[[], int], running: Callable[[], int],
                 llm_stats: Callable[[], dict[str, int]]):
        self._queue_depth = queue_depth
        self._running = running
        self._llm_stats = llm_stats

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        yield GaugeMetricFamily("anomalist_queue_depth", "Triages waiting for a worker", value=self._queue_depth())
        yield GaugeMetricFamily("anomalist_triages_running", "Triages running now", value=self._running())
        stats = self._llm_stats()
        yield CounterMetricFamily("anomalist_llm_calls", "LLM calls made", value=stats.get("calls", 0))
        yield CounterMetricFamily("anomalist_llm_failures", "LLM calls that failed", value=stats.get("failures", 0))


class MetricsMiddleware:
    """Counts requests and observes latency per route template (never per raw path: bounded label values)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, path, str(status["code"])).inc()
            self.metrics.latency.labels(method, path).observe(time.perf_counter() - started)
