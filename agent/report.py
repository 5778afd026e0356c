"""The triage report: a versioned, self-contained, machine-readable result of one triage run.

Every claim in a report cites evidence ids, and every cited id resolves to an object inside the same report
(checked by :meth:`TriageReport.model_post_init` through :func:`check_citations`). Evidence ids are short and
stable within a report:

- ``F1`` a finding, ``F1.T2`` a log template of that finding, ``F1.L3`` a (redacted) sample line,
  ``F1.M1`` a metric channel, ``F1.D1`` a detector hit;
- ``I1`` a similar past incident, ``R1`` the matched runbook (``R1.S2`` one of its steps), ``A1`` the alert;
- ``C1`` a root-cause candidate, ``C1.E2`` one piece of its evidence (a change against the baseline).

The JSON schema (``TriageReport.model_json_schema()``) is the contract of the JSON renderer and the HTTP API.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from anomalist.agent.llm.schemas import Explanation, SampleLine, Verdict

SCHEMA_VERSION = "1.1"

Severity = Literal["info", "warning", "critical"]
SEVERITY_ORDER: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
Stage = Literal["baseline", "parse", "log_detectors", "metrics", "traces", "rank", "rca", "retrieve", "llm", "report"]
FaultKind = Literal["code", "cpu", "memory", "disk", "network"]

_EVIDENCE_ID = re.compile(r"^(F\d+(\.(T|L|M|D)\d+)?|I\d+|R\d+(\.S\d+)?|A\d+|C\d+(\.E\d+)?)$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TemplateEvidence(_Model):
    """A log template that contributed to a finding."""

    id: str = Field(description="Evidence id, e.g. F1.T1")
    template_id: str
    template: str
    level: str | None = Field(None, description="Most frequent log level of the template in the span")
    components: list[str] = Field(default_factory=list, description="Loggers / components emitting it")
    count: int = Field(ge=0, description="Occurrences inside the finding's span")
    baseline_per_window: float = Field(
        0.0, ge=0.0, description="Mean occurrences per window outside the finding's span"
    )
    total_count: int = Field(0, ge=0, description="Occurrences in the whole input")
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    is_new: bool = Field(False, description="Never seen before the finding's span")
    samples: list[SampleLine] = Field(default_factory=list)


class MetricEvidence(_Model):
    """A metric channel of a finding, with a compact numeric summary around the span."""

    id: str = Field(description="Evidence id, e.g. F1.M1")
    channel: str
    drove: bool = Field(description="True when this channel is among those that drove the detector's score")
    contribution: float = Field(0.0, ge=0.0, le=1.0, description="Share of the anomaly score (0..1)")
    baseline_mean: float | None = Field(None, description="Mean before the span")
    baseline_std: float | None = None
    span_mean: float | None = Field(None, description="Mean inside the span")
    span_max: float | None = None
    span_min: float | None = None
    change: float | None = Field(None, description="(span_mean - baseline_mean) / baseline_std, when defined")


class DetectorHit(_Model):
    """One anomaly reported by one detector, as grouped into a finding."""

    id: str = Field(description="Evidence id, e.g. F1.D1")
    detector: str
    source: Literal["log", "metric"]
    start: datetime
    end: datetime
    score: float = Field(description="Raw detector score (higher = more anomalous)")
    strength: float = Field(ge=0.0, le=1.0, description="Score normalized to 0..1 (relative to the detector's threshold)")
    template_ids: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)


class Scores(_Model):
    """The ranking components of a finding (each 0..1) and their weighted total."""

    strength: float = Field(ge=0.0, le=1.0, description="Max detector strength, boosted by agreement")
    severity: float = Field(ge=0.0, le=1.0, description="From log levels and metric magnitudes")
    novelty: float = Field(ge=0.0, le=1.0, description="Share of new templates and unseen behaviour")
    llm: float | None = Field(None, ge=0.0, le=1.0, description="LLM (or prior) anomaly confidence, when judged")
    total: float = Field(ge=0.0, description="Rank score (higher ranks first, within the same focus)")
    focus: float = Field(0.0, ge=0.0, le=1.0, description="1 = part of the incident at hand: it holds the top "
                         "root-cause candidate or the alert's start (such findings rank first)")


class Finding(_Model):
    """A group of anomalies that coincide in time, ranked."""

    id: str = Field(description="Evidence id, e.g. F1")
    rank: int = Field(ge=1)
    title: str
    start: datetime
    end: datetime
    services: list[str] = Field(default_factory=list)
    severity: Severity
    scores: Scores
    templates: list[TemplateEvidence] = Field(default_factory=list)
    metrics: list[MetricEvidence] = Field(default_factory=list)
    detectors: list[DetectorHit] = Field(default_factory=list)
    verdict: Verdict | None = None
    explanation: Explanation = Field(description="Composed from the finding's own evidence (always present)")
    llm_explanation: Explanation | None = Field(
        None, description="The LLM's explanation, when it gave one in budget (attributed, ids checked)"
    )
    similar_incident_ids: list[str] = Field(default_factory=list, description="Ids (I1, ...) of similar incidents")
    runbook_id: str | None = Field(None, description="Id (R1) of the runbook that applies, if any")


class RootCauseEvidence(_Model):
    """One change of a candidate service against the baseline, located in time."""

    id: str = Field(description="Evidence id, e.g. C1.E1")
    modality: Literal["log", "metric", "trace"]
    kind: str = Field(description="log_drop | log_rise | log_new | log_named | log_silent | metric_up | metric_down | "
                                  "latency | errors | calls_drop")
    time: datetime = Field(description="Start of the time bin in which it was seen")
    pod: str | None = None
    subject: str = Field(description="The log event (logger: template), metric channel, or span kind")
    observed: float | None = None
    expected: float | None = Field(None, description="What the baseline predicts for the same bin")
    level: float = Field(ge=0.0, description="Strength on the common scale (1 = a clear change)")
    text: str = Field(description="The change in words")


class RootCause(_Model):
    """A ranked root-cause candidate: which service (and pod), what kind of fault, since when, and why."""

    id: str = Field(description="Evidence id, e.g. C1")
    rank: int = Field(ge=1)
    service: str
    pod: str | None = Field(None, description="The pod most implicated, when known")
    pods: list[str] = Field(default_factory=list)
    kind: FaultKind = Field(description="code (log/trace-visible) or a resource: cpu, memory, disk, network")
    onset: datetime = Field(description="First time bin in which the service changed")
    score: float = Field(ge=0.0, description="Rank score (after propagation over the call graph)")
    current: bool = Field(True, description="Part of the batch's latest episode (False: an earlier one that ended)")
    episode_start: datetime
    episode_end: datetime
    explained_by: list[str] = Field(default_factory=list,
                                    description="Services it calls that changed too (its score was reduced for them)")
    evidence: list[RootCauseEvidence] = Field(default_factory=list)
    related_findings: list[str] = Field(default_factory=list, description="Findings (F1, ...) overlapping it")
    explanation: Explanation = Field(description="Composed from its evidence (always present)")
    llm_explanation: Explanation | None = Field(None, description="The LLM's explanation (OpenAI-compatible servers)")


class ServiceEdge(_Model):
    """Calls from one service to another, from the traces of the batch."""

    caller: str
    callee: str
    calls: int = Field(ge=0)
    error_share: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    baseline_p90_ms: float | None = Field(None, description="The same edge's p90 in the baseline")


class ServiceNode(_Model):
    service: str
    level: float = Field(0.0, ge=0.0, description="Peak change level in the batch's latest episode")
    candidate_id: str | None = Field(None, description="Its root-cause candidate (C1, ...), if any")


class ServiceGraph(_Model):
    """The service call graph (from traces), with each service's change level and the suspect marked."""

    nodes: list[ServiceNode] = Field(default_factory=list)
    edges: list[ServiceEdge] = Field(default_factory=list)


