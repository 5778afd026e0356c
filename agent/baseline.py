"""What normal looks like: a baseline of fault-free logs, metrics and traces that triage compares a batch against.

A :class:`Baseline` is built from fault-free data (``anomalist triage ... --baseline DIR --baseline-metrics DIR
--baseline-traces PATH``) or loaded from a profile saved earlier (``anomalist baseline build ... --out
profile.json``; ``--baseline profile.json``). It keeps:

- the log parser's state after the baseline's logs (so the batch's templates get the same ids) and the counts per
  (time bin, service, event);
- the metrics (every channel, on its time axis);
- the traces' spans (the call graph and each service's normal latency).

Where a baseline overlaps the batch in time (the same files given as both), the batch's range is left out of it, so
an incident never sets the norm that judges it. A profile is one JSON file of plain data (arrays compressed and
base64-encoded); nothing executable is ever loaded.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from anomalist.tools.errors import InputError

if TYPE_CHECKING:
    from anomalist.agent.settings import Settings
    from anomalist.tools.drain_parser import LogParser
    from anomalist.tools.metrics_io import MetricSet

logger = logging.getLogger(__name__)

PROFILE_KIND = "anomalist-baseline-profile"
PROFILE_VERSION = 1


@dataclass
class Baseline:
    """A fault-free reference for triage (see the module docstring)."""

    step: pd.Timedelta
    log_cells: pd.Series | None = None  # MultiIndex (bin, service, event) -> count
    levels: dict[str, str] = field(default_factory=dict)
    templates: dict[str, str] = field(default_factory=dict)
    parser_state: dict[str, Any] | None = None
    pods: dict[str, list[str]] = field(default_factory=dict)
    metrics: MetricSet | None = None
    spans: pd.DataFrame | None = None
    sources: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    # ---- building -----------------------------------------------------------------------------------------------
    @classmethod
    def build(cls, settings: Settings, *, logs: Sequence[str | Path] | None = None,
              metrics: str | Path | MetricSet | None = None,
              traces: Sequence[str | Path] | str | Path | None = None,
              tick: Callable[[str, float, str], None] | None = None) -> Baseline:
        """Read fault-free logs, metrics and traces (any of them) into a baseline.

        Raises:
            InputError: nothing given, or a given part is unusable (named in the message).
        """
        from anomalist.agent.triage.inputs import load_logs, to_timedelta

        if not logs and metrics is None and not traces:
            raise InputError("a baseline needs fault-free logs, metrics or traces")
        step = to_timedelta(settings.rca.resolution)
        out = cls(step=step)
        if logs:
            data = load_logs(logs, settings, tick or (lambda *_: None), stage="baseline")
            sv = data.services
            if sv is not None:
                out.log_cells, out.levels, out.pods = sv.cells, dict(sv.levels), dict(sv.pods)
                out.step = sv.step
            out.templates = dict(data.templates)
            out.parser_state = data.parser.to_dict() if data.parser is not None else None
            out.sources["logs"] = [str(s) for s in data.sources]
            out.notes += [f"baseline logs: {n}" for n in data.stats.get("notes", [])]
        if metrics is not None:
            from anomalist.tools.metrics_io import load_metric_set

            out.metrics, name, _ = load_metric_set(metrics)
            out.sources["metrics"] = [name]
            out.notes += [f"baseline metrics: {n}" for n in out.metrics.lines()[1:]][:20]
        if traces:
            from anomalist.tools.traces import read_spans

            spans, rep = read_spans([traces] if isinstance(traces, (str, Path)) else list(traces),
                                    service_map=settings.rca.service_map or None)
            out.spans = spans
            out.sources["traces"] = [str(t) for t in ([traces] if isinstance(traces, (str, Path)) else traces)]
            out.notes += [f"baseline traces: {n}" for n in rep.lines()]
        return out

    def parser(self) -> LogParser | None:
        """A fresh copy of the baseline's log parser (each triage continues its own copy)."""
        if self.parser_state is None:
            return None
        from anomalist.tools.drain_parser import LogParser

        return LogParser.from_dict(self.parser_state)

    @property
    def time_range(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        times: list[pd.Timestamp] = []
        if self.log_cells is not None and len(self.log_cells):
            b = self.log_cells.index.get_level_values(0)
            times += [b.min(), b.max() + self.step]
        if self.metrics is not None and isinstance(self.metrics.frame.index, pd.DatetimeIndex) and len(self.metrics.frame):
            times += [self.metrics.frame.index.min(), self.metrics.frame.index.max()]
        if self.spans is not None and len(self.spans):
            times += [self.spans["start"].min(), self.spans["start"].max()]
        return (min(times), max(times)) if times else None

    def excluding(self, start: pd.Timestamp, end: pd.Timestamp) -> Baseline:
        """This baseline without what lies in ``[start, end)`` (the batch's own range), per kind of data.

        A baseline that merely overlaps the batch (a day of metrics around it) loses the overlapping part, so an
        incident never sets the norm that judges it. A baseline that lies mostly (> ``INSIDE_SHARE``) inside the
        batch is a reference period chosen within it ("these minutes were normal") and is used whole: its own
        minutes then simply compare equal to themselves. Each decision is noted.
        """
        notes = list(self.notes)
        cells = self.log_cells
        if cells is not None and len(cells):
            b = cells.index.get_level_values(0)
            inside = (b >= start.floor(self.step)) & (b < end)
            cells, note = _drop_overlap(cells, inside, _share(b, inside), "logs", "cells")
            notes += note
        metrics = self.metrics
        if metrics is not None and isinstance(metrics.frame.index, pd.DatetimeIndex):
            idx = metrics.frame.index
            inside = (idx >= start) & (idx < end)
            frame, note = _drop_overlap(metrics.frame, inside, _share(idx, inside), "metrics", "rows")
            if frame is not metrics.frame:
                metrics = metrics.model_copy(update={"frame": frame})
            notes += note
        spans = self.spans
        if spans is not None and len(spans):
            inside = ((spans["start"] >= start) & (spans["start"] < end)).to_numpy()
            minutes = spans["start"].dt.floor("1min")
            share = float(minutes[inside].nunique() / max(minutes.nunique(), 1))
            kept, note = _drop_overlap(spans, inside, share, "traces", "spans")
            spans = kept.reset_index(drop=True) if kept is not spans else spans
            notes += note
        return replace(self, log_cells=cells, metrics=metrics, spans=spans, notes=notes)

    # ---- profile files ------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the baseline as a profile (one JSON file, see the module docstring)."""
        doc: dict[str, Any] = {
            "kind": PROFILE_KIND, "version": PROFILE_VERSION,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "step_s": self.step.total_seconds(), "sources": self.sources, "notes": self.notes,
            "levels": self.levels, "templates": self.templates, "parser_state": self.parser_state, "pods": self.pods,
            "log_cells": None, "metrics": None, "spans": None,
        }
        if self.log_cells is not None:
            c = self.log_cells.reset_index()
            c.columns = ["bin", "service", "event", "count"]
            doc["log_cells"] = _pack_csv(c)
        if self.metrics is not None:
            m = self.metrics
            f = m.frame
            doc["metrics"] = {
                "source": m.source, "layout": m.layout, "step": m.step, "columns": [str(c) for c in f.columns],
                "entity_of": m.entity_of, "metric_of": m.metric_of, "skipped": m.skipped,
                "index_ns": _pack(np.asarray(f.index.asi8 if isinstance(f.index, pd.DatetimeIndex) else f.index, dtype="int64")),
                "values": _pack(f.to_numpy(dtype="float32")), "shape": list(f.shape),
                "time_index": isinstance(f.index, pd.DatetimeIndex),
            }
        if self.spans is not None:
            doc["spans"] = _pack_csv(self.spans)
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        tmp.replace(p)

    @classmethod
    def load(cls, path: str | Path) -> Baseline:
        """Read a profile written by :meth:`save`.

        Raises:
            InputError: not a readable profile of this version.
        """
        from anomalist.tools.metrics_io import MetricSet

        p = Path(path)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise InputError(f"baseline profile not found: {p}") from exc
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read baseline profile {p}: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("kind") != PROFILE_KIND:
            raise InputError(f"{p} is not an Anomalist baseline profile")
        if doc.get("version") != PROFILE_VERSION:
            raise InputError(f"{p}: unsupported baseline profile version {doc.get('version')!r}")
        try:
            out = cls(step=pd.Timedelta(seconds=float(doc["step_s"])), levels=dict(doc.get("levels") or {}),
                      templates=dict(doc.get("templates") or {}), parser_state=doc.get("parser_state"),
                      pods={k: list(v) for k, v in (doc.get("pods") or {}).items()},
                      sources={k: list(v) for k, v in (doc.get("sources") or {}).items()},
                      notes=list(doc.get("notes") or []))
            if doc.get("log_cells"):
                c = _unpack_csv(doc["log_cells"], dtype={"service": str, "event": str})
                c["bin"] = pd.to_datetime(c["bin"])
                out.log_cells = c.set_index(["bin", "service", "event"])["count"].astype("int64")
            if doc.get("metrics"):
                m = doc["metrics"]
                shape = tuple(int(x) for x in m["shape"])
                values = _unpack(m["values"], "float32").reshape(shape).astype("float64")
                idx_ns = _unpack(m["index_ns"], "int64")
                index: pd.Index = (pd.DatetimeIndex(idx_ns.astype("datetime64[ns]"), name="timestamp")
                                   if m.get("time_index", True) else pd.RangeIndex(len(idx_ns), name="row"))
                frame = pd.DataFrame(values, index=index, columns=list(m["columns"]))
                out.metrics = MetricSet(source=str(m.get("source", p)), frame=frame, entity_of=dict(m["entity_of"]),
                                        metric_of=dict(m["metric_of"]), skipped=dict(m.get("skipped") or {}),
                                        step=m.get("step"), layout=str(m.get("layout", "wide")))
            if doc.get("spans"):
                s = _unpack_csv(doc["spans"], dtype={"trace_id": str, "span_id": str, "parent_id": str, "service": str,
                                                     "pod": str, "operation": str})
                s["start"] = pd.to_datetime(s["start"])
                s["error"] = s["error"].astype(object).where(s["error"].notna(), None)
                out.spans = s
        except (KeyError, TypeError, ValueError, zlib.error) as exc:
            raise InputError(f"corrupt baseline profile {p}: {exc}") from exc
        return out


INSIDE_SHARE = 0.5
"""A baseline with more than this share of its time bins inside the batch is a reference period within it."""


def _share(index: pd.Index, inside: np.ndarray) -> float:
    """Share of the distinct time bins of ``index`` that are inside the batch."""
    uniq = pd.Index(index).unique()
    return float(pd.Index(index)[inside].nunique() / max(len(uniq), 1))


def _drop_overlap(obj: Any, inside: np.ndarray, share: float, what: str, unit: str) -> tuple[Any, list[str]]:
    n = int(np.asarray(inside).sum())
    if n == 0:
        return obj, []
    if share > INSIDE_SHARE:
        return obj, [f"baseline {what}: {share:.0%} of it lies inside the batch: used whole, as a reference period "
                     "within the batch"]
    kept = obj.loc[~np.asarray(inside)] if hasattr(obj, "loc") else obj[~np.asarray(inside)]
    return kept, [f"baseline {what}: {n:,} {unit} inside the batch's time range left out"]


def _pack(arr: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(np.ascontiguousarray(arr).tobytes(), 6)).decode("ascii")


def _unpack(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=dtype).copy()


def _pack_csv(df: pd.DataFrame) -> str:
    return base64.b64encode(zlib.compress(df.to_csv(index=False).encode("utf-8"), 6)).decode("ascii")


def _unpack_csv(text: str, dtype: dict[str, Any] | None = None) -> pd.DataFrame:
    raw = zlib.decompress(base64.b64decode(text)).decode("utf-8")
    return pd.read_csv(io.StringIO(raw), dtype=dtype, keep_default_na=True)
