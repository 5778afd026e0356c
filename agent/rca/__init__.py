"""Root-cause analysis: which service (and pod) broke, when it started, and how (code or a resource).

:func:`analyze` takes the batch's per-service evidence inputs and a baseline's, computes per-bin signals
(:mod:`agent.rca.evidence`), and ranks candidates (:mod:`agent.rca.rank`). It is general by construction: no
service, template or metric name is known to it; everything is a change against the baseline, located in time,
and pushed down the call graph when traces give one. The triage builds its inputs (``agent.triage``) and turns the
result into the report's ``root_causes`` and ``service_graph``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from anomalist.agent.rca.evidence import Signal, log_signals, metric_signals, trace_signals
from anomalist.agent.rca.rank import Candidate, FaultKind, RCAParams, rank

logger = logging.getLogger(__name__)

__all__ = ["Candidate", "FaultKind", "RCAInputs", "RCAParams", "RCAResult", "Signal", "analyze", "compute_signals"]


@dataclass
class RCAInputs:
    """What the analysis compares. Every part is optional; without a baseline part that modality is skipped.

    Attributes:
        step: the evidence's time bin.
        log_cells: batch log counts, MultiIndex ``(bin, service, event)``.
        log_coverage: bin -> share of it the logs cover (first to last line); silence is judged only where whole.
        base_log_cells: baseline log counts, MultiIndex ``(service, event)``.
        levels: event -> most frequent level.
        metrics / base_metrics: batch and baseline metric frames (same channel names).
        entity_of / metric_of: channel -> entity / metric name.
        service_of_entity: entity (pod) -> service.
        entry_spans / base_entry_spans: entry spans (see ``tools.traces.entry_spans``).
        edges: caller -> callee rows of the call graph (batch and baseline).
        pods: service -> pods seen in its logs.
    """

    step: pd.Timedelta
    log_cells: pd.Series | None = None
    log_coverage: pd.Series | None = None
    base_log_cells: pd.Series | None = None
    levels: dict[str, str] = field(default_factory=dict)
    metrics: pd.DataFrame | None = None
    base_metrics: pd.DataFrame | None = None
    entity_of: dict[str, str | None] = field(default_factory=dict)
    metric_of: dict[str, str] = field(default_factory=dict)
    service_of_entity: dict[str, str] = field(default_factory=dict)
    entry_spans: pd.DataFrame | None = None
    base_entry_spans: pd.DataFrame | None = None
    edges: pd.DataFrame | None = None
    pods: dict[str, list[str]] = field(default_factory=dict)

    def last_bins(self) -> dict[str, pd.Timestamp]:
        """Per modality, the last time bin with data in the batch."""
        out: dict[str, pd.Timestamp] = {}
        if self.log_cells is not None and len(self.log_cells):
            out["log"] = pd.Timestamp(self.log_cells.index.get_level_values(0).max())
        if self.metrics is not None and isinstance(self.metrics.index, pd.DatetimeIndex) and len(self.metrics):
            out["metric"] = pd.Timestamp(self.metrics.index.max()).floor(self.step)
        if self.entry_spans is not None and len(self.entry_spans):
            out["trace"] = pd.Timestamp(self.entry_spans["start"].max()).floor(self.step)
        return out

    def callees(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        if self.edges is None or self.edges.empty:
            return out
        for a, b in self.edges[["caller", "callee"]].drop_duplicates().itertuples(index=False):
            out.setdefault(str(a), set()).add(str(b))
        return out


@dataclass
class RCAResult:
    candidates: list[Candidate]
    signals: list[Signal]
    params: RCAParams
    modalities: list[str]  # which modalities had both batch and baseline data


def compute_signals(inputs: RCAInputs, progress: Callable[[str], None] | None = None) -> tuple[list[Signal], list[str]]:
    """All per-bin evidence signals, and the modalities that could be compared."""
    sigs: list[Signal] = []
    mods: list[str] = []
    if inputs.log_cells is not None and inputs.base_log_cells is not None and len(inputs.base_log_cells):
        sigs += log_signals(inputs.log_cells, inputs.base_log_cells, inputs.levels, coverage=inputs.log_coverage)
        mods.append("log")
    if progress:
        progress("logs compared")
    if inputs.metrics is not None and inputs.base_metrics is not None and not inputs.base_metrics.empty:
        batch = _on_bins(inputs.metrics, inputs.step)
        sigs += metric_signals(batch, inputs.base_metrics, inputs.entity_of, inputs.metric_of,
                               inputs.service_of_entity)
        mods.append("metric")
    if progress:
        progress("metrics compared")
    if inputs.entry_spans is not None and inputs.base_entry_spans is not None and len(inputs.base_entry_spans):
        sigs += trace_signals(inputs.entry_spans, inputs.base_entry_spans, inputs.step)
        mods.append("trace")
    return sigs, mods


def analyze(inputs: RCAInputs, params: RCAParams | None = None, *, limit: int = 10,
            signals: tuple[list[Signal], list[str]] | None = None) -> RCAResult:
    """Ranked root-cause candidates for the batch described by ``inputs``.

    ``signals``: precomputed :func:`compute_signals` output (ranking under other parameters re-uses it).
    """
    params = params or RCAParams()
    sigs, mods = signals if signals is not None else compute_signals(inputs)
    cands = rank(sigs, inputs.step, params, callees=inputs.callees(), pods=inputs.pods, last_bins=inputs.last_bins(),
                 limit=limit)
    return RCAResult(candidates=cands, signals=sigs, params=params, modalities=mods)


def _on_bins(frame: pd.DataFrame, step: pd.Timedelta) -> pd.DataFrame:
    """Metric rows on the evidence's time bins (mean of the rows in a bin)."""
    if not isinstance(frame.index, pd.DatetimeIndex) or frame.empty:
        return frame
    out = frame.groupby(frame.index.floor(step)).mean()
    out.index.name = frame.index.name
    return out
