"""Log line formats: the named presets, custom ``<Field> <Field>: <Content>`` strings, detection, timestamps.

A :class:`LogFormat` turns one physical line into header fields and the message ``Content``. The 16 Loghub presets
use the public Loghub header formats (fields match lazily, as in the Loghub benchmark, so every line of those
systems parses); each also has a stricter *signature* used only to detect the format of an unknown file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd

from anomalist.tools.errors import InputError

TimestampKind = Literal["strptime", "iso", "epoch", "auto", "none"]

_LEVEL_WORDS = r"(?i:TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|CRITICAL|CRIT|FATAL|ALERT|EMERG|SEVERE)"
_SYSLOG_SEVERITY = ("EMERG", "ALERT", "CRIT", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")


@dataclass(frozen=True)
class LogFormat:
    """How to split a line into header fields and content.

    Attributes:
        name: Preset name (lower case) or ``"custom"``.
        regex: Compiled pattern with named groups; ``Content`` is the message.
        fields: Group names in order (``Content`` included).
        signature: Stricter pattern used only for detection (defaults to ``regex``).
        level_field / component_field: Header fields that feed the ``level`` / ``component`` columns.
        ts_fields: Header fields joined with a space to form the timestamp text.
        ts_kind / ts_format: How that text becomes a datetime (strptime format, ISO 8601, epoch seconds, or
            ``auto``: whichever of the common forms each value has, see :func:`to_timestamps`).
        ts_needs_year: The format has no year; the reference year is prepended.
        drain_depth / drain_sim: Drain tree depth and similarity threshold for this kind of log.
        kind: ``"regex"`` for header formats, ``"jsonl"`` for JSON lines.
        fallback: A generic format that detection picks only when no specific one fits the lines.
    """

    name: str
    regex: re.Pattern[str]
    fields: tuple[str, ...]
    signature: re.Pattern[str] | None = None
    level_field: str | None = None
    component_field: str | None = None
    ts_fields: tuple[str, ...] = ()
    ts_kind: TimestampKind = "none"
    ts_format: str | None = None
    ts_needs_year: bool = False
    drain_depth: int = 4
    drain_sim: float = 0.5
    kind: Literal["regex", "jsonl"] = "regex"
    json_fields: dict[str, str] = field(default_factory=dict)
    fallback: bool = False

    @property
    def extra_fields(self) -> tuple[str, ...]:
        """Header fields other than Content, level and component (they become extra columns)."""
        skip = {"Content", self.level_field, self.component_field}
        return tuple(f for f in self.fields if f not in skip)

    def matches(self, line: str) -> bool:
        """Whether ``line`` has this format's signature (used by detection)."""
        if self.kind == "jsonl":
            return _json_message(line, self.json_fields.get("message", "message")) is not None
        pattern = self.signature or self.regex
        return pattern.match(line) is not None


def compile_header(fmt: str, *, literal: bool, field_patterns: dict[str, str] | None = None) -> re.Pattern[str]:
    """Compile a ``<Field> <Field>: <Content>`` format into an anchored regex with named groups.

    Args:
        fmt: The format; ``<Name>`` marks a field, ``<Content>`` must be present.
        literal: True for user formats (text between fields is matched literally, any run of spaces as
            ``\\s+``); False for the built-in Loghub-style formats whose text is already a regex.
        field_patterns: Optional pattern per field (default: lazy ``.*?``; Content greedy ``.*``).

    Raises:
        InputError: the format has no ``<Content>`` field, a field twice, or does not compile.
    """
    field_patterns = field_patterns or {}
    parts = re.split(r"(<[A-Za-z_][A-Za-z0-9_]*>)", fmt)
    seen: set[str] = set()
    out: list[str] = []
    for part in parts:
        m = re.fullmatch(r"<([A-Za-z_][A-Za-z0-9_]*)>", part)
        if m:
            name = m.group(1)
            if name in seen:
                raise InputError(f"format {fmt!r}: field <{name}> appears twice")
            seen.add(name)
            pat = field_patterns.get(name, ".*" if name == "Content" else ".*?")
            out.append(f"(?P<{name}>{pat})")
        elif part:
            if literal:
                pieces = re.split(r"(\s+)", part)
                out.append("".join(r"\s+" if p.isspace() else re.escape(p) for p in pieces if p))
            else:
                out.append(re.sub(r" +", r"\\s+", part))
    if "Content" not in seen:
        raise InputError(f"format {fmt!r} has no <Content> field")
    try:
        return re.compile("^" + "".join(out) + "$")
    except re.error as exc:
        raise InputError(f"format {fmt!r} does not compile: {exc}") from exc


