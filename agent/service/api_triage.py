"""``POST /v1/triage``, ``GET /v1/jobs/{id}`` and ``GET /v1/reports/{id}``."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.datastructures import UploadFile

from anomalist.agent.render import render
from anomalist.agent.report import TriageReport
from anomalist.agent.service.jobs import Job, QueueFull
from anomalist.agent.service.runtime import ServiceRuntime

logger = logging.getLogger(__name__)

ReportFormat = Literal["json", "markdown", "html"]
# Uploaded names are never used as paths: files are saved as log_<n><suffix>, the suffix only from this list.
_SAFE_SUFFIXES = (".log.gz", ".jsonl.gz", ".json.gz", ".gz", ".log", ".txt", ".jsonl", ".ndjson", ".json", ".out")
_CHUNK = 1 << 20


def _safe_suffix(name: str | None) -> str:
    lowered = (name or "").lower()
    for suffix in _SAFE_SUFFIXES:
        if lowered.endswith(suffix):
            return suffix
    return ".log"


def report_response(report: TriageReport, fmt: ReportFormat, status: int = 200) -> Response:
    """The report in the asked format, with its id in ``X-Report-Id``."""
    headers = {"X-Report-Id": report.id}
    if fmt == "json":
        return Response(render(report, "json"), status_code=status, media_type="application/json", headers=headers)
    if fmt == "html":
        return HTMLResponse(render(report, "html"), status_code=status, headers=headers)
    return PlainTextResponse(render(report, "markdown"), status_code=status, media_type="text/markdown",
                             headers=headers)


async def _save_upload(upload: UploadFile, target: Path) -> int:
    written = 0
    with target.open("wb") as fh:
        while chunk := await upload.read(_CHUNK):
            fh.write(chunk)
            written += len(chunk)
    return written


async def _collect_inputs(request: Request, workdir: Path) -> tuple[list[Path], Path | None, dict[str, Any] | None,
                                                                   int, list[str]]:
    """Write the request's logs/metrics into ``workdir``; returns (logs, metrics, alert, bytes, display names)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    logs: list[Path] = []
    metrics: Path | None = None
    alert: dict[str, Any] | None = None
    names: list[str] = []
    total = 0
    if ctype == "multipart/form-data":
        form = await request.form(max_files=100, max_fields=20)
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key == "logs":
                    target = workdir / f"log_{len(logs) + 1}{_safe_suffix(value.filename)}"
                    total += await _save_upload(value, target)
                    logs.append(target)
                    names.append((value.filename or target.name)[:200])
                elif key == "metrics":
                    if metrics is not None:
                        raise HTTPException(422, "only one metrics file per triage")
                    metrics = workdir / "metrics.csv"
                    total += await _save_upload(value, metrics)
                else:
                    raise HTTPException(422, f"unexpected file field {key!r}; use 'logs' and 'metrics'")
            elif key == "alert":
                alert = _json_object(value, "alert")
            elif key not in ("format", "mode"):
                raise HTTPException(422, f"unexpected form field {key!r}")
    elif ctype in ("application/x-ndjson", "application/jsonl", "application/json-lines"):
        target = workdir / "log_1.jsonl"
        with target.open("wb") as fh:
            async for chunk in request.stream():
                fh.write(chunk)
                total += len(chunk)
        logs.append(target)
        names.append("request-body.jsonl")
    elif ctype == "application/json":
        body = _json_object((await request.body()).decode("utf-8", errors="replace"), "body")
        unknown = set(body) - {"logs", "metrics_csv", "alert"}
        if unknown:
            raise HTTPException(422, f"unknown fields {sorted(unknown)}; use logs (text or list of lines), "
                                     "metrics_csv (CSV text) and alert (object)")
        raw = body.get("logs")
        if isinstance(raw, list):
            if not all(isinstance(x, str) for x in raw):
                raise HTTPException(422, "logs must be a list of strings (one log line each)")
            text = "\n".join(raw)
        elif isinstance(raw, str):
            text = raw
        elif raw is None:
            text = ""
        else:
            raise HTTPException(422, "logs must be a string or a list of strings")
        if text:
            target = workdir / "log_1.log"
            target.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
            total += len(text)
            logs.append(target)
            names.append("request-body")
        if isinstance(body.get("metrics_csv"), str):
            metrics = workdir / "metrics.csv"
            metrics.write_text(body["metrics_csv"], encoding="utf-8")
            total += len(body["metrics_csv"])
        if body.get("alert") is not None:
            if not isinstance(body["alert"], dict):
                raise HTTPException(422, "alert must be an object")
            alert = body["alert"]
    else:
        raise HTTPException(415, "send multipart/form-data (fields logs, metrics), application/json "
                                 "({\"logs\": ...}) or application/x-ndjson")
    if not logs and metrics is None:
        raise HTTPException(422, "no input: upload at least one log file or a metrics CSV")
    return logs, metrics, alert, total, names


