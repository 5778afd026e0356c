"""``POST /v1/alerts/alertmanager``: acknowledge fast, triage each new firing alert in the worker pool."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from anomalist.agent.service.alerts import group_of
from anomalist.agent.service.jobs import QueueFull
from anomalist.agent.service.runtime import ServiceRuntime
from anomalist.tools.alerts import Alert, AlertmanagerWebhook

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
        body = handle_notification(runtime, payload, base_url)
        # Alertmanager retries on 5xx: ask it to when anything was refused (the rest dedups on the retry).
        return JSONResponse(body, status_code=503 if body["refused"] else 202)

    @router.get("/v1/alerts/recent", summary="The last alert events (received, duplicate, report, posted)")
    async def recent(limit: int = 100) -> list[dict[str, Any]]:
        return runtime.ledger.recent(max(1, min(limit, 1000)))

    return router


def handle_notification(runtime: ServiceRuntime, payload: AlertmanagerWebhook, base_url: str) -> dict[str, Any]:
    """One Alertmanager notification: one triage per alert group and firing episode.

    - Firing alerts of a group without an open episode start one: a single triage of the group (its first firing
      alert leads; the report counts the others). A re-send of the episode (``repeat_interval``, a retry, a
      ``group_interval`` update) is a duplicate; alerts that joined it are recorded, not triaged again.
    - Resolved alerts close the group's episode when the whole group resolved: its report is marked resolved
      (nothing is re-triaged). A resolution that arrives while the triage still runs is applied when it ends.
    """
    accepted: list[dict[str, Any]] = []
    duplicates: list[dict[str, Any]] = []
    resolved: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []

    def ident(a: Alert) -> dict[str, Any]:
        return {"alertname": a.display_name, "fingerprint": a.fingerprint,
                "startsAt": a.startsAt.isoformat() if a.startsAt else None}

    groups: dict[str, list[Alert]] = {}
    for alert in payload.alerts:
        groups.setdefault(group_of(payload.groupKey, alert), []).append(alert)
    for group, alerts in groups.items():
        firing = [a for a in alerts if a.status == "firing"]
        done = [a for a in alerts if a.status == "resolved"]
        if done:
            ep = runtime.ledger.resolved(group, done, whole_group=not firing)
            for a in done:
                runtime.metrics.alerts.labels("resolved", "closed" if ep is not None else "recorded").inc()
                resolved.append(ident(a))
            if ep is not None:
                marked = runtime.reports.mark_resolved(ep.report_id, ep.resolved_at or "") if ep.report_id else False
                runtime.ledger.record("resolved", None, group=group, episode=ep.id, resolved_at=ep.resolved_at,
                                      report_id=ep.report_id, job_id=ep.job_id, marked=marked,
                                      alerts=[a.dedup_key() for a in done])
            else:
                runtime.ledger.record("resolved_ignored", None, group=group, alerts=[a.dedup_key() for a in done])
        if not firing:
            continue
        ep, new, is_new = runtime.ledger.firing(group, firing)
        if not is_new:
            for a in firing:
                if a.dedup_key() in new:
                    continue
                runtime.metrics.alerts.labels("firing", "duplicate").inc()
                duplicates.append({**ident(a), "episode": ep.id, "report_id": ep.report_id})
            if new:
                runtime.ledger.record("joined", None, group=group, episode=ep.id, keys=sorted(new))
                for a in firing:
                    if a.dedup_key() in new:
                        runtime.metrics.alerts.labels("firing", "joined").inc()
                        duplicates.append({**ident(a), "episode": ep.id, "joined": True})
            continue
        lead = firing[0]
        alert_payload = {**payload.model_dump(mode="json", exclude={"alerts"}),
                         "alerts": [a.model_dump(mode="json") for a in firing]}
        try:
            job, _ = runtime.jobs.submit(
                "alert", runtime.alert_work(lead, base_url, group=group, episode=ep.id, payload=alert_payload),
                detail={"alertname": lead.display_name, "fingerprint": lead.fingerprint, "group": group,
                        "episode": ep.id, "alerts": len(firing)})
        except QueueFull as exc:
            runtime.ledger.forget(group)  # so Alertmanager's retry is processed, not taken for a duplicate
            for a in firing:
                runtime.metrics.alerts.labels("firing", "refused").inc()
                refused.append({**ident(a), "reason": str(exc)})
            continue
        runtime.ledger.attach(group, ep.id, job_id=job.id)
        runtime.ledger.record("firing", lead, group=group, episode=ep.id, keys=sorted(ep.alerts), job_id=job.id)
        for a in firing:
            runtime.metrics.alerts.labels("firing", "queued").inc()
            accepted.append({**ident(a), "job_id": job.id, "status_url": f"/v1/jobs/{job.id}", "episode": ep.id})
    return {"accepted": accepted, "duplicates": duplicates, "resolved": resolved, "refused": refused}
