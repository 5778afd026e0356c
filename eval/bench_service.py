"""Service benchmark: webhook acknowledgement latency under triage load, and mixed concurrency without loss.

Run: ``python -m eval.bench_service [--logs DIR] [--metrics CSV] [--workers N] [--llm local|none] [--json]``.

Phase 1 (ack under load): 20 triages are queued (uploads of the example logs) and, while they are in flight,
Alertmanager webhooks with fresh fingerprints are POSTed one by one; the time to the 202 is measured (target: p95
< 200 ms). These alerts name a service without configured sources, so they are acknowledged, recorded and close
quickly instead of adding triages to the load being measured against. Phase 2 (mixed): 50 concurrent requests (triage uploads, chat turns, alerts, health checks); every
one must answer 2xx and every triage and alert job must end with a retrievable report (target: no error, no lost
report). The server is a real ``anomalist serve`` process on a free loopback port.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUESTIONS = (
    "which new error messages appeared after 14:00?",
    "show me lines containing 'timeout'",
    "which kinds of events are the most common?",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _alert_payload(fingerprint: str, service: str) -> dict[str, Any]:
    alert = {
        "status": "firing",
        "labels": {"alertname": "CheckoutHighLatency", "service": service, "severity": "warning"},
        "annotations": {"summary": "p95 latency above 800 ms"},
        "startsAt": "2026-11-02T14:06:00Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint,
    }
    return {"version": "4", "status": "firing", "receiver": "anomalist", "groupKey": "{}:{alertname}",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
            "alerts": [alert], "truncatedAlerts": 0}


class _Server:
    def __init__(self, workdir: Path, config: dict[str, Any]):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cfg = workdir / "config.yaml"
        cfg.write_text(yaml.safe_dump(config), encoding="utf-8")
        env = {**os.environ, "ANOMALIST_DATA_DIR": str(workdir / "data"), "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli.main", "-c", str(cfg), "serve", "--port", str(self.port)],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def wait(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the server exited during start-up")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError("the server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _wait_jobs(base: str, job_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    pending = set(job_ids)
    out: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    with httpx.Client(headers=AUTH, timeout=30) as client:
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                job = client.get(f"{base}/v1/jobs/{job_id}").json()
                if job["status"] in ("done", "failed"):
                    out[job_id] = job
                    pending.discard(job_id)
            if pending:
                time.sleep(1.0)
    for job_id in pending:
        out[job_id] = {"status": "unfinished"}
    return out


def run(logs: Path | None = None, metrics: Path | None = None, workers: int = 2, llm: str = "local",
        triages: int = 20, acks: int = 40, mixed: int = 50) -> dict[str, Any]:
    """Run both phases against a fresh server; returns the figures."""
    logs = logs or REPO / "examples" / "logs"
    metrics = metrics or REPO / "examples" / "metrics.csv"
    log_files = sorted(p for p in logs.iterdir() if p.is_file()) if logs.is_dir() else [logs]
    upload = [("logs", (p.name, p.read_bytes(), "text/plain")) for p in log_files]
    upload.append(("metrics", ("metrics.csv", metrics.read_bytes(), "text/csv")))
    with tempfile.TemporaryDirectory(prefix="anomalist-bench-") as tmp:
        config = {
            "llm": {"backend": llm},
            "server": {"token": TOKEN, "workers": workers, "max_queue": 1000, "request_timeout_s": 300.0,
                       "sources": {"checkout": [str(p) for p in log_files]}, "metrics_sources": {"checkout": str(metrics)},
                       "max_body_mb": 100.0},
        }
        server = _Server(Path(tmp), config)
        started = time.perf_counter()
        try:
            server.wait()
            result: dict[str, Any] = {"setup_s": round(time.perf_counter() - started, 2), "workers": workers, "llm": llm,
                      "load_before": os.getloadavg()[0]}
            result.update(_phase_ack(server.base, upload, triages, acks))
            result.update(_phase_mixed(server.base, upload, mixed))
            result["load_after"] = os.getloadavg()[0]
        finally:
            server.stop()
    result["targets"] = {
        "ack_p95_under_200ms": result["ack_p95_ms"] < 200.0,
        "mixed_no_error": result["mixed_errors"] == 0,
        "mixed_no_lost_report": result["mixed_lost_reports"] == 0,
    }
    return result


def _phase_ack(base: str, upload: list[Any], triages: int, acks: int) -> dict[str, Any]:
    jobs: list[str] = []
    with httpx.Client(headers=AUTH, timeout=120) as client:
        for _ in range(triages):
            r = client.post(f"{base}/v1/triage", params={"mode": "async"}, files=upload)
            r.raise_for_status()
            jobs.append(r.json()["job_id"])
        latencies: list[float] = []
        in_flight: list[int] = []
        for i in range(acks):
            health = client.get(f"{base}/healthz").json()
            in_flight.append(int(health["queue_depth"]) + int(health["triages_running"]))
            t0 = time.perf_counter()
            r = client.post(f"{base}/v1/alerts/alertmanager", json=_alert_payload(f"ack{i:05d}", "bench-unconfigured"))
            latencies.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 202:
                raise RuntimeError(f"webhook answered {r.status_code}: {r.text[:200]}")
            time.sleep(0.1)
    t0 = time.perf_counter()
    done = _wait_jobs(base, jobs, timeout=3600)
    return {
        "ack_n": len(latencies), "ack_p50_ms": round(statistics.median(latencies), 1),
        "ack_p95_ms": round(_percentile(latencies, 0.95), 1), "ack_max_ms": round(max(latencies), 1),
        "triages_in_flight_min": min(in_flight), "triages_in_flight_mean": round(statistics.mean(in_flight), 1),
        "phase1_triages": len(jobs), "phase1_triages_done": sum(1 for j in done.values() if j.get("status") == "done"),
        "phase1_drain_s": round(time.perf_counter() - t0, 1),
    }


def _phase_mixed(base: str, upload: list[Any], n: int) -> dict[str, Any]:
    def one(i: int) -> dict[str, Any]:
        kind = ("triage", "chat", "alert", "health")[i % 4]
        t0 = time.perf_counter()
        try:
            with httpx.Client(headers=AUTH, timeout=300) as client:
                if kind == "triage":
                    r = client.post(f"{base}/v1/triage", files=upload)
                    ok = r.status_code in (200, 202)
                    ref = r.headers.get("x-report-id") or (r.json().get("job_id") if r.status_code == 202 else None)
                    return {"kind": kind, "ok": ok, "status": r.status_code, "ref": ref,
                            "async": r.status_code == 202, "s": time.perf_counter() - t0}
                if kind == "chat":
                    with client.stream("POST", f"{base}/v1/chat", json={"question": QUESTIONS[i % 3]}) as r:
                        body = r.read().decode()
                    ok = r.status_code == 200 and "event: final" in body and "event: error" not in body
                    return {"kind": kind, "ok": ok, "status": r.status_code, "s": time.perf_counter() - t0}
                if kind == "alert":
                    r = client.post(f"{base}/v1/alerts/alertmanager", json=_alert_payload(f"mix{i:05d}", "checkout"))
                    ok = r.status_code == 202
                    ref = r.json()["accepted"][0]["job_id"] if ok else None
                    return {"kind": kind, "ok": ok, "status": r.status_code, "ref": ref, "async": True,
                            "s": time.perf_counter() - t0}
                r = client.get(f"{base}/healthz")
                return {"kind": kind, "ok": r.status_code == 200, "status": r.status_code,
                        "s": time.perf_counter() - t0}
        except httpx.HTTPError as exc:
            return {"kind": kind, "ok": False, "status": None, "error": str(exc), "s": time.perf_counter() - t0}

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max(1, n)) as pool:
        results = list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    job_ids = [r["ref"] for r in results if r.get("async") and r.get("ref")]
    sync_reports = [r["ref"] for r in results if r["kind"] == "triage" and not r.get("async") and r.get("ref")]
    done = _wait_jobs(base, job_ids, timeout=3600)
    report_ids = sync_reports + [j.get("report_id") for j in done.values()]
    with httpx.Client(headers=AUTH, timeout=30) as client:
        retrievable = sum(1 for rid in report_ids if rid and client.get(f"{base}/v1/reports/{rid}").status_code == 200)
    expected = sum(1 for r in results if r["kind"] in ("triage", "alert"))
    by_kind: dict[str, list[float]] = {}
    for r in results:
        by_kind.setdefault(r["kind"], []).append(r["s"])
    return {
        "mixed_n": n, "mixed_wall_s": round(wall, 1),
        "mixed_errors": sum(1 for r in results if not r["ok"]),
        "mixed_error_samples": [r for r in results if not r["ok"]][:5],
        "mixed_reports_expected": expected, "mixed_reports_retrievable": retrievable,
        "mixed_lost_reports": expected - retrievable,
        "mixed_latency_p95_s": {k: round(_percentile(v, 0.95), 2) for k, v in by_kind.items()},
    }


def render(result: dict[str, Any]) -> Any:
    """A rich table of the figures."""
    from rich.table import Table

    table = Table(title="anomalist service benchmark")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, json.dumps(value, default=str) if isinstance(value, dict | list) else str(value))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logs", type=Path, default=None)
    parser.add_argument("--metrics", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--llm", default="local", choices=["local", "none", "openai", "vllm"])
    parser.add_argument("--triages", type=int, default=20)
    parser.add_argument("--acks", type=int, default=40)
    parser.add_argument("--mixed", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.logs, args.metrics, args.workers, args.llm, args.triages, args.acks, args.mixed)
    if args.json:
        print(json.dumps(result, default=str))  # noqa: T201 - a script's output
    else:
        from rich.console import Console

        Console().print(render(result))


if __name__ == "__main__":
    main()
