"""The HTTP service: FastAPI app, worker pool, Alertmanager receiver, chat over SSE, Prometheus metrics."""

from __future__ import annotations

from agent.service.app import create_app
from agent.service.server import serve

__all__ = ["create_app", "serve"]
