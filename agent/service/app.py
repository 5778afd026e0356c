"""The FastAPI application of ``anomalist serve`` (OpenAPI at ``/docs``)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from anomalist.agent import __version__
from anomalist.agent.service import api_alerts, api_chat, api_triage
from anomalist.agent.service.metrics import CONTENT_TYPE, MetricsMiddleware
from anomalist.agent.service.runtime import ServiceRuntime
from anomalist.agent.service.security import BodyLimitMiddleware, TimeoutMiddleware, TokenAuth
from anomalist.agent.settings import Settings

logger = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    """Build the service for ``settings`` (nothing heavy is loaded until a request needs it).

    Routes: ``POST /v1/triage``, ``GET /v1/jobs/{id}``, ``GET /v1/reports/{id}``, ``POST /v1/chat``,
    ``POST /v1/alerts/alertmanager``, ``GET /v1/alerts/recent``, ``GET /healthz``, ``GET /metrics``.
    All but ``/healthz`` and the docs need the bearer token when ``server.token`` is set.
    """
    runtime = ServiceRuntime(settings)
    token = settings.server.token.get_secret_value() if settings.server.token else None
    auth = Depends(TokenAuth(token))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.ledger.load()
        # Open the store in the background: /healthz reports it early, the first alert does not pay for it, and
        # start-up never waits on it.
        threading.Thread(target=runtime.store, name="store-warmup", daemon=True).start()
        yield
        runtime.shutdown()

    app = FastAPI(
        title="Anomalist",
        version=__version__,
        description="Log and time-series anomaly triage, grounded chat and Alertmanager integration.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.include_router(api_triage.build_router(runtime, auth))
    app.include_router(api_chat.build_router(runtime, auth))
    app.include_router(api_alerts.build_router(runtime, auth))

    @app.get("/healthz", tags=["ops"], summary="Liveness and dependency status (LLM, store)")
    async def healthz() -> JSONResponse:
        return JSONResponse(await asyncio.to_thread(runtime.health))

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", dependencies=[auth])
    async def metrics() -> Response:
        return Response(runtime.metrics.render(), media_type=CONTENT_TYPE)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    # Outermost first at request time: metrics see every request, including 413s and 504s.
    app.add_middleware(TimeoutMiddleware, timeout_s=settings.server.request_timeout_s)
    app.add_middleware(BodyLimitMiddleware, max_bytes=int(settings.server.max_body_mb * 1024 * 1024))
    app.add_middleware(MetricsMiddleware, metrics=runtime.metrics)
    return app