def _fields_of(fmt: str) -> tuple[str, ...]:
    return tuple(re.findall(r"<([A-Za-z_][A-Za-z0-9_]*)>", fmt))


def _loghub(
    name: str,
    fmt: str,
    sig: dict[str, str],
    *,
    level: str | None = None,
    component: str | None = None,
    ts: tuple[str, ...] = (),
    ts_kind: TimestampKind = "none",
    ts_format: str | None = None,
    needs_year: bool = False,
    depth: int = 4,
    sim: float = 0.5,
    fields: dict[str, str] | None = None,
) -> LogFormat:
    # Fields hold no spaces unless named in `fields`: with \S+ a line that does not match fails in linear time,
    # where Loghub's lazy .*? for every field can backtrack for seconds on a long line of another format.
    patterns = {f: r"\S+" for f in _fields_of(fmt) if f != "Content"}
    patterns.update(fields or {})
    return LogFormat(
        name=name,
        regex=compile_header(fmt, literal=False, field_patterns=patterns),
        fields=_fields_of(fmt),
        signature=compile_header(fmt, literal=False, field_patterns=sig),
        level_field=level,
        component_field=component,
        ts_fields=ts,
        ts_kind=ts_kind,
        ts_format=ts_format,
        ts_needs_year=needs_year,
        drain_depth=depth,
        drain_sim=sim,
    )


_MON = r"[A-Z][a-z]{2}"
_HMS = r"\d{2}:\d{2}:\d{2}"
# The leading timestamps of the generic format, most specific first.
_GENERIC_TS = (
    r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?: ?(?:Z|[+-]\d\d:?\d\d|UTC))?"  # ISO 8601 / RFC 3339
    r"|\d{4}/\d\d/\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?"  # Go's log package, nginx error log
    r"|\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d(?: [+-]\d{4})?"  # common log format
    r"|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"  # syslog (no year)
    r"|\d\d:\d\d:\d\d(?:[.,]\d{1,9})?"  # time of day only (Logback's default pattern)
    r"|\d{13}|\d{10}(?:\.\d{1,9})?"  # epoch milliseconds / seconds
)


