"""Batch triage: logs (+ metrics, + an alert) in, a ranked and explained :class:`~agent.report.TriageReport` out.

Stages: read + parse the logs -> time windows -> log detectors and the metric ``auto`` detector -> group the
anomalies that coincide in time into findings -> rank them (detector strength, severity, novelty; see
``agent.triage.rank``) -> for the top k: similar incidents and the runbook (incident store), LLM judgment and
explanation (LLM layer, bounded by ``settings.triage.llm_budget_s``) -> report.

Degraded, never broken: the LLM down or slow, the store missing, no metrics, or a detector failing on odd input
each leave a :class:`~agent.report.DegradedFlag` and the report still comes out from what did run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from anomalist.agent.baseline import Baseline
from anomalist.agent.report import (
    AlertRef,
    DegradedFlag,
    Explanation,
    Finding,
    InputSummary,
    RootCause,
    ServiceGraph,
    StageTiming,
    TriageReport,
)
from anomalist.agent.settings import Settings
from anomalist.agent.triage.assemble import alert_only_report, assemble, with_cause
from anomalist.agent.triage.detect import run_log_detectors, run_metric_detector
from anomalist.agent.triage.enrich import Judged, Memory
from anomalist.agent.triage.evidence import Candidate, build_finding
from anomalist.agent.triage.inputs import LogData, fmt_td, load_logs
from anomalist.agent.triage.rank import group_hits, incident_focus, rank_findings, score_group
from anomalist.tools.errors import InputError
from anomalist.tools.metrics_io import MetricSet, load_metric_set
from anomalist.tools.redact import Redactor

if TYPE_CHECKING:
    from anomalist.agent.seams import IncidentMemory, Judge

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, float, str], None]
"""``progress(stage, fraction_done, message)``: called when a stage starts (0.0), within long stages, and when it
ends (1.0). Stages, in order: see :data:`STAGES` ("rank" covers grouping, ranking and evidence)."""

STORE_OPEN_TIMEOUT_S = 120.0
"""The retrieve stage waits this long at most for the store to open (a server timeout is far shorter)."""

STAGES = ("baseline", "parse", "log_detectors", "metrics", "traces", "rank", "rca", "retrieve", "llm", "report")
"""Stage names of progress callbacks and of ``TriageReport.timings``."""


def triage(
    logs: Sequence[str | Path] | None,
    metrics: Path | str | pd.DataFrame | MetricSet | None = None,
    alert: dict[str, Any] | None = None,
    *,
    settings: Settings,
    traces: Sequence[str | Path] | str | Path | None = None,
    baseline: Baseline | None = None,
    progress: ProgressCallback | None = None,
    store: IncidentMemory | None = None,
    llm: Judge | None = None,
    missing: dict[str, str] | None = None,
    diagnostics: dict[str, Any] | None = None,
    engine: str | None = None,
) -> TriageReport:
    """Triage a batch of logs and optional metrics (and an optional Alertmanager alert).

    With an alert and neither logs nor metrics, the report is alert-only: the alert (cited as evidence), its
    runbook and steps, similar incidents (searched with the alert's name, labels and annotations), a severity from
    the alert's ``severity`` label, and degraded flags saying that no logs and no metrics were triaged.

    Args:
        logs: log files, directories, globs or ``"-"`` (stdin); None or empty when only metrics (or only an
            alert) are given.
        metrics: a metrics CSV, a directory of per-entity (per-pod) CSVs, a long ``time, entity, metric, value``
            CSV (see ``tools.metrics_io.read_metric_set``), a ``MetricSet``, or a DataFrame (DatetimeIndex x
            numeric channels).
        alert: one Alertmanager alert (labels, annotations, startsAt, ...) or a whole v4 webhook payload (its
            first firing alert is used).
        settings: the typed settings (``settings.triage`` holds top_k, window, detectors and the LLM budget).
        traces: optional span files or directories (``tools.traces.read_spans``): the service call graph and
            per-service latency for root-cause analysis.
        baseline: fault-free reference data (``agent.baseline.Baseline``); None = the batch's own start.
        progress: optional stage progress callback, see :data:`ProgressCallback`.
        store: an open ``tools.store.IncidentStore`` to share; None = open the configured one (or run without).
        llm: an ``agent.llm.LLMService`` to share; None = build one from ``settings.llm`` (or run without;
            ``settings.llm.backend == "none"`` runs without on purpose).
        missing: why the logs and/or the metrics are absent (keys ``"logs"``, ``"metrics"``), e.g. "no log
            sources are configured for service 'x'"; used in the degraded flags and the alert-only summary.
        diagnostics: when given, filled with the root-cause stage's working data (``"rca"``: an
            ``agent.triage.rca.RCAContext``) and, on Ray, the engine's figures (``"engine"``: an
            ``agent.scale.EngineReport``) for evaluation; nothing in the report depends on it.
        engine: where the logs are read, parsed and counted: ``"local"`` (this process) or ``"ray"`` (Ray tasks
            over shards, ``agent.scale``; same result); None = ``settings.triage.engine``.

    Returns:
        The report; it is produced even when the LLM, the store, the metrics or a detector fail (marked degraded).

    Raises:
        tools.errors.InputError: when there is no alert and neither the logs nor the metrics hold anything usable,
            or when logs or metrics were given and none of them is usable.
    """
    engine = engine or settings.triage.engine
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    if engine == "ray" and logs:
        from anomalist.agent.scale import INSTALL_HINT, ray_available

        if not ray_available():
            raise InputError(INSTALL_HINT)
    run = _Run(settings, progress)
    alert_obj, alert_ref = _alert(alert, run.degraded)
    missing = dict(missing or {})
    if not logs and metrics is None:
        if alert_obj is None or alert_ref is None:
            raise InputError("nothing usable to triage: no logs and no metrics given"
                             + (" and no usable alert" if alert is not None else ""))
        return _alert_only(run, alert_obj, alert_ref, _start_store(run, store), missing)
    llm = _start_llm(run, llm)  # both load in the background while the logs are parsed
    store_ready = _start_store(run, store)
    inputs = InputSummary(window=settings.triage.window)

    logdata: LogData | None = None
    log_error: Exception | None = None
    if logs:
        with run.stage("parse"):
            try:
                parser = baseline.parser() if baseline is not None else None
                if engine == "ray":
                    from anomalist.agent.scale import EngineReport, load_logs_sharded

                    eng = EngineReport(engine="ray")
                    if diagnostics is not None:
                        diagnostics["engine"] = eng
                    logdata = load_logs_sharded(logs, settings, run.tick, parser=parser, engine="ray", report=eng)
                else:
                    logdata = load_logs(logs, settings, run.tick, parser=parser)
            except InputError as exc:
                log_error = exc
        if logdata is not None:
            _log_inputs(inputs, logdata)
    hits = []
    detectors_ran: list[str] = []
    if logdata is not None:
        with run.stage("log_detectors"):
            h, ran = run_log_detectors(logdata, settings, run.degraded, run.tick)
            hits += h
            detectors_ran += ran
    mdf: pd.DataFrame | None = None
    mset: MetricSet | None = None
    metric_error: Exception | None = None
    if metrics is not None:
        with run.stage("metrics"):
            try:
                mset, name, notes = load_metric_set(metrics)
                mdf = mset.frame
                inputs.metric_source, inputs.metric_rows = name, len(mdf)
                inputs.metric_channels = [str(c) for c in mdf.columns][:MAX_LISTED_CHANNELS]
                inputs.notes += notes
            except (InputError, ValueError, TypeError, OSError) as exc:
                metric_error = exc
            if mdf is not None:
                h, ran = run_metric_detector(mdf, settings, run.degraded, run.tick)
                hits += h
                detectors_ran += ran
    spans: pd.DataFrame | None = None
    if traces:
        with run.stage("traces"):
            spans = _read_traces(traces, settings, inputs, run.degraded)
    if logdata is None and mdf is None:
        problems = [str(e) for e in (log_error, metric_error) if e is not None]
        raise InputError("nothing usable to triage: " + ("; ".join(problems) if problems else "no logs and no metrics given"))
    if log_error is not None:
        run.degraded.append(DegradedFlag(component="logs", name="logs", reason=str(log_error)[:300]))
    elif not logs and "logs" in missing:
        run.degraded.append(DegradedFlag(component="logs", name="logs", reason=missing["logs"][:300]))
    if metric_error is not None:
        run.degraded.append(DegradedFlag(component="metrics", name=str(metrics)[:100], reason=str(metric_error)[:300]))
    elif metrics is None:
        reason = missing.get("metrics", "no metrics given") + ": log evidence only"
        run.degraded.append(DegradedFlag(component="metrics", name="metrics", reason=reason[:300]))

    with run.stage("rank"):
        window = logdata.window if logdata is not None else pd.Timedelta(settings.triage.window)
        groups = group_hits(hits, tolerance=window)
        cands = [_score(g, logdata, mdf) for g in groups]
        cands.sort(key=lambda c: -c.scores.total)
        cands = cands[: settings.triage.max_findings]
        redact = run.redact
        findings = [build_finding(f"F{i}", i, c, logdata, mdf, redact) for i, c in enumerate(cands, 1)]
    rca_ctx = None
    causes: list[RootCause] = []
    graph: ServiceGraph | None = None
    if settings.rca.enabled:
        with run.stage("rca"):
            rca_ctx, causes, graph = _root_causes(run, logdata, mset, spans, baseline, findings, redact)
    # The incident at hand first (the top root cause's findings, the alert's): memory and the LLM go to those.
    focus = incident_focus(findings, causes[0] if causes else None, alert_ref, window)
    for f in findings:
        f.scores.focus = focus.get(f.id, 0.0)
    rank_findings(findings)
    top = findings[: settings.triage.top_k]

    with run.stage("retrieve"):
        memory = _retrieve(run, store_ready, top, alert_obj)

    judged = None
    with run.stage("llm"):
        t_llm = time.perf_counter()
        judged = _judge(run, llm, top, findings, memory, alert_ref)
        left = settings.triage.llm_budget_s - (time.perf_counter() - t_llm)
        if causes and llm is not None and not llm.in_process:
            _explain_cause(run, llm, causes[0], left)

    with run.stage("report"):
        report = assemble(run.settings, findings, memory, judged, alert_ref, inputs, logdata, mdf, detectors_ran,
                          degraded=run.degraded, timings=run.timings, redact=run.redact)
        report.root_causes = causes
        report.service_graph = graph
        report.rca = rca_ctx.summary if rca_ctx is not None else None
        if causes:
            report.summary = with_cause(report.summary, causes[0])
        report.inputs.redacted = dict(sorted(run.redact.counts.items()))
        report = TriageReport.model_validate(report.model_dump())  # re-check every citation
        if diagnostics is not None:
            diagnostics["rca"] = rca_ctx
    report.timings.append(StageTiming(stage="report", seconds=round(run.timings["report"], 4)))
    return report


MAX_LISTED_CHANNELS = 200
"""Channels named in the report's inputs (a cluster has thousands; the metric evidence names the ones that matter)."""


