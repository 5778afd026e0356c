"""Turn scored groups into report parts: findings with evidence ids, template explanations, the timeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from anomalist.agent.report import (
    DetectorHit,
    Explanation,
    Finding,
    MetricEvidence,
    SampleLine,
    Scores,
    Series,
    Span,
    TemplateEvidence,
    Timeline,
)
from anomalist.agent.triage.inputs import LogData
from anomalist.agent.triage.rank import (
    LEVEL_WEIGHT,
    Group,
    GroupScores,
    finding_severity,
    service_of_channel,
    service_of_component,
)
from anomalist.tools.metric_anomalies import MOVED_MIN_Z, metric_summary

MAX_TEMPLATES_PER_FINDING = 10
MAX_METRICS_PER_FINDING = 6
MAX_POINTS = 400
DROVE_SHARE = 0.15


@dataclass
class Candidate:
    """A group with its scores, before it becomes a :class:`Finding`."""

    group: Group
    scores: GroupScores
    moved: dict[str, float] = field(default_factory=dict)  # channel -> change (sigma) that corroborates it


def build_finding(
    fid: str,
    rank: int,
    cand: Candidate,
    logs: LogData | None,
    metrics: pd.DataFrame | None,
    redact: Callable[[str], str],
) -> Finding:
    """A finding with evidence ids (``F1.T1``, ``F1.L1``, ``F1.M1``, ``F1.D1``) and a composed explanation."""
    g, sc = cand.group, cand.scores
    templates: list[TemplateEvidence] = []
    services: dict[str, None] = {}
    if logs is not None:
        # New templates first, then the most severe levels, then the busiest.
        tids = sorted(g.template_ids, key=lambda t: (t not in sc.new_templates,
                                                     -LEVEL_WEIGHT.get((logs.levels.get(t) or "").upper(), 0.0),
                                                     -logs.count_in(t, g.start, g.end)))[:MAX_TEMPLATES_PER_FINDING]
        n_line = 0
        for i, t in enumerate(tids, 1):
            samples = []
            for src, line_no, ts, text, _ in logs.samples_in(t, g.start, g.end, n=2 if i <= 3 else 1):
                n_line += 1
                samples.append(SampleLine(id=f"{fid}.L{n_line}", source=src, line_no=line_no,
                                          timestamp=_dt(ts), text=redact(text)[:1000]))
            comps = logs.components.get(t, [])
            for c in comps:
                if (s := service_of_component(c)) is not None:
                    services.setdefault(s, None)
            templates.append(TemplateEvidence(
                id=f"{fid}.T{i}", template_id=t, template=redact(logs.templates.get(t, "")),
                level=logs.levels.get(t) or None, components=comps, count=logs.count_in(t, g.start, g.end),
                baseline_per_window=round(logs.baseline_per_window(t, g.start, g.end), 4),
                total_count=logs.totals.get(t, 0), first_seen=_dt(logs.first_seen.get(t)),
                last_seen=_dt(logs.last_seen.get(t)), is_new=t in sc.new_templates, samples=samples,
            ))
    mets: list[MetricEvidence] = []
    if metrics is not None:
        for i, (ch, share) in enumerate(list(g.channels.items())[:MAX_METRICS_PER_FINDING], 1):
            if ch not in metrics.columns:
                continue
            summ = metric_summary(metrics, ch, g.start, g.end)
            mets.append(MetricEvidence(id=f"{fid}.M{len(mets) + 1}", channel=ch, drove=share >= DROVE_SHARE or i == 1,
                                       contribution=round(min(max(share, 0.0), 1.0), 4),
                                       **{k: (round(v, 6) if v is not None else None) for k, v in summ.items()}))
        for ch, _z in cand.moved.items():
            if len(mets) >= MAX_METRICS_PER_FINDING + 2 or ch in g.channels or ch not in metrics.columns:
                continue
            summ = metric_summary(metrics, ch, g.start, g.end)
            mets.append(MetricEvidence(id=f"{fid}.M{len(mets) + 1}", channel=ch, drove=False, contribution=0.0,
                                       **{k: (round(v, 6) if v is not None else None) for k, v in summ.items()}))
        for m in mets:
            if m.drove:
                services.setdefault(service_of_channel(m.channel), None)
    dets = [
        DetectorHit(id=f"{fid}.D{i}", detector=h.detector, source=h.source, start=_dtr(h.start), end=_dtr(h.end),
                    score=float(h.score) if np.isfinite(h.score) else 0.0, strength=round(h.strength, 4),
                    template_ids=h.template_ids[:MAX_TEMPLATES_PER_FINDING], channels=h.channels)
        for i, h in enumerate(g.hits, 1)
    ]
    sev = finding_severity(sc.strength, sc.severity, sc.total, None)
    finding = Finding(
        id=fid, rank=rank, title=_title(templates, mets), start=_dtr(g.start), end=_dtr(g.end),
        services=list(services), severity=sev,  # type: ignore[arg-type]
        scores=Scores(strength=round(sc.strength, 4), severity=round(sc.severity, 4), novelty=round(sc.novelty, 4),
                      total=round(sc.total, 4)),
        templates=templates, metrics=mets, detectors=dets,
        explanation=Explanation(text="", evidence_ids=[fid]),
    )
    finding.explanation = compose_explanation(finding)
    return finding


def _dt(ts: object) -> datetime | None:
    if ts is None:
        return None
    t = pd.Timestamp(ts)  # type: ignore[arg-type]
    if pd.isna(t):
        return None
    return t.to_pydatetime()


def _dtr(ts: object) -> datetime:
    """Like ``_dt`` for values that are always set (span bounds)."""
    out = _dt(ts)
    if out is None:
        raise ValueError(f"missing time value: {ts!r}")
    return out


def _short(text: str, n: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _title(templates: list[TemplateEvidence], mets: list[MetricEvidence]) -> str:
    parts: list[str] = []
    new = [t for t in templates if t.is_new]
    err = [t for t in templates if (t.level or "").upper() in ("ERROR", "FATAL", "CRITICAL", "ERR", "SEVERE")]
    comps = sorted({c for t in (new or err or templates)[:4] for c in t.components[:1]})
    if new:
        lv = "error " if any(t in err for t in new) else ""
        parts.append(f"{len(new)} new {lv}template{'s' if len(new) > 1 else ''}" + (f" in {', '.join(comps[:3])}" if comps else ""))
    elif err:
        parts.append(f"error templates rising in {', '.join(comps[:3])}" if comps else "error templates rising")
    elif templates:
        parts.append(f"unusual log volume: {_short(templates[0].template, 50)}")
    moved = (_moved(mets) or _corroborating(mets))[:3]
    if moved:
        parts.append(", ".join(f"{m.channel} {'up' if (m.change or 0) >= 0 else 'down'}" for m in moved))
    return "; ".join(parts) or "anomaly"


def compose_explanation(f: Finding) -> Explanation:
    """A plain explanation built from the finding's own evidence (used as is when no LLM explanation exists)."""
    ids: list[str] = [f.id]
    sentences: list[str] = []
    same_day = f.start.date() == f.end.date() or f.end == pd.Timestamp(f.end).normalize() + pd.Timedelta(0)
    span = (f"{f.start:%Y-%m-%d %H:%M}–{f.end:%H:%M}" if same_day and f.end - f.start < pd.Timedelta(days=1)
            else f"{f.start:%Y-%m-%d %H:%M} and {f.end:%Y-%m-%d %H:%M}")
    new = [t for t in f.templates if t.is_new]
    if new:
        levels = sorted({(t.level or "?").upper() for t in new})
        lines = sum(t.count for t in new)
        ex = new[0]
        sentences.append(
            f"Between {span}, {len(new)} log template{'s' if len(new) > 1 else ''} never seen earlier in the batch "
            f"appeared ({'/'.join(levels)}, {lines:,} lines), e.g. \"{_short(ex.template, 90)}\" ({ex.count:,} lines)."
        )
        ids += [t.id for t in new[:4]]
        if ex.samples:
            ids.append(ex.samples[0].id)
    risen = [t for t in f.templates if not t.is_new and t.count > 0]
    if risen:
        t = risen[0]
        sentences.append(
            f"{len(risen)} known template{'s' if len(risen) > 1 else ''} changed rate, e.g. \"{_short(t.template, 80)}\" "
            f"({t.count:,} lines in the span vs {t.baseline_per_window:.1f} per window elsewhere)."
        )
        ids += [x.id for x in risen[:3]]
    for label, group in (("Metrics that drove it", _moved(f.metrics)),
                         ("Metrics that moved with it", _corroborating(f.metrics))):
        if group:
            parts = []
            for m in group[:4]:
                z = f" ({m.change:+.1f}σ)" if m.change is not None else ""
                parts.append(f"{m.channel} {_num(m.baseline_mean)} → {_num(m.span_mean)}{z}")
            sentences.append(f"{label}: " + "; ".join(parts) + ".")
            ids += [m.id for m in group[:4]]
    if f.detectors:
        names = sorted({d.detector for d in f.detectors})
        sentences.append(
            f"Flagged by {len(names)} detector{'s' if len(names) > 1 else ''} ({', '.join(names)}), "
            f"strongest {max(d.strength for d in f.detectors):.2f}."
        )
        ids += [d.id for d in f.detectors[:4]]
    return Explanation(text=" ".join(sentences) or f"Anomalous activity between {span}.",
                       evidence_ids=list(dict.fromkeys(ids)), source="template")


