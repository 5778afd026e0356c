"""``anomalist serve``: the HTTP service (FastAPI + uvicorn; OpenAPI at /docs)."""

from __future__ import annotations

import typer

from anomalist.agent.cli.common import EXIT_INPUT, err_console, fail, get_settings


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""

    @app.command("serve")
    def serve(
        ctx: typer.Context,
        host: str = typer.Option(None, "--host", help="Interface to listen on (default server.host, 127.0.0.1)"),
        port: int = typer.Option(None, "--port", "-p", help="Port (default server.port, 8080)"),
        workers: int = typer.Option(None, "--workers", help="Triage worker threads (default server.workers)"),
        engine: str = typer.Option(None, "--engine", help="local | ray: where uploaded logs are read, parsed and "
                                   "counted (default triage.engine)"),
        ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster to join: auto, or ray://host:port "
                                        "(default: start a local one)"),
    ) -> None:
        """Serve triage, chat and the Alertmanager webhook over HTTP until interrupted."""
        from anomalist.agent.service.security import exposure_warning
        from anomalist.agent.service.server import serve as run

        if engine is not None and engine not in ("local", "ray"):
            raise fail(f"--engine must be 'local' or 'ray', got {engine!r}")
        settings = get_settings(ctx, server={"host": host, "port": port, "workers": workers},
                                triage={"engine": engine, "ray_address": ray_address})
        if settings.triage.engine == "ray":
            from anomalist.agent.scale import INSTALL_HINT, ray_available

            if not ray_available():
                raise fail(INSTALL_HINT, EXIT_INPUT)
        warning = exposure_warning(settings.server.host, settings.server.token is not None)
        if warning:
            err_console.print(f"[bold red]{'!' * 78}\n{warning}\n{'!' * 78}[/bold red]")
        auth = "bearer token required" if settings.server.token else "no auth"
        err_console.print(f"Anomalist listening on http://{settings.server.host}:{settings.server.port} "
                          f"({auth}; docs at /docs)")
        run(settings)