def _read_traces(traces: Sequence[str | Path] | str | Path, settings: Settings, inputs: InputSummary,
                 degraded: list[DegradedFlag]) -> pd.DataFrame | None:
    from anomalist.tools.traces import read_spans

    try:
        spans, rep = read_spans([traces] if isinstance(traces, (str, Path)) else list(traces),
                                service_map=settings.rca.service_map or None)
    except InputError as exc:
        degraded.append(DegradedFlag(component="traces", name="traces", reason=str(exc)[:300]))
        return None
    inputs.notes += [f"traces: {line}" for line in rep.lines()]
    return spans


def _root_causes(run: _Run, logdata: LogData | None, mset: MetricSet | None, spans: pd.DataFrame | None,
                 baseline: Baseline | None, findings: list[Finding], redact: Callable[[str], str]
                 ) -> tuple[Any, list[RootCause], ServiceGraph | None]:
    from anomalist.agent.triage import rca as triage_rca

    try:
        ctx = triage_rca.build_inputs(run.settings, logdata, mset, spans, baseline)
        triage_rca.run(ctx, run.settings)
        causes, graph = triage_rca.to_report(ctx, logdata, findings, redact)
    except Exception as exc:  # noqa: BLE001 - root-cause analysis is extra evidence; the report goes on
        logger.warning("root-cause analysis failed: %s", exc, exc_info=True)
        run.degraded.append(DegradedFlag(component="rca", name="rca", reason=f"{type(exc).__name__}: {exc}"[:300]))
        return None, [], None
    return ctx, causes, graph