class RCASummary(_Model):
    """How the root causes were found: what was compared with what."""

    baseline: str = Field(description="What served as the baseline")
    modalities: list[str] = Field(default_factory=list, description="Evidence kinds compared: log, metric, trace")
    resolution: str = Field(description="Time bin of the evidence")
    services: int = Field(0, description="Services observed")
    notes: list[str] = Field(default_factory=list)


class SimilarIncident(_Model):
    """A past incident from the store that resembles a finding."""

    id: str = Field(description="Evidence id, e.g. I1")
    incident_id: str = Field(description="Id of the incident in the store")
    title: str
    summary: str = ""
    root_cause: str | None = None
    resolution: str | None = None
    services: list[str] = Field(default_factory=list)
    started_at: datetime | None = None
    score: float
    why: list[str] = Field(default_factory=list, description="Why it matched (exact name, keyword, semantic)")
    for_findings: list[str] = Field(default_factory=list, description="Findings it was retrieved for")


class RunbookStep(_Model):
    id: str = Field(description="Evidence id, e.g. R1.S1")
    section: str
    text: str


class RunbookRef(_Model):
    """The runbook matched to the alert (or to the top finding)."""

    id: str = Field(description="Evidence id, e.g. R1")
    runbook_id: str
    title: str
    source: str | None = None
    score: float
    why: list[str] = Field(default_factory=list)
    steps: list[RunbookStep] = Field(default_factory=list)


