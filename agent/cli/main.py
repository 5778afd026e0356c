"""Entry point of the ``anomalist`` command."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.markup import escape

from anomalist.agent import __version__
from anomalist.agent.cli.common import EXIT_INPUT, CliState, err_console
from anomalist.tools.errors import InputError

app = typer.Typer(
    name="anomalist",
    help="Anomalist: log and time-series anomaly analysis with detectors, an open LLM and incident memory.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"anomalist {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Path = typer.Option(None, "--config", "-c", envvar="ANOMALIST_CONFIG", help="YAML or TOML settings file."),
    data_dir: Path = typer.Option(None, "--data-dir", help="Where Anomalist keeps its store, caches and state."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="-v info, -vv debug logging on stderr."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Global options apply to every command."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = CliState(config=config, data_dir=data_dir)


def _register() -> None:
    # Each area owns one module with a register(app) function.
    from anomalist.agent.cli import (
        baseline_cmd,
        chat_cmd,
        detect_cmd,
        memory_cmd,
        parse_cmd,
        serve_cmd,
        triage_cmd,
    )

    for module in (parse_cmd, detect_cmd, memory_cmd, triage_cmd, baseline_cmd, chat_cmd, serve_cmd):
        module.register(app)

    from anomalist.eval.cli import app as eval_app  # the CLI is an edge: it may reach the eval suites

    app.add_typer(eval_app, name="eval", help="Evaluation suites on the datasets (see each command's --help).")


_register()


def main() -> None:
    """Console-script entry point: maps unusable input to exit code 2."""
    try:
        app()
    except InputError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise SystemExit(EXIT_INPUT) from exc


if __name__ == "__main__":
    main()
