"""A bounded worker pool for triages, and the job records clients poll at ``GET /v1/jobs/{id}``."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "done", "failed"]


class QueueFull(RuntimeError):
    """The triage queue is at its bound; the client should retry later (HTTP 503)."""


class Job(BaseModel):
    """What a client sees of one background triage."""

    model_config = ConfigDict(extra="forbid")

    id: str
    kind: Literal["upload", "alert"]
    status: JobStatus = "queued"
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    started_at: datetime | None = None
    finished_at: datetime | None = None
    report_id: str | None = None
    severity: str | None = None
    degraded: bool | None = None
    error: str | None = None
    error_kind: Literal["input", "internal"] | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class JobManager:
    """Runs work on ``workers`` threads with at most ``max_queue`` waiting; keeps the last ``max_jobs`` records.

    Args:
        workers: threads running triages (the HTTP event loop never runs one).
        max_queue: waiting jobs beyond which ``submit`` raises ``QueueFull``.
        max_jobs: job records kept for polling (oldest finished ones are forgotten first).
    """

    def __init__(self, workers: int, max_queue: int, max_jobs: int = 5000):
        self.workers = workers
        self.max_queue = max_queue
        self.max_jobs = max_jobs
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="triage")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._queued = 0
        self._running = 0

    @property
    def queue_depth(self) -> int:
        return self._queued

    @property
    def running(self) -> int:
        return self._running

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return job.model_copy() if job is not None else None

    def submit(self, kind: Literal["upload", "alert"], work: Callable[[Job], dict[str, Any]],
               detail: dict[str, Any] | None = None) -> tuple[Job, Future[Job]]:
        """Queue ``work(job) -> fields to set on the job`` (e.g. report_id); exceptions mark the job failed.

        Raises:
            QueueFull: when ``max_queue`` jobs are already waiting.
        """
        job = Job(id=uuid.uuid4().hex, kind=kind, detail=detail or {})
        with self._lock:
            if self._queued >= self.max_queue:
                raise QueueFull(f"{self._queued} triages are queued (limit {self.max_queue}); retry later")
            self._queued += 1
            self._jobs[job.id] = job
            self._forget_old()
        future = self._pool.submit(self._run, job.id, work)
        return job.model_copy(), future

    def _run(self, job_id: str, work: Callable[[Job], dict[str, Any]]) -> Job:
        with self._lock:
            self._queued -= 1
            self._running += 1
            job = self._jobs[job_id]
            job.status = "running"
            job.started_at = datetime.now(UTC)
            snapshot = job.model_copy()
        try:
            fields = work(snapshot)
        except Exception as exc:  # a failing job is recorded, never lost silently
            logger.exception("job %s (%s) failed", job_id, snapshot.kind)
            fields = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "error_kind": "internal"}
        with self._lock:
            self._running -= 1
            job = self._jobs.get(job_id) or snapshot
            for key, value in fields.items():
                setattr(job, key, value)
            if job.status not in ("failed",):
                job.status = "done"
            job.finished_at = datetime.now(UTC)
            self._jobs[job_id] = job
            return job.model_copy()

    def _forget_old(self) -> None:
        while len(self._jobs) > self.max_jobs:
            for key, job in self._jobs.items():
                if job.status in ("done", "failed"):
                    del self._jobs[key]
                    break
            else:
                return

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
