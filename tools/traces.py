"""Distributed traces: read spans (CSV, JSON lines, Jaeger JSON exports) and build the service call graph.

A span table has one row per span: ``trace_id, span_id, parent_id, service, pod, operation, start, duration_ms,
error``. Column names are matched loosely (OpenTelemetry, Jaeger and Zipkin spellings; ``PodName`` becomes a pod
and its service, see :class:`tools.containers.ServiceMapper`). Every dropped row is counted with its reason.

The call graph has an edge ``caller -> callee`` for each span whose parent span belongs to another service; its
statistics are those of the callee's spans on that edge (calls, error share, latency percentiles).
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from anomalist.tools.containers import ServiceMapper
from anomalist.tools.errors import InputError

logger = logging.getLogger(__name__)

SPAN_COLUMNS = ("trace_id", "span_id", "parent_id", "service", "pod", "operation", "start", "duration_ms", "error")
_ALIASES: dict[str, tuple[str, ...]] = {
    "trace_id": ("traceid", "trace_id", "trace"),
    "span_id": ("spanid", "span_id", "id"),
    "parent_id": ("parentid", "parent_id", "parentspanid", "parent_span_id", "parent"),
    "service": ("servicename", "service_name", "service", "service.name", "resource.service.name",
                "process.servicename", "localendpoint.servicename"),
    "pod": ("podname", "pod_name", "pod", "k8s.pod.name"),
    "operation": ("operationname", "operation_name", "operation", "name", "span_name", "spanname"),
    "start_ns": ("starttimeunixnano", "start_time_unix_nano"),
    "end_ns": ("endtimeunixnano", "end_time_unix_nano"),
    "start": ("starttime", "start_time", "start", "timestamp"),
    "end": ("endtime", "end_time", "end"),
    "duration": ("duration", "duration_us", "durationus"),
    "duration_ms": ("duration_ms", "durationms", "latency_ms"),
    "duration_ns": ("duration_ns", "durationnano", "durationns"),
    "status": ("statuscode", "status_code", "status.code", "status", "otel.status_code"),
    "error": ("error", "is_error", "iserror"),
    "http_status": ("http.status_code", "http_status_code", "http.response.status_code"),
}
_ROOT_PARENTS = {"", "root", "none", "null", "nan", "0", "0000000000000000"}


class TraceReport(BaseModel):
    """What the trace reader read, kept and dropped."""

    model_config = ConfigDict(extra="forbid")

    source: str
    files_read: int = 0
    spans_read: int = 0
    spans_kept: int = 0
    dropped: dict[str, int] = Field(default_factory=dict, description="reason -> spans")
    skipped_files: dict[str, str] = Field(default_factory=dict)
    has_errors: bool = Field(False, description="The spans carry an error / status field")

    def lines(self) -> list[str]:
        out = [f"{self.spans_read:,} spans read from {self.files_read} file(s), {self.spans_kept:,} kept"
               + ("" if self.has_errors else "; no error/status field (latency only)")]
        out += [f"dropped {n:,} spans: {r}" for r, n in self.dropped.items()]
        out += [f"skipped {p}: {r}" for p, r in self.skipped_files.items()]
        return out


def read_spans(sources: str | Path | Sequence[str | Path], *, service_map: Mapping[str, str] | None = None
               ) -> tuple[pd.DataFrame, TraceReport]:
    """Read spans from files or directories (``.csv``, ``.jsonl``/``.ndjson``, ``.json`` Jaeger exports, gzipped
    or not) into a span table (see the module docstring), sorted by start time.

    Raises:
        InputError: nothing readable, or no span with the required fields (trace id, span id, service or pod, a
            start time and a duration or end time).
    """
    items = [sources] if isinstance(sources, (str, Path)) else list(sources)
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"no such trace file or directory: {p}")
    report = TraceReport(source=", ".join(str(i) for i in items[:3]) + (" ..." if len(items) > 3 else ""))
    mapper = ServiceMapper(service_map)
    tables: list[pd.DataFrame] = []
    for f in files:
        try:
            raw = _read_file(f)
        except InputError as exc:
            report.skipped_files[str(f)] = str(exc)
            continue
        report.files_read += 1
        report.spans_read += len(raw)
        tables.append(_normalise(raw, mapper, report))
    if not tables:
        raise InputError("no readable trace file" + (f": {next(iter(report.skipped_files.values()))}"
                                                     if report.skipped_files else ""))
    spans = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    before = len(spans)
    spans = spans.drop_duplicates(subset=["trace_id", "span_id"], keep="first")
    if len(spans) < before:
        report.dropped["duplicate (trace id, span id)"] = before - len(spans)
    spans = spans.sort_values("start", kind="stable", ignore_index=True)
    report.spans_kept = len(spans)
    if spans.empty:
        raise InputError("no usable span: " + "; ".join(f"{n} {r}" for r, n in report.dropped.items()))
    return spans, report


def _open_text(f: Path) -> Any:
    with open(f, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(f, "rt", encoding="utf-8", errors="replace") if magic == b"\x1f\x8b" else open(
        f, encoding="utf-8", errors="replace")


def _read_file(f: Path) -> pd.DataFrame:
    name = f.name.lower().removesuffix(".gz")
    try:
        if name.endswith(".csv"):
            return pd.read_csv(f, dtype=str, keep_default_na=False, compression="infer")
        with _open_text(f) as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"cannot read: {exc}") from exc
    stripped = text.lstrip()
    if not stripped:
        raise InputError("empty file")
    if stripped.startswith("{") and '"data"' in stripped[:2000] and name.endswith(".json"):
        return _jaeger(json.loads(text))
    rows: list[dict[str, Any]] = []
    bad = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(obj, dict):
            rows.append(_flatten(obj))
        else:
            bad += 1
    if not rows:
        raise InputError("neither a span CSV, JSON lines, nor a Jaeger JSON export")
    df = pd.DataFrame(rows).fillna("").astype(str)
    df.attrs["unparsed_lines"] = bad
    return df


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _jaeger(doc: Any) -> pd.DataFrame:
    """A Jaeger UI/API export: ``{"data": [{"traceID", "spans": [...], "processes": {...}}]}``."""
    rows: list[dict[str, Any]] = []
    for trace in (doc.get("data") or []) if isinstance(doc, dict) else []:
        procs = trace.get("processes") or {}
        for sp in trace.get("spans") or []:
            parent = next((r.get("spanID") for r in sp.get("references") or [] if r.get("refType") == "CHILD_OF"), "")
            tags = {t.get("key"): t.get("value") for t in sp.get("tags") or [] if isinstance(t, dict)}
            proc = procs.get(sp.get("processID"), {})
            ptags = {t.get("key"): t.get("value") for t in proc.get("tags") or [] if isinstance(t, dict)}
            rows.append({
                "traceID": sp.get("traceID") or trace.get("traceID"), "spanID": sp.get("spanID"), "parentID": parent,
                "serviceName": proc.get("serviceName", ""), "podName": ptags.get("k8s.pod.name", ""),
                "operationName": sp.get("operationName", ""), "startTime_us": sp.get("startTime"),
                "duration": sp.get("duration"), "error": tags.get("error", ""),
                "http.status_code": tags.get("http.status_code", ""),
            })
    if not rows:
        raise InputError("a JSON document without Jaeger spans")
    return pd.DataFrame(rows).fillna("").astype(str)


def _col(raw: pd.DataFrame, key: str) -> str | None:
    lower = {str(c).strip().lower(): c for c in raw.columns}
    for alias in _ALIASES[key]:
        if alias in lower:
            return str(lower[alias])
    return None


def _num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s.astype(str).str.strip(), errors="coerce")


def _times(s: pd.Series, unit_hint: str | None = None) -> pd.Series:
    num = _num(s)
    if num.notna().mean() >= 0.9:
        mag = float(num.abs().median())
        unit = unit_hint or ("s" if mag < 1e11 else "ms" if mag < 1e14 else "us" if mag < 1e17 else "ns")
        return pd.to_datetime(num, unit=unit, errors="coerce").astype("datetime64[ns]")
    ts = pd.to_datetime(s.astype(str).str.strip(), errors="coerce", utc=True, format="mixed")
    return ts.dt.tz_convert(None).astype("datetime64[ns]")


def _normalise(raw: pd.DataFrame, mapper: ServiceMapper, report: TraceReport) -> pd.DataFrame:
    n = len(raw)
    get = {k: _col(raw, k) for k in _ALIASES}
    if "startTime_us" in raw.columns:
        get["start"] = "startTime_us"
    out = pd.DataFrame(index=raw.index)
    for key in ("trace_id", "span_id", "parent_id", "operation"):
        c = get[key]
        out[key] = raw[c].astype(str).str.strip() if c else ""
    pod = raw[get["pod"]].astype(str).str.strip() if get["pod"] else pd.Series("", index=raw.index)
    svc = raw[get["service"]].astype(str).str.strip() if get["service"] else pd.Series("", index=raw.index)
    svc = svc.where(svc != "", pod.map(lambda p: mapper(p) if p else ""))
    out["pod"] = pod.where(pod != "", None)
    out["service"] = svc
    out["parent_id"] = out["parent_id"].where(~out["parent_id"].str.lower().isin(_ROOT_PARENTS), None)
    if get["start_ns"]:
        start = pd.to_datetime(_num(raw[get["start_ns"]]), unit="ns", errors="coerce")
    elif get["start"]:
        start = _times(raw[get["start"]], "us" if get["start"] == "startTime_us" else None)
    else:
        start = pd.Series(pd.NaT, index=raw.index)
    dur = pd.Series(np.nan, index=raw.index)
    if get["end_ns"] and get["start_ns"]:
        dur = (_num(raw[get["end_ns"]]) - _num(raw[get["start_ns"]])) / 1e6
    elif get["end"] and get["start"]:
        dur = (_times(raw[get["end"]]) - start).dt.total_seconds() * 1e3
    if dur.isna().all():
        if get["duration_ms"]:
            dur = _num(raw[get["duration_ms"]])
        elif get["duration_ns"]:
            dur = _num(raw[get["duration_ns"]]) / 1e6
        elif get["duration"]:
            dur = _num(raw[get["duration"]]) / 1e3  # Jaeger's and Zipkin's microseconds
    out["start"] = start.astype("datetime64[ns]")
    out["duration_ms"] = dur.astype("float64")
    out["error"] = _errors(raw, get)
    if out["error"].notna().any():
        report.has_errors = True
    bad = pd.Series(False, index=raw.index)
    for reason, mask in (
        ("no trace id or span id", (out["trace_id"] == "") | (out["span_id"] == "")),
        ("no service or pod", out["service"] == ""),
        ("no readable start time", out["start"].isna()),
        ("no duration or end time", ~np.isfinite(out["duration_ms"].to_numpy()) | (out["duration_ms"] < 0)),
    ):
        m = mask & ~bad
        if m.any():
            report.dropped[reason] = report.dropped.get(reason, 0) + int(m.sum())
        bad |= mask
    if raw.attrs.get("unparsed_lines"):
        report.dropped["not a JSON object"] = report.dropped.get("not a JSON object", 0) + int(raw.attrs["unparsed_lines"])
    logger.debug("spans: %d read, %d kept", n, int((~bad).sum()))
    return out.loc[~bad, list(SPAN_COLUMNS)].reset_index(drop=True)


def _errors(raw: pd.DataFrame, get: dict[str, str | None]) -> pd.Series:
    """True / False per span where the input says so (error flag, OTel status, HTTP >= 500), else None."""
    out = pd.Series([None] * len(raw), index=raw.index, dtype=object)
    if get["error"]:
        v = raw[get["error"]].astype(str).str.strip().str.lower()
        known = v.isin(["true", "false", "1", "0"])
        out[known] = v[known].isin(["true", "1"])
    if get["status"]:
        v = raw[get["status"]].astype(str).str.strip().str.upper()
        err = v.isin(["2", "ERROR", "STATUS_CODE_ERROR"])
        known = err | v.isin(["0", "1", "OK", "UNSET", "STATUS_CODE_OK", "STATUS_CODE_UNSET"])
        out[known] = err[known] | (out[known] == True)  # noqa: E712 - object column
    if get["http_status"]:
        code = _num(raw[get["http_status"]])
        known = code.notna()
        out[known] = (code[known] >= 500) | (out[known] == True)  # noqa: E712
    return out


# ---- the call graph ----------------------------------------------------------------------------------------------
def call_edges(spans: pd.DataFrame) -> pd.DataFrame:
    """One row per span whose parent span (same trace) is in another service: ``caller, callee, start,
    duration_ms, error`` (the callee's span). Spans whose parent is missing from the table are not edges."""
    if spans.empty:
        return pd.DataFrame(columns=["caller", "callee", "start", "duration_ms", "error"])
    parents = spans[["trace_id", "span_id", "service"]].rename(columns={"span_id": "parent_id", "service": "caller"})
    child = spans[spans["parent_id"].notna()]
    j = child.merge(parents, on=["trace_id", "parent_id"], how="inner")
    j = j[j["caller"] != j["service"]]
    return j.rename(columns={"service": "callee"})[["caller", "callee", "start", "duration_ms", "error"]].reset_index(drop=True)


def entry_spans(spans: pd.DataFrame) -> pd.DataFrame:
    """The spans through which a request enters a service (root spans, and spans whose parent is in another
    service): their duration is the service's latency as its callers see it."""
    if spans.empty:
        return spans
    parents = spans[["trace_id", "span_id", "service"]].rename(columns={"span_id": "parent_id", "service": "parent_service"})
    j = spans.merge(parents, on=["trace_id", "parent_id"], how="left")
    entry = j["parent_service"].isna() | (j["parent_service"] != j["service"])
    return j.loc[entry.to_numpy(), list(SPAN_COLUMNS)].reset_index(drop=True)


def edge_stats(edges: pd.DataFrame) -> pd.DataFrame:
    """Per ``(caller, callee)``: calls, error share (NaN when unknown), latency p50 / p90 / p99 in ms."""
    if edges.empty:
        return pd.DataFrame(columns=["caller", "callee", "calls", "error_share", "p50_ms", "p90_ms", "p99_ms"])
    g = edges.groupby(["caller", "callee"], sort=True)
    err = edges.assign(e=pd.to_numeric(edges["error"], errors="coerce")).groupby(["caller", "callee"], sort=True)["e"].mean()
    out = pd.DataFrame({
        "calls": g.size(),
        "error_share": err,
        "p50_ms": g["duration_ms"].quantile(0.5),
        "p90_ms": g["duration_ms"].quantile(0.9),
        "p99_ms": g["duration_ms"].quantile(0.99),
    }).reset_index()
    return out
