"""``anomalist parse``: read logs, mine templates, print a summary, optionally write the events."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from anomalist.agent.cli.common import console, err_console, fail, get_settings
from anomalist.tools.errors import InputError
from anomalist.tools.logread import STDIN, ReadStats, expand_sources
from anomalist.tools.parsing import EVENT_COLUMNS, LogParser, ParseStream

_PROGRESS_MIN_BYTES = 20 * 1024 * 1024  # show a progress bar from this input size on
_TOP = 10


def register(app: typer.Typer) -> None:
    """Add ``parse`` to ``app``."""
    app.command("parse")(parse)


def parse(
    ctx: typer.Context,
    paths: list[str] = typer.Argument(..., help="Log files, directories, globs, .gz, or - for stdin."),
    fmt: str = typer.Option(None, "--format", "-f",
                            help="Preset (hdfs, spark, app, syslog, jsonl, ...) or '<Date> <Time> <Level>: <Content>'; "
                                 "default: detect."),
    out: Path = typer.Option(None, "--out", "-o", help="Write the events to a .csv or .parquet file."),
    state: Path = typer.Option(None, "--state", help="Parser state file: loaded if present, saved after."),
    max_line_bytes: int = typer.Option(None, "--max-line-bytes", help="Truncate longer lines (default 65536)."),
    top: int = typer.Option(_TOP, "--top", min=0, help="How many top templates to list."),
) -> None:
    """Parse logs into events and templates (Drain), and print a summary."""
    settings = get_settings(ctx, logs={"format": fmt, "parser_state": state, "max_line_bytes": max_line_bytes})
    ls = settings.logs
    if out is not None and out.suffix.lower() not in (".csv", ".parquet"):
        raise fail(f"--out must end in .csv or .parquet, got {out.name}")
    json_fields = {"message": ls.json_message_field, "timestamp": ls.json_timestamp_field,
                   "level": ls.json_level_field}
    try:
        files = expand_sources(paths)
        total = sum(os.path.getsize(f) for f in files if f != STDIN and os.path.exists(f))
        parser = LogParser.load(ls.parser_state) if ls.parser_state and Path(ls.parser_state).exists() else None
        with _progress(total if STDIN not in files else 0) as advance:
            stream = ParseStream(files, ls.format, parser=parser, max_line_bytes=ls.max_line_bytes,
                                 json_fields=json_fields, progress=advance, with_params=out is not None)
            summary = _consume(stream, out)
        summary.parser = stream.parser
        stats = stream.stats
    except InputError as exc:
        raise fail(str(exc)) from exc
    if ls.parser_state and summary.parser is not None:
        summary.parser.save(ls.parser_state)
    _print_summary(stats, summary, top, out)


class _Summary:
    """What the summary needs, gathered chunk by chunk (memory does not grow with the input)."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.examples: dict[int, str] = {}
        self.levels: dict[str, int] = {}
        self.first: pd.Timestamp | None = None
        self.last: pd.Timestamp | None = None
        self.parser: LogParser | None = None

    def add(self, chunk: pd.DataFrame) -> None:
        for tid, n in chunk["template_id"].value_counts().items():
            self.counts[int(tid)] = self.counts.get(int(tid), 0) + int(n)
        for lv, n in chunk["level"].value_counts().items():
            self.levels[str(lv)] = self.levels.get(str(lv), 0) + int(n)
        ts = chunk["timestamp"].dropna()
        if len(ts):
            lo, hi = ts.min(), ts.max()
            self.first = lo if self.first is None or lo < self.first else self.first
            self.last = hi if self.last is None or hi > self.last else self.last


def _out_table(chunk: pd.DataFrame) -> pd.DataFrame:
    """The written form of a chunk: the core event columns, params tab-joined, and every other header field in
    one JSON column (so files of several formats share one schema)."""
    extra = [c for c in chunk.columns if c not in EVENT_COLUMNS]
    if extra:
        recs = chunk[extra].to_dict("records")
        fields = [json.dumps({k: v for k, v in r.items() if isinstance(v, str)}, ensure_ascii=False) for r in recs]
    else:
        fields = ["{}"] * len(chunk)
    out = chunk[list(EVENT_COLUMNS)].copy()
    out["source"] = out["source"].astype(str)
    out["params"] = out["params"].map(lambda p: "\t".join(p) if p else "")
    out["fields"] = fields
    for col in ("level", "component", "template", "content"):
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


