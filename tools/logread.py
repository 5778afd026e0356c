"""Reading log input: files, directories, globs, ``.gz`` and stdin, streamed in blocks, with every skip counted.

Lines are decoded as UTF-8 (invalid bytes replaced and counted), over-long lines are truncated (counted), binary
files and files that vanish are skipped with a reason. Nothing is dropped silently: :class:`ReadStats` says what
happened to every byte range that was not turned into a line.
"""

from __future__ import annotations

import glob
import gzip
import logging
import os
import sys
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel, ConfigDict, Field

from anomalist.tools.errors import InputError

logger = logging.getLogger(__name__)

STDIN = "-"
_BLOCK = 1 << 20  # 1 MiB reads: few Python calls per line, bounded memory
_SNIFF = 8192


class SkippedFile(BaseModel):
    """A file that was not (fully) read, and why."""

    model_config = ConfigDict(extra="forbid")

    path: str
    reason: str


class ReadStats(BaseModel):
    """What the reader and the parser did with the input. Every line read is in exactly one bucket:
    an event's first line (``events``), a continuation line, or a blank line."""

    model_config = ConfigDict(extra="forbid")

    files_read: int = 0
    bytes_read: int = 0
    lines_read: int = 0
    blank_lines: int = Field(default=0, description="Empty lines (not events)")
    events: int = Field(default=0, description="Events (one per line that starts one, plus unparsed lines)")
    parsed: int = Field(default=0, description="Events whose header matched the format")
    continuation_lines: int = Field(default=0, description="Lines appended to the previous event (e.g. stack traces)")
    unparsed: int = Field(default=0, description="Lines kept as events although the header did not match")
    truncated: int = Field(default=0, description="Lines longer than max_line_bytes, cut to that length")
    decode_errors: int = Field(default=0, description="Lines with invalid UTF-8 (bytes replaced by U+FFFD)")
    skipped_files: list[SkippedFile] = Field(default_factory=list)
    templates: int = 0
    format: str | None = None
    format_detected: bool = False
    format_match_rate: float | None = Field(default=None, description="Share of sampled lines the detected format matched")
    container_format: str | None = Field(default=None, description="Container runtime wrapper(s) removed: docker, cri")
    container_records: int = Field(default=0, description="Lines that were container runtime records (unwrapped)")
    container_invalid: int = Field(
        default=0, description="Lines in wrapped files that are not valid records (kept as unparsed events)")
    container_partials_joined: int = Field(default=0, description="Partial records joined to the line they continue")


@dataclass
class Block:
    """A run of decoded lines from one source."""

    source: str
    first_line_no: int  # 1-based line number of lines[0] within its source
    lines: list[str]
    truncated: set[int] = field(default_factory=set)  # indexes into lines
    # Set when a container runtime's wrapper was removed (tools.containers): per line, its physical line number,
    # the runtime's timestamp and stream; ``broken`` lines were not valid records and must stay unparsed events.
    line_nos: list[int] | None = None
    times: list[object] | None = None
    streams: list[str | None] | None = None
    broken: set[int] = field(default_factory=set)


def expand_sources(sources: str | Path | Sequence[str | Path]) -> list[str]:
    """Resolve paths, directories (recursively) and globs into a sorted list of files; ``-`` is stdin.

    Raises:
        InputError: nothing given, or a named path / glob that matches nothing.
    """
    items: list[str | Path] = [sources] if isinstance(sources, (str, Path)) else list(sources)
    if not items:
        raise InputError("no log input given")
    out: list[str] = []
    for item in items:
        s = str(item)
        if s == STDIN:
            out.append(STDIN)
            continue
        p = Path(s).expanduser()
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
            if not found:
                logger.warning("directory %s holds no files", p)
            out.extend(found)
        elif p.exists():
            out.append(str(p))
        elif glob.has_magic(s):
            matches = sorted(m for m in glob.glob(os.path.expanduser(s), recursive=True) if os.path.isfile(m))
            if not matches:
                raise InputError(f"no file matches {s!r}")
            out.extend(matches)
        else:
            raise InputError(f"no such file or directory: {s}")
    # keep order, drop duplicates
    seen: set[str] = set()
    return [x for x in out if not (x in seen or seen.add(x))]  # type: ignore[func-returns-value]


def _is_binary(head: bytes) -> bool:
    if not head:
        return False
    if b"\x00" in head:
        return True
    text_chars = bytes(range(32, 127)) + b"\n\r\t\f\b\x1b"
    control = sum(1 for b in head[:4096] if b < 32 and b not in text_chars)
    return control / min(len(head), 4096) > 0.1