def _build_presets() -> dict[str, LogFormat]:
    p: list[LogFormat] = [
        # Our generic application log: "2026-11-02 14:05:01,123 ERROR checkout.db: connection refused".
        LogFormat(
            name="app",
            regex=re.compile(
                r"^(?P<Date>\d{4}-\d{2}-\d{2})[T ](?P<Time>\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)"
                rf"\s+(?P<Level>{_LEVEL_WORDS})\s+(?:\[(?P<Thread>[^\]]*)\]\s+)?"
                r"(?P<Component>[^\s:\[\]]+)(?:\[(?P<Pid>\d+)\])?:(?: (?P<Content>.*)|(?P<Empty>))$"
            ),
            fields=("Date", "Time", "Level", "Thread", "Component", "Pid", "Content"),
            level_field="Level",
            component_field="Component",
            ts_fields=("Date", "Time"),
            ts_kind="iso",
            drain_depth=4,
            drain_sim=0.5,
        ),
        LogFormat(
            name="syslog",
            regex=re.compile(
                rf"^(?:<(?P<Pri>\d{{1,3}})>)?(?P<Month>{_MON}) +(?P<Day>\d{{1,2}}) (?P<Time>{_HMS}) (?P<Host>\S+) "
                r"(?P<Component>[^:\[\s]+)(?:\[(?P<Pid>[^\]]*)\])?:(?: (?P<Content>.*)|(?P<Empty>))$"
            ),
            fields=("Pri", "Month", "Day", "Time", "Host", "Component", "Pid", "Content"),
            level_field="Pri",
            component_field="Component",
            ts_fields=("Month", "Day", "Time"),
            ts_kind="strptime",
            ts_format="%b %d %H:%M:%S",
            ts_needs_year=True,
            drain_depth=4,
            drain_sim=0.5,
        ),
        LogFormat(
            name="syslog5424",
            regex=re.compile(
                r"^<(?P<Pri>\d{1,3})>(?P<Version>\d{1,2}) (?P<Timestamp>\S+) (?P<Host>\S+) (?P<App>\S+) "
                r"(?P<Procid>\S+) (?P<Msgid>\S+) (?P<Sd>-|(?:\[.*?\])+)(?: (?P<Content>.*)|(?P<Empty>))$"
            ),
            fields=("Pri", "Version", "Timestamp", "Host", "App", "Procid", "Msgid", "Sd", "Content"),
            level_field="Pri",
            component_field="App",
            ts_fields=("Timestamp",),
            ts_kind="iso",
            drain_depth=4,
            drain_sim=0.5,
        ),
        # Kubernetes components (klog/glog): "I0129 08:42:22.383150       1 controller.go:123] message".
        LogFormat(
            name="klog",
            regex=re.compile(
                r"^(?P<Level>[IWEF])(?P<Date>\d{4}) (?P<Time>\d\d:\d\d:\d\d\.\d+)\s+(?P<Pid>\d+) "
                r"(?P<Component>[^\s:\]]+(?::\d+)?)\] ?(?P<Content>.*)$"
            ),
            fields=("Level", "Date", "Time", "Pid", "Component", "Content"),
            level_field="Level",
            component_field="Component",
            ts_fields=("Date", "Time"),
            ts_kind="strptime",
            ts_format="%m%d %H:%M:%S.%f",
            ts_needs_year=True,
            drain_depth=4,
            drain_sim=0.5,
        ),
        # Web server access logs in the NCSA common / combined format (nginx's and Apache httpd's defaults):
        # '127.0.0.1 - - [03/Dec/2026:18:46:27 +0000] "GET / HTTP/1.1" 200 3 "-" "curl/7.88.1"'. The message is the
        # request onwards; the level comes from the status (5xx error, 4xx warning, else info).
        LogFormat(
            name="access",
            regex=re.compile(
                r'^(?P<Client>\S+) (?P<Ident>\S+) (?P<User>\S+) '
                r"\[(?P<Timestamp>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d(?: [+-]\d{4})?)\] "
                r'(?P<Content>"[^"]*" (?P<Status>\d{3}) (?:\d+|-).*)$'
            ),
            fields=("Client", "Ident", "User", "Timestamp", "Status", "Content"),
            level_field="Status",
            ts_fields=("Timestamp",),
            ts_kind="auto",
            drain_depth=4,
            drain_sim=0.5,
        ),
        # Python's logging.basicConfig() default ("%(levelname)s:%(name)s:%(message)s"): no time of its own.
        LogFormat(
            name="pylogging",
            regex=re.compile(r"^(?P<Level>CRITICAL|ERROR|WARNING|INFO|DEBUG):(?P<Component>[^:\s]+):(?P<Content>.*)$"),
            fields=("Level", "Component", "Content"),
            level_field="Level",
            component_field="Component",
            drain_depth=4,
            drain_sim=0.5,
        ),
        # Any line that starts with a recognisable timestamp, then optionally a [thread], a level and a logger:
        # Logback's and log4j's defaults, Go's log package, dpkg, nginx's error log, epoch-stamped lines.
        LogFormat(
            name="timestamped",
            regex=re.compile(
                rf"^\[?(?P<Timestamp>{_GENERIC_TS})\]?\s+(?:\[(?!{_LEVEL_WORDS}\])(?P<Thread>[^\]]{{0,80}})\]\s+)?"
                rf"(?:[\[<]?(?P<Level>{_LEVEL_WORDS})[\]>:]?\s+)?(?:\[(?P<Thread2>[^\]]{{0,80}})\]\s+)?"
                r"(?:(?P<Component>[A-Za-z_$][\w$-]*(?:(?:\.|::|#|\$)[\w$<>-]+)+)(?:\[(?P<Pid>\d+)\])?"
                r"(?:\s+-\s+|:\s+|\s+|$))?(?P<Content>.*)$"
            ),
            fields=("Timestamp", "Thread", "Level", "Thread2", "Component", "Pid", "Content"),
            level_field="Level",
            component_field="Component",
            ts_fields=("Timestamp",),
            ts_kind="auto",
            drain_depth=4,
            drain_sim=0.5,
            fallback=True,
        ),
    ]
    # Loghub header formats (public facts of the benchmark) and the Drain settings published for them.
    d2, d6 = r"\d{2}", r"\d{6}"
    p += [
        _loghub("hdfs", "<Date> <Time> <Pid> <Level> <Component>: <Content>",
                {"Date": d6, "Time": d6, "Pid": r"\d+", "Level": r"[A-Z]+", "Component": r"\S+"},
                level="Level", component="Component", ts=("Date", "Time"), ts_kind="strptime",
                ts_format="%y%m%d %H%M%S", depth=4, sim=0.5),
        _loghub("hadoop", r"<Date> <Time> <Level> \[<Process>\] <Component>: <Content>",
                {"Date": r"\d{4}-\d\d-\d\d", "Time": r"\d\d:\d\d:\d\d,\d+", "Level": r"[A-Z]+",
                 "Component": r"\S+"},
                level="Level", component="Component", ts=("Date", "Time"), ts_kind="strptime",
                ts_format="%Y-%m-%d %H:%M:%S,%f", depth=4, sim=0.5, fields={"Process": r"[^\]]*"}),
        _loghub("spark", "<Date> <Time> <Level> <Component>: <Content>",
                {"Date": rf"{d2}/{d2}/{d2}", "Time": _HMS, "Level": r"[A-Z]+", "Component": r"\S+"},
                level="Level", component="Component", ts=("Date", "Time"), ts_kind="strptime",
                ts_format="%y/%m/%d %H:%M:%S", depth=4, sim=0.5),
        _loghub("zookeeper", r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>",
                {"Date": r"\d{4}-\d\d-\d\d", "Time": r"\d\d:\d\d:\d\d,\d+", "Level": r"[A-Z]+"},
                fields={"Node": r"[^@]*?", "Component": r"[^:@\]]+", "Id": r"[^\]]*"},
                level="Level", component="Component", ts=("Date", "Time"), ts_kind="strptime",
                ts_format="%Y-%m-%d %H:%M:%S,%f", depth=4, sim=0.5),
        _loghub("bgl", "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
                {"Label": r"\S+", "Timestamp": r"\d{9,11}", "Date": r"\d{4}\.\d\d\.\d\d", "Node": r"\S+",
                 "Time": r"\d{4}-\d\d-\d\d-\d\d\.\d\d\.\d\d\.\d+", "NodeRepeat": r"\S+", "Type": r"\S+",
                 "Component": r"\S+", "Level": r"\S+"},
                level="Level", component="Component", ts=("Time",), ts_kind="strptime",
                ts_format="%Y-%m-%d-%H.%M.%S.%f", depth=4, sim=0.5),
        _loghub("hpc", "<LogId> <Node> <Component> <State> <Time> <Flag> <Content>",
                {"LogId": r"\d+", "Node": r"\S+", "Component": r"\S+", "State": r"\S+", "Time": r"\d{9,11}",
                 "Flag": r"\d"},
                component="Component", ts=("Time",), ts_kind="epoch", depth=4, sim=0.5),
        _loghub("thunderbird",
                r"<Label> <Timestamp> <Date> <User> <Month> <Day> <Time> <Location> <Component>(\[<PID>\])?: <Content>",
                {"Label": r"\S+", "Timestamp": r"\d{9,11}", "Date": r"\d{4}\.\d\d\.\d\d", "User": r"\S+",
                 "Month": _MON, "Day": r"\d{1,2}", "Time": _HMS, "Location": r"\S+", "Component": r"[^\s\[:]+",
                 "PID": r"\d+"},
                component="Component", ts=("Timestamp",), ts_kind="epoch", depth=4, sim=0.5, fields={"Component": r".*?", "PID": r"[^\]]*"}),
        _loghub("windows", r"<Date> <Time>, <Level>                  <Component>    <Content>",
                {"Date": r"\d{4}-\d\d-\d\d", "Time": _HMS, "Level": r"[A-Za-z]+", "Component": r"\S+"},
                level="Level", component="Component", ts=("Date", "Time"), ts_kind="strptime",
                ts_format="%Y-%m-%d %H:%M:%S", depth=5, sim=0.7),
        _loghub("linux", r"<Month> <Date> <Time> <Host> <Component>(\[<PID>\])?: <Content>",
                {"Month": _MON, "Date": r"\d{1,2}", "Time": _HMS, "Host": r"\S+", "Component": r"[^\s\[:]+",
                 "PID": r"\d+"},
                component="Component", ts=("Month", "Date", "Time"), ts_kind="strptime",
                ts_format="%b %d %H:%M:%S", needs_year=True, depth=6, sim=0.39, fields={"Component": r".*?", "PID": r"[^\]]*"}),
        _loghub("android", r"<Date> <Time>  <Pid>  <Tid> <Level> <Component>: <Content>",
                {"Date": r"\d\d-\d\d", "Time": r"\d\d:\d\d:\d\d\.\d+", "Pid": r"\d+", "Tid": r"\d+",
                 "Level": r"[VDIWEFA]"},
                level="Level", component="Component", ts=("Date", "Time"), ts_kind="strptime",
                ts_format="%m-%d %H:%M:%S.%f", needs_year=True, depth=6, sim=0.2, fields={"Component": r".*?"}),
        _loghub("healthapp", r"<Time>\|<Component>\|<Pid>\|<Content>",
                {"Time": r"\d{8}-\d\d:\d\d:\d\d:\d+", "Component": r"[^|]+", "Pid": r"\d+"},
                component="Component", ts=("Time",), ts_kind="strptime", ts_format="%Y%m%d-%H:%M:%S:%f",
                depth=4, sim=0.2, fields={"Time": r"[^|]*", "Component": r"[^|]*", "Pid": r"[^|]*"}),
        _loghub("apache", r"\[<Time>\] \[<Level>\] <Content>",
                {"Time": rf"[A-Z][a-z]{{2}} {_MON} \d\d {_HMS} \d{{4}}", "Level": r"[a-z]+"},
                level="Level", ts=("Time",), ts_kind="strptime", ts_format="%a %b %d %H:%M:%S %Y",
                depth=4, sim=0.5, fields={"Time": r"[^\]]*", "Level": r"[^\]]*"}),
        _loghub("proxifier", r"\[<Time>\] <Program> - <Content>",
                {"Time": rf"\d\d\.\d\d {_HMS}", "Program": r"[^\s\]]+"},
                component="Program", ts=("Time",), ts_kind="strptime", ts_format="%m.%d %H:%M:%S",
                needs_year=True, depth=3, sim=0.6, fields={"Time": r"[^\]]*", "Program": r".*?"}),
        _loghub("openssh", r"<Date> <Day> <Time> <Component>\[<Pid>\]: <Content>",
                {"Date": _MON, "Day": r"\d{1,2}", "Time": _HMS, "Component": r"\S+", "Pid": r"\d+"},
                component="Component", ts=("Date", "Day", "Time"), ts_kind="strptime",
                ts_format="%b %d %H:%M:%S", needs_year=True, depth=5, sim=0.6, fields={"Component": r".*?", "Pid": r"[^\]]*"}),
        _loghub("openstack", r"<Logrecord> <Date> <Time> <Pid> <Level> <Component> \[<ADDR>\] <Content>",
                {"Logrecord": r"\S+", "Date": r"\d{4}-\d\d-\d\d", "Time": r"\d\d:\d\d:\d\d\.\d+",
                 "Pid": r"\d+", "Level": r"[A-Z]+", "Component": r"\S+"},
                level="Level", component="Component", ts=("Date", "Time"), ts_kind="strptime",
                ts_format="%Y-%m-%d %H:%M:%S.%f", depth=5, sim=0.5, fields={"ADDR": r"[^\]]*"}),
        _loghub("mac", r"<Month>  <Date> <Time> <User> <Component>\[<PID>\]( \(<Address>\))?: <Content>",
                {"Month": _MON, "Date": r"\d{1,2}", "Time": _HMS, "User": r"\S+", "PID": r"\d+"},
                component="Component", ts=("Month", "Date", "Time"), ts_kind="strptime",
                ts_format="%b %d %H:%M:%S", needs_year=True, depth=6, sim=0.7, fields={"Component": r".*?", "PID": r"[^\]]*", "Address": r".*?"}),
    ]
    return {f.name: f for f in p}


