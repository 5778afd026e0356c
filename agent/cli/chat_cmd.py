"""``anomalist chat`` (interactive, streamed) and ``anomalist ask "question"`` (one shot, for scripts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from anomalist.agent.cli.common import EXIT_ERROR, console, err_console, fail, get_settings
from anomalist.tools.errors import InputError

_QUIT = {"exit", "quit", ":q", "/quit", "/exit"}


def _prometheus_csv(settings: Any, url: str, queries: list[str], since: str | None, until: str | None) -> Path:
    """Pull ``queries`` from Prometheus for the window and keep them as a metrics CSV the chat tools read (in the
    data directory's scratch area; the chat's metric tools then judge them exactly as a file)."""
    import tempfile

    from anomalist.agent.cli.triage_cmd import prometheus_input

    got = prometheus_input(settings, url, queries, None, since, until, "none")
    for note in got.notes:
        err_console.print(f"[dim]{escape(note)}[/dim]")
    scratch = Path(tempfile.mkdtemp(prefix="anomalist-prom-"))
    path = scratch / "prometheus.csv"
    got.metrics.frame.to_csv(path, index_label="timestamp")
    return path


def _agent(ctx: typer.Context, logs: list[Path] | None, metrics: Path | None, prometheus: str | None = None,
           queries: list[str] | None = None, since: str | None = None, until: str | None = None) -> Any:
    from anomalist.agent.chat.agent import ChatAgent

    settings = get_settings(ctx)
    if prometheus:
        if metrics is not None:
            raise fail("give --metrics or --prometheus, not both")
        if not queries:
            raise fail("--prometheus needs at least one --query PROMQL")
        metrics = _prometheus_csv(settings, prometheus, queries, since, until)
    for path in [*(logs or []), *([metrics] if metrics else [])]:
        if not path.exists() and not any(ch in str(path) for ch in "*?["):
            raise fail(f"not found: {path}")
    log_map = {"logs": [str(p) for p in logs]} if logs else None
    metric_map = {"metrics": str(metrics)} if metrics else None
    store = None
    try:
        from anomalist.tools.store import IncidentStore

        store = IncidentStore.from_settings(settings.store, settings.store_path)
    except Exception as exc:  # noqa: BLE001 - chat works without memory, and says so
        err_console.print(f"[yellow]incident store unavailable ({escape(str(exc))}); answering without it[/yellow]")
    with err_console.status("loading the model and tools..."):
        return ChatAgent.from_settings(settings, logs=log_map, metrics=metric_map, store=store)


def _turn(agent: Any, question: str, conversation_id: str | None, show_tools: bool = True) -> dict[str, Any]:
    """Stream one turn to the terminal; returns the final event's data."""
    final: dict[str, Any] = {}
    in_answer = False
    for event in agent.stream(question, conversation_id):
        if event.type == "tool_call" and show_tools:
            args = ", ".join(f"{k}={v!r}" for k, v in event.data.get("args", {}).items())
            err_console.print(f"[dim]→ {escape(event.data['name'])}({escape(args)})[/dim]")
        elif event.type == "tool_result" and show_tools:
            colour = {"ok": "green", "no_data": "yellow", "error": "red"}.get(event.data.get("status", ""), "white")
            err_console.print(f"[dim]← [{event.data['id']}] {escape(event.data['tool'])}: "
                              f"[{colour}]{event.data['status']}[/{colour}] "
                              f"{escape(str(event.data.get('summary', ''))[:160])}[/dim]")
        elif event.type == "token":
            in_answer = True
            console.print(event.data["text"], end="", markup=False, highlight=False, soft_wrap=True)
        elif event.type in ("final", "error"):
            final = {"type": event.type, **event.data}
    if in_answer:
        console.print()
    if final.get("replaced"):
        err_console.print("[yellow]The streamed answer stated facts no tool result supports; the grounded answer:[/yellow]")
        console.print(str(final.get("answer", "")), markup=False, highlight=False, soft_wrap=True)
    return final


def register(app: typer.Typer) -> None:
    """Add ``chat`` and ``ask`` to ``app``."""

    @app.command("chat")
    def chat(
        ctx: typer.Context,
        logs: list[Path] = typer.Option(None, "--logs", "-l", help="Log files, directories or globs (repeatable); "  # noqa: B008
                                                                   "default: server.sources"),
        metrics: Path = typer.Option(None, "--metrics", "-m", help="Metrics CSV; default: server.metrics_sources"),  # noqa: B008
    ) -> None:
        """Ask questions about the logs and metrics; answers stream, tool calls are shown as they happen."""
        try:
            agent = _agent(ctx, logs, metrics)
        except InputError as exc:
            raise fail(str(exc)) from exc
        mode = "plans with tools" if agent.supports_tools else "router picks tools, model phrases"
        err_console.print(f"[bold]Anomalist chat[/bold] ({escape(mode)}; {len(agent.tools)} tools). "
                          "Type 'exit' to leave.")
        conversation: str | None = None
        while True:
            try:
                question = console.input("[bold cyan]you>[/bold cyan] ").strip()
            except (EOFError, KeyboardInterrupt):
                console.print()
                break
            if not question:
                continue
            if question.lower() in _QUIT:
                break
            try:
                final = _turn(agent, question, conversation)
            except KeyboardInterrupt:
                err_console.print("[yellow]interrupted[/yellow]")
                continue
            conversation = final.get("conversation_id", conversation)
            if final.get("type") == "error":
                err_console.print(f"[red]error:[/red] {escape(str(final.get('message')))}")

    @app.command("ask")
    def ask(
        ctx: typer.Context,
        question: str = typer.Argument(..., help="The question"),
        logs: list[Path] = typer.Option(None, "--logs", "-l", help="Log files, directories or globs (repeatable)"),  # noqa: B008
        metrics: Path = typer.Option(None, "--metrics", "-m", help="Metrics CSV"),  # noqa: B008
        as_json: bool = typer.Option(False, "--json", help="Print the final answer and its evidence as JSON"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not show tool calls on stderr"),
        prometheus: str = typer.Option(None, "--prometheus", help="Prometheus base URL: the metrics of --query over the window"),
        query: list[str] = typer.Option(None, "--query", help="PromQL for --prometheus (repeatable; NAME=PROMQL names it)"),  # noqa: B008
        since: str = typer.Option(None, "--since", help="Window start for --prometheus (ISO time or a duration such as 2h; default 1h)"),
        until: str = typer.Option(None, "--until", help="Window end for --prometheus (ISO time; default now)"),
    ) -> None:
        """Answer one question (for scripts): the answer on stdout, tool calls on stderr."""
        if not question.strip():
            raise fail("the question is empty")
        try:
            agent = _agent(ctx, logs, metrics, prometheus, query, since, until)
            if as_json:
                event = agent.ask(question)
                typer.echo(json.dumps({"type": event.type, **event.data}, default=str, indent=2))
                final = {"type": event.type}
            else:
                final = _turn(agent, question, None, show_tools=not quiet)
        except InputError as exc:
            raise fail(str(exc)) from exc
        if final.get("type") == "error":
            raise fail(str(final.get("message")), EXIT_ERROR)
