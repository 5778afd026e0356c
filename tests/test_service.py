"""The HTTP service as a real uvicorn process on a free loopback port, exercised with httpx."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import DATASETS, require

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
TOKEN = "test-token-7f3a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

pytestmark = [pytest.mark.server, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        _Hook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def hook() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def start_server(tmp: Path, config: dict[str, Any], port: int, extra_args: tuple[str, ...] = ()) -> subprocess.Popen:
    cfg = tmp / "config.yaml"
    cfg.write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {**os.environ, "ANOMALIST_DATA_DIR": str(tmp / "data"), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "anomalist.agent.cli.main", "-c", str(cfg), "serve", "--port", str(port), *extra_args],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError("server did not become ready")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, hook: str) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("service")
    port = free_port()
    config = {
        "llm": {"backend": "local"},
        "triage": {"llm_budget_s": 3.0},
        "server": {
            "token": TOKEN, "max_body_mb": 1.0, "sync_max_bytes": 300_000, "request_timeout_s": 90.0, "workers": 2,
            "sources": {"checkout": [str(EXAMPLES / "logs" / "checkout.log")]},
            "metrics_sources": {"checkout": str(EXAMPLES / "metrics.csv")},
            "outgoing_webhook": hook,
        },
    }
    # The example incidents and runbooks in a real store (written here, only read by the server).
    from anomalist.tools.store import IncidentStore, import_incidents, import_runbooks

    store = IncidentStore.open("embedded", path=tmp / "data" / "store", create=True)
    import_runbooks(EXAMPLES / "runbooks", store)
    import_incidents(EXAMPLES / "incidents.jsonl", store)
    store.close()
    proc = start_server(tmp, config, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def poll_job(base: str, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{base}/v1/jobs/{job_id}", headers=AUTH, timeout=10).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} not finished")


def _example() -> dict[str, Any]:
    path = DATASETS / "runbooks" / "alertmanager_webhook_example.json"
    require(path.is_file(), f"the Alertmanager example payload is not available at {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def test_healthz_is_open_and_reports_dependencies(server: str) -> None:
    r = httpx.get(f"{server}/healthz")
    assert r.status_code == 200
    body = r.json()
    assert {"llm", "store", "queue_depth", "status"} <= set(body)
    assert body["llm"]["backend"] == "local"
    assert body["store"]["status"] in ("ok", "not_opened")
    paths = httpx.get(f"{server}/openapi.json").json()["paths"]
    assert {"/v1/triage", "/v1/chat", "/v1/alerts/alertmanager", "/v1/jobs/{job_id}", "/v1/reports/{report_id}",
            "/healthz", "/metrics"} <= set(paths)


def test_auth_required_and_wrong_token(server: str) -> None:
    assert httpx.post(f"{server}/v1/chat", json={"question": "hi"}).status_code == 401
    r = httpx.post(f"{server}/v1/chat", json={"question": "hi"}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and "invalid" in r.json()["detail"]
    assert httpx.get(f"{server}/metrics", headers={"Authorization": "Basic abc"}).status_code == 401
    assert httpx.get(f"{server}/v1/reports/x", headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 401


def _sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in text.split("\n\n"):
        event, data = None, None
        for line in block.splitlines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if event:
            out.append((event, data or {}))
    return out


def test_chat_streams_tool_calls_tokens_and_answer(server: str) -> None:
    with httpx.stream("POST", f"{server}/v1/chat", headers=AUTH, timeout=120,
                      json={"question": "which new error messages appeared after 14:00?"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = _sse(r.read().decode())
    kinds = [e for e, _ in events]
    assert kinds[0] == "conversation" and kinds[-1] == "final", kinds
    assert "tool_call" in kinds and "tool_result" in kinds and "token" in kinds
    call = next(d for e, d in events if e == "tool_call")
    assert call["name"] == "new_templates" and call["args"]["start"] == "14:00:00"
    final = events[-1][1]
    tokens = "".join(d["text"] for e, d in events if e == "token")
    assert tokens == final["answer"]
    assert "[E1]" in final["answer"] and final["evidence"][0]["status"] == "ok"
    cid = final["conversation_id"]
    with httpx.stream("POST", f"{server}/v1/chat", headers=AUTH, timeout=120,
                      json={"question": "has the database disk filled up like this in an earlier incident?",
                            "conversation_id": cid}) as r:
        second = _sse(r.read().decode())
    assert second[0][1]["conversation_id"] == cid and second[-1][0] == "final"
    results = {d["tool"]: d for e, d in second if e == "tool_result"}
    assert results["similar_incidents"]["status"] == "ok"  # the store's tool, over the imported incidents


def test_triage_upload_sync_and_formats(server: str) -> None:
    files = [
        ("logs", ("../../etc/passwd", (EXAMPLES / "logs" / "checkout.log").read_bytes(), "text/plain")),
        ("metrics", ("metrics.csv", (EXAMPLES / "metrics.csv").read_bytes(), "text/csv")),
    ]
    r = httpx.post(f"{server}/v1/triage", files=files, headers=AUTH, timeout=120)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["severity"] in ("warning", "critical") and report["findings"]
    assert r.headers["x-report-id"] == report["id"]
    # The uploaded name never became a path.
    assert not any("passwd" in s or ".." in s for s in report["inputs"]["log_sources"])
    md = httpx.get(f"{server}/v1/reports/{report['id']}", params={"format": "markdown"}, headers=AUTH)
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    html = httpx.get(f"{server}/v1/reports/{report['id']}", params={"format": "html"}, headers=AUTH)
    assert html.status_code == 200 and "<html" in html.text.lower()
    assert httpx.get(f"{server}/v1/reports/..%2F..%2Fetc", headers=AUTH).status_code == 404


def test_triage_async_job_and_json_lines(server: str) -> None:
    lines = (EXAMPLES / "logs" / "payments.log").read_text(encoding="utf-8").splitlines()
    r = httpx.post(f"{server}/v1/triage", params={"mode": "async"}, json={"logs": lines}, headers=AUTH)
    assert r.status_code == 202
    job = poll_job(server, r.json()["job_id"])
    assert job["status"] == "done", job
    rep = httpx.get(f"{server}/v1/reports/{job['report_id']}", headers=AUTH)
    assert rep.status_code == 200 and rep.json()["id"] == job["report_id"]


def test_malformed_and_invalid_bodies(server: str) -> None:
    r = httpx.post(f"{server}/v1/alerts/alertmanager", content=b"{not json", headers={**AUTH,
                                                                                    "content-type": "application/json"})
    assert r.status_code == 400
    r = httpx.post(f"{server}/v1/alerts/alertmanager", json={"version": "4", "status": "firing"}, headers=AUTH)
    assert r.status_code == 422
    r = httpx.post(f"{server}/v1/triage", content=b"[1,", headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 400
    r = httpx.post(f"{server}/v1/triage", json={"logs": 5}, headers=AUTH)
    assert r.status_code == 422
    r = httpx.post(f"{server}/v1/chat", json={"question": ""}, headers=AUTH)
    assert r.status_code == 422


def test_oversized_body_is_refused(server: str) -> None:
    big = b"x" * (1024 * 1024 + 10)
    r = httpx.post(f"{server}/v1/triage", content=big, headers={**AUTH, "content-type": "application/x-ndjson"})
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while streaming
        for _ in range(20):
            yield b"y" * 100_000

    r = httpx.post(f"{server}/v1/triage", content=chunks(), headers={**AUTH, "content-type": "application/x-ndjson"})
    assert r.status_code == 413


def test_alertmanager_example_duplicate_and_resolved(server: str) -> None:
    payload = _example()
    assert payload["groupKey"] and len(payload["alerts"]) == 2
    _Hook.received.clear()
    started = time.perf_counter()
    r = httpx.post(f"{server}/v1/alerts/alertmanager", json=payload, headers=AUTH)
    ack = time.perf_counter() - started
    assert r.status_code == 202, r.text
    body = r.json()
    # One alert group, one firing episode: both alerts are accepted into one triage.
    assert len(body["accepted"]) == 2 and not body["duplicates"]
    assert len({a["job_id"] for a in body["accepted"]}) == 1
    assert ack < 2.0  # acknowledged without waiting for the triage (the benchmark measures the p95)
    again = httpx.post(f"{server}/v1/alerts/alertmanager", json=payload, headers=AUTH).json()
    assert not again["accepted"] and len(again["duplicates"]) == 2
    job = poll_job(server, body["accepted"][0]["job_id"])
    assert job["status"] == "done", job
    assert job["detail"]["service"] == "checkout" and job["detail"]["configured"] is True
    report = httpx.get(f"{server}/v1/reports/{job['report_id']}", headers=AUTH).json()
    assert report["alert"]["name"] == "KubePodCrashLooping" and report["alert"]["group_alerts"] == 2
    assert report["alert"]["resolved_at"] is None
    deadline = time.monotonic() + 10
    while len(_Hook.received) < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(_Hook.received) == 1
    assert all(m["blocks"][0]["type"] == "header" and m["text"] for m in _Hook.received)
    resolved = {**payload, "status": "resolved",
                "alerts": [{**a, "status": "resolved", "endsAt": "2025-03-14T10:00:00Z"} for a in payload["alerts"]]}
    res = httpx.post(f"{server}/v1/alerts/alertmanager", json=resolved, headers=AUTH).json()
    assert len(res["resolved"]) == 2 and not res["accepted"]
    after = httpx.get(f"{server}/v1/reports/{job['report_id']}", headers=AUTH).json()
    assert after["alert"]["resolved_at"].startswith("2025-03-14T10:00") and after["alert"]["status"] == "resolved"
    assert after["findings"] == report["findings"]  # marked, not re-triaged
    events = [e["event"] for e in httpx.get(f"{server}/v1/alerts/recent", headers=AUTH).json()]
    assert events.count("resolved") == 1 and events.count("report") >= 1 and events.count("posted") >= 1


def test_a_notification_with_many_alerts_is_one_triage(server: str) -> None:
    base = _example()["alerts"][0]
    alerts = [{**base, "fingerprint": f"many{i:04d}", "startsAt": "2026-11-02T13:58:00Z",
               "labels": {**base["labels"], "pod": f"checkout-{i}"}} for i in range(400)]
    payload = {**_example(), "groupKey": '{}:{alertname="KubePodCrashLooping", batch="many"}', "alerts": alerts}
    r = httpx.post(f"{server}/v1/alerts/alertmanager", json=payload, headers=AUTH)
    assert r.status_code == 202, r.text
    body = r.json()
    assert len(body["accepted"]) == 400 and len({a["job_id"] for a in body["accepted"]}) == 1
    job = poll_job(server, body["accepted"][0]["job_id"])
    assert job["status"] == "done", job
    report = httpx.get(f"{server}/v1/reports/{job['report_id']}", headers=AUTH).json()
    assert report["alert"]["group_alerts"] == 400
    # Half of the group resolving leaves it open; a re-send with the rest is a duplicate, not a new triage.
    half = {**payload, "alerts": [{**a, "status": "resolved", "endsAt": "2026-11-02T14:30:00Z"} for a in alerts[:200]]
            + alerts[200:]}
    res = httpx.post(f"{server}/v1/alerts/alertmanager", json=half, headers=AUTH).json()
    assert len(res["resolved"]) == 200 and len(res["duplicates"]) == 200 and not res["accepted"]
    assert httpx.get(f"{server}/v1/reports/{job['report_id']}", headers=AUTH).json()["alert"]["resolved_at"] is None


def test_alert_for_a_service_without_sources_gets_an_alert_only_report(server: str) -> None:
    alert = {"status": "firing", "fingerprint": "nosources01", "startsAt": "2026-11-02T13:58:00Z",
             "endsAt": "0001-01-01T00:00:00Z",
             "labels": {"alertname": "NodeFilesystemSpaceFillingUp", "service": "billing", "severity": "critical",
                        "instance": "db-7:9100", "mountpoint": "/var/lib/postgresql"},
             "annotations": {"summary": "Filesystem is predicted to run out of space within the next 4 hours."}}
    payload = {"version": "4", "status": "firing", "receiver": "anomalist", "alerts": [alert]}
    r = httpx.post(f"{server}/v1/alerts/alertmanager", json=payload, headers=AUTH)
    assert r.status_code == 202, r.text
    job = poll_job(server, r.json()["accepted"][0]["job_id"])
    assert job["status"] == "done", job
    detail = job["detail"]
    assert detail["service"] == "billing" and detail["configured"] is False and detail["alert_only"] is True
    report = httpx.get(f"{server}/v1/reports/{job['report_id']}", headers=AUTH).json()
    assert report["alert"]["name"] == "NodeFilesystemSpaceFillingUp" and report["alert"]["service"] == "billing"
    assert report["findings"] == [] and report["severity"] == "critical"
    assert report["runbook"] is not None and report["runbook"]["steps"]
    assert report["similar_incidents"] and report["similar_incidents"][0]["incident_id"] == "INC-2026-0814"
    flags = {f["component"]: f["reason"] for f in report["degraded"]}
    assert "no log sources are configured for service 'billing'" in flags["logs"]
    assert "no metrics source is configured for service 'billing'" in flags["metrics"]
    assert {"A1", "R1", "I1"} <= set(report["summary"]["evidence_ids"])
    assert "configured for service 'billing'" in report["summary"]["text"]
    md = httpx.get(f"{server}/v1/reports/{job['report_id']}", params={"format": "markdown"}, headers=AUTH)
    assert md.status_code == 200 and "NodeFilesystemSpaceFillingUp" in md.text


def test_concurrent_mixed_requests(server: str) -> None:
    payload = _example()
    small = (EXAMPLES / "logs" / "inventory.log").read_text(encoding="utf-8").splitlines()[:400]

    def one(i: int) -> tuple[str, int, Any]:
        if i % 3 == 0:
            alert = {**payload["alerts"][0], "fingerprint": f"conc{i:04d}"}
            r = httpx.post(f"{server}/v1/alerts/alertmanager", json={**payload, "alerts": [alert]}, headers=AUTH,
                           timeout=60)
            return "alert", r.status_code, r.json()["accepted"][0]["job_id"]
        if i % 3 == 1:
            r = httpx.post(f"{server}/v1/triage", json={"logs": small}, params={"mode": "async"}, headers=AUTH,
                           timeout=60)
            return "triage", r.status_code, r.json()["job_id"]
        r = httpx.get(f"{server}/healthz", timeout=60)
        return "health", r.status_code, None

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(one, range(12)))
    assert all(code in (200, 202) for _, code, _ in results), results
    for kind, _, job_id in results:
        if job_id:
            job = poll_job(server, job_id, timeout=240)
            assert job["status"] == "done", (kind, job)
            assert httpx.get(f"{server}/v1/reports/{job['report_id']}", headers=AUTH).status_code == 200


def test_metrics_exposition(server: str) -> None:
    text = httpx.get(f"{server}/metrics", headers=AUTH).text
    for name in ("anomalist_http_requests_total", "anomalist_http_request_seconds_bucket", "anomalist_queue_depth",
                 "anomalist_llm_calls_total", "anomalist_llm_failures_total", "anomalist_degraded_triages_total",
                 "anomalist_alerts_total"):
        assert name in text, name
    assert 'route="/v1/alerts/alertmanager",status="202"' in text


def test_warns_when_exposed_without_token(tmp_path: Path) -> None:
    port = free_port()
    proc = start_server(tmp_path, {"llm": {"backend": "none"}}, port, ("--host", "0.0.0.0"))
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert "SECURITY WARNING" in out and "WITHOUT a bearer token" in out
