"""``POST /v1/alerts/alertmanager``: acknowledge fast, triage each new firing alert in the worker pool."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from agent.service.jobs import QueueFull
from agent.service.runtime import ServiceRuntime
from tools.alerts import AlertmanagerWebhook

logger = logging.getLogger(__name__)


def build_router(runtime: ServiceRuntime, auth: Any) -> APIRouter:
    """The Alertmanager webhook route and the recent alert events."""
    router = APIRouter(dependencies=[auth], tags=["alerts"])

    @router.post(
        "/v1/alerts/alertmanager",
        status_code=202,
        summary="Alertmanager webhook receiver (payload version 4)",
        openapi_extra={"requestBody": {"content": {"application/json": {
            "schema": AlertmanagerWebhook.model_json_schema()}}, "required": True}},
    )
    async def alertmanager(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise HTTPException(400, f"body is not valid JSON: {exc}") from exc
        try:
            payload = AlertmanagerWebhook.model_validate(data)
        except ValidationError as exc:
            errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()[:20]]
            raise HTTPException(422, {"message": "not an Alertmanager v4 webhook payload", "errors": errors}) \
                from exc
        base_url = str(request.base_url)
        accepted: list[dict[str, Any]] = []
        duplicates: list[dict[str, Any]] = []
        resolved: list[dict[str, Any]] = []
        refused: list[dict[str, Any]] = []
        for alert in payload.alerts:
            ident = {"alertname": alert.display_name, "fingerprint": alert.fingerprint,
                     "startsAt": alert.startsAt.isoformat() if alert.startsAt else None}
            if not runtime.ledger.claim(alert):
                runtime.metrics.alerts.labels(alert.status, "duplicate").inc()
                duplicates.append(ident)
                continue
            if alert.status == "resolved":
                runtime.ledger.record("resolved", alert)
                runtime.metrics.alerts.labels("resolved", "recorded").inc()
                resolved.append(ident)
                continue
            try:
                job, _ = runtime.jobs.submit("alert", runtime.alert_work(alert, base_url),
                                             detail={"alertname": alert.display_name, "fingerprint": alert.fingerprint})
            except QueueFull as exc:
                runtime.ledger.forget(alert)  # so Alertmanager's retry is processed, not taken for a duplicate
                runtime.metrics.alerts.labels("firing", "refused").inc()
                refused.append({**ident, "reason": str(exc)})
                continue
            runtime.ledger.record("firing", alert, job_id=job.id)
            runtime.metrics.alerts.labels("firing", "queued").inc()
            accepted.append({**ident, "job_id": job.id, "status_url": f"/v1/jobs/{job.id}"})
        body = {"accepted": accepted, "duplicates": duplicates, "resolved": resolved, "refused": refused}
        # Alertmanager retries on 5xx: ask it to when anything was refused (accepted ones dedup on retry).
        return JSONResponse(body, status_code=503 if refused else 202)

    @router.get("/v1/alerts/recent", summary="The last alert events (received, duplicate, report, posted)")
    async def recent(limit: int = 100) -> list[dict[str, Any]]:
        return runtime.ledger.recent(max(1, min(limit, 1000)))

    return router
