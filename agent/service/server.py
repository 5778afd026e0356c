"""Running the service with uvicorn (the ``anomalist serve`` command calls :func:`serve`)."""

from __future__ import annotations

import logging
import sys

import uvicorn

from anomalist.agent.service.app import create_app
from anomalist.agent.service.security import exposure_warning
from anomalist.agent.settings import Settings

logger = logging.getLogger(__name__)


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve until interrupted; warns loudly when listening beyond loopback without a token."""
    host = host or settings.server.host
    port = port if port is not None else settings.server.port
    warning = exposure_warning(host, settings.server.token is not None)
    if warning:
        logger.warning(warning)  # the CLI also prints it in red: see exposure_warning
    # Favour the event loop over CPU-bound triage threads so webhooks are answered quickly.
    sys.setswitchinterval(0.001)
    app = create_app(settings)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", proxy_headers=False,
                            timeout_keep_alive=5, limit_concurrency=1000)
    uvicorn.Server(config).run()
