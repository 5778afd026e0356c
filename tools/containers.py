"""Kubernetes container logs: the runtime's line wrappers, the node's log layouts, and pod → service names.

A container runtime does not write the application's lines as they are. It wraps each one:

- **Docker json-file** (``dockerd``'s default driver): ``{"log": "text\\n", "stream": "stdout", "time": "RFC 3339"}``;
  a line longer than 16 KiB is split into records whose ``log`` does not end with ``\\n`` (joined again here).
- **CRI** (containerd, CRI-O): ``2023-01-29T08:42:22.383150913Z stdout F text``; the tag ``P`` marks a partial
  line continued by the next record, ``F`` a full (or last) one.

On a node, the kubelet keeps them under ``/var/log/pods/<namespace>_<pod>_<uid>/<container>/<N>.log`` (rotated
as ``N.log.<date>[.gz]``) and links ``/var/log/containers/<pod>_<namespace>_<container>-<id>.log`` to them. The
pod (and so its service) is taken from the path; the layout is recognised wherever the folders were copied to.

:func:`unwrap` turns wrapped lines into the application's own lines plus the runtime's timestamp and stream; a
line that is not a valid record of the file's wrapper is kept as it is and flagged, never dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath
from typing import Literal

Wrapper = Literal["docker", "cri"]

_DETECT_SHARE = 0.8
"""A file is wrapped when at least this share of its sampled non-blank lines are records of one wrapper (a few
broken lines must not hide the wrapper of the rest)."""

# The kubelet's folder of one pod, and the /var/log/containers link name. Names are DNS labels/subdomains.
_POD_DIR = re.compile(r"^(?P<ns>[a-z0-9]([-a-z0-9]*[a-z0-9])?)_(?P<pod>[a-z0-9]([-.a-z0-9]*[a-z0-9])?)_"
                      r"(?P<uid>[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12})$")
_POD_LOG_FILE = re.compile(r"^\d+\.log(\..+)?$")
_CONTAINER_LINK = re.compile(r"^(?P<pod>[a-z0-9]([-.a-z0-9]*[a-z0-9])?)_(?P<ns>[a-z0-9]([-a-z0-9]*[a-z0-9])?)_"
                             r"(?P<container>[a-z0-9]([-a-z0-9]*[a-z0-9])?)-(?P<id>[0-9a-f]{64})\.log(\..+)?$")
_CRI_LINE = re.compile(r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) "
                       r"(?P<stream>stdout|stderr) (?P<tag>[PF])(?: (?P<text>.*))?$")

# Kubernetes' name suffixes use this alphabet (k8s.io/apimachinery rand.SafeEncodeString: no vowels, no 0/1/3).
_SAFE = "bcdfghjklmnpqrstvwxz2456789"
_DEPLOYMENT_POD = re.compile(rf"^(?P<name>.+)-[{_SAFE}]{{6,10}}-[{_SAFE}]{{5}}$")  # <deploy>-<rs hash>-<pod>
_STATEFUL_POD = re.compile(r"^(?P<name>.+)-\d+$")  # <statefulset>-<ordinal>
_GENERATED_POD = re.compile(rf"^(?P<name>.+)-[{_SAFE}]{{5}}$")  # <daemonset|job|replicaset>-<pod>


@dataclass(frozen=True)
class PodRef:
    """Where a log source comes from in a cluster (every field may be unknown)."""

    pod: str | None = None
    namespace: str | None = None
    container: str | None = None
    service: str | None = None


class ServiceMapper:
    """Pod name → service name.

    Overrides come first: ``{pattern: service}``, where ``pattern`` is a regular expression matched against the
    whole pod name and ``service`` may use its groups (``\\1``, ``\\g<name>``); the first matching pattern wins.
    Otherwise the controller's generated suffixes are stripped: a Deployment's ``-<ReplicaSet hash>-<pod id>``
    (``ts-contacts-service-866bd68c97-xcqfx`` → ``ts-contacts-service``), a StatefulSet's ``-<ordinal>``
    (``redis-cart-0`` → ``redis-cart``), a DaemonSet's or Job's ``-<pod id>``. A name without such a suffix is its
    own service.

    Raises:
        ValueError: an override pattern that does not compile.
    """

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        self._rules: list[tuple[re.Pattern[str], str]] = []
        for pattern, service in (overrides or {}).items():
            try:
                self._rules.append((re.compile(pattern), service))
            except re.error as exc:
                raise ValueError(f"service_map pattern {pattern!r} does not compile: {exc}") from exc
        self._cache: dict[str, str] = {}

    def __call__(self, pod: str) -> str:
        hit = self._cache.get(pod)
        if hit is None:
            hit = self._cache[pod] = self._map(pod)
        return hit

    def _map(self, pod: str) -> str:
        for rx, service in self._rules:
            m = rx.fullmatch(pod)
            if m is not None:
                return m.expand(service)
        for rx in (_DEPLOYMENT_POD, _STATEFUL_POD, _GENERATED_POD):
            m = rx.match(pod)
            if m is not None:
                return m.group("name")
        return pod


def service_of_pod(pod: str, overrides: Mapping[str, str] | None = None) -> str:
    """The service of a pod name (see :class:`ServiceMapper`)."""
    return ServiceMapper(overrides)(pod)


def pod_of_path(path: str, mapper: ServiceMapper | None = None) -> PodRef | None:
    """The pod of a container log file laid out as a node writes it, or None for any other path."""
    p = PurePath(path)
    parts = p.parts
    m = _CONTAINER_LINK.match(p.name)
    if m is not None:
        pod = m.group("pod")
        return PodRef(pod=pod, namespace=m.group("ns"), container=m.group("container"), service=(mapper or ServiceMapper())(pod))
    if len(parts) >= 3 and _POD_LOG_FILE.match(p.name):
        d = _POD_DIR.match(parts[-3])
        if d is not None:
            pod = d.group("pod")
            return PodRef(pod=pod, namespace=d.group("ns"), container=parts[-2], service=(mapper or ServiceMapper())(pod))
    return None


@dataclass
class Unwrapped:
    """Lines with their wrapper removed, in order. ``times``/``streams`` are None for broken lines."""

    texts: list[str]
    times: list[datetime | None]
    streams: list[str | None]
    line_index: list[int]  # index (in the input lines) of the physical line each text starts at
    broken: set[int]  # indexes into texts: lines that were not a valid record (kept as they are)
    joined: int = 0  # partial records appended to the line before them
    open_partial: bool = False  # the last text is a partial line whose rest was not in ``lines``

    def add(self, text: str, index: int, time: datetime | None = None, stream: str | None = None) -> None:
        self.texts.append(text)
        self.times.append(time)
        self.streams.append(stream)
        self.line_index.append(index)


def detect_wrapper(lines: Sequence[str]) -> Wrapper | None:
    """The wrapper most of ``lines`` (a file's first lines) use, or None when they are plain lines."""
    sample = [ln for ln in lines if ln.strip()][:200]
    if not sample:
        return None
    docker = sum(1 for ln in sample if _docker_record(ln) is not None)
    cri = sum(1 for ln in sample if _CRI_LINE.match(ln) is not None)
    best, hits = ("docker", docker) if docker >= cri else ("cri", cri)
    return best if hits >= _DETECT_SHARE * len(sample) else None  # type: ignore[return-value]


def _docker_record(line: str) -> tuple[str, str | None, str | None] | None:
    s = line.strip()
    if not (s.startswith("{") and s.endswith("}") and '"log"' in s):
        return None
    try:
        obj = json.loads(s)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("log"), str):
        return None
    stream, ts = obj.get("stream"), obj.get("time")
    return obj["log"], stream if isinstance(stream, str) else None, ts if isinstance(ts, str) else None