def _open(source: str, stats: ReadStats) -> BinaryIO | None:
    """Open a source for binary reading (gzip by magic bytes), or count it as skipped and return None."""
    if source == STDIN:
        return sys.stdin.buffer
    try:
        raw = open(source, "rb")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        stats.skipped_files.append(SkippedFile(path=source, reason="vanished before it could be read"))
        return None
    except OSError as exc:
        stats.skipped_files.append(SkippedFile(path=source, reason=f"cannot open: {exc.strerror or exc}"))
        return None
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def iter_blocks(source: str, stats: ReadStats, *, max_line_bytes: int = 65536, start: int = 0,
                stop: int | None = None) -> Iterator[Block]:
    """Yield the decoded lines of one source in blocks, updating ``stats`` (lines, truncations, decode errors).

    Binary files are skipped (with a reason) after sniffing their first bytes; a file that disappears or fails
    mid-read keeps what was read and is reported as partially read. ``start`` / ``stop``: read only this byte
    range of a plain (not compressed) file, which must begin and end at line starts (a shard of a distributed
    parse); line numbers then count from the range's first line, and the file counts as read in the shard that
    starts at 0.
    """
    fh = _open(source, stats)
    if fh is None:
        return
    try:
        if start or stop is not None:
            if isinstance(fh, gzip.GzipFile) or fh is sys.stdin.buffer:
                raise ValueError(f"{source}: byte ranges need a plain file")
            fh.seek(start)
        yield from _read_blocks(source, fh, stats, max_line_bytes, sniff=start == 0,
                                limit=None if stop is None else max(stop - start, 0))
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()


def _read_blocks(source: str, fh: BinaryIO, stats: ReadStats, max_line_bytes: int, *, sniff: bool = True,
                 limit: int | None = None) -> Iterator[Block]:
    line_no = 1
    carry = b""
    skipping = False  # inside the tail of an over-long line
    first = True
    left = limit
    try:
        while True:
            if left is not None and left <= 0:
                chunk = b""
            else:
                chunk = fh.read(_BLOCK if left is None else min(_BLOCK, left))
                if left is not None:
                    left -= len(chunk)
            if first:
                first = False
                if sniff and _is_binary(chunk[:_SNIFF]):
                    stats.skipped_files.append(SkippedFile(path=source, reason="binary file (not text)"))
                    return
                if sniff:
                    stats.files_read += 1
            if not chunk:
                break
            stats.bytes_read += len(chunk)
            data = carry + chunk
            lines_b = data.split(b"\n")
            carry = lines_b.pop()
            truncated: set[int] = set()
            out_b: list[bytes] = []
            for lb in lines_b:
                if skipping:  # the rest of a truncated line: drop, already counted
                    skipping = False
                    continue
                if len(lb) > max_line_bytes:
                    truncated.add(len(out_b))
                    lb = lb[:max_line_bytes]
                out_b.append(lb)
            if len(carry) > max_line_bytes:
                if not skipping:
                    truncated.add(len(out_b))
                    out_b.append(carry[:max_line_bytes])
                    skipping = True
                carry = b""
            if out_b:
                yield _decode(source, line_no, out_b, truncated, stats)
                line_no += len(out_b)
    except (OSError, EOFError, zlib.error) as exc:
        reason = "vanished while being read" if isinstance(exc, FileNotFoundError) else f"read error: {exc}"
        stats.skipped_files.append(SkippedFile(path=source, reason=f"partially read ({line_no - 1} lines): {reason}"))
        logger.warning("%s: %s", source, reason)
    if carry and not skipping:
        yield _decode(source, line_no, [carry], set(), stats)


def _decode(source: str, line_no: int, raw_lines: list[bytes], truncated: set[int], stats: ReadStats) -> Block:
    joined = b"\n".join(raw_lines)
    try:
        text = joined.decode("utf-8")
        lines = text.split("\n")
    except UnicodeDecodeError:
        lines = []
        for lb in raw_lines:
            try:
                lines.append(lb.decode("utf-8"))
            except UnicodeDecodeError:
                stats.decode_errors += 1
                lines.append(lb.decode("utf-8", errors="replace"))
    if len(lines) != len(raw_lines):  # cannot happen: "\n" never appears inside a line
        raise RuntimeError("line split mismatch")
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    stats.lines_read += len(lines)
    stats.truncated += len(truncated)
    return Block(source=source, first_line_no=line_no, lines=lines, truncated=truncated)