class AlertRef(_Model):
    """The alert that asked for this triage."""

    id: str = "A1"
    name: str
    status: str | None = None
    severity: str | None = None
    service: str | None = None
    starts_at: datetime | None = None
    summary: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    resolved_at: datetime | None = Field(None, description="When Alertmanager said the alert (group) resolved")
    group_alerts: int = Field(1, description="Alerts of its Alertmanager group in the notification triaged")


class DegradedFlag(_Model):
    """Something that did not run (or ran partly); the report is still valid without it."""

    component: Literal["llm", "store", "metrics", "logs", "detector", "parser", "alert", "traces", "rca", "baseline"]
    name: str = Field(description="Which one, e.g. the detector name or 'llm'")
    reason: str


class StageTiming(_Model):
    stage: Stage
    seconds: float = Field(ge=0.0)


class InputSummary(_Model):
    """What was read, and how much of it was usable."""

    log_sources: list[str] = Field(default_factory=list)
    log_format: str | None = None
    lines_read: int = 0
    events: int = 0
    lines_unparsed: int = 0
    lines_skipped: int = 0
    templates: int = 0
    time_start: datetime | None = None
    time_end: datetime | None = None
    window: str | None = None
    windows: int = 0
    metric_source: str | None = None
    metric_channels: list[str] = Field(default_factory=list)
    metric_rows: int = 0
    notes: list[str] = Field(default_factory=list, description="Counted skips and other reader remarks")
    redacted: dict[str, int] = Field(default_factory=dict,
                                     description="Values redacted from the report's texts, per kind (CARD, EMAIL, ...)")


class Versions(_Model):
    anomalist: str
    schema_version: str = SCHEMA_VERSION
    llm_backend: str | None = None
    llm_model: str | None = None
    prompts: dict[str, str] = Field(default_factory=dict, description="prompt name -> content hash")
    detectors: list[str] = Field(default_factory=list)


class Series(_Model):
    """A (downsampled) time series for plots."""

    name: str
    timestamps: list[datetime]
    values: list[float | None]


class Span(_Model):
    finding_id: str
    start: datetime
    end: datetime


class Timeline(_Model):
    """Bounded plot data: metric channels and per-template counts over time, and the findings' spans."""

    metrics: list[Series] = Field(default_factory=list)
    template_counts: list[Series] = Field(default_factory=list)
    spans: list[Span] = Field(default_factory=list)