PRESETS: dict[str, LogFormat] = _build_presets()
LOGHUB_SYSTEMS: tuple[str, ...] = (
    "HDFS", "Hadoop", "Spark", "Zookeeper", "BGL", "HPC", "Thunderbird", "Windows", "Linux", "Mac", "Android",
    "HealthApp", "Apache", "OpenSSH", "OpenStack", "Proxifier",
)  # fmt: skip


def jsonl_format(message_field: str = "message", timestamp_field: str = "timestamp",
                 level_field: str = "level") -> LogFormat:
    """The JSON-lines format: one object per line; the named fields feed content, timestamp and level."""
    return LogFormat(
        name="jsonl",
        regex=re.compile(r"^\s*(?P<Content>\{.*\})\s*$"),
        fields=("Timestamp", "Level", "Component", "Content"),
        level_field="Level",
        component_field="Component",
        ts_fields=("Timestamp",),
        ts_kind="iso",
        kind="jsonl",
        json_fields={"message": message_field, "timestamp": timestamp_field, "level": level_field},
    )


def preset_names() -> list[str]:
    """Every name ``--format`` accepts besides a custom format string."""
    return sorted([*PRESETS, "jsonl"])


def get_format(spec: str, *, json_fields: dict[str, str] | None = None) -> LogFormat:
    """The format for a preset name (case-insensitive), ``jsonl``, or a custom ``<Field> ...`` string.

    Raises:
        InputError: an unknown name or a custom string that does not compile.
    """
    key = spec.strip().lower()
    if key in PRESETS:
        return PRESETS[key]
    if key in ("jsonl", "json"):
        jf = json_fields or {}
        return jsonl_format(jf.get("message", "message"), jf.get("timestamp", "timestamp"),
                            jf.get("level", "level"))
    if "<" in spec and ">" in spec:
        fields = _fields_of(spec)
        regex = compile_header(spec, literal=True)
        lower = {f.lower(): f for f in fields}
        ts = tuple(lower[n] for n in ("date", "time", "timestamp", "datetime") if n in lower)
        return LogFormat(
            name="custom",
            regex=regex,
            fields=fields,
            level_field=lower.get("level") or lower.get("severity"),
            component_field=lower.get("component") or lower.get("logger") or lower.get("module"),
            ts_fields=ts,
            ts_kind="iso" if ts else "none",
        )
    raise InputError(
        f"unknown log format {spec!r}: use one of {', '.join(preset_names())}, "
        "or a custom format such as '<Date> <Time> <Level> <Component>: <Content>'"
    )


