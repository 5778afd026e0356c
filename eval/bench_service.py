"""Service benchmark: webhook acknowledgement latency under triage load, and mixed concurrency without loss.

Run: ``python -m anomalist.eval.bench_service [--logs DIR] [--metrics CSV] [--workers N] [--llm local|none] [--json]``.

Phase 1 (ack under load): 20 triages are queued (uploads of the example logs) and, while they are in flight,
Alertmanager webhooks with fresh fingerprints are POSTed one by one; the time to the 202 is measured (target: p95
< 200 ms). These alerts name a service without configured sources, so they are acknowledged, recorded and close
quickly instead of adding triages to the load being measured against. Phase 2 (mixed): 50 concurrent requests (triage uploads, chat turns, alerts, health checks); every
one must answer 2xx and every triage and alert job must end with a retrievable report (target: no error, no lost
report). Phase 3 (Alertmanager, when the ``prometheus-alertmanager`` binary is installed): a real Alertmanager
routes ``--groups`` alert groups (alerts POSTed to its API, three alerts per group, re-sent every
``repeat_interval``) to the service while ``--triages`` uploads run; every group must end with exactly one report
(no lost, no duplicated report) and the service's own request histogram gives the webhook's p95 ack (target:
< 100 ms). The server is a real ``anomalist serve`` process on a free loopback port.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
            [sys.executable, "-m", "anomalist.agent.cli.main", "-c", str(cfg), "serve", "--port", str(self.port)],
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
        triages: int = 20, acks: int = 40, mixed: int = 50, groups: int = 100) -> dict[str, Any]:
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
            if groups and shutil.which("prometheus-alertmanager"):
                result.update(_phase_alertmanager(server.base, Path(tmp), upload, triages, groups))
            else:
                result["alertmanager"] = "skipped: prometheus-alertmanager not installed" if groups else "off"
            result["load_after"] = os.getloadavg()[0]
        finally:
            server.stop()
    result["targets"] = {
        "ack_p95_under_200ms": result["ack_p95_ms"] < 200.0,
        "mixed_no_error": result["mixed_errors"] == 0,
        "mixed_no_lost_report": result["mixed_lost_reports"] == 0,
    }
    if "am_groups" in result:
        result["targets"].update({
            "am_no_lost_report": result["am_lost_reports"] == 0,
            "am_no_duplicated_report": result["am_duplicated_reports"] == 0,
            "am_webhook_ack_p95_under_100ms": result["am_ack_p95_ms_at_most"] <= 100.0,
        })
    return result


def _phase_alertmanager(base: str, workdir: Path, upload: list[Any], triages: int, groups: int,
                        timeout: float = 900.0) -> dict[str, Any]:
    """A real Alertmanager sends ``groups`` alert groups while ``triages`` uploads run (see the module docstring)."""
    am_port = _free_port()
    am_dir = workdir / "am"
    am_dir.mkdir()
    cfg = {
        "route": {"receiver": "anomalist", "group_by": ["alertname", "group"], "group_wait": "1s",
                  "group_interval": "5s", "repeat_interval": "10s"},
        "receivers": [{"name": "anomalist", "webhook_configs": [{
            "url": f"{base}/v1/alerts/alertmanager", "send_resolved": True, "max_alerts": 0,
            "http_config": {"authorization": {"type": "Bearer", "credentials": TOKEN}}}]}],
    }
    (am_dir / "alertmanager.yml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    am = subprocess.Popen(
        [shutil.which("prometheus-alertmanager") or "alertmanager", f"--config.file={am_dir / 'alertmanager.yml'}",
         f"--storage.path={am_dir / 'data'}", f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    am_url = f"http://127.0.0.1:{am_port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{am_url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        before = _ack_histogram(base)
        with httpx.Client(headers=AUTH, timeout=120) as client:
            for _ in range(triages):  # load: uploads triaged while the notifications arrive
                client.post(f"{base}/v1/triage", params={"mode": "async"}, files=upload).raise_for_status()
        now = time.time()
        alerts = [{"labels": {"alertname": "BenchGroupAlert", "group": f"g{g:03d}", "instance": f"i{k}",
                              "service": "billing", "severity": "warning"},
                   "annotations": {"summary": f"bench group {g}"},
                   "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 5))}
                  for g in range(groups) for k in range(3)]
        started = time.perf_counter()
        httpx.post(f"{am_url}/api/v2/alerts", json=alerts, timeout=30).raise_for_status()
        reports: dict[str, set[str]] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = httpx.get(f"{base}/v1/alerts/recent", params={"limit": 1000}, headers=AUTH, timeout=30).json()
            reports = {}
            for e in events:
                if e.get("event") == "report" and e.get("alertname") == "BenchGroupAlert":
                    reports.setdefault(str(e.get("group")), set()).add(str(e.get("report_id")))
            if len(reports) >= groups:
                break
            time.sleep(2.0)
        all_reports_s = time.perf_counter() - started
        time.sleep(12)  # at least one repeat_interval more: re-sends must not add reports
        events = httpx.get(f"{base}/v1/alerts/recent", params={"limit": 1000}, headers=AUTH, timeout=30).json()
        per_group: dict[str, int] = {}
        for e in events:
            if e.get("event") == "report" and e.get("alertname") == "BenchGroupAlert":
                per_group[str(e.get("group"))] = per_group.get(str(e.get("group")), 0) + 1
        after = _ack_histogram(base)
        ack = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
        total = ack.get("+Inf", 0.0)
        p95 = next((float(le) * 1000 for le, n in sorted(((k, v) for k, v in ack.items() if k != "+Inf"),
                                                        key=lambda kv: float(kv[0])) if total and n >= 0.95 * total),
                   float("inf"))
        dup = sum(s.value for s in _samples(base, "anomalist_alerts_total", handling="duplicate", status="firing"))
        return {"am_groups": groups, "am_alerts": len(alerts), "am_reports": sum(per_group.values()),
                "am_lost_reports": groups - len(per_group), "am_duplicated_reports": sum(n - 1 for n in per_group.values()),
                "am_all_reports_s": round(all_reports_s, 1), "am_webhook_requests": int(total),
                "am_ack_p95_ms_at_most": p95, "am_duplicate_deliveries": int(dup)}
    finally:
        am.terminate()
        try:
            am.wait(timeout=15)
        except subprocess.TimeoutExpired:
            am.kill()


def _samples(base: str, name: str, **labels: str) -> list[Any]:
    """The samples ``name`` with ``labels`` in the service's /metrics (prometheus_client's own parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{base}/metrics", headers=AUTH, timeout=30).text
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples
            if s.name == name and labels.items() <= s.labels.items()]


def _ack_histogram(base: str) -> dict[str, float]:
    """Cumulative bucket counts (le -> n) of the webhook route's request latency, from the service's /metrics."""
    out: dict[str, float] = {}
    for s in _samples(base, "anomalist_http_request_seconds_bucket", route="/v1/alerts/alertmanager"):
        out[s.labels["le"]] = out.get(s.labels["le"], 0.0) + float(s.value)
    return out


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
    parser.add_argument("--groups", type=int, default=100, help="Alert groups a real Alertmanager sends (0: off)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.logs, args.metrics, args.workers, args.llm, args.triages, args.acks, args.mixed, args.groups)
    if args.json:
        print(json.dumps(result, default=str))  # noqa: T201 - a script's output
    else:
        from rich.console import Console

        Console().print(render(result))


if __name__ == "__main__":
    main()