def _explain_cause(run: _Run, llm: Judge, cause: RootCause, budget_s: float) -> None:
    """The model's explanation of the top candidate (servers only; in-process models keep the composed one),
    within what is left of the triage's LLM budget (a stalled server is abandoned at the deadline)."""
    if budget_s <= 0.5 or any(d.component == "llm" for d in run.degraded):
        return  # no time left, or the LLM already failed or ran out of budget in this triage
    view = {"id": cause.id, "title": f"root-cause candidate {cause.service} ({cause.kind}) from {cause.onset:%H:%M}",
            "templates": [{"id": e.id, "level": e.modality, "count": 1, "template": e.text} for e in cause.evidence]}
    fut: Future[Any] = Future()

    def body() -> None:
        try:
            fut.set_result(llm.explain([view], context=f"candidate root cause: {cause.service}, kind {cause.kind}"))
        except BaseException as exc:  # noqa: BLE001 - delivered below
            fut.set_exception(exc)

    threading.Thread(target=body, name="triage-llm-root-cause", daemon=True).start()
    try:
        res = fut.result(timeout=budget_s)
    except FutureTimeout:
        run.degraded.append(DegradedFlag(component="llm", name="explain_root_cause",
                                         reason=f"not done within the LLM budget ({budget_s:.1f}s left)"))
        return
    except Exception as exc:  # noqa: BLE001 - the composed explanation stays
        run.degraded.append(DegradedFlag(component="llm", name="explain_root_cause", reason=str(exc)[:300]))
        return
    valid = {cause.id} | {e.id for e in cause.evidence}
    cited = [i for i in res.evidence_ids if i in valid]
    if res.text.strip() and cited:
        cause.llm_explanation = Explanation(text=res.text[:2000], evidence_ids=cited, source="llm")
    else:
        run.degraded.append(DegradedFlag(component="llm", name="explain_root_cause", reason=(
            "the model's explanation of the top root cause was empty or cited no evidence id; left out")))