def detect_format(lines: Sequence[str], *, json_fields: dict[str, str] | None = None) -> tuple[LogFormat, float]:
    """Pick the format whose signature matches the most of ``lines`` (ties: our generic presets first).

    A fallback format (``timestamped``: any line with a leading timestamp) is chosen only when it matches clearly
    more lines than every specific format (by :data:`FALLBACK_MARGIN`), so a preset keeps its fields.

    Returns:
        The format and the fraction of non-blank lines it matched.

    Raises:
        InputError: no non-blank line, or no format matches any line.
    """
    sample = [ln for ln in lines if ln.strip()]
    if not sample:
        raise InputError("cannot detect the log format: the input has no non-blank line")
    candidates = [*PRESETS.values(), get_format("jsonl", json_fields=json_fields)]
    best: LogFormat | None = None
    best_score = 0.0
    fallback: LogFormat | None = None
    fallback_score = 0.0
    for fmt in candidates:
        hits = sum(1 for ln in sample if fmt.matches(ln))
        score = hits / len(sample)
        if fmt.fallback:
            if score > fallback_score:
                fallback, fallback_score = fmt, score
        elif score > best_score:
            best, best_score = fmt, score
    if fallback is not None and fallback_score > best_score + FALLBACK_MARGIN:
        best, best_score = fallback, fallback_score
    if best is None:
        raise InputError(
            "cannot detect the log format: no preset matches the first lines and they start with no timestamp "
            f"it knows; pass --format (one of {', '.join(preset_names())}) or a custom "
            "'<Date> <Time> <Level>: <Content>' format"
        )
    return best, best_score


