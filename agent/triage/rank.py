"""Triage stages that need no model: detector scores -> hits -> groups (coinciding in time) -> scored findings.

Pure functions on pandas objects and small dataclasses, so each rule is testable on hand-built input.

Scoring (each component in 0..1; documented here because the report shows them):
- **strength** of one hit: its peak score ``s`` against the detector's threshold ``th`` and the batch's median
  score ``m``: ``0.5 + 0.5 * tanh((s - th) / (th - m))`` (scale-free; 0.5 at the threshold). A group's strength
  combines its detectors by noisy-OR (``1 - prod(1 - s_i)``), so independent detectors that agree rank higher.
- **severity**: from the log levels of the group's templates inside the span (FATAL/CRITICAL/ERROR 1.0,
  WARN 0.5, others 0) weighted by counts, and from the largest metric change ``tanh(|z| / 10)`` among the channels
  the metric detector blamed and those that moved by at least 4 baseline SDs in the span, scaled down for spans
  shorter than 15 minutes (``span / 15min``); the max of both.
- **novelty**: the share of the group's templates never seen before its span (first occurrence inside it).
- **total** = 0.45 strength + 0.30 severity + 0.25 novelty; after the LLM judged a finding: 0.8 total + 0.2 llm.
- **focus** (:func:`incident_focus`): a batch can hold several anomalous episodes (a provider blip, a noisy deploy,
  the outage). Findings of the incident at hand rank first, whatever their totals: those that hold the current top
  root-cause candidate (its service, overlapping its episode) or, given an alert, its start (and its ``service``
  label, when it has one). The totals saturate for any clear error burst, so they cannot tell the episodes apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from anomalist.agent.report import AlertRef, Finding, RootCause

W_STRENGTH, W_SEVERITY, W_NOVELTY, W_LLM = 0.45, 0.30, 0.25, 0.2
LEVEL_WEIGHT = {"FATAL": 1.0, "CRITICAL": 1.0, "CRIT": 1.0, "EMERG": 1.0, "ALERT": 1.0, "SEVERE": 1.0,
                "ERROR": 1.0, "ERR": 1.0, "E": 1.0, "F": 1.0,
                "WARN": 0.5, "WARNING": 0.5, "W": 0.5}
METRIC_SUSTAIN = pd.Timedelta(minutes=15)
MAX_TEMPLATES_PER_HIT = 8
MAX_CHANNELS_PER_HIT = 6


@dataclass
class Hit:
    """One anomalous span reported by one detector."""

    source: Literal["log", "metric"]
    detector: str
    start: pd.Timestamp
    end: pd.Timestamp
    score: float
    strength: float
    template_ids: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    contributions: dict[str, float] = field(default_factory=dict)


@dataclass
class Group:
    """Hits that coincide in time."""

    start: pd.Timestamp
    end: pd.Timestamp
    hits: list[Hit]

    @property
    def template_ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for h in self.hits:
            for t in h.template_ids:
                seen.setdefault(t, None)
        return list(seen)

    @property
    def channels(self) -> dict[str, float]:
        """Channel -> largest contribution among the group's metric hits."""
        out: dict[str, float] = {}
        for h in self.hits:
            for c in h.channels:
                out[c] = max(out.get(c, 0.0), h.contributions.get(c, 0.0))
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def hits_from_scores(
    scores: pd.Series,
    threshold: float,
    *,
    detector: str,
    source: Literal["log", "metric"],
    step: pd.Timedelta,
    max_gap: int = 1,
    median: float | None = None,
) -> list[Hit]:
    """Turn a detector's per-row scores into hits (evidence attached later).

    ``median``: the detector's median training score (the scale of the strength); default: of ``scores``. Spans
    and strength by the shared rules (``detectors.thresholds.score_spans`` / ``span_strength``).
    """
    from anomalist.detectors.thresholds import score_spans, span_strength

    if median is None:
        finite = scores[np.isfinite(scores.to_numpy(dtype="float64"))]
        median = float(finite.median()) if len(finite) else 0.0
    return [
        Hit(source=source, detector=detector, start=pd.Timestamp(a), end=pd.Timestamp(b), score=peak,
            strength=span_strength(peak, threshold, median))
        for a, b, peak, _, _ in score_spans(scores, threshold, step, max_gap=max_gap)
    ]


def driving_templates(counts: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, *,
                      limit: int = MAX_TEMPLATES_PER_HIT, min_z: float = 3.0) -> list[str]:
    """Templates whose counts inside [start, end) stand out against the rest of the batch.

    A template stands out when its mean count per window in the span exceeds its mean elsewhere by ``min_z``
    Poisson standard deviations (``(in - out) / sqrt(out + 1/n_out)``), or when it occurs only inside the span.
    """
    if counts.empty:
        return []
    inside = (counts.index >= start) & (counts.index < end)
    if not inside.any():
        return []
    c_in = counts.loc[inside].mean(axis=0)
    n_out = int((~inside).sum())
    c_out = counts.loc[~inside].mean(axis=0) if n_out else pd.Series(0.0, index=counts.columns)
    z = (c_in - c_out) / np.sqrt(c_out + 1.0 / max(n_out, 1))
    only_inside = (counts.loc[~inside].sum(axis=0) == 0) & (counts.loc[inside].sum(axis=0) > 0) if n_out else c_in > 0
    z = z.where(~only_inside, np.inf)
    z = z[(z >= min_z) & (c_in > 0)].sort_values(ascending=False, kind="stable")
    return [str(t) for t in z.index[:limit]]