def _arrow_schema() -> Any:
    import pyarrow as pa

    text = pa.string()
    return pa.schema([
        ("source", text), ("line_no", pa.int64()), ("timestamp", pa.timestamp("ns")), ("level", text),
        ("component", text), ("template_id", pa.int64()), ("template", text), ("params", text),
        ("content", text), ("parsed", pa.bool_()), ("truncated", pa.bool_()), ("n_lines", pa.int64()),
        ("fields", text),
    ])


def _consume(chunks: Iterable[pd.DataFrame], out: Path | None) -> _Summary:
    summary = _Summary()
    writer = None
    wrote_csv = False
    parquet = out is not None and out.suffix.lower() == ".parquet"
    try:
        for chunk in chunks:
            summary.add(chunk)
            if out is None:
                continue
            table = _out_table(chunk)
            if parquet:
                import pyarrow as pa
                import pyarrow.parquet as pq

                schema = _arrow_schema()
                if writer is None:
                    writer = pq.ParquetWriter(out, schema)
                writer.write_table(pa.Table.from_pandas(table, schema=schema, preserve_index=False))
            else:
                table.to_csv(out, mode="a" if wrote_csv else "w", header=not wrote_csv, index=False)
                wrote_csv = True
    finally:
        if writer is not None:
            writer.close()
    return summary


class _progress:
    """A rich progress bar over input bytes when the input is large; a no-op otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._p: Progress | None = None

    def __enter__(self):  # type: ignore[no-untyped-def]
        if self.total < _PROGRESS_MIN_BYTES:
            return None
        self._p = Progress(TextColumn("parsing"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                           TimeRemainingColumn(), console=err_console, transient=True)
        self._p.start()
        task = self._p.add_task("parse", total=self.total)
        p = self._p
        return lambda n: p.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.stop()


def _print_summary(stats: ReadStats, s: _Summary, top: int, out: Path | None) -> None:
    how = "detected" if stats.format_detected else "given"
    rate = f", {stats.format_match_rate:.0%} of sampled lines match" if stats.format_match_rate is not None else ""
    console.print(f"[bold]format:[/bold] {stats.format} ({how}{rate})")
    t = Table(title="Input", show_header=False)
    t.add_column("what")
    t.add_column("count", justify="right")
    rows = [("files read", stats.files_read), ("lines read", stats.lines_read), ("events", stats.events),
            ("parsed (header matched)", stats.parsed), ("continuation lines", stats.continuation_lines),
            ("unparsed lines (kept as events)", stats.unparsed), ("blank lines", stats.blank_lines),
            ("truncated lines", stats.truncated), ("lines with invalid UTF-8", stats.decode_errors),
            ("templates", len(s.counts)), ("skipped files", len(stats.skipped_files))]
    for name, value in rows:
        t.add_row(name, f"{value:,}")
    console.print(t)
    if s.first is not None:
        console.print(f"[bold]time span:[/bold] {s.first} .. {s.last}")
    if s.levels:
        top_levels = sorted(s.levels.items(), key=lambda kv: -kv[1])
        more = f" (+{len(top_levels) - 8} more values)" if len(top_levels) > 8 else ""
        console.print("[bold]levels:[/bold] " + ", ".join(f"{k} {v:,}" for k, v in top_levels[:8]) + more)
    for sk in stats.skipped_files:
        err_console.print(f"[yellow]skipped[/yellow] {sk.path}: {sk.reason}")
    if top and s.counts and s.parser is not None:
        tt = Table(title=f"Top {min(top, len(s.counts))} templates")
        tt.add_column("id", justify="right")
        tt.add_column("count", justify="right")
        tt.add_column("template", overflow="fold")
        for tid, n in sorted(s.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]:
            tt.add_row(str(tid), f"{n:,}", s.parser.template(tid))
        console.print(tt)
    if out is not None:
        console.print(f"[bold]events written to[/bold] {out}")
