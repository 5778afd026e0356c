"""Shared helpers for the store tests (small real data, a real ``chroma run`` server process)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

# A small, varied subset of the shared runbooks: look-alike pairs on purpose (KubeletDown / KubeAPIDown,
# NodeFilesystemAlmostOutOfSpace / ...OutOfFiles, the two Alertmanager send-failure runbooks).
RUNBOOK_SUBSET = [
    "kubernetes/KubePodCrashLooping.md", "kubernetes/KubePodNotReady.md", "kubernetes/KubeletDown.md",
    "kubernetes/KubeAPIDown.md", "kubernetes/KubePersistentVolumeFillingUp.md",
    "node/NodeFilesystemAlmostOutOfSpace.md", "node/NodeFilesystemAlmostOutOfFiles.md",
    "alertmanager/AlertmanagerFailedToSendAlerts.md", "alertmanager/AlertmanagerClusterFailedToSendAlerts.md",
    "etcd/etcdMembersDown.md", "general/TargetDown.md", "prometheus/PrometheusRemoteStorageFailures.md",
]


def runbook_subset(datasets: Path, dest: Path) -> Path:
    """Copy RUNBOOK_SUBSET (dataset layout: runbooks/ + alert_rules.jsonl) under ``dest``; returns ``dest``."""
    src = datasets / "runbooks"
    for rel in RUNBOOK_SUBSET:
        target = dest / "runbooks" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / "runbooks" / rel, target)
    shutil.copyfile(src / "alert_rules.jsonl", dest / "alert_rules.jsonl")
    return dest


def incident(i: int, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": f"inc-{i:05d}", "title": f"Incident {i}", "summary": f"Something failed ({i}).",
        "services": ["checkout"], "severity": "warning",
    }
    base.update(over)
    return base


SAMPLE_INCIDENTS = [
    incident(1, title="Checkout database connection pool exhausted",
             summary="Checkout returned HTTP 500 because the Postgres connection pool was exhausted after a deploy "
                     "doubled the worker count.",
             services=["checkout", "postgres"], severity="critical", started_at="2026-03-01T10:00:00Z",
             symptoms={"templates": ["could not obtain connection from pool after <*> ms"],
                       "metrics": ["db_connections_in_use"], "alerts": ["PostgresTooManyConnections"]},
             root_cause="Worker count doubled, pool size unchanged.", resolution="Raised pool size; capped workers."),
    incident(2, title="Payments latency spike from DNS resolver timeouts",
             summary="Payment API p99 latency jumped to 4 s because the cluster DNS resolver timed out under load.",
             services=["payments"], severity="high", started_at="2026-05-10T08:30:00Z",
             symptoms={"alerts": ["KubeDNSLatencyHigh"], "templates": ["dial tcp: lookup <*>: i/o timeout"]}),
    incident(3, title="Disk full on logging nodes",
             summary="Elasticsearch nodes ran out of disk space; ingestion stopped and logs were dropped.",
             services=["logging"], severity="warning", started_at="2025-12-24T23:00:00Z",
             symptoms={"alerts": ["NodeFilesystemAlmostOutOfSpace"], "metrics": ["node_filesystem_avail_bytes"]}),
    incident(4, title="Pods crash looping after config change",
             summary="A bad ConfigMap made the checkout pods crash on start (CrashLoopBackOff) for 20 minutes.",
             services=["checkout"], severity="critical", started_at="2026-07-02T12:00:00Z",
             symptoms={"alerts": ["KubePodCrashLooping"]}),
    incident(5, title="Certificate expired on the ingress",
             summary="The TLS certificate of the public ingress expired and browsers refused to connect.",
             services=["ingress"], severity="critical", started_at="2026-01-15T00:05:00Z"),
]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chroma_executable() -> str:
    exe = Path(sys.executable).with_name("chroma")
    return str(exe) if exe.exists() else "chroma"


@contextmanager
def chroma_server(path: Path, port: int | None = None, timeout_s: float = 60.0) -> Iterator[tuple[str, int, Any]]:
    """Run ``chroma run`` on a free loopback port until the block ends; yields (host, port, process)."""
    port = port or free_port()
    log = (path.parent / f"chroma-{port}.log").open("wb")
    proc = subprocess.Popen(
        [chroma_executable(), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"chroma run exited with {proc.returncode}; see {log.name}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"chroma run did not answer on port {port} within {timeout_s} s")
            time.sleep(0.2)
        yield "127.0.0.1", port, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        log.close()