def _json_object(text: Any, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise HTTPException(400, f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise HTTPException(422, f"{what} must be a JSON object")
    return value


def build_router(runtime: ServiceRuntime, auth: Any) -> APIRouter:
    """The triage, job and report routes."""
    router = APIRouter(dependencies=[auth], tags=["triage"])

    @router.post("/v1/triage", summary="Triage uploaded logs (and a metrics CSV)",
                 responses={200: {"description": "The report (small inputs)"},
                            202: {"description": "A job id (large inputs, or a slow small one)"}})
    async def post_triage(
        request: Request,
        format: ReportFormat = Query("json", description="Report format of a synchronous answer"),  # noqa: A002, B008
        mode: Literal["auto", "sync", "async"] = Query("auto", description="auto: sync below server.sync_max_bytes"),
    ) -> Response:
        workdir = runtime.new_upload_dir()
        try:
            logs, metrics, alert, total, names = await _collect_inputs(request, workdir)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        work = runtime.upload_work(workdir, logs, metrics, alert)
        try:
            job, future = runtime.jobs.submit("upload", work, detail={"files": names, "bytes": total})
        except QueueFull as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            raise HTTPException(503, str(exc), headers={"Retry-After": "10"}) from exc
        sync = mode == "sync" or (mode == "auto" and total <= runtime.settings.server.sync_max_bytes)
        accepted = JSONResponse(
            {"job_id": job.id, "status": job.status, "status_url": f"/v1/jobs/{job.id}"}, status_code=202,
            headers={"Location": f"/v1/jobs/{job.id}"},
        )
        if not sync:
            return accepted
        wait_s = max(1.0, runtime.settings.server.request_timeout_s * 0.8)
        try:
            done = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), wait_s)
        except TimeoutError:
            return accepted  # still running: the client polls the job
        return _job_outcome(runtime, done, format)

    @router.get("/v1/jobs/{job_id}", summary="State of a background triage", response_model=Job)
    async def get_job(job_id: str) -> Job:
        job = runtime.jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return job

    @router.get("/v1/reports/{report_id}", summary="A stored report (uploads and alerts)")
    async def get_report(report_id: str, format: ReportFormat = Query("json")) -> Response:  # noqa: A002, B008
        report = await asyncio.to_thread(runtime.reports.get, report_id)
        if report is None:
            raise HTTPException(404, f"no report {report_id!r}")
        return report_response(report, format)

    return router


def _job_outcome(runtime: ServiceRuntime, job: Job, fmt: ReportFormat) -> Response:
    if job.status == "failed":
        status = 422 if job.error_kind == "input" else 500
        return JSONResponse({"detail": job.error, "job_id": job.id}, status_code=status)
    report = runtime.reports.get(job.report_id or "")
    if report is None:
        return JSONResponse({"detail": "report missing after triage", "job_id": job.id}, status_code=500)
    return report_response(report, fmt)