FALLBACK_MARGIN = 0.2
"""How much more of the sample the generic fallback must match than the best specific format to be chosen."""


def _json_message(line: str, message_field: str) -> dict[str, object] | None:
    s = line.strip()
    if not (s.startswith("{") and s.endswith("}")):
        return None
    try:
        obj = json.loads(s)
    except ValueError:
        return None
    if not isinstance(obj, dict) or message_field not in obj:
        return None
    return obj


def parse_json_line(line: str, fmt: LogFormat) -> tuple[str, str, str, str] | None:
    """(timestamp, level, component, message) of a JSON line, or None when it is not one of ours."""
    jf = fmt.json_fields
    obj = _json_message(line, jf.get("message", "message"))
    if obj is None:
        return None

    def _s(key: str) -> str:
        v = obj.get(key)
        return "" if v is None else str(v)

    comp = ""
    for key in ("logger", "component", "module", "service", "name"):
        if key in obj:
            comp = _s(key)
            break
    return _s(jf.get("timestamp", "timestamp")), _s(jf.get("level", "level")), comp, _s(jf.get("message", "message"))


def http_level(status: pd.Series) -> pd.Series:
    """Map HTTP status codes (text) to levels: 5xx ERROR, 4xx WARN, other codes INFO, unknown None."""
    num = pd.to_numeric(status, errors="coerce")
    out = pd.Series([None] * len(status), index=status.index, dtype=object)
    out[(num >= 100).to_numpy()] = "INFO"
    out[((num >= 400) & (num < 500)).to_numpy()] = "WARN"
    out[(num >= 500).to_numpy()] = "ERROR"
    return out