class _Run:
    """Per-run state: timings, degraded flags, progress."""

    def __init__(self, settings: Settings, progress: ProgressCallback | None):
        self.settings = settings
        self.progress = progress
        self.degraded: list[DegradedFlag] = []
        self.timings: dict[str, float] = {}
        self.redact = CountingRedactor(settings)
        self.llm_error: Exception | None = None

    def tick(self, stage: str, fraction: float, message: str = "") -> None:
        if self.progress is not None:
            try:
                self.progress(stage, fraction, message)
            except Exception:  # noqa: BLE001 - a broken progress bar must not break the triage
                logger.debug("progress callback failed", exc_info=True)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.tick(name, 0.0, "")
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
            self.tick(name, 1.0, "")


def _alert(alert: dict[str, Any] | None, degraded: list[DegradedFlag]) -> tuple[dict[str, Any] | None, AlertRef | None]:
    """The single alert to use (a v4 payload's first firing alert) and its reference for the report."""
    if alert is None:
        return None, None
    if not isinstance(alert, dict):
        raise InputError(f"alert must be a JSON object, got {type(alert).__name__}")
    one = alert
    group = 1
    if isinstance(alert.get("alerts"), list):
        alerts = [a for a in alert["alerts"] if isinstance(a, dict)]
        if not alerts:
            degraded.append(DegradedFlag(component="alert", name="alert", reason="payload holds no alerts"))
            return None, None
        one = next((a for a in alerts if a.get("status") == "firing"), alerts[0])
        group = sum(1 for a in alerts if a.get("status") == "firing") or len(alerts)
    labels = {str(k): str(v) for k, v in (one.get("labels") or {}).items()}
    ann = {str(k): str(v) for k, v in (one.get("annotations") or {}).items()}
    starts = pd.to_datetime(one.get("startsAt"), errors="coerce", utc=True)
    ref = AlertRef(
        name=labels.get("alertname", "unknown"), status=one.get("status"), severity=labels.get("severity"),
        service=labels.get("service") or labels.get("job"),
        starts_at=None if pd.isna(starts) else starts.tz_convert(None).to_pydatetime(),
        summary=ann.get("summary") or ann.get("description"), labels=labels, group_alerts=group,
    )
    return one, ref


