"""``anomalist baseline build``: save what normal looks like (fault-free logs, metrics, traces) as a profile."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from anomalist.agent.cli.common import EXIT_INPUT, err_console, fail, get_settings
from anomalist.tools.errors import InputError

baseline_app = typer.Typer(no_args_is_help=True, help="Baselines: what normal looks like, for triage to compare against.")


def register(app: typer.Typer) -> None:
    """Add ``baseline`` to ``app``."""
    app.add_typer(baseline_app, name="baseline")


@baseline_app.command("build")
def build_command(
    ctx: typer.Context,
    logs: Annotated[list[str] | None, typer.Argument(help="Fault-free log files, directories or globs (pod log layouts too).")] = None,
    metrics: Annotated[Path | None, typer.Option("--metrics", "-m", help="Fault-free metrics (a CSV or a directory of per-entity CSVs).")] = None,
    traces: Annotated[list[Path] | None, typer.Option("--traces", help="Fault-free spans (files or directories); repeatable.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Profile file to write (JSON).")] = Path("baseline.json"),
) -> None:
    """Read fault-free telemetry and save it as a profile: ``anomalist triage ... --baseline profile.json``."""
    from anomalist.agent.baseline import Baseline

    if not logs and metrics is None and not traces:
        raise fail("give fault-free log PATHs, --metrics and/or --traces")
    settings = get_settings(ctx)
    try:
        base = Baseline.build(settings, logs=logs or None, metrics=metrics, traces=[str(t) for t in traces] if traces else None)
        base.save(out)
    except InputError as exc:
        raise fail(str(exc), EXIT_INPUT) from exc
    parts = []
    if base.log_cells is not None:
        parts.append(f"{int(base.log_cells.sum()):,} log lines of {base.log_cells.index.get_level_values(1).nunique()} services")
    if base.metrics is not None:
        parts.append(f"{base.metrics.frame.shape[1]:,} metric channels x {len(base.metrics.frame):,} rows")
    if base.spans is not None:
        parts.append(f"{len(base.spans):,} spans")
    err_console.print(f"baseline profile written to {out}: " + "; ".join(parts), markup=False)
    for note in base.notes[:10]:
        err_console.print(f"note: {note}", markup=False, highlight=False)