def _time(text: str | None) -> datetime | None:
    """RFC 3339 (nanoseconds allowed) as naive UTC, or None."""
    if not text:
        return None
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    m = re.match(r"^(.*?T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", t)
    if m is None:
        return None
    frac = (m.group(2) or "")[:7]  # microseconds: datetime keeps 6 digits
    try:
        dt = datetime.fromisoformat(m.group(1) + frac + m.group(3))
    except ValueError:
        return None
    if dt.tzinfo is not None:
        dt = (dt - dt.utcoffset()).replace(tzinfo=None)  # type: ignore[operator]
    return dt


def unwrap(lines: Sequence[str], wrapper: Wrapper) -> Unwrapped:
    """Remove ``wrapper`` from each line; partial records are joined to the line they continue.

    A line that is not a record of ``wrapper`` is kept verbatim in ``texts``, with no time or stream, and its
    index is in ``broken`` (the caller counts it as unparsed). Blank lines stay blank.
    """
    out = Unwrapped(texts=[], times=[], streams=[], line_index=[], broken=set())
    open_partial = False  # the last text is a partial line still waiting for its rest
    for i, line in enumerate(lines):
        if not line.strip():
            out.add(line, i)
            open_partial = False
            continue
        if wrapper == "docker":
            rec = _docker_record(line)
            if rec is not None:
                text, stream, ts = rec
                partial = not text.endswith("\n")
                text = text[:-1] if not partial else text
                if text.endswith("\r"):
                    text = text[:-1]
            else:
                text, stream, ts, partial = line, None, None, False
        else:
            m = _CRI_LINE.match(line)
            if m is not None:
                text, stream, ts, partial = m.group("text") or "", m.group("stream"), m.group("time"), m.group("tag") == "P"
                rec = (text, stream, ts)
            else:
                rec, text, stream, ts, partial = None, line, None, None, False
        if rec is None:
            out.broken.add(len(out.texts))
            out.add(text, i)
            open_partial = False
            continue
        if open_partial and out.streams[-1] == stream:
            out.texts[-1] += text
            out.joined += 1
        else:
            out.add(text, i, _time(ts), stream)
        open_partial = partial
    out.open_partial = open_partial
    return out


def record_is_partial(line: str, wrapper: Wrapper) -> bool | None:
    """Whether one raw line is a partial record (its text continues in the next record); None when it is not a
    valid record of ``wrapper``."""
    if wrapper == "docker":
        rec = _docker_record(line)
        return None if rec is None else not rec[0].endswith("\n")
    m = _CRI_LINE.match(line)
    return None if m is None else m.group("tag") == "P"
