"""Turn raw logs into structured events: read, split headers, join multi-line events, mine templates.

Public API:

- :func:`parse_logs` -> :class:`ParsedLogs` (whole input as one DataFrame, templates final).
- :func:`iter_parsed` -> DataFrame chunks for big inputs (memory bounded by the chunk and the parser state).
- :class:`tools.drain_parser.LogParser` (re-exported): the template miner with save/load.

Event columns: ``source, line_no, timestamp, level, component, template_id, template, params, content, parsed,
truncated, n_lines`` plus the format's other header fields in snake_case. Container logs (Docker json-file or CRI
lines, see :mod:`tools.containers`) are unwrapped first: the runtime's time is the event's timestamp, and
``stream`` is added; files laid out as a Kubernetes node writes them add ``pod, namespace, container, service``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anomalist.tools import containers, logformats
from anomalist.tools.containers import PodRef, ServiceMapper
from anomalist.tools.drain_parser import LogParser
from anomalist.tools.errors import InputError
from anomalist.tools.logformats import LogFormat
from anomalist.tools.logread import Block, ReadStats, expand_sources, iter_blocks

__all__ = ["LogParser", "ParseStream", "ParsedLogs", "ReadStats", "iter_parsed", "parse_logs", "EVENT_COLUMNS"]

logger = logging.getLogger(__name__)

EVENT_COLUMNS = ("source", "line_no", "timestamp", "level", "component", "template_id", "template", "params",
                 "content", "parsed", "truncated", "n_lines")
_DETECT_LINES = 200
_LEVELS = {
    "V": "TRACE", "VERBOSE": "TRACE", "TRACE": "TRACE", "D": "DEBUG", "DEBUG": "DEBUG", "I": "INFO",
    "INFO": "INFO", "INFORMATION": "INFO", "NOTICE": "NOTICE", "W": "WARN", "WARN": "WARN", "WARNING": "WARN",
    "E": "ERROR", "ERR": "ERROR", "ERROR": "ERROR", "SEVERE": "ERROR", "F": "FATAL", "FATAL": "FATAL",
    "CRIT": "CRITICAL", "CRITICAL": "CRITICAL", "A": "FATAL", "ALERT": "ALERT", "EMERG": "EMERG",
    "FAILURE": "ERROR",
}

ProgressFn = Callable[[int], None]


@dataclass
class _Pending:
    """Column buffers of events being assembled."""

    source: list[str] = field(default_factory=list)
    line_no: list[int] = field(default_factory=list)
    header: list[tuple[str | None, ...] | None] = field(default_factory=list)
    first: list[str] = field(default_factory=list)
    extra: dict[int, list[str]] = field(default_factory=dict)  # event index -> continuation lines
    tid: list[int] = field(default_factory=list)
    shape: list[bytes] = field(default_factory=list)
    parsed: list[bool] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)
    wrap_ts: list[object] | None = None  # the container runtime's time per event (wrapped input only)
    stream: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.first)

    def split(self, n: int) -> _Pending:
        """Remove and return the first ``n`` events."""
        head = _Pending(self.source[:n], self.line_no[:n], self.header[:n], self.first[:n],
                        {k: v for k, v in self.extra.items() if k < n}, self.tid[:n], self.shape[:n],
                        self.parsed[:n], self.truncated[:n],
                        None if self.wrap_ts is None else self.wrap_ts[:n],
                        None if self.stream is None else self.stream[:n])
        self.source, self.line_no, self.header = self.source[n:], self.line_no[n:], self.header[n:]
        self.first, self.tid, self.shape = self.first[n:], self.tid[n:], self.shape[n:]
        self.parsed, self.truncated = self.parsed[n:], self.truncated[n:]
        if self.wrap_ts is not None and self.stream is not None:
            self.wrap_ts, self.stream = self.wrap_ts[n:], self.stream[n:]
        self.extra = {k - n: v for k, v in self.extra.items() if k >= n}
        return head


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _blocks(sources: list[str], stats: ReadStats, max_line_bytes: int, progress: ProgressFn | None
            ) -> Iterator[Block]:
    for src in sources:
        for block in iter_blocks(src, stats, max_line_bytes=max_line_bytes):
            if progress is not None:
                progress(sum(len(ln) + 1 for ln in block.lines))
            yield block


_DETECT = object()


def _unwrap_blocks(blocks: Iterator[Block], stats: ReadStats, wrapper_of: Any = _DETECT) -> Iterator[Block]:
    """Remove container runtime wrappers (Docker json-file, CRI), detected per file on its first block (or the
    wrapper a distributed parse's plan chose for the file: ``wrapper_of``). A partial record at the end of a block
    is held back and read with the next block, so a long line split by the runtime is one line whatever the
    block boundaries."""
    current: str | None = None
    wrapper: containers.Wrapper | None = None
    names: list[str] = []
    held: Block | None = None  # raw lines of an open partial record chain, waiting for the next block
    for block in blocks:
        if block.source != current:
            if held is not None:
                yield _unwrapped(held, wrapper, stats)  # type: ignore[arg-type]
                held = None
            current = block.source
            wrapper = (containers.detect_wrapper(block.lines[: _DETECT_LINES * 4]) if wrapper_of is _DETECT
                       else wrapper_of)
            if wrapper is not None and wrapper not in names:
                names.append(wrapper)
                stats.container_format = ",".join(names)
        if wrapper is None:
            yield block
            continue
        if held is not None:
            n = len(held.lines)
            block = Block(source=block.source, first_line_no=held.first_line_no, lines=held.lines + block.lines,
                          truncated=held.truncated | {i + n for i in block.truncated})
            held = None
        u = containers.unwrap(block.lines, wrapper)
        if u.open_partial and u.texts:
            cut = u.line_index[-1]  # hold back the raw lines of the unfinished last line
            held = Block(source=block.source, first_line_no=block.first_line_no + cut, lines=block.lines[cut:],
                         truncated={i - cut for i in block.truncated if i >= cut})
            block = Block(source=block.source, first_line_no=block.first_line_no, lines=block.lines[:cut],
                          truncated={i for i in block.truncated if i < cut})
            if not block.lines:
                continue
        yield _unwrapped(block, wrapper, stats)
    if held is not None:
        yield _unwrapped(held, wrapper, stats)  # type: ignore[arg-type]


def _unwrapped(block: Block, wrapper: containers.Wrapper, stats: ReadStats) -> Block:
    u = containers.unwrap(block.lines, wrapper)
    n_blank = sum(1 for t, i in zip(u.texts, u.line_index, strict=True) if not t.strip() and not block.lines[i].strip())
    stats.container_records += len(u.texts) - len(u.broken) - n_blank + u.joined
    stats.container_invalid += len(u.broken)
    stats.container_partials_joined += u.joined
    pos = {i: k for k, i in enumerate(u.line_index)}
    return Block(source=block.source, first_line_no=block.first_line_no, lines=u.texts,
                 truncated={pos[i] for i in block.truncated if i in pos},
                 line_nos=[block.first_line_no + i for i in u.line_index], times=list(u.times),
                 streams=u.streams, broken=u.broken)


def _choose_format(
    fmt: str | LogFormat | None, blocks: Iterator[Block], json_fields: dict[str, str] | None, stats: ReadStats
) -> tuple[LogFormat, list[Block], Iterator[Block]]:
    """Resolve the format; when detecting, buffer the first blocks (so stdin works) and return them for replay."""
    if isinstance(fmt, LogFormat):
        stats.format, stats.format_detected = fmt.name, False
        return fmt, [], blocks
    if fmt:
        chosen = logformats.get_format(fmt, json_fields=json_fields)
        stats.format, stats.format_detected = chosen.name, False
        return chosen, [], blocks
    buffered: list[Block] = []
    sample: list[str] = []
    for block in blocks:
        buffered.append(block)
        if block.source != buffered[0].source:
            break  # detect on the first file only; every other file is detected on its own (_with_formats)
        sample.extend(ln for ln in block.lines[: _DETECT_LINES * 4] if ln.strip())
        if len(sample) >= _DETECT_LINES:
            break
    if not sample:
        # Nothing to detect on: empty input. Leave the error to the caller (it knows about skipped files).
        return logformats.PRESETS["app"], buffered, blocks
    chosen, rate = logformats.detect_format(sample[:_DETECT_LINES], json_fields=json_fields)
    stats.format, stats.format_detected, stats.format_match_rate = chosen.name, True, round(rate, 4)
    logger.info("detected log format %s (%.0f%% of sampled lines match)", chosen.name, 100 * rate)
    return chosen, buffered, blocks


def _with_formats(chosen: LogFormat, detecting: bool, blocks: Iterator[Block], json_fields: dict[str, str] | None,
                  stats: ReadStats) -> Iterator[tuple[LogFormat, Block]]:
    """Pair every block with its file's format: ``chosen`` for the first file; when detecting, each further file
    gets its own detection (a directory may mix formats); a file no preset matches keeps the previous format
    (its lines are then counted as unparsed, never dropped)."""
    fmt = chosen
    first_source: str | None = None
    current: str | None = None
    names = [chosen.name]
    for block in blocks:
        if block.source != current:
            current = block.source
            if first_source is None:
                first_source = current
            elif detecting:
                sample = [ln for ln in block.lines[: _DETECT_LINES * 4] if ln.strip()][:_DETECT_LINES]
                if sample:
                    try:
                        fmt, _ = logformats.detect_format(sample, json_fields=json_fields)
                    except InputError:
                        logger.warning("%s: no known format matches; its lines are kept as unparsed events",
                                       block.source)
                    if fmt.name not in names:
                        names.append(fmt.name)
                        stats.format = ",".join(names)
        yield fmt, block


def _assemble(pairs: Iterator[tuple[LogFormat, Block]], parser: LogParser, stats: ReadStats, chunk_size: int
              ) -> Iterator[tuple[LogFormat, _Pending]]:
    """The hot loop: one regex match per line and continuation joining; templates are mined once per block.

    Yields (format, events); a chunk never mixes two formats.
    """
    pend = _Pending()
    fmt: LogFormat | None = None
    is_json = False
    match = None
    ci = 0
    current_source: str | None = None
    have_prev = False
    source, line_no, header_l, first, parsed_l, trunc_l = (pend.source, pend.line_no, pend.header, pend.first,
                                                           pend.parsed, pend.truncated)
    for block_fmt, block in pairs:
        if block_fmt is not fmt:
            if fmt is not None and len(pend):
                yield fmt, pend
                pend = _Pending()
                source, line_no, header_l, first, parsed_l, trunc_l = (pend.source, pend.line_no, pend.header,
                                                                       pend.first, pend.parsed, pend.truncated)
            fmt = block_fmt
            is_json = fmt.kind == "jsonl"
            match = fmt.regex.match
            ci = fmt.regex.groupindex["Content"] - 1
        if block.source != current_source:
            current_source = block.source
            have_prev = False  # never join lines across files
        trunc = block.truncated
        ln0 = block.first_line_no
        src = block.source
        broken = block.broken
        nos = block.line_nos
        times = block.times
        if times is not None and pend.wrap_ts is None:
            pend.wrap_ts, pend.stream = [None] * len(first), [None] * len(first)
        for i, line in enumerate(block.lines):
            if not line or line.isspace():
                stats.blank_lines += 1
                continue
            header: tuple[str | None, ...] | None
            if broken and i in broken:
                # Not a valid record of the file's container wrapper: its own unparsed event, never a continuation.
                header, content, parsed = None, line, False
            elif is_json:
                j = logformats.parse_json_line(line, fmt)  # type: ignore[arg-type]
                if j is not None:
                    header, content, parsed = j, j[3], True
                else:
                    header, content, parsed = None, line, False
            else:
                m = match(line)  # type: ignore[misc]
                if m is not None:
                    header = m.groups()
                    content = header[ci] or ""
                    parsed = True
                elif have_prev:
                    idx = len(first) - 1
                    pend.extra.setdefault(idx, []).append(line)
                    stats.continuation_lines += 1
                    if trunc and i in trunc:
                        trunc_l[idx] = True
                    continue
                else:
                    header, content, parsed = None, line, False
            source.append(src)
            line_no.append(ln0 + i if nos is None else nos[i])
            header_l.append(header)
            first.append(content)
            parsed_l.append(parsed)
            trunc_l.append(bool(trunc) and i in trunc)
            if pend.wrap_ts is not None and pend.stream is not None:
                pend.wrap_ts.append(times[i] if times is not None else None)
                pend.stream.append(block.streams[i] if block.streams is not None else None)
            have_prev = parsed or have_prev
        # mine this block's new events in one call (same order as line by line)
        done = len(pend.tid)
        if done < len(first):
            tids, shapes = parser.add_batch(first[done:])
            pend.tid.extend(tids)
            pend.shape.extend(shapes)
        while len(first) > chunk_size:  # keep the last event: continuation lines may still follow it
            yield fmt, pend.split(chunk_size)
            source, line_no, header_l, first, parsed_l, trunc_l = (pend.source, pend.line_no, pend.header,
                                                                   pend.first, pend.parsed, pend.truncated)
    if len(pend) and fmt is not None:
        yield fmt, pend


def _obj(values: Sequence[object]) -> pd.Series:
    # object dtype: no copy into Arrow strings (pandas 3 default), which would cost more than the parsing
    return pd.Series(values, dtype=object)


def _level_column(raw: pd.Series, field: str) -> np.ndarray:
    if field == "Pri":
        return logformats.syslog_level(raw).to_numpy()
    if field == "Status":
        return logformats.http_level(raw).to_numpy()
    uniq = {v for v in raw.tolist() if isinstance(v, str)}
    table = {}
    for v in uniq:
        key = v.strip().upper()
        table[v] = _LEVELS.get(key, key)
    return raw.map(table).to_numpy(dtype=object)


PodResolver = Callable[[str], "PodRef | None"]


def pod_resolver(service_map: Mapping[str, str] | None = None) -> PodResolver:
    """Source path -> its pod (see :func:`tools.containers.pod_of_path`), cached."""
    mapper = ServiceMapper(service_map)
    cache: dict[str, PodRef | None] = {}

    def resolve(source: str) -> PodRef | None:
        if source not in cache:
            cache[source] = containers.pod_of_path(source, mapper)
        return cache[source]

    return resolve


def _frame(fmt: LogFormat, pend: _Pending, parser: LogParser, year: int | None, with_params: bool,
           pods: PodResolver | None = None) -> pd.DataFrame:
    n = len(pend)
    if fmt.kind == "jsonl":
        names = ["Timestamp", "Level", "Component", "Content"]
        index = {name: k for k, name in enumerate(names)}
        width = len(names)
    else:
        names = list(fmt.regex.groupindex)
        index = {name: k - 1 for name, k in fmt.regex.groupindex.items()}
        width = fmt.regex.groups
    empty = (None,) * width
    cols = list(zip(*[h if h is not None else empty for h in pend.header], strict=True)) if n else [() for _ in range(width)]
    by_name = {name: _obj(cols[index[name]]) for name in names}
    extra = pend.extra
    contents = pend.first if not extra else [
        f if k not in extra else "\n".join([f, *extra[k]]) for k, f in enumerate(pend.first)]
    # ids as of now: clusters merged since these events were mined report their surviving id
    resolved = {tid: parser.resolve(tid) for tid in set(pend.tid)}
    tids = [resolved[t] for t in pend.tid] if any(k != v for k, v in resolved.items()) else pend.tid
    texts = {tid: parser.template(tid) for tid in set(tids)}
    templates = [texts[t] for t in tids]
    df = pd.DataFrame({
        "source": pd.Series(pend.source, dtype="category") if n else _obj([]),
        "line_no": np.asarray(pend.line_no, dtype=np.int64),
    })
    if n and fmt.ts_fields:
        ts_parts = [by_name[f] for f in fmt.ts_fields if f in by_name]
        df["timestamp"] = logformats.to_timestamps(fmt, ts_parts, year=year).to_numpy()
    else:
        df["timestamp"] = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    if pend.wrap_ts is not None and n:
        # The container runtime's clock (UTC, with a date) wins over the application's own, which often has no
        # date or zone; a line that was not a valid record keeps what its own header says.
        wrap = pd.Series(pd.to_datetime(pd.Series(pend.wrap_ts, dtype=object), errors="coerce"), dtype="datetime64[ns]")
        df["timestamp"] = wrap.where(wrap.notna(), df["timestamp"]).to_numpy()
    if fmt.level_field and fmt.level_field in by_name:
        df["level"] = _level_column(by_name[fmt.level_field], fmt.level_field)
    else:
        df["level"] = _obj([None] * n)
    df["component"] = by_name[fmt.component_field] if fmt.component_field in by_name else _obj([None] * n)
    df["template_id"] = np.asarray(tids, dtype=np.int64)
    df["template"] = _obj(templates)
    if with_params:
        params = parser.params_of
        df["params"] = _obj([params(t, c, k) for t, c, k in zip(templates, pend.first, pend.shape, strict=True)])
    else:
        df["params"] = _obj([None] * n)
    df["content"] = _obj(contents)
    df["parsed"] = np.asarray(pend.parsed, dtype=bool)
    df["truncated"] = np.asarray(pend.truncated, dtype=bool)
    n_lines = np.ones(n, dtype=np.int64)
    for k, more in extra.items():
        n_lines[k] += len(more)
    df["n_lines"] = n_lines
    skip = {"Content", "Empty", fmt.level_field, fmt.component_field}
    for name in names:
        if name not in skip:
            col = _snake(name)
            if col not in df.columns:
                df[col] = by_name[name]
    if pend.stream is not None:
        df["stream"] = _obj(pend.stream)
    if pods is not None and n:
        _pod_columns(df, pods)
    return df


_POD_COLUMNS = ("pod", "namespace", "container", "service")


def _pod_columns(df: pd.DataFrame, pods: PodResolver) -> None:
    """Add ``pod, namespace, container, service`` from each event's source path, when any source is a pod's."""
    cats = df["source"].astype("category")
    refs = [pods(str(c)) for c in cats.cat.categories]
    if not any(r is not None for r in refs):
        return
    codes = cats.cat.codes.to_numpy()
    for col in _POD_COLUMNS:
        table = np.array([getattr(r, col) if r is not None else None for r in refs] + [None], dtype=object)
        df[col] = table[codes]


def _check_usable(stats: ReadStats, sources: Sequence[str]) -> None:
    if stats.events == 0:
        why = "; ".join(f"{s.path}: {s.reason}" for s in stats.skipped_files)
        what = ", ".join(sources[:3]) + (" ..." if len(sources) > 3 else "")
        if stats.lines_read == 0:
            raise InputError(f"empty input: no lines read from {what}" + (f" ({why})" if why else ""))
        raise InputError(f"no log events in {what}: all {stats.lines_read} lines are blank")


class ParseStream:
    """An iterable over parsed DataFrame chunks that keeps the parser, the stats and the chosen format.

    Takes the arguments of :func:`iter_parsed`; iterate it once. After (or during) iteration, ``parser``,
    ``stats``, ``format`` and ``format_detected`` tell what was used.
    """

    def __init__(
        self,
        sources: str | Path | Sequence[str | Path],
        fmt: str | LogFormat | None = None,
        *,
        chunk_size: int = 100_000,
        parser: LogParser | None = None,
        stats: ReadStats | None = None,
        max_line_bytes: int = 65536,
        json_fields: dict[str, str] | None = None,
        progress: ProgressFn | None = None,
        with_params: bool = True,
        year: int | None = None,
        service_map: Mapping[str, str] | None = None,
    ) -> None:
        self.sources = sources
        self.fmt = fmt
        self.chunk_size = chunk_size
        self.parser = parser
        self.stats = stats if stats is not None else ReadStats()
        self.max_line_bytes = max_line_bytes
        self.json_fields = json_fields
        self.progress = progress
        self.with_params = with_params
        self.year = year
        self.service_map = service_map
        self.format: str | None = None
        self.format_detected = False

    def __iter__(self) -> Iterator[pd.DataFrame]:
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        stats = self.stats
        files = expand_sources(self.sources)
        blocks = _unwrap_blocks(_blocks(files, stats, self.max_line_bytes, self.progress), stats)
        chosen, buffered, rest = _choose_format(self.fmt, blocks, self.json_fields, stats)
        self.format, self.format_detected = chosen.name, stats.format_detected
        if self.parser is None:
            self.parser = LogParser.for_format(chosen.drain_depth, chosen.drain_sim)
        parser = self.parser

        def _all() -> Iterator[Block]:
            yield from buffered
            yield from rest

        pairs = _with_formats(chosen, stats.format_detected, _all(), self.json_fields, stats)
        pods = pod_resolver(self.service_map)
        for used, pend in _assemble(pairs, parser, stats, self.chunk_size):
            stats.events += len(pend)
            stats.parsed += sum(pend.parsed)
            stats.unparsed += len(pend) - sum(pend.parsed)
            stats.templates = parser.n_templates
            self.format = stats.format
            yield _frame(used, pend, parser, self.year, self.with_params, pods)
        _check_usable(stats, files)
        stats.templates = parser.n_templates


def iter_parsed(
    sources: str | Path | Sequence[str | Path],
    fmt: str | LogFormat | None = None,
    *,
    chunk_size: int = 100_000,
    parser: LogParser | None = None,
    stats: ReadStats | None = None,
    max_line_bytes: int = 65536,
    json_fields: dict[str, str] | None = None,
    progress: ProgressFn | None = None,
    with_params: bool = True,
    year: int | None = None,
    service_map: Mapping[str, str] | None = None,
) -> Iterator[pd.DataFrame]:
    """Parse logs as a stream of DataFrame chunks (each at most ``chunk_size`` events, same columns).

    Args:
        sources: A path, ``-`` (stdin), or a list of paths / directories / globs; gzip is read transparently.
        fmt: Preset name, custom ``<Field> ...: <Content>`` format, a LogFormat, or None to detect.
        chunk_size: Events per chunk (>= 1).
        parser: The template miner to use (and keep state in); default: a new one with the format's settings.
        stats: Counters to update (pass your own to read them after the stream ends).
        max_line_bytes: Longer lines are truncated and counted.
        json_fields: ``message`` / ``timestamp`` / ``level`` field names for ``jsonl``.
        progress: Called with the number of bytes of each block read.
        with_params: Extract each event's parameter values (costs one slicing per event).
        year: Year for timestamps of formats that have none (default: current year).
        service_map: Pod name pattern -> service overrides (see :class:`tools.containers.ServiceMapper`).

    Raises:
        InputError: unknown format, a named path that does not exist, or no usable input at all.
    """
    yield from ParseStream(sources, fmt, chunk_size=chunk_size, parser=parser, stats=stats,
                           max_line_bytes=max_line_bytes, json_fields=json_fields, progress=progress,
                           with_params=with_params, year=year, service_map=service_map)


@dataclass
class ParsedLogs:
    """The result of :func:`parse_logs`."""

    events: pd.DataFrame
    stats: ReadStats
    format: str
    format_detected: bool
    parser: LogParser

    def templates(self) -> pd.DataFrame:
        """One row per template seen: template_id, template, count, first_seen, last_seen (by count, desc)."""
        ev = self.events
        if ev.empty:
            return pd.DataFrame(columns=["template_id", "template", "count", "first_seen", "last_seen"])
        g = ev.groupby("template_id", sort=False)
        out = pd.DataFrame({
            "template": g["template"].first(),
            "count": g.size(),
            "first_seen": g["timestamp"].min(),
            "last_seen": g["timestamp"].max(),
        }).reset_index()
        return out.sort_values(["count", "template_id"], ascending=[False, True], ignore_index=True)


def parse_logs(
    sources: str | Path | Sequence[str | Path],
    fmt: str | LogFormat | None = None,
    *,
    state_path: str | Path | None = None,
    max_line_bytes: int = 65536,
    progress: ProgressFn | None = None,
    json_fields: dict[str, str] | None = None,
    parser: LogParser | None = None,
    year: int | None = None,
    service_map: Mapping[str, str] | None = None,
) -> ParsedLogs:
    """Parse all of ``sources`` into one events DataFrame with final templates.

    ``state_path``: when given, the parser state is loaded from it if it exists (so template ids stay those of
    earlier runs) and saved back afterwards. See :func:`iter_parsed` for the other arguments.
    """
    stats = ReadStats()
    if parser is None and state_path is not None and Path(state_path).exists():
        parser = LogParser.load(state_path)
    chunks: list[pd.DataFrame] = []
    files = expand_sources(sources)
    blocks = _unwrap_blocks(_blocks(files, stats, max_line_bytes, progress), stats)
    chosen, buffered, rest = _choose_format(fmt, blocks, json_fields, stats)
    if parser is None:
        parser = LogParser.for_format(chosen.drain_depth, chosen.drain_sim)

    def _all() -> Iterator[Block]:
        yield from buffered
        yield from rest

    pairs = _with_formats(chosen, stats.format_detected, _all(), json_fields, stats)
    pods = pod_resolver(service_map)
    for used, pend in _assemble(pairs, parser, stats, 100_000):
        stats.events += len(pend)
        stats.parsed += sum(pend.parsed)
        stats.unparsed += len(pend) - sum(pend.parsed)
        chunks.append(_frame(used, pend, parser, year, with_params=False, pods=pods))
    _check_usable(stats, files)
    events = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
    if "source" in events.columns:
        events["source"] = events["source"].astype("category")
    # Final ids and templates: clusters may have merged, and templates generalised, after their first events.
    events["template_id"] = events["template_id"].map(
        {t: parser.resolve(t) for t in events["template_id"].unique().tolist()}).astype("int64")
    final = {tid: parser.template(tid) for tid in events["template_id"].unique().tolist()}
    events["template"] = events["template_id"].map(final)
    first_lines = events["content"].str.split("\n", n=1).str[0]
    params = parser.params_of
    events["params"] = _obj([params(t, c, None) for t, c in zip(events["template"].tolist(), first_lines.tolist(), strict=True)])
    stats.templates = len(final)
    if state_path is not None:
        parser.save(state_path)
    return ParsedLogs(events=events, stats=stats, format=stats.format or chosen.name,
                      format_detected=stats.format_detected,
                      parser=parser)


# ---- shards of a distributed parse (agent.scale) -------------------------------------------------------------------
@dataclass(frozen=True)
class Shard:
    """One piece of a distributed parse: a file, or a byte range of a plain file, with the format and container
    wrapper the whole-stream parse would have chosen for that file. ``start``/``stop`` are nominal: the shard
    moves both to the next line that starts an event, so every event (stack trace included) is in one shard."""

    index: int
    source: str
    start: int
    stop: int | None
    fmt: LogFormat
    wrapper: str | None
    file_index: int


def plan_shards(
    sources: str | Path | Sequence[str | Path],
    fmt: str | LogFormat | None = None,
    *,
    shard_bytes: int = 64 << 20,
    json_fields: dict[str, str] | None = None,
    max_line_bytes: int = 65536,
) -> tuple[list[Shard], ReadStats]:
    """Cut the input into shards: the formats and wrappers are chosen per file exactly as :func:`iter_parsed`
    chooses them in one stream (the first file's format detected on its first lines, every later file's on its
    first block, a file nothing matches keeping the previous format); plain files larger than ``shard_bytes``
    are cut into byte ranges. Returns the shards in stream order and the stats of the choice (format names)."""
    if shard_bytes < 1:
        raise ValueError(f"shard_bytes must be >= 1, got {shard_bytes}")
    files = expand_sources(sources)
    if STDIN_NAME in files:
        raise InputError("a distributed parse reads files, not standard input")
    stats = ReadStats()
    shards: list[Shard] = []
    chosen: LogFormat | None = None
    names: list[str] = []
    for fi, path in enumerate(files):
        probe = ReadStats()
        head = list(_first_blocks(path, probe, max_line_bytes))
        wrapper = containers.detect_wrapper(head[0].lines[: _DETECT_LINES * 4]) if head else None
        lines = [ln for b in _unwrap_blocks(iter(head), probe, wrapper) for ln in b.lines]
        if isinstance(fmt, LogFormat) or fmt:
            if chosen is None:
                chosen = fmt if isinstance(fmt, LogFormat) else logformats.get_format(fmt, json_fields=json_fields)
                stats.format, stats.format_detected = chosen.name, False
        else:
            sample = [ln for ln in lines[: _DETECT_LINES * 4] if ln.strip()][:_DETECT_LINES]
            if chosen is None:
                if not sample:  # an empty first file: detection moves on to the next one, as in one stream
                    shards.append(Shard(index=len(shards), source=path, start=0, stop=None,
                                        fmt=logformats.PRESETS["app"], wrapper=None, file_index=fi))
                    continue
                chosen, rate = logformats.detect_format(sample, json_fields=json_fields)
                stats.format_detected, stats.format_match_rate = True, round(rate, 4)
            elif sample:
                try:
                    chosen, _ = logformats.detect_format(sample, json_fields=json_fields)
                except InputError:
                    logger.warning("%s: no known format matches; its lines are kept as unparsed events", path)
        if chosen.name not in names:
            names.append(chosen.name)
            stats.format = ",".join(names)
        if wrapper is not None:
            stats.container_format = ",".join(dict.fromkeys([*(stats.container_format or "").split(","), wrapper]).keys()).strip(",")
        size = _plain_size(path)
        cuts = [0] if size is None or size <= shard_bytes else list(range(0, size, shard_bytes))
        for k, start in enumerate(cuts):
            stop = cuts[k + 1] if k + 1 < len(cuts) else None
            shards.append(Shard(index=len(shards), source=path, start=start, stop=stop, fmt=chosen, wrapper=wrapper,
                                file_index=fi))
    return shards, stats


STDIN_NAME = "-"


def _first_blocks(path: str, stats: ReadStats, max_line_bytes: int) -> Iterator[Block]:
    """The first block of a file (and more, up to the detection sample of the first file)."""
    n = 0
    for block in iter_blocks(path, stats, max_line_bytes=max_line_bytes):
        yield block
        n += sum(1 for ln in block.lines if ln.strip())
        if n >= _DETECT_LINES:
            break


def _plain_size(path: str) -> int | None:
    """The size of a plain (not gzip) file, None for a compressed one (read whole, in one shard)."""
    try:
        with open(path, "rb") as fh:
            if fh.read(2) == b"\x1f\x8b":
                return None
        return Path(path).stat().st_size
    except OSError:
        return None


def event_start(path: str, offset: int, fmt: LogFormat, wrapper: str | None) -> int:
    """The byte offset of the first line at or after ``offset`` that starts an event (a header line, a JSON line,
    or a line that is not a valid record of the file's wrapper); the file's size when there is none."""
    with open(path, "rb") as fh:
        start = _line_start(fh, offset) if offset > 0 else 0
        fh.seek(start)
        prev_partial = False  # the record before continues in the next one (a runtime-split long line)
        if start < offset:
            first = fh.readline()  # the line that straddles the offset belongs to the shard before
            if wrapper is not None:
                prev_partial = bool(containers.record_is_partial(
                    first.rstrip(b"\r\n").decode("utf-8", errors="replace"), wrapper))  # type: ignore[arg-type]
        while True:
            pos = fh.tell()
            raw = fh.readline()
            if not raw:
                return pos
            line = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
            if not line.strip():
                prev_partial = False
                continue
            text = line
            if wrapper is not None:
                partial = containers.record_is_partial(line, wrapper)  # type: ignore[arg-type]
                if partial is None:
                    return pos
                was, prev_partial = prev_partial, partial
                if was:
                    continue  # the rest of a split line, not the start of one
                text = containers.unwrap([line], wrapper).texts[0]  # type: ignore[arg-type]
            if fmt.kind == "jsonl" or fmt.regex.match(text) is not None:
                return pos


def _line_start(fh: Any, offset: int) -> int:
    """The start of the line holding byte ``offset`` (searching back in 64 KiB steps)."""
    pos = offset
    while pos > 0:
        step = min(65536, pos)
        fh.seek(pos - step)
        chunk = fh.read(step)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return pos - step + i + 1
        pos -= step
    return 0


def iter_shard(shard: Shard, parser: Any, stats: ReadStats, *, max_line_bytes: int = 65536,
               service_map: Mapping[str, str] | None = None, chunk_size: int = 100_000) -> Iterator[pd.DataFrame]:
    """Parse one shard as :class:`ParseStream` parses the whole input (same reading, unwrapping, header
    matching, continuation joining and event columns); ``parser`` mines (or keys) its messages. Line numbers
    count from the shard's first line (the caller adds the lines of the shards before it in the same file)."""
    start = 0 if shard.start == 0 else event_start(shard.source, shard.start, shard.fmt, shard.wrapper)
    stop = None if shard.stop is None else event_start(shard.source, shard.stop, shard.fmt, shard.wrapper)
    if stop is not None and start >= stop:
        return
    blocks: Iterator[Block] = iter_blocks(shard.source, stats, max_line_bytes=max_line_bytes, start=start, stop=stop)
    if shard.wrapper is not None:
        blocks = _unwrap_blocks(blocks, stats, shard.wrapper)
    pairs = ((shard.fmt, b) for b in blocks)
    pods = pod_resolver(service_map)
    for used, pend in _assemble(pairs, parser, stats, chunk_size):
        stats.events += len(pend)
        stats.parsed += sum(pend.parsed)
        stats.unparsed += len(pend) - sum(pend.parsed)
        yield _frame(used, pend, parser, None, False, pods)