def group_hits(hits: Sequence[Hit], tolerance: pd.Timedelta) -> list[Group]:
    """Merge hits whose spans overlap or lie within ``tolerance`` of each other (time order)."""
    groups: list[Group] = []
    for h in sorted(hits, key=lambda x: (x.start, x.end)):
        if groups and h.start <= groups[-1].end + tolerance:
            g = groups[-1]
            g.hits.append(h)
            g.end = max(g.end, h.end)
        else:
            groups.append(Group(start=h.start, end=h.end, hits=[h]))
    return groups


@dataclass
class GroupScores:
    strength: float
    severity: float
    novelty: float
    total: float
    new_templates: list[str]
    level_severity: float
    metric_severity: float


def score_group(
    group: Group,
    *,
    level_of: Callable[[str], str | None],
    first_seen: Callable[[str], pd.Timestamp | None],
    count_in_span: Callable[[str], int],
    metric_change: Callable[[str], float | None],
    channels: Sequence[str] | None = None,
) -> GroupScores:
    """Strength, severity and novelty of a group (see the module docstring).

    ``channels``: the metric channels whose change counts for severity (default: those of the metric hits).
    """
    best: dict[str, float] = {}
    for h in group.hits:
        best[h.detector] = max(best.get(h.detector, 0.0), h.strength)
    strength = 1.0 - float(np.prod([1.0 - s for s in best.values()])) if best else 0.0

    tids = group.template_ids
    weighted, total = 0.0, 0
    for t in tids:
        n = count_in_span(t)
        total += n
        weighted += n * LEVEL_WEIGHT.get((level_of(t) or "").upper(), 0.0)
    level_sev = float(weighted / total) if total else 0.0
    chans = list(group.channels) if channels is None else list(channels)
    changes = [abs(z) for z in (metric_change(c) for c in chans) if z is not None and math.isfinite(z)]
    # A brief excursion weighs less than a sustained one (alert rules use `for: 5m..15m` for the same reason).
    sustained = min(1.0, (group.end - group.start) / METRIC_SUSTAIN)
    metric_sev = float(math.tanh(max(changes) / 10.0)) * sustained if changes else 0.0
    severity = max(level_sev, metric_sev)

    new = [t for t in tids if (fs := first_seen(t)) is not None and fs >= group.start]
    novelty = len(new) / len(tids) if tids else 0.0
    total_score = W_STRENGTH * strength + W_SEVERITY * severity + W_NOVELTY * novelty
    return GroupScores(strength=min(strength, 1.0), severity=severity, novelty=novelty, total=total_score,
                       new_templates=new, level_severity=level_sev, metric_severity=metric_sev)


def finding_severity(strength: float, severity: float, total: float, llm_anomalous: bool | None) -> str:
    """"critical" / "warning" / "info" for one finding.

    critical: errors or a large metric change (severity >= 0.75), backed by strong detection (strength >= 0.7),
    and not judged normal by the LLM. warning: a notable finding (total >= 0.45 or severity >= 0.5) not judged
    normal. Otherwise info.
    """
    if llm_anomalous is False:
        return "info" if severity < 0.75 else "warning"
    if severity >= 0.75 and strength >= 0.7:
        return "critical"
    if total >= 0.45 or severity >= 0.5:
        return "warning"
    return "info"


def service_of_component(component: str | None) -> str | None:
    """``checkout.db`` -> ``checkout``; ``dfs.DataNode$X`` -> ``dfs``; empty -> None."""
    if not component:
        return None
    head = component.strip().split(".", 1)[0].split("/", 1)[0].split(":", 1)[0].split("[", 1)[0]
    return head or None


def service_of_channel(channel: str) -> str:
    """``checkout_latency_p95_ms`` -> ``checkout`` (the prefix before the first '_' or '.')."""
    for sep in ("_", ".", ":"):
        if sep in channel:
            return channel.split(sep, 1)[0]
    return channel




ALERT_LEAD = pd.Timedelta(minutes=30)
"""How long before an alert fires its cause may start (alert rules wait ``for:`` minutes, and trends lead)."""


def incident_focus(findings: Sequence[Finding], cause: RootCause | None, alert: AlertRef | None,
                   window: pd.Timedelta) -> dict[str, float]:
    """Finding id -> 1.0 for the findings of the incident at hand (see the module docstring), else 0.0.

    ``cause``: the top root-cause candidate or None; ``alert``: the report's alert or None; ``window``: the finding
    spans' resolution (slack on the alert's start).
    """
    starts: pd.Timestamp | None = None
    if alert is not None and alert.starts_at is not None:
        t = pd.Timestamp(alert.starts_at)
        starts = t.tz_convert(None) if t.tzinfo is not None else t
    out: dict[str, float] = {}
    for f in findings:
        services = set(f.services)
        hit = cause is not None and cause.current and f.id in cause.related_findings and cause.service in services
        if not hit and starts is not None and alert is not None:
            # It started before the alert fired (within a window) and had not ended long before it.
            within = pd.Timestamp(f.start) <= starts + window and pd.Timestamp(f.end) >= starts - ALERT_LEAD
            hit = within and (not alert.service or not services or alert.service in services)
        out[f.id] = 1.0 if hit else 0.0
    return out


def rank_findings(findings: list[Finding]) -> None:
    """Order ``findings`` in place, the incident at hand first (``scores.focus``), then by total, and number them."""
    findings.sort(key=lambda f: (-f.scores.focus, -f.scores.total))
    for i, f in enumerate(findings, 1):
        f.rank = i
