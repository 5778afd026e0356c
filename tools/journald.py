"""Logs from the systemd journal: ``journalctl -o json`` over a time window, written as JSON lines that the log
reader parses like any other source (``tools.logformats.jsonl_format``: timestamp, level, service, message).

Only the ``journalctl`` binary is needed (no daemon of ours, no D-Bus): the system journal, a journal directory
(``-D``) or one journal file (``--file``). Every entry is counted: read, written, skipped (and why: not JSON, no
``MESSAGE``, no timestamp), so nothing is lost silently.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from anomalist.tools.errors import InputError

PRIORITY_LEVELS = {0: "EMERG", 1: "ALERT", 2: "CRIT", 3: "ERROR", 4: "WARNING", 5: "NOTICE", 6: "INFO", 7: "DEBUG"}
"""syslog priorities (the journal's ``PRIORITY`` field) as level names the log reader knows."""


@dataclass
class JournalReport:
    """What one journal read took in."""

    command: list[str]
    read: int = 0
    written: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    truncated: bool = False

    def lines(self) -> list[str]:
        out = [f"journald: {self.read} entries read, {self.written} written"]
        out += [f"journald: skipped {n}: {why}" for why, n in self.skipped.items()]
        if self.truncated:
            out.append("journald: more entries than max_entries; the newest were kept")
        return out


def journal_command(*, since: datetime | pd.Timestamp | None = None, until: datetime | pd.Timestamp | None = None,
                    units: Sequence[str] = (), identifiers: Sequence[str] = (), directory: str | None = None,
                    file: str | None = None, journalctl: str = "journalctl", max_entries: int | None = None
                    ) -> list[str]:
    """The ``journalctl`` command line for these filters (times are UTC)."""
    cmd = [journalctl, "-o", "json", "--no-pager", "--output-fields=MESSAGE,PRIORITY,_SYSTEMD_UNIT,"
           "SYSLOG_IDENTIFIER,_HOSTNAME,_PID,__REALTIME_TIMESTAMP"]
    if directory:
        cmd += ["-D", directory]
    if file:
        cmd += ["--file", file]
    for u in units:
        cmd += ["-u", u]
    for t in identifiers:
        cmd += ["-t", t]
    if since is not None:
        cmd += ["--since", _journal_time(since)]
    if until is not None:
        cmd += ["--until", _journal_time(until)]
    if max_entries:
        cmd += ["-n", str(int(max_entries))]
    return cmd


def read_journal(target: Path, *, since: datetime | pd.Timestamp | None = None,
                 until: datetime | pd.Timestamp | None = None, units: Sequence[str] = (),
                 identifiers: Sequence[str] = (), directory: str | None = None, file: str | None = None,
                 journalctl: str = "journalctl", max_entries: int = 200_000, timeout_s: float = 60.0
                 ) -> JournalReport:
    """Write the journal entries in the window to ``target`` as JSON lines; returns the counts.

    Raises:
        InputError: ``journalctl`` is missing, fails, or times out (its message is included).
    """
    exe = shutil.which(journalctl) if not Path(journalctl).is_absolute() else journalctl
    if not exe or not Path(exe).exists():
        raise InputError(f"journald source: {journalctl!r} was not found (install systemd's journalctl, or read "
                         "log files instead)")
    cmd = journal_command(since=since, until=until, units=units, identifiers=identifiers, directory=directory,
                          file=file, journalctl=exe, max_entries=max_entries)
    rep = JournalReport(command=cmd)
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)  # noqa: S603 - argv list
    except subprocess.TimeoutExpired as exc:
        raise InputError(f"journald source: journalctl did not finish within {timeout_s:g}s") from exc
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise InputError(f"journald source: journalctl exited with {proc.returncode}: {err[:400]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as out:
        for raw in proc.stdout.splitlines():
            if not raw.strip():
                continue
            rep.read += 1
            rec = entry_record(raw, rep.skipped)
            if rec is None:
                continue
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            rep.written += 1
    rep.truncated = rep.read >= max_entries
    return rep


def entry_record(raw: bytes | str, skipped: dict[str, int]) -> dict[str, Any] | None:
    """One ``journalctl -o json`` entry as ``{timestamp, level, service, host, pid, message}`` (None, counted in
    ``skipped``, when it is unusable)."""
    try:
        obj = json.loads(raw)
    except ValueError:
        skipped["not JSON"] = skipped.get("not JSON", 0) + 1
        return None
    if not isinstance(obj, dict):
        skipped["not a JSON object"] = skipped.get("not a JSON object", 0) + 1
        return None
    msg = _text(obj.get("MESSAGE"))
    if msg is None:
        skipped["no MESSAGE"] = skipped.get("no MESSAGE", 0) + 1
        return None
    try:
        us = int(obj.get("__REALTIME_TIMESTAMP"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        skipped["no __REALTIME_TIMESTAMP"] = skipped.get("no __REALTIME_TIMESTAMP", 0) + 1
        return None
    ts = datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat().replace("+00:00", "Z")
    try:
        level = PRIORITY_LEVELS.get(int(obj.get("PRIORITY")), "")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        level = ""
    unit = _text(obj.get("_SYSTEMD_UNIT")) or _text(obj.get("SYSLOG_IDENTIFIER")) or ""
    service = unit[:-8] if unit.endswith(".service") else unit
    rec: dict[str, Any] = {"timestamp": ts, "level": level, "service": service, "message": msg}
    if obj.get("_HOSTNAME"):
        rec["host"] = _text(obj.get("_HOSTNAME"))
    if obj.get("_PID"):
        rec["pid"] = _text(obj.get("_PID"))
    return rec


def _text(v: Any) -> str | None:
    """A journal field's text: a string, or a byte array (journalctl prints non-UTF-8 data as a list of ints)."""
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, list) and all(isinstance(x, int) for x in v):
        return bytes(x & 0xFF for x in v).decode("utf-8", "replace")
    if isinstance(v, list) and v:  # a field given twice: the first value
        return _text(v[0])
    return str(v)


def _journal_time(t: datetime | pd.Timestamp) -> str:
    ts = pd.Timestamp(t)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return f"@{ts.timestamp():.0f}"  # seconds since the epoch: no local-time ambiguity