class TriageReport(_Model):
    """The result of one triage: ranked findings with their evidence, memory, runbook and provenance."""

    schema_version: str = SCHEMA_VERSION
    id: str = Field(description="Report id (content-independent, unique per run)")
    created_at: datetime
    severity: Severity
    summary: Explanation
    llm_summary: Explanation | None = Field(None, description="The LLM's summary, when it gave one in budget")
    alert: AlertRef | None = None
    root_causes: list[RootCause] = Field(default_factory=list, description="Ranked root-cause candidates, best first")
    service_graph: ServiceGraph | None = None
    rca: RCASummary | None = None
    findings: list[Finding] = Field(default_factory=list)
    similar_incidents: list[SimilarIncident] = Field(default_factory=list)
    runbook: RunbookRef | None = None
    degraded: list[DegradedFlag] = Field(default_factory=list)
    timings: list[StageTiming] = Field(default_factory=list)
    versions: Versions
    inputs: InputSummary = Field(default_factory=InputSummary)
    timeline: Timeline = Field(default_factory=Timeline)

    @model_validator(mode="after")
    def _citations_resolve(self) -> TriageReport:
        missing = check_citations(self)
        if missing:
            raise ValueError(f"report cites evidence that it does not contain: {sorted(missing)}")
        return self

    @property
    def is_degraded(self) -> bool:
        return bool(self.degraded)

    @property
    def is_alert_only(self) -> bool:
        """True for the report of an alert whose triage had neither logs nor metrics."""
        i = self.inputs
        return self.alert is not None and not i.log_sources and i.lines_read == 0 and i.metric_source is None

    @property
    def total_seconds(self) -> float:
        return round(sum(t.seconds for t in self.timings), 3)

    def evidence_ids(self) -> set[str]:
        """Every evidence id defined in this report."""
        ids: set[str] = set()
        for f in self.findings:
            ids.add(f.id)
            for t in f.templates:
                ids.add(t.id)
                ids.update(s.id for s in t.samples)
            ids.update(m.id for m in f.metrics)
            ids.update(d.id for d in f.detectors)
        ids.update(i.id for i in self.similar_incidents)
        if self.runbook is not None:
            ids.add(self.runbook.id)
            ids.update(s.id for s in self.runbook.steps)
        if self.alert is not None:
            ids.add(self.alert.id)
        for c in self.root_causes:
            ids.add(c.id)
            ids.update(e.id for e in c.evidence)
        return ids

    def finding(self, finding_id: str) -> Finding:
        for f in self.findings:
            if f.id == finding_id:
                return f
        raise KeyError(finding_id)


def check_citations(report: TriageReport) -> set[str]:
    """Evidence ids cited anywhere in ``report`` that are malformed or not defined in it (empty = all good)."""
    defined = report.evidence_ids()
    cited: list[str] = list(report.summary.evidence_ids)
    if report.llm_summary is not None:
        cited.extend(report.llm_summary.evidence_ids)
    for f in report.findings:
        cited.extend(f.explanation.evidence_ids)
        if f.llm_explanation is not None:
            cited.extend(f.llm_explanation.evidence_ids)
        if f.verdict is not None:
            cited.extend(f.verdict.evidence_ids)
        cited.extend(f.similar_incident_ids)
        if f.runbook_id is not None:
            cited.append(f.runbook_id)
    for inc in report.similar_incidents:
        cited.extend(inc.for_findings)
    for c in report.root_causes:
        cited.extend(c.explanation.evidence_ids)
        cited.extend(c.related_findings)
        if c.llm_explanation is not None:
            cited.extend(c.llm_explanation.evidence_ids)
    if report.service_graph is not None:
        cited.extend(n.candidate_id for n in report.service_graph.nodes if n.candidate_id)
    cited.extend(s.finding_id for s in report.timeline.spans)
    return {c for c in cited if c not in defined or not _EVIDENCE_ID.match(c)}


def max_severity(values: list[str]) -> Severity:
    """The highest of ``values`` ("info" when empty)."""
    best = "info"
    for v in values:
        if SEVERITY_ORDER[v] > SEVERITY_ORDER[best]:
            best = v
    return best  # type: ignore[return-value]


def severity_at_least(severity: str, threshold: str) -> bool:
    """True when ``severity`` reaches ``threshold`` ("warning" < "critical")."""
    return SEVERITY_ORDER[severity] >= SEVERITY_ORDER[threshold]


def report_json_schema() -> dict[str, object]:
    """The JSON schema of :class:`TriageReport` (the JSON renderer's and the HTTP API's contract)."""
    return TriageReport.model_json_schema()
