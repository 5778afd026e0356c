"""The HTTP service: FastAPI app, worker pool, Alertmanager receiver, chat over SSE, Prometheus metrics."""

from __future__ import annotations

from anomalist.agent.service.app import create_app
from anomalist.agent.service.server import serve

__all__ = ["create_app", "serve"]
