"""LangChain tools over parsed logs: ``parse_logs``, ``search_logs``, ``top_templates``, ``new_templates``.

The tools read only the named sources of a :class:`LogWorkspace` (the model names a source, never a path), return
bounded JSON-able dicts with a ``status`` (``ok``, ``no_data``, ``error``) and a one-line ``summary``, and redact
log text before it reaches the model. Time arguments accept ISO timestamps (``2026-11-02T14:05``), clock times on
the data's day (``14:05`` or ``14:05:30``), and ``start``/``end`` of the data with an offset (``end-30m``).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ConfigDict, Field

from anomalist.tools.errors import InputError

logger = logging.getLogger(__name__)

ToolPayload = dict[str, Any]
_REL = re.compile(r"^(start|end)\s*(?:([+-])\s*(\d+(?:\.\d+)?)\s*(s|m|h|d))?$", re.I)
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
MAX_LINE_CHARS = 300


def ok(summary: str, **data: Any) -> ToolPayload:
    """A successful tool result."""
    return {"status": "ok", "summary": summary, **data}


def no_data(summary: str, **data: Any) -> ToolPayload:
    """An empty result: the call was fine, nothing matched (not an error)."""
    return {"status": "no_data", "summary": summary, **data}


def error(message: str) -> ToolPayload:
    """A call the model should fix: ``message`` says how."""
    return {"status": "error", "message": message}


def _align(ts: pd.Timestamp, like: pd.Timestamp) -> pd.Timestamp:
    if like.tzinfo is not None and ts.tzinfo is None:
        return ts.tz_localize(like.tzinfo)
    if like.tzinfo is None and ts.tzinfo is not None:
        return ts.tz_convert("UTC").tz_localize(None)
    return ts


def resolve_time(text: str, data_start: pd.Timestamp, data_end: pd.Timestamp) -> pd.Timestamp:
    """A time argument as a timestamp comparable with the data's timestamps.

    Raises:
        ValueError: with a message the model can act on.
    """
    value = text.strip()
    rel = _REL.match(value)
    if rel:
        base = data_start if rel.group(1).lower() == "start" else data_end
        if rel.group(2):
            delta = pd.Timedelta(**{_UNITS[rel.group(4).lower()]: float(rel.group(3))})
            base = base + delta if rel.group(2) == "+" else base - delta
        return base
    clock = _CLOCK.match(value)
    if clock:
        hh, mm, ss = int(clock.group(1)), int(clock.group(2)), int(clock.group(3) or 0)
        if hh > 23 or mm > 59 or ss > 59:
            raise ValueError(f"{text!r} is not a valid clock time")
        offset = pd.Timedelta(hours=hh, minutes=mm, seconds=ss)
        day = data_start.normalize()
        # The first day of the data on which that clock time falls inside the data (else the first day).
        while day <= data_end:
            if data_start <= day + offset <= data_end:
                return day + offset
            day += pd.Timedelta(days=1)
        return data_start.normalize() + offset
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"cannot read time {text!r}; use an ISO timestamp (2026-11-02T14:05), a clock time (14:05) or "
            "start/end with an offset (end-30m)"
        ) from exc
    if pd.isna(ts):
        raise ValueError(f"cannot read time {text!r}")
    return _align(ts, data_start)


class _Cached:
    def __init__(self, key: tuple[Any, ...], parsed: Any):
        self.key = key
        self.parsed = parsed


@dataclass
class LogWorkspace:
    """The log and metric sources the chat tools may read, parsed lazily and cached.

    Args:
        sources: source name -> file paths or globs (configured by the operator, never chosen by the model).
        metrics: source name -> metrics CSV path.
        fmt: log format preset or pattern; None = detect.
        max_line_bytes: longer lines are truncated by the reader.
        json_fields: field names of JSON logs (message, timestamp, level).
        redact: applied to every log text a tool returns (secrets never reach the model).
        max_cached: parsed sources kept in memory.
    """

    sources: dict[str, list[str]]
    metrics: dict[str, str] = field(default_factory=dict)
    fmt: str | None = None
    max_line_bytes: int = 65536
    json_fields: dict[str, str] | None = None
    redact: Callable[[str], str] | None = None
    max_cached: int = 4
    _cache: OrderedDict[str, _Cached] = field(default_factory=OrderedDict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def source_names(self) -> list[str]:
        return sorted(self.sources)

    def _files(self, name: str | None) -> tuple[str, list[str]]:
        if not self.sources:
            raise InputError("no log sources are configured (pass --logs, or set server.sources)")
        if name is None or name in ("", "*", "all"):
            if len(self.sources) == 1:
                only = next(iter(self.sources))
                return only, list(self.sources[only])
            return "*", [p for paths in self.sources.values() for p in paths]
        if name not in self.sources:
            raise ValueError(f"unknown source {name!r}; known sources: {', '.join(self.source_names())}")
        return name, list(self.sources[name])

    def parsed(self, name: str | None = None) -> Any:
        """The ``tools.parsing.ParsedLogs`` of one source (None = all), re-parsed when its files change."""
        from anomalist.tools.logread import expand_sources
        from anomalist.tools.parsing import parse_logs

        key_name, patterns = self._files(name)
        files = expand_sources(patterns)
        stamp = tuple((f, Path(f).stat().st_mtime_ns, Path(f).stat().st_size) for f in files if Path(f).exists())
        with self._lock:
            hit = self._cache.get(key_name)
            if hit is not None and hit.key == stamp:
                self._cache.move_to_end(key_name)
                return hit.parsed
            parsed = parse_logs(files, self.fmt, max_line_bytes=self.max_line_bytes, json_fields=self.json_fields)
            self._cache[key_name] = _Cached(stamp, parsed)
            while len(self._cache) > self.max_cached:
                self._cache.popitem(last=False)
            return parsed

    def clean(self, text: Any) -> str:
        """Log text as the model may see it: redacted and cut to ``MAX_LINE_CHARS``."""
        value = "" if text is None else str(text)
        if self.redact is not None:
            value = self.redact(value)
        return value if len(value) <= MAX_LINE_CHARS else value[:MAX_LINE_CHARS] + "...[cut]"


def _events_in(ws: LogWorkspace, source: str | None, start: str | None, end: str | None,
               level: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp | None,
                                                  pd.Timestamp | None]:
    """(all events, events in the range and level, range start, range end)."""
    events = ws.parsed(source).events
    ts = events["timestamp"].dropna()
    lo = hi = None
    mask = pd.Series(True, index=events.index)
    if (start or end) and ts.empty:
        raise ValueError("these logs carry no timestamps, so a time range cannot apply; call again without start/end")
    if start or end:
        d0, d1 = ts.min(), ts.max()
        lo = resolve_time(start, d0, d1) if start else d0
        hi = resolve_time(end, d0, d1) if end else d1
        if lo > hi:
            raise ValueError(f"start {lo} is after end {hi}; swap them")
        mask &= events["timestamp"].between(lo, hi)
    if level:
        mask &= events["level"].astype(str).str.upper().str.startswith(level.strip().upper()[:4])
    return events, events[mask], lo, hi


def _iso(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParseLogsArgs(_Args):
    source: str | None = Field(None, description="Source name; omitted = all sources")


class SearchLogsArgs(_Args):
    terms: list[str] = Field(min_length=1, max_length=6, description="Words or phrases to look for (any may match; "
                                                                      "lines matching more terms rank first)")
    start: str | None = Field(None, description="Range start: ISO time, clock time (14:05) or end-30m")
    end: str | None = Field(None, description="Range end, same forms as start")
    level: str | None = Field(None, description="Only this level, e.g. ERROR or WARN")
    source: str | None = Field(None, description="Source name; omitted = all sources")
    limit: int = Field(20, ge=1, le=100, description="Most lines returned")


class RangeArgs(_Args):
    start: str | None = Field(None, description="Range start: ISO time, clock time (14:05) or end-30m")
    end: str | None = Field(None, description="Range end, same forms as start")
    source: str | None = Field(None, description="Source name; omitted = all sources")
    level: str | None = Field(None, description="Only this level, e.g. ERROR")
    k: int = Field(10, ge=1, le=50, description="Most templates returned")


def _parse_logs(ws: LogWorkspace, source: str | None = None) -> ToolPayload:
    parsed = ws.parsed(source)
    ev = parsed.events
    stats = parsed.stats
    levels = ev["level"].astype(str).value_counts().head(8).to_dict() if not ev.empty else {}
    sources = ev["source"].astype(str).value_counts().to_dict() if "source" in ev.columns else {}
    ts = ev["timestamp"].dropna()
    return ok(
        f"{stats.events} events from {stats.files_read} files, format {parsed.format}, {stats.templates} templates",
        sources=ws.source_names(), files={Path(k).name: v for k, v in sources.items()}, format=parsed.format,
        lines_read=stats.lines_read, events=stats.events, parsed=stats.parsed, unparsed=stats.unparsed,
        truncated=stats.truncated, decode_errors=stats.decode_errors,
        skipped_files=[s.reason for s in stats.skipped_files][:10], templates=stats.templates, levels=levels,
        time_start=_iso(ts.min()) if not ts.empty else None, time_end=_iso(ts.max()) if not ts.empty else None,
        events_without_timestamp=int(ev["timestamp"].isna().sum()),
    )


def _search_logs(ws: LogWorkspace, terms: list[str], start: str | None = None, end: str | None = None,
                 level: str | None = None, source: str | None = None, limit: int = 20) -> ToolPayload:
    clean_terms = [t.strip().lower() for t in terms if t and t.strip()]
    if not clean_terms:
        return error("terms must hold at least one non-empty word")
    _, sel, lo, hi = _events_in(ws, source, start, end, level)
    text = sel["content"].astype(str).str.lower()
    hits = sum((text.str.contains(t, regex=False)).astype(int) for t in clean_terms)
    matched = sel[hits > 0].assign(_hits=hits[hits > 0])
    if matched.empty:
        return no_data(f"no line contains any of {clean_terms}" + (f" between {lo} and {hi}" if lo else ""),
                       terms=clean_terms, searched_events=len(sel))
    top = matched.sort_values(["_hits", "timestamp"], ascending=[False, True], kind="stable").head(limit)
    lines = [
        {"source": Path(str(r["source"])).name, "line_no": int(r["line_no"]), "timestamp": _iso(r["timestamp"]),
         "level": str(r["level"]), "template_id": str(r["template_id"]), "text": ws.clean(r["content"])}
        for _, r in top.iterrows()
    ]
    by_template = matched["template_id"].astype(str).value_counts().head(5).to_dict()
    return ok(f"{len(matched)} lines match {clean_terms}; showing {len(lines)}", terms=clean_terms,
              total_matches=int(len(matched)), matches_by_template=by_template, lines=lines,
              range={"start": _iso(lo), "end": _iso(hi)})


def _template_rows(ws: LogWorkspace, sel: pd.DataFrame, all_events: pd.DataFrame, k: int) -> list[dict[str, Any]]:
    counts = sel["template_id"].value_counts().head(k)
    total = max(1, len(sel))
    whole = all_events.groupby("template_id")["timestamp"].agg(["min", "count"])
    rows = []
    for tid, count in counts.items():
        group = sel[sel["template_id"] == tid]
        rows.append({
            "template_id": str(tid), "template": ws.clean(group["template"].iloc[0]), "count": int(count),
            "share": round(count / total, 4), "level": str(group["level"].mode().iloc[0]) if len(group) else None,
            "first_seen_in_range": _iso(group["timestamp"].min()), "first_seen_overall": _iso(whole.loc[tid, "min"]),
            "count_overall": int(whole.loc[tid, "count"]), "example": ws.clean(group["content"].iloc[0]),
        })
    return rows


def _top_templates(ws: LogWorkspace, start: str | None = None, end: str | None = None, source: str | None = None,
                   level: str | None = None, k: int = 10) -> ToolPayload:
    events, sel, lo, hi = _events_in(ws, source, start, end, level)
    if sel.empty:
        return no_data("no events in that range" if lo is not None else "no events", events_total=len(events))
    rows = _template_rows(ws, sel, events, k)
    return ok(f"{sel['template_id'].nunique()} templates in {len(sel)} events; top {len(rows)} shown",
              events_in_range=int(len(sel)), templates=rows, range={"start": _iso(lo), "end": _iso(hi)})


NEW_REFERENCE_SHARE = 0.25
"""Without a start, ``new_templates`` takes the first quarter of the logs as what was known (triage's default)."""


def _new_templates(ws: LogWorkspace, start: str | None = None, end: str | None = None, source: str | None = None,
                   level: str | None = None, k: int = 10) -> ToolPayload:
    reference = ""
    if start is None:
        # No start given: the leading share of the data is the reference, as in the triage without a baseline.
        ts = ws.parsed(source).events["timestamp"].dropna()
        if ts.empty:
            return error("new_templates needs timestamps to tell what is new; these logs carry none")
        d0, d1 = ts.min(), ts.max()
        start = (d0 + (d1 - d0) * NEW_REFERENCE_SHARE).isoformat()
        reference = f" (no start given: the first {NEW_REFERENCE_SHARE:.0%} of the logs are the reference)"
    events, sel, lo, hi = _events_in(ws, source, start, end, level)
    if lo is None:
        return error("new_templates needs a start time (templates first seen after it are new); e.g. start='14:00'")
    before = events[events["timestamp"] < lo]
    if before.empty:
        return no_data(f"no events before {lo}: nothing to compare with; pick a later start",
                       range={"start": _iso(lo), "end": _iso(hi)})
    seen = set(before["template_id"].unique().tolist())
    fresh = sel[~sel["template_id"].isin(seen)]
    if fresh.empty:
        return no_data(f"every template between {lo} and {hi} was already seen before {lo}",
                       events_in_range=int(len(sel)), range={"start": _iso(lo), "end": _iso(hi)})
    rows = _template_rows(ws, fresh, events, k)
    return ok(f"{fresh['template_id'].nunique()} templates first seen between {lo} and {hi}{reference}",
              baseline_events=int(len(before)), templates=rows, range={"start": _iso(lo), "end": _iso(hi)})


def _bind(fn: Callable[..., ToolPayload], ws: LogWorkspace) -> Callable[..., ToolPayload]:
    def run(**kwargs: Any) -> ToolPayload:
        try:
            return fn(ws, **kwargs)
        except InputError as exc:
            return error(f"the logs cannot be used: {exc}")

    run.__name__ = fn.__name__.lstrip("_")
    return run


def make_log_tools(ws: LogWorkspace) -> list[BaseTool]:
    """The log tools bound to ``ws``."""
    names = ", ".join(ws.source_names()) or "(none)"
    return [
        StructuredTool.from_function(
            _bind(_parse_logs, ws), name="parse_logs", args_schema=ParseLogsArgs,
            description=f"Overview of the logs: files, format, how many lines and events, levels, templates, time "
                        f"range. Sources: {names}.",
        ),
        StructuredTool.from_function(
            _bind(_search_logs, ws), name="search_logs", args_schema=SearchLogsArgs,
            description="Find log lines containing words or phrases (errors, ids, hosts), optionally in a time "
                        "range and at a level; returns matching lines with timestamps.",
        ),
        StructuredTool.from_function(
            _bind(_top_templates, ws), name="top_templates", args_schema=RangeArgs,
            description="The most frequent log message templates (event types) in a time range, with counts.",
        ),
        StructuredTool.from_function(
            _bind(_new_templates, ws), name="new_templates", args_schema=RangeArgs,
            description="Log message templates first seen in a time range: new errors or events that never "
                        "appeared before it.",
        ),
    ]
