"""What every CLI command shares: the state from the global options, settings, the console, exit codes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from anomalist.agent.settings import Settings, load_settings

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INPUT = 2  # unusable input
EXIT_SEVERITY = 3  # --fail-on threshold reached

console = Console(stderr=False)
err_console = Console(stderr=True)


@dataclass
class CliState:
    """Global options of the ``anomalist`` command, stored on the typer context."""

    config: Path | None = None
    data_dir: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


def get_settings(ctx: typer.Context, **overrides: Any) -> Settings:
    """Settings for this command: file < environment < global flags < this command's flags.

    ``overrides`` takes nested dicts (``llm={"backend": "openai"}``); None values are ignored.
    """
    state: CliState = ctx.find_root().obj or CliState()
    merged: dict[str, Any] = dict(state.overrides)
    if state.data_dir is not None:
        merged["data_dir"] = state.data_dir
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    try:
        return load_settings(state.config, merged)
    except ValueError as exc:
        err_console.print(f"[red]error:[/red] bad configuration: {exc}")
        raise typer.Exit(EXIT_INPUT) from exc


def fail(message: str, code: int = EXIT_INPUT) -> typer.Exit:
    """Print ``message`` as an error on stderr and return the Exit to raise."""
    err_console.print(f"[red]error:[/red] {escape(message)}")  # a message is text, never markup
    return typer.Exit(code)