def syslog_level(pri: pd.Series) -> pd.Series:
    """Map syslog PRI values (text, may be empty) to severity names."""
    num = pd.to_numeric(pri, errors="coerce")
    sev = (num % 8).astype("Int64")
    names = np.array(_SYSLOG_SEVERITY, dtype=object)
    out = pd.Series([None] * len(pri), index=pri.index, dtype=object)
    mask = sev.notna().to_numpy()
    out[mask] = names[sev[mask].astype(int).to_numpy()]
    return out


def to_timestamps(fmt: LogFormat, parts: Sequence[pd.Series], *, year: int | None = None) -> pd.Series:
    """Vectorised conversion of the timestamp fields to naive datetimes (UTC where a zone is given), NaT if unknown.

    Args:
        fmt: The log format (its ``ts_kind``/``ts_format``).
        parts: The ``ts_fields`` columns, as text.
        year: Year for formats without one (default: the current UTC year).
    """
    n = len(parts[0]) if parts else 0
    if fmt.ts_kind == "none" or not parts:
        return pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns]")
    cols = [[v if isinstance(v, str) else "" for v in p.tolist()] for p in parts]
    text = pd.Series(cols[0] if len(cols) == 1 else [" ".join(t) for t in zip(*cols, strict=True)], dtype=object)
    # Logs repeat timestamps (many lines per second): convert each distinct text once.
    codes, uniques = pd.factorize(text)
    conv = _convert(fmt, pd.Series(uniques, dtype=object), year)
    out = conv.to_numpy()[codes]
    out[codes < 0] = np.datetime64("NaT")
    return pd.Series(out, dtype="datetime64[ns]")