def _moved(mets: list[MetricEvidence]) -> list[MetricEvidence]:
    """Channels that drove the detector, largest change first (a channel the detector blamed but whose mean did not
    move still counts, after the ones that did)."""
    return sorted((m for m in mets if m.drove), key=lambda m: -abs(m.change or 0.0))


def _corroborating(mets: list[MetricEvidence]) -> list[MetricEvidence]:
    """Channels the metric detector did not blame but that moved strongly in the span, largest change first."""
    return sorted((m for m in mets if not m.drove and abs(m.change or 0.0) >= MOVED_MIN_Z),
                  key=lambda m: -abs(m.change or 0.0))


def _num(v: float | None) -> str:
    if v is None:
        return "?"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def build_timeline(findings: list[Finding], logs: LogData | None, metrics: pd.DataFrame | None,
                   redact: Callable[[str], str] = lambda t: t) -> Timeline:
    """Bounded plot data: the channels and templates the findings cite, and the findings' spans."""
    spans = [Span(finding_id=f.id, start=f.start, end=f.end) for f in findings]
    series: list[Series] = []
    if metrics is not None and len(metrics):
        channels: dict[str, None] = {}
        for f in findings[:5]:
            for m in f.metrics:
                channels.setdefault(m.channel, None)
        for c in list(metrics.select_dtypes(include="number").columns):
            if len(channels) >= 6:
                break
            channels.setdefault(str(c), None)
        for ch in list(channels)[:6]:
            series.append(_series(ch, metrics[ch]))
    counts: list[Series] = []
    if logs is not None and len(logs.counts):
        tids: dict[str, None] = {}
        for f in findings[:3]:
            for t in f.templates[:3]:
                tids.setdefault(t.template_id, None)
        for tid in list(tids)[:6]:
            if tid in logs.counts.columns:
                counts.append(_series(_short(redact(logs.templates.get(tid, tid)), 80), logs.counts[tid].astype("float64")))
    return Timeline(metrics=series, template_counts=counts, spans=spans)


def _series(name: str, s: pd.Series) -> Series:
    s = s.astype("float64")
    if len(s) > MAX_POINTS and isinstance(s.index, pd.DatetimeIndex):
        step = (s.index[-1] - s.index[0]) / MAX_POINTS
        s = s.resample(step).max()
    vals = [None if not np.isfinite(v) else round(float(v), 6) for v in s.to_numpy()]
    return Series(name=name, timestamps=[pd.Timestamp(t).to_pydatetime() for t in s.index], values=vals)