def _log_inputs(inputs: InputSummary, d: LogData) -> None:
    s = d.stats
    inputs.log_sources = d.sources
    inputs.log_format = s.get("format")
    inputs.lines_read = int(s.get("lines_read", 0) or 0)
    inputs.events = int(s.get("events", 0) or 0)
    inputs.lines_unparsed = int(s.get("unparsed", 0) or 0)
    inputs.lines_skipped = int(s.get("blank_lines", 0) or 0) + int(s.get("events_without_timestamp", 0) or 0)
    inputs.templates = len(d.templates)
    inputs.windows = len(d.counts)
    inputs.time_start = d.start.to_pydatetime() if d.start is not None else None
    inputs.time_end = d.end.to_pydatetime() if d.end is not None else None
    inputs.window = fmt_td(d.window)
    inputs.notes += list(s.get("notes", []))
    for key in ("truncated", "decode_errors", "continuation_lines", "events_without_timestamp"):
        if s.get(key):
            inputs.notes.append(f"{key.replace('_', ' ')}: {s[key]:,}")
    for sk in s.get("skipped_files", []) or []:
        inputs.notes.append(f"skipped file {sk.get('path')}: {sk.get('reason')}")


def _score(g: Any, logs: LogData | None, mdf: pd.DataFrame | None) -> Candidate:
    from anomalist.tools.metric_anomalies import metric_summary, moved_channels

    def first_seen(t: str) -> pd.Timestamp | None:
        if logs is None:
            return None
        fs = logs.first_seen.get(t)
        # Templates present in the batch's first window were not "new": the batch simply starts there.
        return fs if fs is not None and logs.start is not None and fs >= logs.start + logs.window else None

    def change(c: str) -> float | None:
        if mdf is None or c not in mdf.columns:
            return None
        return metric_summary(mdf, c, g.start, g.end)["change"]

    moved = moved_channels(mdf, g.start, g.end) if mdf is not None else {}
    sc = score_group(
        g,
        level_of=lambda t: logs.levels.get(t) if logs is not None else None,
        first_seen=first_seen,
        count_in_span=lambda t: logs.count_in(t, g.start, g.end) if logs is not None else 0,
        metric_change=change,
        channels=list(dict.fromkeys([*g.channels, *moved])),
    )
    return Candidate(group=g, scores=sc, moved=moved)


class CountingRedactor:
    """The LLM layer's redactor as a plain function (report texts never carry secrets) that counts, per kind,
    the values it replaced (the report's ``inputs.redacted``)."""

    def __init__(self, settings: Settings) -> None:
        self._r = Redactor.from_settings(settings.llm)
        self.counts: dict[str, int] = {}

    def __call__(self, text: str) -> str:
        out, mapping = self._r.redact(text)
        for ph in mapping:
            kind = ph[len("[REDACTED_"):].rsplit("_", 1)[0]
            self.counts[kind] = self.counts.get(kind, 0) + 1
        return out


def _start_store(run: _Run, store: IncidentMemory | None) -> Future[IncidentMemory]:
    """The incident store, opened (when not shared) and warmed up (embedding model, keyword index) on a daemon
    thread while the logs are parsed. The future holds the store, or the exception that made it unavailable."""
    from anomalist.agent.triage.enrich import open_store

    fut: Future[IncidentMemory] = Future()

    def body() -> None:
        try:
            st = store if store is not None else open_store(run.settings)
            _quietly(st.warm_up)
            fut.set_result(st)
        except Exception as exc:  # noqa: BLE001 - delivered to the retrieve stage
            fut.set_exception(exc)

    threading.Thread(target=body, name="triage-store-warmup", daemon=True).start()
    return fut


