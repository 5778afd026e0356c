"""The triage's root-cause stage: build the analysis inputs from what the triage read, run ``agent.rca``, and turn
the candidates into the report's ``root_causes``, ``service_graph`` and ``rca`` summary.

Without a baseline, the leading ``triage.baseline_fraction`` of the batch's time range is the reference (as for
the log detectors), and only the rest is judged; the summary says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from anomalist.agent.baseline import Baseline
from anomalist.agent.rca import Candidate, RCAInputs, RCAParams, RCAResult, Signal, analyze
from anomalist.agent.report import (
    Explanation,
    Finding,
    RCASummary,
    RootCause,
    RootCauseEvidence,
    ServiceEdge,
    ServiceGraph,
    ServiceNode,
)
from anomalist.agent.settings import Settings
from anomalist.agent.triage.inputs import MENTION_SEP, LogData, fmt_td, to_timedelta
from anomalist.agent.triage.rank import service_of_channel
from anomalist.tools.containers import ServiceMapper
from anomalist.tools.metrics_io import MetricSet

logger = logging.getLogger(__name__)

MAX_EVIDENCE = 6
MIN_REFERENCE_BINS = 3


@dataclass
class RCAContext:
    """What the root-cause stage keeps besides the report (the evaluation reads it, nothing else does)."""

    inputs: RCAInputs | None = None
    result: RCAResult | None = None
    summary: RCASummary | None = None
    spans: pd.DataFrame | None = None
    base_spans: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


def build_inputs(settings: Settings, logs: LogData | None, metrics: MetricSet | None, spans: pd.DataFrame | None,
                 baseline: Baseline | None) -> RCAContext:
    """The analysis inputs for this batch against ``baseline`` (else against the batch's own start)."""
    step = logs.services.step if logs is not None and logs.services is not None else to_timedelta(settings.rca.resolution)
    ctx = RCAContext()
    mapper = ServiceMapper(settings.rca.service_map or None)
    start, end = _batch_range(logs, metrics, spans)
    if start is None or end is None:
        ctx.summary = RCASummary(baseline="none", resolution=fmt_td(step), notes=["no timestamped input to analyse"])
        return ctx
    if baseline is not None:
        label = "given baseline (" + ", ".join(f"{k}: {', '.join(v[:2])}" for k, v in baseline.sources.items()) + ")"
        base = baseline.excluding(start, end)
        ctx.notes += base.notes
        split = None
    else:
        frac = settings.triage.baseline_fraction
        split = (start + (end - start) * frac).floor(step)
        if (split - start) < step * MIN_REFERENCE_BINS:
            ctx.summary = RCASummary(
                baseline="none", resolution=fmt_td(step),
                notes=[f"no baseline given and the batch ({_td(end - start)}) is too short to use its start as one"])
            return ctx
        label = (f"no baseline given: the batch's first {frac:.0%} ({start:%Y-%m-%d %H:%M}–{split:%H:%M}) is the "
                 "reference, the rest is judged")
        base = None
    inp = RCAInputs(step=step)
    # Logs.
    if logs is not None and logs.services is not None and len(logs.services.cells):
        sv = logs.services
        resolve = _resolver(logs.parser)
        cells = _resolved(sv.cells, resolve)
        levels = dict(sv.levels)
        if base is not None and base.log_cells is not None and len(base.log_cells):
            ref = _resolved(base.log_cells, resolve)
            for k, v in base.levels.items():
                levels.setdefault(_resolve_key(k, resolve), v)
            inp.log_cells, inp.base_log_cells = cells, ref.groupby(level=[1, 2]).sum()
        elif split is not None:
            b = cells.index.get_level_values(0)
            inp.log_cells = cells[b >= split]
            inp.base_log_cells = cells[b < split].groupby(level=[1, 2]).sum()
        inp.levels = levels
        inp.pods = {k: list(v) for k, v in sv.pods.items()}
        inp.log_coverage = sv.coverage
    # Metrics.
    if metrics is not None and isinstance(metrics.frame.index, pd.DatetimeIndex) and not metrics.frame.empty:
        frame = metrics.frame
        inp.entity_of, inp.metric_of = dict(metrics.entity_of), dict(metrics.metric_of)
        if base is not None and base.metrics is not None and isinstance(base.metrics.frame.index, pd.DatetimeIndex):
            common = [c for c in frame.columns if c in base.metrics.frame.columns]
            if common:
                inp.metrics = frame[common]
                inp.base_metrics = _floor(base.metrics.frame[common], step)
            else:
                ctx.notes.append("baseline metrics share no channel with the batch's")
        elif split is not None:
            inp.metrics = frame[frame.index >= split]
            inp.base_metrics = _floor(frame[frame.index < split], step)
        inp.service_of_entity = {}
        for c in frame.columns:
            ent = metrics.entity_of.get(str(c))
            if ent:
                inp.service_of_entity[ent] = mapper(ent)
        # Channels without an entity belong to the service their name starts with (checkout_latency_ms).
        for c in frame.columns:
            if not metrics.entity_of.get(str(c)):
                inp.service_of_entity[str(c)] = service_of_channel(metrics.metric_of.get(str(c), str(c)))
                inp.entity_of.setdefault(str(c), None)
    # Traces.
    if spans is not None and len(spans):
        from anomalist.tools.traces import call_edges, entry_spans

        ref_spans: pd.DataFrame | None
        if base is not None:
            ref_spans = base.spans
            batch_spans = spans
        elif split is not None:
            ref_spans = spans[spans["start"] < split]
            batch_spans = spans[spans["start"] >= split]
        else:
            ref_spans, batch_spans = None, spans
        ctx.spans, ctx.base_spans = spans, ref_spans
        inp.entry_spans = entry_spans(batch_spans)
        inp.base_entry_spans = entry_spans(ref_spans) if ref_spans is not None and len(ref_spans) else None
        both = spans if ref_spans is None else pd.concat([ref_spans, spans], ignore_index=True)
        inp.edges = call_edges(both)
    ctx.inputs = inp
    services = set(inp.pods) | set(inp.service_of_entity.values())
    if inp.edges is not None:
        services |= set(inp.edges["caller"]) | set(inp.edges["callee"])
    ctx.summary = RCASummary(baseline=label, resolution=fmt_td(step), services=len(services), notes=list(ctx.notes))
    return ctx


def run(ctx: RCAContext, settings: Settings, params: RCAParams | None = None) -> None:
    """Analyse (fills ``ctx.result``)."""
    if ctx.inputs is None:
        return
    ctx.result = analyze(ctx.inputs, params, limit=settings.rca.max_candidates)
    if ctx.summary is not None:
        ctx.summary.modalities = list(ctx.result.modalities)
        if not ctx.result.modalities:
            ctx.summary.notes.append("nothing to compare: no part of the batch has a baseline counterpart")


def to_report(ctx: RCAContext, logs: LogData | None, findings: list[Finding], redact: Callable[[str], str]
              ) -> tuple[list[RootCause], ServiceGraph | None]:
    """The report's candidates and service graph."""
    if ctx.result is None or ctx.inputs is None:
        return [], None
    params = ctx.result.params
    out: list[RootCause] = []
    for i, c in enumerate(ctx.result.candidates, 1):
        cid = f"C{i}"
        ev = [_evidence(f"{cid}.E{k}", s, params, logs, redact) for k, s in enumerate(_pick(c.signals, params), 1)]
        related = [f.id for f in findings if _overlaps(f, c)]
        rc = RootCause(
            id=cid, rank=i, service=c.service, pod=c.pods[0] if len(c.pods) == 1 or _metric_pod(c) else None,
            pods=c.pods[:10], kind=c.kind, onset=c.onset.to_pydatetime(), score=round(c.score, 4), current=c.current,
            episode_start=c.episode[0].to_pydatetime(), episode_end=(c.episode[1] + ctx.inputs.step).to_pydatetime(),
            explained_by=c.explained_by[:5], evidence=ev, related_findings=related[:5],
            explanation=Explanation(text="", evidence_ids=[cid]),
        )
        if _metric_pod(c):
            rc.pod = _metric_pod(c)
        rc.explanation = explain(rc)
        out.append(rc)
    return out, _graph(ctx, out)


def _pick(signals: list[Signal], params: RCAParams) -> list[Signal]:
    """The candidate's most telling signals: the strongest per (modality, subject), bounded."""
    seen: set[tuple[str, str, str | None]] = set()
    out: list[Signal] = []
    for s in signals:
        key = (s.modality, s.subject, s.pod)
        if key in seen:
            continue
        seen.add(key)
        out.append(s)
        if len(out) >= MAX_EVIDENCE:
            break
    out.sort(key=lambda s: s.bin)
    return out


def _scale(s: Signal, params: RCAParams) -> float:
    return {"log": params.log_scale, "metric": params.metric_scale, "trace": params.trace_scale}[s.modality]


def _metric_pod(c: Candidate) -> str | None:
    for s in c.signals:
        if s.modality == "metric" and s.pod:
            return s.pod
    return None


def _event_text(event: str, logs: LogData | None, redact: Callable[[str], str]) -> str:
    event = event.split(MENTION_SEP, 1)[0]
    tid, _, comp = event.partition("|")
    template = logs.templates.get(tid, "") if logs is not None else ""
    text = f"{comp}: {template}" if comp else template
    return redact(text or event)[:300]


def _num(v: float | None) -> str:
    if v is None or not np.isfinite(v):
        return "?"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _evidence(eid: str, s: Signal, params: RCAParams, logs: LogData | None, redact: Callable[[str], str]) -> RootCauseEvidence:
    when = f"{s.bin:%H:%M}"
    subject = s.subject
    if s.modality == "log" and s.kind != "log_silent":
        subject = _event_text(s.subject, logs, redact)
    exp = s.expected
    if s.kind == "log_drop":
        text = f"\"{subject}\" fell to {_num(s.observed)} lines at {when}; the baseline share predicts {_num(exp)}"
    elif s.kind == "log_rise":
        text = f"\"{subject}\" ({s.detail.get('level') or 'error'}) rose to {_num(s.observed)} lines at {when}; the baseline share predicts {_num(exp)}"
    elif s.kind == "log_new":
        text = f"new \"{subject}\" ({s.detail.get('level') or 'unknown level'}): {_num(s.observed)} lines at {when}, never in the baseline"
    elif s.kind == "log_named":
        text = (f"{s.detail.get('logged_by')} logged errors naming {s.service}: \"{subject}\", {_num(s.observed)} "
                f"lines at {when}; the baseline share predicts {_num(exp)}")
    elif s.kind == "log_silent":
        text = f"{s.service} logged nothing at {when} while the rest kept logging (the baseline predicts {_num(exp)} lines)"
    elif s.kind in ("metric_up", "metric_down"):
        where = "above" if s.kind == "metric_up" else "below"
        k = s.detail.get("sustained_bins", 1)
        text = (f"{s.pod + ' ' if s.pod else ''}{subject} held at {_num(s.observed)} for {k} bins from {when}, "
                f"{where} anything the baseline sustained ({_num(s.detail.get('bound'))}; median {_num(exp)})")
    elif s.kind == "latency":
        text = (f"{s.detail.get('slow')} of {s.detail.get('spans')} calls into {s.service} at {when} were slower than "
                "the baseline's 99th percentile for their operation (1% expected)")
    elif s.kind == "errors":
        text = (f"{s.detail.get('errors')} of {s.detail.get('spans')} calls into {s.service} at {when} failed "
                f"(baseline {100 * (exp or 0):.1f}%)")
    else:
        text = f"{s.service} received {_num(s.observed)} calls at {when}; the baseline predicts {_num(exp)}"
    return RootCauseEvidence(id=eid, modality=s.modality, kind=s.kind, time=s.bin.to_pydatetime(), pod=s.pod,
                             subject=subject, observed=s.observed, expected=exp,
                             level=round(s.score / _scale(s, params), 4), text=text)


_KIND_WORDS = {"code": "a code-level fault (visible in logs/traces)", "cpu": "CPU saturation",
               "memory": "memory pressure", "disk": "a disk problem", "network": "a network/latency problem"}


def explain(rc: RootCause) -> Explanation:
    """The candidate in plain words, composed from its own evidence."""
    who = rc.service + (f" (pod {rc.pod})" if rc.pod else "")
    lead = "Most likely root cause" if rc.rank == 1 else f"Candidate {rc.rank}"
    text = f"{lead}: {who}, {_KIND_WORDS.get(rc.kind, rc.kind)}, from {rc.onset:%Y-%m-%d %H:%M}."
    if not rc.current:
        text += " It belongs to an earlier episode of the batch that had ended before the latest one began."
    ids = [rc.id]
    strongest = sorted(rc.evidence, key=lambda e: -e.level)[:3]
    if strongest:
        text += " " + " ".join(f"{e.text[0].upper()}{e.text[1:]} [{e.id}]." for e in strongest)
        ids += [e.id for e in strongest]
    if rc.explained_by:
        text += (f" It calls {', '.join(rc.explained_by[:3])}, which changed as well; its score was lowered "
                 "because part of its change may come from there.")
    if rc.related_findings:
        text += f" See finding{'s' if len(rc.related_findings) > 1 else ''} {', '.join(rc.related_findings[:3])}."
        ids += rc.related_findings[:3]
    return Explanation(text=text, evidence_ids=list(dict.fromkeys(ids)), source="template")


def _overlaps(f: Finding, c: Candidate) -> bool:
    start, end = pd.Timestamp(f.start), pd.Timestamp(f.end)
    if end < c.episode[0] or start > c.episode[1] + pd.Timedelta(minutes=5):
        return False
    return not f.services or c.service in f.services or any(c.service.startswith(s) for s in f.services)


def _graph(ctx: RCAContext, causes: list[RootCause]) -> ServiceGraph | None:
    if ctx.spans is None or not len(ctx.spans):
        return None
    from anomalist.tools.traces import call_edges, edge_stats

    st = edge_stats(call_edges(ctx.spans))
    base = edge_stats(call_edges(ctx.base_spans)) if ctx.base_spans is not None and len(ctx.base_spans) else None
    base_p90 = {(r.caller, r.callee): float(r.p90_ms) for r in base.itertuples()} if base is not None else {}
    edges = [ServiceEdge(caller=str(r.caller), callee=str(r.callee), calls=int(r.calls),
                         error_share=None if pd.isna(r.error_share) else float(r.error_share),
                         p50_ms=round(float(r.p50_ms), 3), p90_ms=round(float(r.p90_ms), 3),
                         baseline_p90_ms=base_p90.get((r.caller, r.callee)))
             for r in st.itertuples()]
    level: dict[str, float] = {}
    if ctx.result is not None and ctx.result.candidates:
        cur = [c for c in ctx.result.candidates if c.current]
        for c in cur:
            level[c.service] = max(level.get(c.service, 0.0), c.raw_score)
    by_service = {rc.service: rc.id for rc in causes}
    names = sorted({e.caller for e in edges} | {e.callee for e in edges} | set(by_service))
    nodes = [ServiceNode(service=n, level=round(level.get(n, 0.0), 4), candidate_id=by_service.get(n)) for n in names]
    return ServiceGraph(nodes=nodes, edges=edges)


def _batch_range(logs: LogData | None, metrics: MetricSet | None, spans: pd.DataFrame | None
                 ) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    lo: list[pd.Timestamp] = []
    hi: list[pd.Timestamp] = []
    if logs is not None and logs.services is not None and len(logs.services.cells):
        b = logs.services.cells.index.get_level_values(0)
        lo.append(b.min())
        hi.append(b.max() + logs.services.step)
    elif logs is not None and logs.start is not None and logs.end is not None:
        lo.append(logs.start)
        hi.append(logs.end)
    if metrics is not None and isinstance(metrics.frame.index, pd.DatetimeIndex) and len(metrics.frame):
        lo.append(metrics.frame.index.min())
        hi.append(metrics.frame.index.max() + pd.Timedelta(seconds=1))
    if spans is not None and len(spans):
        lo.append(spans["start"].min())
        hi.append(spans["start"].max() + pd.Timedelta(seconds=1))
    return (min(lo), max(hi)) if lo else (None, None)


def _resolver(parser: object | None) -> Callable[[str], str]:
    if parser is None:
        return lambda t: t

    def resolve(tid: str) -> str:
        try:
            return str(parser.resolve(int(tid)))  # type: ignore[attr-defined]
        except (TypeError, ValueError):
            return tid

    return resolve


def _resolve_key(event: str, resolve: Callable[[str], str]) -> str:
    tid, sep, comp = event.partition("|")
    return resolve(tid) + sep + comp


def _resolved(cells: pd.Series, resolve: Callable[[str], str]) -> pd.Series:
    """Event keys with their template ids as of now (clusters merge as parsing goes on)."""
    events = cells.index.get_level_values(-1)
    uniq = pd.Index(events.unique())
    mapping = {e: _resolve_key(str(e), resolve) for e in uniq}
    if all(k == v for k, v in mapping.items()):
        return cells
    new = [cells.index.get_level_values(i) for i in range(cells.index.nlevels - 1)] + [events.map(mapping)]
    out = cells.copy()
    out.index = pd.MultiIndex.from_arrays(new, names=cells.index.names)
    return out.groupby(level=list(range(cells.index.nlevels))).sum()


def _floor(frame: pd.DataFrame, step: pd.Timedelta) -> pd.DataFrame:
    if not isinstance(frame.index, pd.DatetimeIndex) or frame.empty:
        return frame
    return frame.groupby(frame.index.floor(step)).mean()


def _td(td: pd.Timedelta) -> str:
    m = td.total_seconds() / 60
    return f"{m:.0f} minutes" if m < 120 else f"{m / 60:.1f} hours"
