"""Triage inputs: read and parse the logs into a compact :class:`LogData`, read the metrics, run the detectors.

This module is where the triage meets the parsing (``tools.parsing``, ``tools.windows``), metric reading
(``tools.metrics_io``) and detector (``detectors``) layers; it re-implements none of them. Every detector runs in
its own ``try``: one that fails on odd input becomes a degraded flag, not a failed triage.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anomalist.agent.settings import Settings
from anomalist.agent.triage.rank import LEVEL_WEIGHT
from anomalist.tools.errors import InputError

logger = logging.getLogger(__name__)

SAMPLES_PER_CELL = 2  # sample lines kept per (template, window): bounded evidence for any input size


@dataclass
class LogData:
    """What the triage keeps of the parsed logs: counts per window and bounded per-template facts."""

    counts: pd.DataFrame  # windows (index: window start) x template ids (str), int counts
    window: pd.Timedelta
    templates: dict[str, str]
    levels: dict[str, str]
    components: dict[str, list[str]]
    first_seen: dict[str, pd.Timestamp]
    last_seen: dict[str, pd.Timestamp]
    totals: dict[str, int]
    samples: dict[tuple[str, pd.Timestamp], list[tuple[str | None, int | None, pd.Timestamp | None, str]]]
    sources: list[str]
    stats: dict[str, Any] = field(default_factory=dict)
    sequences: Any = None
    services: ServiceLogCounts | None = None  # per (time bin, service, event) counts for root-cause analysis
    parser: Any = None  # the tools.parsing.LogParser that mined the templates (shared with a baseline)

    @property
    def start(self) -> pd.Timestamp | None:
        return pd.Timestamp(self.counts.index[0]) if len(self.counts) else None

    @property
    def end(self) -> pd.Timestamp | None:
        return pd.Timestamp(self.counts.index[-1]) + self.window if len(self.counts) else None

    def count_in(self, template_id: str, start: pd.Timestamp, end: pd.Timestamp) -> int:
        if template_id not in self.counts.columns:
            return 0
        inside = (self.counts.index >= start) & (self.counts.index < end)
        return int(self.counts.loc[inside, template_id].sum())

    def baseline_per_window(self, template_id: str, start: pd.Timestamp, end: pd.Timestamp) -> float:
        if template_id not in self.counts.columns:
            return 0.0
        outside = ~((self.counts.index >= start) & (self.counts.index < end))
        return float(self.counts.loc[outside, template_id].mean()) if outside.any() else 0.0

    def samples_in(self, template_id: str, start: pd.Timestamp, end: pd.Timestamp, n: int = 2) -> list[tuple]:
        """Up to ``n`` kept lines of the template inside [start, end), the most severe level first, then in time.

        Each sample is ``(source, line_no, timestamp, text, level)``.
        """
        out: list[tuple] = []
        for ws in self.counts.index[(self.counts.index >= start) & (self.counts.index < end)]:
            out.extend(self.samples.get((template_id, pd.Timestamp(ws)), []))
        out.sort(key=lambda x: (-LEVEL_WEIGHT.get(x[4], 0.0), x[2]))
        return out[:n]


def to_timedelta(freq: str) -> pd.Timedelta:
    try:
        td = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"triage window must be a pandas frequency like '5min', got {freq!r}") from exc
    if td <= pd.Timedelta(0):
        raise ValueError(f"triage window must be positive, got {freq!r}")
    return td


@dataclass
class ServiceLogCounts:
    """Log event counts per (time bin, service, event) for root-cause analysis (memory: bins x events).

    An *event* is a template of one logger: ``"<template id>|<component>"`` (or the template id alone when the
    format names no component), so one log statement keeps one key even when Drain merged similar messages. The
    service is the pod's (Kubernetes layouts), else the component's head (``checkout.db`` -> ``checkout``).
    """

    cells: pd.Series  # MultiIndex (bin, service, event) -> count
    step: pd.Timedelta
    levels: dict[str, str]  # event -> most frequent level
    template_of: dict[str, str]  # event -> template id
    pods: dict[str, list[str]]  # service -> pods seen
    coverage: pd.Series | None = None  # bin -> share of it between its first and last line (1 = fully observed)

    @property
    def services(self) -> list[str]:
        return sorted({str(s) for s in self.cells.index.get_level_values(1)}) if len(self.cells) else []


_ERROR_WORDS = ("FATAL", "CRITICAL", "ERROR", "ALERT", "EMERG", "WARN", "WARNING", "SEVERE", "ERR", "CRIT")


def _first_other(rx: re.Pattern[str], text: str, own: str) -> str | None:
    """The first service named in ``text`` other than ``own``."""
    for m in rx.finditer(text[:4000]):
        if m.group(1) != own:
            return m.group(1)
    return None


def event_keys(tid: pd.Series, component: pd.Series | None) -> pd.Series:
    """Event key per row: ``"<tid>|<component>"``, or ``tid`` where there is no component."""
    t = tid.astype(str)
    if component is None:
        return t
    comp = component.astype(object)
    has = comp.notna().to_numpy() & (comp.astype(str) != "").to_numpy()
    out = t.copy()
    out[has] = t[has] + "|" + comp[has].astype(str)
    return out


def row_services(ev: pd.DataFrame) -> pd.Series:
    """Service per row: the pod's service column when present, else the component's head."""
    from anomalist.agent.triage.rank import service_of_component

    if "service" in ev and ev["service"].notna().any():
        svc = ev["service"].astype(object)
        if "component" in ev:
            svc = svc.where(svc.notna(), ev["component"].map(service_of_component))
        return svc.fillna("(unknown)").astype(str)
    if "component" in ev:
        return ev["component"].map(service_of_component).fillna("(unknown)").astype(str)
    return pd.Series("(unknown)", index=ev.index)


def load_logs(
    sources: Sequence[str | Path], settings: Settings, tick: Callable[[str, float, str], None],
    parser: Any = None, stage: str = "parse",
) -> LogData:
    """Read, parse (streamed in chunks) and window the logs; keep only what the triage needs: counts per
    (window, template), per-template facts, a few sample lines per (template, window), and counts per
    (fine time bin, service, event) for root-cause analysis. Memory is bounded by templates x windows, not by the
    number of lines.

    Args:
        parser: a ``tools.parsing.LogParser`` to continue (the baseline's, so template ids match); None = new.
        stage: the progress stage to report under.

    Raises:
        InputError: nothing readable, or no event carries a timestamp (time windows need one).
    """
    from anomalist.tools import parsing
    from anomalist.tools.logread import expand_sources

    window = to_timedelta(settings.triage.window)
    files = expand_sources([str(s) for s in sources])
    total_bytes = sum(_size(f) for f in files) or 1
    done = [0]

    def on_bytes(n: int) -> None:
        done[0] += n
        tick(stage, min(done[0] / total_bytes, 0.99), f"{done[0] / 1e6:,.1f} MB")

    stats = parsing.ReadStats()
    lg = settings.logs
    acc = _Accumulator(window, to_timedelta(settings.rca.resolution), known_services=_pod_services(files, settings))
    stream = parsing.ParseStream(
        files, lg.format, stats=stats, max_line_bytes=lg.max_line_bytes, progress=on_bytes, with_params=False,
        json_fields={"message": lg.json_message_field, "timestamp": lg.json_timestamp_field, "level": lg.json_level_field},
        parser=parser, service_map=settings.rca.service_map or None,
    )
    for chunk in stream:
        acc.add(chunk)
    stats_d = stats.model_dump()
    tick(stage, 1.0, f"{stats.events:,} events")
    if acc.n_with_ts == 0:
        raise InputError("no log line carries a timestamp the format can read; time windows need one "
                         f"(format {stats.format!r}, {stats.events:,} events)")
    if acc.n_without_ts:
        stats_d["events_without_timestamp"] = acc.n_without_ts
    out = acc.finish(stats_d, files, settings.triage.max_windows, parser=stream.parser)
    out.parser = stream.parser
    return out


def _pod_services(files: Sequence[str], settings: Settings) -> list[str]:
    """The services of the pods whose log files these are (Kubernetes layouts), known before parsing."""
    from anomalist.tools.containers import ServiceMapper, pod_of_path

    mapper = ServiceMapper(settings.rca.service_map or None)
    out = {ref.service for f in files if (ref := pod_of_path(f, mapper)) is not None and ref.service}
    return sorted(out)


MENTION_SEP = "->"
"""An error event that names another service gets its name appended: ``"<tid>|<component>-><service>"``."""


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


class _Accumulator:
    """Folds parsed chunks into window counts and bounded per-template facts."""

    def __init__(self, window: pd.Timedelta, rca_step: pd.Timedelta | None = None,
                 known_services: Sequence[str] = ()):
        self.window = window
        # Error lines that name another service of the cluster ("No instances available for ts-basic-service") are
        # counted as their own events, so the root-cause analysis can tell whom they are about.
        names = sorted({s for s in known_services if len(s) >= 3}, key=len, reverse=True)
        self.mention_rx = (re.compile(r"(?<![\w-])(" + "|".join(re.escape(n) for n in names) + r")(?![\w-])")
                           if names else None)
        self.rca_step = rca_step or pd.Timedelta(minutes=1)
        self.svc_cells: list[pd.Series] = []  # (bin, service, event) -> count, one Series per chunk
        self.ev_levels: dict[tuple[str, str], int] = {}
        self.ev_tid: dict[str, str] = {}
        self.pods: dict[str, set[str]] = {}
        self.bin_span: dict[pd.Timestamp, tuple[pd.Timestamp, pd.Timestamp]] = {}
        self.cells: list[pd.Series] = []  # (window start, template id) -> count, one Series per chunk
        self.templates: dict[str, str] = {}
        self.level_counts: dict[tuple[str, str], int] = {}
        self.comp_counts: dict[tuple[str, str], int] = {}
        self.first: dict[str, pd.Timestamp] = {}
        self.last: dict[str, pd.Timestamp] = {}
        self.samples: dict[tuple[str, pd.Timestamp], list[tuple]] = {}
        self.n_with_ts = 0
        self.n_without_ts = 0

    def add(self, chunk: pd.DataFrame) -> None:
        ts = pd.to_datetime(chunk["timestamp"], errors="coerce", utc=False)
        if isinstance(ts.dtype, pd.DatetimeTZDtype):
            ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
        ok = ts.notna().to_numpy()
        self.n_without_ts += int((~ok).sum())
        if not ok.any():
            return
        ev = chunk.loc[ok]
        ts = ts[ok]
        self.n_with_ts += len(ev)
        tid = ev["template_id"].astype(str)
        ws = ts.dt.floor(self.window)
        self.cells.append(pd.DataFrame({"ws": ws.to_numpy(), "tid": tid.to_numpy()}).value_counts())
        # The latest text of a template is its most general form so far (templates generalise as they grow).
        last_text = pd.Series(ev["template"].to_numpy(), index=tid.to_numpy())
        self.templates.update(last_text[~last_text.index.duplicated(keep="last")].astype(str).to_dict())
        g = pd.DataFrame({"tid": tid.to_numpy(), "ts": ts.to_numpy()}).groupby("tid", sort=False)["ts"].agg(["min", "max"])
        for t, lo, hi in zip(g.index, g["min"], g["max"], strict=False):
            if t not in self.first or lo < self.first[t]:
                self.first[t] = pd.Timestamp(lo)
            if t not in self.last or hi > self.last[t]:
                self.last[t] = pd.Timestamp(hi)
        for col, target in (("level", self.level_counts), ("component", self.comp_counts)):
            if col in ev and ev[col].notna().any():
                vc = pd.DataFrame({"tid": tid.to_numpy(), "v": ev[col].astype(str).to_numpy()}).value_counts()
                for (t, v), n in vc.items():
                    target[(t, v)] = target.get((t, v), 0) + int(n)
        self._add_services(ev, ts, tid)
        # Bounded sample lines: the first SAMPLES_PER_CELL events of every (template, window, level) cell, so a
        # template that mixes INFO and ERROR lines keeps examples of both.
        lv = ev["level"].astype(str).str.upper().to_numpy() if "level" in ev else np.full(len(ev), "")
        keep = pd.DataFrame({"tid": tid.to_numpy(), "ws": ws.to_numpy(), "lv": lv}).groupby(
            ["tid", "ws", "lv"], sort=False).cumcount()
        sel = (keep < SAMPLES_PER_CELL).to_numpy()
        sub = ev.loc[sel]
        src = sub["source"].astype(str) if "source" in sub else pd.Series("", index=sub.index)
        for t, w, s, ln, tsv, txt, lvl in zip(tid[sel], ws[sel], src, sub["line_no"], ts[sel], _line_text(sub), lv[sel],
                                             strict=False):
            self.samples.setdefault((t, pd.Timestamp(w)), []).append((s or None, _int(ln), pd.Timestamp(tsv), txt, lvl))

    def _add_services(self, ev: pd.DataFrame, ts: pd.Series, tid: pd.Series) -> None:
        svc = row_services(ev)
        ek = event_keys(tid, ev["component"] if "component" in ev else None)
        if self.mention_rx is not None and "level" in ev and "content" in ev:
            lvl = ev["level"].fillna("").astype(str).str.upper()
            err = lvl.isin(_ERROR_WORDS).to_numpy()
            if err.any():
                rx = self.mention_rx
                found = [None if not e else _first_other(rx, str(c), str(sv)) for e, c, sv in
                         zip(err, ev["content"].to_numpy(), svc.to_numpy(), strict=True)]
                named = pd.Series(found, index=ek.index, dtype=object)
                has = named.notna().to_numpy()
                if has.any():
                    ek = ek.copy()
                    ek[has] = ek[has] + MENTION_SEP + named[has].astype(str)
        bins = ts.dt.floor(self.rca_step)
        self.svc_cells.append(pd.DataFrame({"bin": bins.to_numpy(), "service": svc.to_numpy(),
                                            "event": ek.to_numpy()}).value_counts())
        span = pd.DataFrame({"bin": bins.to_numpy(), "ts": ts.to_numpy()}).groupby("bin")["ts"].agg(["min", "max"])
        for b, lo, hi in zip(span.index, span["min"], span["max"], strict=True):
            cur = self.bin_span.get(b)
            self.bin_span[b] = (lo, hi) if cur is None else (min(cur[0], lo), max(cur[1], hi))
        lv = ev["level"].fillna("").astype(str).str.upper() if "level" in ev else pd.Series("", index=ev.index)
        for (k, v), n in pd.DataFrame({"k": ek.to_numpy(), "v": lv.to_numpy()}).value_counts().items():
            self.ev_levels[(k, v)] = self.ev_levels.get((k, v), 0) + int(n)
        firsts = pd.Series(tid.to_numpy(), index=ek.to_numpy())
        self.ev_tid.update(firsts[~firsts.index.duplicated()].astype(str).to_dict())
        if "pod" in ev and ev["pod"].notna().any():
            for s_, p_ in pd.DataFrame({"s": svc.to_numpy(), "p": ev["pod"].to_numpy()}).dropna().drop_duplicates().itertuples(index=False):
                self.pods.setdefault(str(s_), set()).add(str(p_))

    def _service_counts(self, max_windows: int | None) -> ServiceLogCounts | None:
        if not self.svc_cells:
            return None
        cells = pd.concat(self.svc_cells).groupby(level=[0, 1, 2]).sum()
        step = self.rca_step
        lo, hi = cells.index.get_level_values(0).min(), cells.index.get_level_values(0).max()
        wide = widen_window(step, hi - lo, max_windows)
        if wide != step:
            b = cells.index.get_level_values(0).floor(wide)
            cells = cells.groupby([b, cells.index.get_level_values(1), cells.index.get_level_values(2)]).sum()
            step = wide
        cells.index.names = ["bin", "service", "event"]
        spans: dict[pd.Timestamp, tuple[pd.Timestamp, pd.Timestamp]] = {}
        for b, (lo_t, hi_t) in self.bin_span.items():
            k = pd.Timestamp(b).floor(step)
            cur = spans.get(k)
            spans[k] = (lo_t, hi_t) if cur is None else (min(cur[0], lo_t), max(cur[1], hi_t))
        coverage = pd.Series({b: min(1.0, (hi_t - lo_t + pd.Timedelta(seconds=1)) / step) for b, (lo_t, hi_t) in spans.items()},
                             dtype="float64").sort_index()
        return ServiceLogCounts(cells=cells.astype("int64"), step=step, levels=_top(self.ev_levels, 1),
                                template_of=dict(self.ev_tid), pods={k: sorted(v) for k, v in self.pods.items()},
                                coverage=coverage)

    # ---- merging (distributed parses) and final template ids ----------------------------------------------
    def remap(self, new_id: Callable[[str], str], line_offset: dict[str, int] | None = None) -> None:
        """Rename every template id (``new_id``; several may become one) and shift sample line numbers by each
        source's ``line_offset`` (a shard of a file counts its lines from 1)."""
        table: dict[str, str] = {}

        def tid(t: str) -> str:
            got = table.get(t)
            if got is None:
                got = table[t] = new_id(t)
            return got

        def event(e: str) -> str:
            head, sep, rest = e.partition("|")
            if sep:
                return tid(head) + sep + rest
            base, sep2, named = e.partition(MENTION_SEP)
            return tid(base) + sep2 + named

        for i, c in enumerate(self.cells):
            idx = pd.MultiIndex.from_arrays([c.index.get_level_values(0), c.index.get_level_values(1).map(tid)],
                                            names=c.index.names)
            self.cells[i] = pd.Series(c.to_numpy(), index=idx)
        for i, c in enumerate(self.svc_cells):
            idx = pd.MultiIndex.from_arrays([c.index.get_level_values(0), c.index.get_level_values(1),
                                             c.index.get_level_values(2).map(event)], names=c.index.names)
            self.svc_cells[i] = pd.Series(c.to_numpy(), index=idx)
        self.templates = {tid(t): v for t, v in self.templates.items()}
        for name in ("level_counts", "comp_counts"):
            old: dict[tuple[str, str], int] = getattr(self, name)
            new: dict[tuple[str, str], int] = {}
            for (t, v), n in old.items():
                new[(tid(t), v)] = new.get((tid(t), v), 0) + n
            setattr(self, name, new)
        ev_levels: dict[tuple[str, str], int] = {}
        for (e, v), n in self.ev_levels.items():
            ev_levels[(event(e), v)] = ev_levels.get((event(e), v), 0) + n
        self.ev_levels = ev_levels
        self.ev_tid = {event(e): tid(t) for e, t in self.ev_tid.items()}
        first: dict[str, pd.Timestamp] = {}
        last: dict[str, pd.Timestamp] = {}
        for t, v in self.first.items():
            first[tid(t)] = min(first.get(tid(t), v), v)
        for t, v in self.last.items():
            last[tid(t)] = max(last.get(tid(t), v), v)
        self.first, self.last = first, last
        samples: dict[tuple[str, pd.Timestamp], list[tuple]] = {}
        off = line_offset or {}
        for (t, w), items in self.samples.items():
            cell = samples.setdefault((tid(t), w), [])
            for src, ln, ts, txt, lv in items:
                cell.append((src, ln + off.get(src or "", 0) if ln is not None else ln, ts, txt, lv))
        self.samples = samples

    def absorb(self, other: _Accumulator) -> None:
        """Add ``other``'s state (same ids, a later part of the input) to this one."""
        self.cells += other.cells
        self.svc_cells += other.svc_cells
        self.templates.update(other.templates)
        for mine, theirs in ((self.level_counts, other.level_counts), (self.comp_counts, other.comp_counts),
                             (self.ev_levels, other.ev_levels)):
            for k, n in theirs.items():
                mine[k] = mine.get(k, 0) + n
        for ev, tid in other.ev_tid.items():
            self.ev_tid.setdefault(ev, tid)
        for t, v in other.first.items():
            self.first[t] = min(self.first.get(t, v), v)
        for t, v in other.last.items():
            self.last[t] = max(self.last.get(t, v), v)
        for k, items in other.samples.items():
            self.samples.setdefault(k, []).extend(items)
        for svc, pods in other.pods.items():
            self.pods.setdefault(svc, set()).update(pods)
        for b, (lo, hi) in other.bin_span.items():
            cur = self.bin_span.get(b)
            self.bin_span[b] = (lo, hi) if cur is None else (min(cur[0], lo), max(cur[1], hi))
        self.n_with_ts += other.n_with_ts
        self.n_without_ts += other.n_without_ts

    def _final_ids(self, parser: Any, order: dict[str, int]) -> None:
        """Template ids as the parser has them at the end (clusters merge as parsing goes on), their final texts,
        and per (template, window, level) the first SAMPLES_PER_CELL lines of the whole input (by source order and
        line number): the same result however the input was cut into chunks or shards."""
        self.remap(lambda t: str(parser.resolve(int(t))))
        self.templates = {t: parser.template(int(t)) for t in {str(x) for c in self.cells for x in c.index.get_level_values(1).unique()}}
        self.samples = {key: _first_per_level(sorted(items, key=lambda x: (order.get(x[0] or "", 0),
                                                                           x[1] if x[1] is not None else 0)))
                        for key, items in self.samples.items()}

    def finish(self, stats: dict[str, Any], sources: list[str], max_windows: int | None = None,
               parser: Any = None) -> LogData:
        if parser is not None:
            self._final_ids(parser, {s: i for i, s in enumerate(sources)})
        cells = pd.concat(self.cells).groupby(level=[0, 1]).sum()
        lo, hi = cells.index.get_level_values(0).min(), cells.index.get_level_values(0).max()
        window = widen_window(self.window, hi - lo, max_windows)
        if window != self.window:
            # Sparse logs over a long time: re-bin into wider windows so detectors see a bounded matrix.
            stats.setdefault("notes", []).append(
                f"window widened from {fmt_td(self.window)} to {fmt_td(window)}: the logs span {_human(hi - lo)}, "
                f"more than {max_windows} windows of {fmt_td(self.window)}")
            wide = cells.index.get_level_values(0).floor(window)
            cells = cells.groupby([wide, cells.index.get_level_values(1)]).sum()
            cells.index.names = ["ws", "tid"]
            rebinned: dict[tuple[str, pd.Timestamp], list[tuple]] = {}
            for (t, w), items in self.samples.items():
                rebinned.setdefault((t, w.floor(window)), []).extend(items)
            self.samples = {k: _first_per_level(v) for k, v in rebinned.items()}
            self.window = window
        counts = cells.unstack("tid", fill_value=0)
        full = pd.date_range(counts.index.min(), counts.index.max(), freq=self.window)
        counts = counts.reindex(full, fill_value=0).astype("int64")
        counts.columns = counts.columns.astype(str)
        counts.index.name = "window_start"
        return LogData(
            counts=counts,
            window=self.window,
            templates=self.templates,
            levels=_top(self.level_counts, 1),
            components={t: v.split("\x1f") for t, v in _top(self.comp_counts, 3).items()},
            first_seen=self.first,
            last_seen=self.last,
            totals={str(k): int(v) for k, v in counts.sum(axis=0).items()},
            samples=self.samples,
            sources=sources,
            stats=stats,
            services=self._service_counts(max_windows),
        )


_WINDOW_LADDER = ("1min", "5min", "10min", "15min", "30min", "1h", "2h", "3h", "6h", "12h", "1D", "2D", "7D", "14D", "28D")


def _first_per_level(items: list[tuple]) -> list[tuple]:
    """The first ``SAMPLES_PER_CELL`` sample lines of each level (a sample's last field), in the given order."""
    kept: list[tuple] = []
    per_level: dict[str, int] = {}
    for it in items:
        if per_level.get(it[4], 0) < SAMPLES_PER_CELL:
            per_level[it[4]] = per_level.get(it[4], 0) + 1
            kept.append(it)
    return kept


def widen_window(window: pd.Timedelta, span: pd.Timedelta, max_windows: int | None) -> pd.Timedelta:
    """``window``, or the smallest wider step of a fixed ladder that covers ``span`` in at most ``max_windows``."""
    if not max_windows or span / window <= max_windows:
        return window
    for step in _WINDOW_LADDER:
        td = pd.Timedelta(step)
        if td > window and span / td <= max_windows:
            return td
    return pd.Timedelta(span / max_windows).ceil("1D")


def fmt_td(td: pd.Timedelta) -> str:
    """A window length as a pandas-style frequency: ``5min``, ``3h``, ``1d``."""
    secs = int(td.total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if secs >= n and secs % n == 0:
            return f"{secs // n}{unit}"
    return f"{secs}s"


def _human(td: pd.Timedelta) -> str:
    days = td.total_seconds() / 86400
    if days >= 2:
        return f"{days:.1f} days"
    hours = td.total_seconds() / 3600
    return f"{hours:.1f} hours" if hours >= 2 else f"{td.total_seconds() / 60:.0f} minutes"


def _top(counts: dict[tuple[str, str], int], n: int) -> dict[str, str]:
    """Template id -> its most frequent value(s) (joined by \\x1f when n > 1), ignoring empty values."""
    by_t: dict[str, list[tuple[int, str]]] = {}
    for (t, v), c in counts.items():
        if v and v not in ("None", "nan"):
            by_t.setdefault(t, []).append((c, v))
    return {t: "\x1f".join(v for _, v in sorted(vs, key=lambda x: (-x[0], x[1]))[:n]) for t, vs in by_t.items()}


def _line_text(df: pd.DataFrame) -> pd.Series:
    for col in ("content",):
        if col in df:
            return df[col].astype(str)
    return pd.Series("", index=df.index)


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _short(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
