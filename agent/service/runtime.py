"""Everything the HTTP service holds while it runs: pools, reports, the alert ledger, metrics, shared models.

Heavy dependencies (the LLM, the incident store, the chat agent) are opened lazily, once, and shared by all
requests; when one cannot be opened the service keeps running and says so at ``/healthz``.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd
from langchain_core.callbacks import BaseCallbackHandler

from anomalist.agent.report import TriageReport
from anomalist.agent.service.alerts import SERVICE_LABELS, AlertLedger, resolve_service, slack_blocks
from anomalist.agent.service.jobs import Job, JobManager
from anomalist.agent.service.metrics import ServiceMetrics, TimedMemory
from anomalist.agent.service.reports import ReportStore
from anomalist.agent.settings import MetricSource, Settings
from anomalist.agent.sources import (
    expand_globs,
    journald_sources,
    log_files,
    metric_source,
    prometheus_metrics,
    read_journald,
    service_queries,
    window_of,
)
from anomalist.tools.alerts import Alert
from anomalist.tools.errors import InputError
from anomalist.tools.metrics_io import MetricSet, read_metrics

if TYPE_CHECKING:
    from anomalist.agent.llm import LLMService
    from anomalist.tools.store import IncidentStore

logger = logging.getLogger(__name__)

RETRY_DEPENDENCY_S = 60.0  # an LLM or store that failed to open is tried again after this long


class LLMCallCounter(BaseCallbackHandler):
    """Counts LLM calls and failures seen through LangChain callbacks (thread-safe)."""

    def __init__(self) -> None:
        self.calls = 0
        self.failures = 0
        self._lock = threading.Lock()

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        with self._lock:
            self.calls += 1

    def on_llm_start(self, serialized: Any, prompts: Any, **kwargs: Any) -> None:
        with self._lock:
            self.calls += 1

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        with self._lock:
            self.failures += 1


class ServiceRuntime:
    """The state of one running service.

    Args:
        settings: the service's settings (read once at start-up).
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        srv = settings.server
        self.jobs = JobManager(workers=srv.workers, max_queue=srv.max_queue)
        self.reports = ReportStore(settings.data_dir / "reports")
        self.ledger = AlertLedger(settings.data_dir / "alerts", capacity=srv.dedup_capacity)
        self.uploads_dir = settings.data_dir / "uploads"
        self.llm_counter = LLMCallCounter()
        self.metrics = ServiceMetrics(
            queue_depth=lambda: self.jobs.queue_depth, running=lambda: self.jobs.running, llm_stats=self.llm_stats
        )
        self._lock = threading.Lock()
        self._llm: LLMService | None = None
        self._llm_error: str | None = None
        self._llm_failed_at = 0.0
        self._store: IncidentStore | None = None
        self._store_error: str | None = None
        self._store_failed_at = 0.0
        self._chat: Any = None
        self.started_at = time.time()

    # ---- shared dependencies -------------------------------------------------------------------------------
    def llm_service(self) -> LLMService | None:
        """The shared ``agent.llm.LLMService`` (None when it cannot be built; triages then run degraded)."""
        from anomalist.agent.llm import LLMService  # heavy: imported on first use

        with self._lock:
            retry = time.monotonic() - self._llm_failed_at > RETRY_DEPENDENCY_S
            if self._llm is None and (self._llm_error is None or retry):
                try:
                    self._llm = LLMService(self.settings.llm, cache_dir=self.settings.llm_cache_dir)
                    self._llm_error = None
                except Exception as exc:  # noqa: BLE001 - any failure means: run without a shared LLM
                    self._llm_error = f"{type(exc).__name__}: {exc}"
                    self._llm_failed_at = time.monotonic()
                    logger.warning("LLM service unavailable: %s", self._llm_error)
            return self._llm

    def store(self) -> IncidentStore | None:
        """The shared ``tools.store.IncidentStore`` (None when unavailable; triages then run degraded)."""
        from anomalist.tools.store import IncidentStore  # heavy (chromadb): imported on first use

        with self._lock:
            retry = time.monotonic() - self._store_failed_at > RETRY_DEPENDENCY_S
            if self._store is None and (self._store_error is None or retry):
                try:
                    self._store = TimedMemory(IncidentStore.from_settings(self.settings.store,  # type: ignore[assignment]
                                                                          self.settings.store_path), self.metrics)
                    self._store_error = None
                except Exception as exc:  # noqa: BLE001 - StoreUnavailable and friends: degrade, do not crash
                    self._store_error = f"{type(exc).__name__}: {exc}"
                    self._store_failed_at = time.monotonic()
                    logger.warning("incident store unavailable: %s", self._store_error)
            return self._store

    def chat_agent(self) -> Any:
        """The shared chat agent over the configured sources (built on first use)."""
        store, llm = self.store(), self.llm_service()  # outside the lock: these take it themselves
        with self._lock:
            if self._chat is None:
                from anomalist.agent.chat.agent import ChatAgent

                self._chat = ChatAgent.from_settings(
                    self.settings, store=store, llm=llm, llm_callbacks=[self.llm_counter],
                    max_conversations=self.settings.server.max_conversations, on_report=self.reports.save,
                )
            return self._chat

    def llm_stats(self) -> dict[str, int]:
        """LLM calls and failures: chat turns (callbacks) plus the triage LLM service's own counters."""
        calls, failures = self.llm_counter.calls, self.llm_counter.failures
        if self._llm is not None:
            stats = dict(self._llm.stats)
            calls += stats.get("calls", 0)
            failures += stats.get("errors", 0)
        return {"calls": calls, "failures": failures}

    def health(self) -> dict[str, Any]:
        """Dependency status for ``/healthz`` (never opens a dependency that no request has needed yet)."""
        llm: dict[str, Any] = {"backend": self.settings.llm.backend}
        if self._llm_error:
            llm.update(status="unavailable", error=self._llm_error)
        elif self._llm is not None:
            detail = self._llm.health()
            llm.update({k: v for k, v in detail.items() if k in ("ok", "model", "breaker", "error", "stats")})
            llm["status"] = "ok" if detail.get("ok", True) else "unavailable"
        else:
            llm["status"] = "not_loaded" if self.settings.llm.backend != "none" else "disabled"
        store: dict[str, Any] = {"mode": self.settings.store.mode}
        if self._store_error:
            store.update(status="unavailable", error=self._store_error)
        elif self._store is not None:
            store.update(status="ok", location=self._store.location)
        else:
            store["status"] = "not_opened"
        degraded = llm.get("status") == "unavailable" or store.get("status") == "unavailable"
        return {
            "status": "degraded" if degraded else "ok",
            "llm": llm,
            "store": store,
            "queue_depth": self.jobs.queue_depth,
            "triages_running": self.jobs.running,
            "uptime_s": round(time.time() - self.started_at, 1),
        }

    # ---- triage work ---------------------------------------------------------------------------------------
    def run_triage(self, kind: str, logs: list[Path] | None, metrics: Path | pd.DataFrame | MetricSet | None,
                   alert: dict[str, Any] | None, missing: dict[str, str] | None = None,
                   baseline: Any = None) -> TriageReport:
        """Run one triage with the shared store and LLM, record its metrics and save the report.

        ``missing`` says why logs / metrics are absent (see ``agent.triage.triage``)."""
        from anomalist.agent.triage import triage

        started = time.perf_counter()
        try:
            report = triage(logs or None, metrics, alert, settings=self.settings, store=self.store(),
                            llm=self.llm_service(), missing=missing, baseline=baseline)
        except InputError:
            self.metrics.triages.labels(kind, "input_error").inc()
            raise
        except Exception:
            self.metrics.triages.labels(kind, "failed").inc()
            raise
        self.metrics.triage_seconds.labels(kind).observe(time.perf_counter() - started)
        self.metrics.triages.labels(kind, "degraded" if report.is_degraded else "ok").inc()
        if report.is_degraded:
            self.metrics.degraded.inc()
        self.reports.save(report)
        return report

    def upload_work(self, workdir: Path, logs: list[Path], metrics: Path | None,
                    alert: dict[str, Any] | None) -> Any:
        """The job body of an uploaded triage: runs it, then removes the uploaded files."""

        def work(job: Job) -> dict[str, Any]:
            try:
                report = self.run_triage("upload", logs, metrics, alert)
            except InputError as exc:
                return {"status": "failed", "error": str(exc), "error_kind": "input"}
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            return {"report_id": report.id, "severity": report.severity, "degraded": report.is_degraded}

        return work

    def alert_work(self, alert: Alert, external_url: str, *, group: str | None = None, episode: str | None = None,
                   payload: dict[str, Any] | None = None) -> Any:
        """The job body of one alert group's firing episode: triage of its service's sources (log files, journald,
        metric files or Prometheus, for the alert's window), report saved, resolution applied if it came in
        meanwhile, webhook posted.

        Every firing episode gets a report: a service without configured sources (or whose sources hold nothing
        usable) gets an alert-only report (the alert, its runbook, similar incidents, degraded flags saying why
        no logs / metrics were triaged)."""

        def work(job: Job) -> dict[str, Any]:
            srv = self.settings.server
            known = set(srv.sources) | set(srv.metrics_sources)
            service, configured = resolve_service(alert, known)
            start, end = window_of(self.settings, pd.Timestamp(alert.startsAt) if alert.startsAt else None)
            notes: list[str] = []
            scratch = self.settings.data_dir / "alerts" / "scratch" / job.id
            try:
                logs, log_why = self._service_logs(service if configured else None, start, end, scratch, notes)
                metrics, base, metric_why = self._service_metrics(service if configured else None, alert, start, end,
                                                                  notes)
                missing = self._missing_sources(service, configured, logs, metrics)
                if log_why and not logs:
                    missing["logs"] = log_why
                if metric_why and metrics is None:
                    missing["metrics"] = metric_why
                alert_dict = payload or alert.model_dump(mode="json")
                baseline = None
                if base is not None:
                    from anomalist.agent.baseline import Baseline

                    baseline = Baseline.build(self.settings, metrics=base)
                try:
                    try:
                        report = self.run_triage("alert", logs, metrics, alert_dict, missing, baseline=baseline)
                    except InputError as exc:
                        if not logs and metrics is None:
                            raise
                        why = f"the configured sources of service {service!r} hold nothing usable: {exc}"
                        logger.warning("alert %s: %s; reporting on the alert alone", alert.display_name, why)
                        logs, metrics = [], None
                        report = self.run_triage("alert", None, None, alert_dict, {"logs": why, "metrics": why})
                except InputError as exc:
                    reason = str(exc)
                    self.ledger.record("failed", alert, job_id=job.id, service=service, error=reason, group=group,
                                       episode=episode)
                    return {"status": "failed", "error": reason, "error_kind": "input",
                            "detail": {**job.detail, "service": service, "configured": configured}}
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            self.ledger.record("report", alert, job_id=job.id, report_id=report.id, service=service,
                               severity=report.severity, group=group, episode=episode)
            if group and episode:
                ep = self.ledger.attach(group, episode, report_id=report.id)
                if ep is not None and ep.resolved_at:  # resolved while the triage ran
                    self.reports.mark_resolved(report.id, ep.resolved_at)
            posted = self._post_outgoing(report, alert, external_url)
            return {"report_id": report.id, "severity": report.severity, "degraded": report.is_degraded,
                    "detail": {**job.detail, "service": service, "configured": configured, "log_files": len(logs),
                               "metrics": metrics is not None, "alert_only": not logs and metrics is None,
                               "metrics_source": getattr(metrics, "source", None) if metrics is not None else None,
                               "sources": notes[:20], "posted": posted}}

        return work

    def _missing_sources(self, service: str | None, configured: bool, logs: list[Path],
                         metrics: Path | pd.DataFrame | MetricSet | None) -> dict[str, str]:
        """Why an alert's triage has no logs and/or no metrics (for its degraded flags and summary)."""
        srv = self.settings.server
        tried = f"labels tried: {', '.join(SERVICE_LABELS)}"
        if service is None:
            why = f"the alert names no service ({tried})"
            return {"logs": why, "metrics": why}
        out: dict[str, str] = {}
        if not logs:
            entries = srv.sources.get(service) or []
            out["logs"] = ((f"the log sources configured for service {service!r} hold no entries in the window"
                            if journald_sources(entries) else
                            f"the log globs configured for service {service!r} match no files")
                           if entries else
                           f"no log sources are configured for service {service!r} (server.sources"
                           + (")" if configured else f"; {tried})"))
        if metrics is None:
            out["metrics"] = (f"no metrics source is configured for service {service!r} (server.metrics_sources"
                              + (")" if configured else f"; {tried})"))
        return out

    def _service_logs(self, service: str | None, start: pd.Timestamp, end: pd.Timestamp, scratch: Path,
                      notes: list[str]) -> tuple[list[Path], str | None]:
        """The log files of ``service``: its globs, and its journald sources read for ``[start, end]``."""
        if not service:
            return [], None
        entries = self.settings.server.sources.get(service, [])
        files = expand_globs(log_files(entries), notes)
        why: str | None = None
        for i, src in enumerate(journald_sources(entries)):
            try:
                path = read_journald(src, start, end, scratch / f"journal-{i}.jsonl", notes)
            except InputError as exc:
                why = str(exc)
                notes.append(why)
                logger.warning("service %s: %s", service, exc)
                continue
            if path is not None:
                files.append(path)
        return files, why

    def _service_metrics(self, service: str | None, alert: Alert, start: pd.Timestamp, end: pd.Timestamp,
                         notes: list[str]) -> tuple[Path | pd.DataFrame | MetricSet | None, MetricSet | None, str | None]:
        """(metrics, their Prometheus baseline, why there are none): a configured file (sliced to the window), or
        Prometheus (the service's queries and the alert's own expression, with the configured baseline range)."""
        ps = self.settings.prometheus
        src = metric_source(self.settings.server.metrics_sources.get(service)) if service else None
        if src is not None and src.path and src.prometheus is None:
            return self._file_metrics(Path(src.path), start, end), None, None
        queries = []
        if src is not None or ps.url:
            queries = service_queries(src or MetricSource(), alert.labels, alert_generator_url=alert.generatorURL,
                                      include_alert_expr=ps.alert_expr and bool(ps.url))
        if not queries:
            return None, None, None
        if not ps.url:
            return None, None, "prometheus queries are configured but prometheus.url is not set"
        try:
            got = prometheus_metrics(ps, queries, start, end)
            self.metrics.prometheus_queries.labels("ok").inc(len(got.queries))
        except InputError as exc:
            self.metrics.prometheus_queries.labels("failed").inc()
            logger.warning("alert %s: Prometheus: %s", alert.display_name, exc)
            notes.append(str(exc))
            return None, None, f"Prometheus: {exc}"
        notes += got.notes
        return got.metrics, got.baseline, None

    def _file_metrics(self, path: Path, start: pd.Timestamp, end: pd.Timestamp) -> Path | pd.DataFrame:
        try:
            frame, _ = read_metrics(path)
        except Exception as exc:  # noqa: BLE001 - let triage read (and report on) the file or directory itself
            logger.info("metrics %s not pre-sliced (%s); triage reads it", path, exc)
            return path
        if not isinstance(frame, pd.DataFrame) or not isinstance(frame.index, pd.DatetimeIndex):
            return path
        lo, hi = start, end
        if frame.index.tz is not None:
            lo, hi = lo.tz_localize("UTC"), hi.tz_localize("UTC")
        sliced = frame.loc[(frame.index >= lo) & (frame.index <= hi)]
        # An alert on old data (or a clock skew) would leave nothing: use the whole series then.
        return sliced if len(sliced) >= 16 else frame

    def _post_outgoing(self, report: TriageReport, alert: Alert, external_url: str) -> bool | None:
        url = self.settings.server.outgoing_webhook
        if not url:
            return None
        report_url = f"{external_url.rstrip('/')}/v1/reports/{report.id}"
        body = slack_blocks(report, alert, report_url)
        try:
            response = httpx.post(url, json=body, timeout=self.settings.server.outgoing_timeout_s)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            logger.warning("outgoing webhook failed for report %s: %s", report.id, exc)
            self.metrics.webhook_posts.labels("failed").inc()
            self.ledger.record("post_failed", alert, report_id=report.id, error=str(exc))
            return False
        self.metrics.webhook_posts.labels("ok").inc()
        self.ledger.record("posted", alert, report_id=report.id)
        return True

    def new_upload_dir(self) -> Path:
        import uuid

        path = self.uploads_dir / uuid.uuid4().hex
        path.mkdir(parents=True, exist_ok=False)
        return path

    def shutdown(self) -> None:
        self.jobs.shutdown(wait=False)