def _retrieve(run: _Run, store: Future[IncidentMemory], top: list[Finding], alert: dict[str, Any] | None) -> Memory:
    from anomalist.agent.triage.enrich import retrieve

    try:
        st = store.result(timeout=STORE_OPEN_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - missing store: degraded, not broken
        reason = f"not ready within {STORE_OPEN_TIMEOUT_S:g}s" if isinstance(exc, FutureTimeout) else str(exc)
        logger.info("incident store unavailable (report marked degraded): %s", reason)
        run.degraded.append(DegradedFlag(component="store", name="store", reason=reason[:300]))
        return Memory()
    return retrieve(st, top, alert, run.settings.triage.incidents_k, run.degraded)


def _start_llm(run: _Run, llm: Judge | None) -> Judge | None:
    """The LLM service to use (the shared one, else one built from settings), warming up on a daemon thread.

    Loading a local model (or probing a server) overlaps with parsing and detection; the judgments later find it
    ready. Failures here are not reported: the judgment stage reports what it meets.
    """
    from anomalist.agent.triage.enrich import build_llm

    if llm is None:
        if run.settings.llm.backend == "none":
            return None
        try:
            llm = build_llm(run.settings)
        except Exception as exc:  # noqa: BLE001 - reported by the judgment stage
            run.llm_error = exc
            return None
    threading.Thread(target=_quietly, args=(llm.health,), name="triage-llm-warmup", daemon=True).start()
    return llm


def _quietly(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - a failed warm-up shows again (and is reported) at the first real call
        logger.debug("LLM warm-up failed", exc_info=True)


def _judge(run: _Run, llm: Judge | None, top: list[Finding], findings: list[Finding], memory: Memory,
           alert_ref: AlertRef | None) -> Judged | None:
    from anomalist.agent.triage.enrich import incident_examples, judge_findings, llm_view

    if run.settings.llm.backend == "none" and llm is None:
        run.degraded.append(DegradedFlag(component="llm", name="llm", reason="LLM disabled (backend 'none')"))
        return None
    if not top:
        return None
    if llm is None:
        exc = run.llm_error or RuntimeError("no LLM service")
        logger.info("LLM unavailable (report marked degraded): %s", exc)
        run.degraded.append(DegradedFlag(component="llm", name="llm", reason=str(exc)[:300]))
        return None
    valid = {f.id for f in findings}
    valid |= {t.id for f in findings for t in f.templates} | {m.id for f in findings for m in f.metrics}
    valid |= {d.id for f in findings for d in f.detectors}
    valid |= {s.id for f in findings for t in f.templates for s in t.samples}
    valid |= {i.id for i in memory.incidents} | ({memory.runbook.id} if memory.runbook else set())
    valid |= {alert_ref.id} if alert_ref else set()
    concurrency = llm.concurrency
    if llm.in_process:  # in-process models serve one call per loaded copy
        concurrency = min(concurrency, run.settings.llm.local_instances)
    context = None
    if alert_ref is not None:
        context = f"alert {alert_ref.name} ({alert_ref.severity or '?'}) on {alert_ref.service or '?'}: {alert_ref.summary or ''}"
    t = run.settings.triage
    # Small in-process CPU models write slow and unreliable prose (the report's explanation is composed from the
    # evidence anyway), so by default they only judge; servers also explain the top findings and summarize.
    in_process = llm.in_process
    explain_k = t.llm_explain_k if t.llm_explain_k is not None else (0 if in_process else 3)
    summarize = t.llm_summary if t.llm_summary is not None else not in_process
    return judge_findings(llm, top, valid, t.llm_budget_s, concurrency, run.degraded,
                          summary_input=(lambda: ([llm_view(f) for f in top], context)) if summarize else None,
                          explain_k=explain_k, examples=incident_examples(memory))


def _alert_only(run: _Run, alert: dict[str, Any], ref: AlertRef, store: Future[IncidentMemory],
                missing: dict[str, str]) -> TriageReport:
    """The report of an alert with neither logs nor metrics: the alert, its runbook, similar incidents."""
    reasons = {"logs": missing.get("logs", "no logs given"), "metrics": missing.get("metrics", "no metrics given")}
    for component, reason in reasons.items():
        run.degraded.append(DegradedFlag(component=component, name=component, reason=reason[:300]))  # type: ignore[arg-type]
    with run.stage("retrieve"):
        memory = _retrieve(run, store, [], alert)
    with run.stage("report"):
        report = alert_only_report(run.settings, ref, memory, reasons, run.degraded, run.timings["retrieve"])
    report.timings.append(StageTiming(stage="report", seconds=round(run.timings["report"], 4)))
    return report
