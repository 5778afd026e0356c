"""``anomalist serve``: the HTTP service (FastAPI + uvicorn; OpenAPI at /docs)."""

from __future__ import annotations

import typer

from agent.cli.common import err_console, get_settings


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""

    @app.command("serve")
    def serve(
        ctx: typer.Context,
        host: str = typer.Option(None, "--host", help="Interface to listen on (default server.host, 127.0.0.1)"),
        port: int = typer.Option(None, "--port", "-p", help="Port (default server.port, 8080)"),
        workers: int = typer.Option(None, "--workers", help="Triage worker threads (default server.workers)"),
    ) -> None:
        """Serve triage, chat and the Alertmanager webhook over HTTP until interrupted."""
        from agent.service.security import exposure_warning
        from agent.service.server import serve as run

        settings = get_settings(ctx, server={"host": host, "port": port, "workers": workers})
        warning = exposure_warning(settings.server.host, settings.server.token is not None)
        if warning:
            err_console.print(f"[bold red]{'!' * 78}\n{warning}\n{'!' * 78}[/bold red]")
        auth = "bearer token required" if settings.server.token else "no auth"
        err_console.print(f"Anomalist listening on http://{settings.server.host}:{settings.server.port} "
                          f"({auth}; docs at /docs)")
        run(settings)