_AUTO_FORMS: tuple[tuple[re.Pattern[str], str | None], ...] = (
    (re.compile(r"^\d{4}-\d\d-\d\d[T ]"), "iso"),
    (re.compile(r"^\d{4}/\d\d/\d\d[ T]\d\d:\d\d:\d\d$"), "%Y/%m/%d %H:%M:%S"),
    (re.compile(r"^\d{4}/\d\d/\d\d[ T]\d\d:\d\d:\d\d[.,]\d+$"), "%Y/%m/%d %H:%M:%S.%f"),
    (re.compile(r"^\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}$"), "%d/%b/%Y:%H:%M:%S %z"),
    (re.compile(r"^\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d$"), "%d/%b/%Y:%H:%M:%S"),
    (re.compile(r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d$"), "syslog"),
    (re.compile(r"^\d{13}$"), "ms"),
    (re.compile(r"^\d{10}(\.\d+)?$"), "s"),
    (re.compile(r"^\d\d:\d\d:\d\d"), None),  # a time of day without a date: no timestamp
)


def _convert_auto(text: pd.Series, year: int | None) -> pd.Series:
    """Each value in whichever common form it has (see ``_AUTO_FORMS``); NaT for a time of day alone."""
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    vals = text.astype(str).str.strip()
    todo = pd.Series(True, index=text.index)
    for rx, form in _AUTO_FORMS:
        sel = todo & vals.str.match(rx)
        if not sel.any():
            continue
        todo &= ~sel
        v = vals[sel]
        if form is None:
            continue
        if form == "iso":
            conv = _convert(LogFormat(name="iso", regex=re.compile(""), fields=(), ts_kind="iso"), v, year)
        elif form == "ms" or form == "s":
            num = pd.to_numeric(v, errors="coerce")
            conv = pd.to_datetime(num, unit=form, errors="coerce")
        elif form == "syslog":
            y = year or datetime.now(UTC).year
            conv = pd.to_datetime(f"{y} " + v.str.replace(r"\s+", " ", regex=True), format="%Y %b %d %H:%M:%S",
                                  errors="coerce")
        else:
            conv = pd.to_datetime(v.str.replace(",", ".", regex=False), format=form, errors="coerce", utc="%z" in form)
            if isinstance(conv.dtype, pd.DatetimeTZDtype):
                conv = conv.dt.tz_convert(None)
        out[sel] = conv.astype("datetime64[ns]").to_numpy()
    return out


def _convert(fmt: LogFormat, text: pd.Series, year: int | None) -> pd.Series:
    if fmt.ts_kind == "auto":
        return _convert_auto(text, year)
    if fmt.ts_kind == "epoch":
        num = pd.to_numeric(text, errors="coerce")
        return pd.to_datetime(num, unit="s", errors="coerce").astype("datetime64[ns]")
    if fmt.ts_kind == "iso":
        cleaned = text.astype(str).str.replace(",", ".", regex=False).str.strip()
        ts = pd.to_datetime(cleaned, errors="coerce", utc=True, format="ISO8601")
        if ts.isna().all() and len(cleaned):
            ts = pd.to_datetime(cleaned, errors="coerce", utc=True, format="mixed")
        return ts.dt.tz_convert(None).astype("datetime64[ns]")
    if fmt.ts_format is None:
        raise ValueError(f"format {fmt.name} has strptime timestamps but no ts_format")
    form = fmt.ts_format
    text = text.astype(str)
    if fmt.ts_needs_year:
        y = year or datetime.now(UTC).year
        text = f"{y} " + text.str.replace(r"\s+", " ", regex=True)
        form = "%Y " + form
    return pd.to_datetime(text, format=form, errors="coerce").astype("datetime64[ns]")
