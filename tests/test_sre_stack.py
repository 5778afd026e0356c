"""The SRE stack for real: an exporter of ours, a real Prometheus scraping it with a rule file, a real Alertmanager
routing to ``anomalist serve``, and journald read through the real ``journalctl``.

The rule fires on three pods at once (one alert group), Alertmanager delivers it (and re-sends it every
``repeat_interval``), the service triages it once with metrics pulled from Prometheus and the alert's runbook, the
alert resolves and the report is marked resolved. A second receiver with a wrong bearer token gets 401, and
Alertmanager logs it. Prometheus scrapes Anomalist's ``/metrics`` too. Everything listens on 127.0.0.1; every wait
is bounded; every process is stopped by the fixture.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import require
from test_service import AUTH, EXAMPLES, TOKEN, free_port, start_server, wait_ready

pytestmark = [pytest.mark.server, pytest.mark.slow]

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
JOURNAL_REMOTE = next((p for p in ("/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote")
                       if Path(p).exists()), None)
PODS = ("checkout-7d9f8c6b5-abcde", "checkout-7d9f8c6b5-fghij", "checkout-7d9f8c6b5-klmno")


def _wait(what: str, check: Callable[[], Any], timeout: float, procs: dict[str, subprocess.Popen] | None = None,
          every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        for name, p in (procs or {}).items():
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode} while waiting for {what}")
        try:
            last = check()
        except (httpx.HTTPError, ValueError, KeyError):
            last = None
        if last:
            return last
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout:.0f}s (last: {last!r})")


class _Exporter:
    """A tiny exporter (prometheus_client) whose gauges the test drives: per-pod latency and error rate."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Gauge, start_http_server

        self.registry = CollectorRegistry()
        self.latency = Gauge("checkout_request_latency_seconds", "p95 latency", ["service", "pod"],
                             registry=self.registry)
        self.errors = Gauge("checkout_errors_per_second", "errors", ["service", "pod"], registry=self.registry)
        self.port = free_port()
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self.slow = False
        self._stop = threading.Event()
        self._rng = random.Random(7)
        self._tick = threading.Thread(target=self._run, daemon=True)
        self._tick.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for pod in PODS:
                base = 2.4 if self.slow else 0.21
                self.latency.labels("checkout", pod).set(base + self._rng.uniform(-0.02, 0.02))
                self.errors.labels("checkout", pod).set((3.0 if self.slow else 0.1) + self._rng.uniform(0, 0.05))
            self._stop.wait(0.25)

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()


def _journal(tmp: Path) -> Path | None:
    """A real journal directory (written by systemd-journal-remote from export format), read via journalctl."""
    if JOURNAL_REMOTE is None:
        return None
    now_us = int(time.time() * 1e6)
    entries = []
    for i in range(120):
        t = now_us - (120 - i) * 500_000
        slow = i >= 90
        msg = ("upstream payments timed out after 2000 ms" if slow and i % 2 else
               f"GET /checkout/cart 200 in {21 + i % 7} ms")
        entries.append(f"__REALTIME_TIMESTAMP={t}\n__MONOTONIC_TIMESTAMP={i}\n_BOOT_ID=00000000000000000000000000000001\n"
                       f"_SYSTEMD_UNIT=checkout.service\nSYSLOG_IDENTIFIER=checkout\n_PID=4242\n_HOSTNAME=node-1\n"
                       f"PRIORITY={3 if slow and i % 2 else 6}\nMESSAGE={msg}\n")
    export = tmp / "export.txt"
    export.write_text("\n".join(entries) + "\n", encoding="utf-8")
    jdir = tmp / "journal"
    jdir.mkdir()
    subprocess.run([JOURNAL_REMOTE, f"--output={jdir / 'remote.journal'}", str(export)], check=True,
                   capture_output=True, timeout=30)
    return jdir


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require(PROMETHEUS is not None, "the prometheus binary (Debian package prometheus) is not installed")
    require(ALERTMANAGER is not None, "the alertmanager binary (Debian package prometheus-alertmanager) is not installed")
    tmp = tmp_path_factory.mktemp("sre")
    exporter = _Exporter()
    procs: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}
    ports = {"anomalist": free_port(), "prometheus": free_port(), "alertmanager": free_port()}
    jdir = _journal(tmp)
    try:
        # Anomalist: metrics from Prometheus, logs from journald, the example runbooks and incidents in its store.
        from anomalist.tools.store import IncidentStore, import_incidents, import_runbooks

        store = IncidentStore.open("embedded", path=tmp / "data" / "store", create=True)
        import_runbooks(EXAMPLES / "runbooks", store)
        import_incidents(EXAMPLES / "incidents.jsonl", store)
        store.close()
        sources: list[Any] = [{"journald": {"units": ["checkout.service"], "directory": str(jdir)}}] if jdir else []
        config = {
            "llm": {"backend": "local"},  # the embedded defaults: the target is firing -> report stored <= 30 s
            "triage": {"llm_budget_s": 10.0},
            "prometheus": {"url": f"http://127.0.0.1:{ports['prometheus']}", "step_s": 1.0, "baseline": "none",
                           "timeout_s": 5.0},
            "server": {
                "token": TOKEN, "workers": 2, "alert_lookback_minutes": 1,
                "sources": {"checkout": sources},
                "metrics_sources": {"checkout": {"prometheus": {
                    "queries": {"latency_p95": 'checkout_request_latency_seconds{service="{{service}}"}'},
                    "selector": '{__name__="checkout_errors_per_second",service="{{service}}"}'}}},
            },
        }
        procs["anomalist"] = start_server(tmp, config, ports["anomalist"])
        anomalist = f"http://127.0.0.1:{ports['anomalist']}"
        wait_ready(anomalist, procs["anomalist"])

        webhook = f"{anomalist}/v1/alerts/alertmanager"
        am_cfg = {
            "route": {"receiver": "anomalist", "group_by": ["alertname"], "group_wait": "1s", "group_interval": "2s",
                      "repeat_interval": "3s",
                      "routes": [{"receiver": "wrong-token", "matchers": ['probe="auth"'], "repeat_interval": "3s"}]},
            "receivers": [
                {"name": "anomalist", "webhook_configs": [{"url": webhook, "send_resolved": True, "max_alerts": 0,
                                                           "http_config": {"authorization": {"type": "Bearer",
                                                                                             "credentials": TOKEN}}}]},
                {"name": "wrong-token", "webhook_configs": [{"url": webhook, "send_resolved": False,
                                                             "http_config": {"authorization": {
                                                                 "type": "Bearer", "credentials": "not-the-token"}}}]},
            ],
        }
        (tmp / "alertmanager.yml").write_text(yaml.safe_dump(am_cfg), encoding="utf-8")
        logs["alertmanager"] = tmp / "alertmanager.log"
        procs["alertmanager"] = subprocess.Popen(
            [ALERTMANAGER, f"--config.file={tmp / 'alertmanager.yml'}", f"--storage.path={tmp / 'am'}",
             f"--web.listen-address=127.0.0.1:{ports['alertmanager']}", "--cluster.listen-address=",
             "--log.level=debug"],
            stdout=logs["alertmanager"].open("w"), stderr=subprocess.STDOUT)

        rules = {"groups": [{"name": "checkout", "interval": "1s", "rules": [
            {"alert": "CheckoutHighLatency", "expr": "checkout_request_latency_seconds > 1", "for": "4s",
             "labels": {"severity": "critical"},
             "annotations": {"summary": "Checkout p95 latency is above 1s on {{ $labels.pod }}."}},
            {"alert": "AnomalistAuthProbe", "expr": "vector(1)", "labels": {"probe": "auth", "severity": "info"}},
        ]}]}
        (tmp / "rules.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
        prom_cfg = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp / "rules.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{ports['alertmanager']}"]}]}]},
            "scrape_configs": [
                {"job_name": "checkout", "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}]},
                {"job_name": "anomalist", "authorization": {"credentials": TOKEN},
                 "static_configs": [{"targets": [f"127.0.0.1:{ports['anomalist']}"]}]},
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(prom_cfg), encoding="utf-8")
        logs["prometheus"] = tmp / "prometheus.log"
        procs["prometheus"] = subprocess.Popen(
            [PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{ports['prometheus']}", "--rules.alert.resend-delay=1s"],
            stdout=logs["prometheus"].open("w"), stderr=subprocess.STDOUT)
        prometheus = f"http://127.0.0.1:{ports['prometheus']}"
        alertmanager = f"http://127.0.0.1:{ports['alertmanager']}"
        for name, url in (("alertmanager", alertmanager), ("prometheus", prometheus)):
            _wait(f"{name} ready", lambda u=url: httpx.get(f"{u}/-/ready", timeout=2).status_code == 200, 60, procs)
        yield {"exporter": exporter, "anomalist": anomalist, "prometheus": prometheus, "alertmanager": alertmanager,
               "procs": procs, "logs": logs, "journal": jdir}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        exporter.close()


def _events(anomalist: str) -> list[dict[str, Any]]:
    return httpx.get(f"{anomalist}/v1/alerts/recent?limit=1000", headers=AUTH, timeout=5).json()


def _prom(prometheus: str, query: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=5).json()
    return list(body["data"]["result"])


def test_alert_fires_is_triaged_once_from_prometheus_then_resolves(stack: dict[str, Any],
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    anomalist, prometheus, procs = stack["anomalist"], stack["prometheus"], stack["procs"]
    # Some normal history first, so the window has a reference part.
    _wait("normal latency scraped", lambda: len(_prom(prometheus, "checkout_request_latency_seconds")) == 3, 30, procs)
    time.sleep(12)
    stack["exporter"].slow = True
    report_event = _wait("a report for CheckoutHighLatency", lambda: next(
        (e for e in _events(anomalist) if e["event"] == "report" and e.get("alertname") == "CheckoutHighLatency"),
        None), 90, procs)
    report = httpx.get(f"{anomalist}/v1/reports/{report_event['report_id']}", headers=AUTH, timeout=10).json()
    # Wall time from the alert firing (Alertmanager's startsAt) to the report stored (the ledger's event).
    fired = min(datetime.fromisoformat(a["startsAt"].replace("Z", "+00:00")) for a in httpx.get(
        f"{stack['alertmanager']}/api/v2/alerts", params={"filter": 'alertname="CheckoutHighLatency"'}, timeout=5).json())
    stored = datetime.fromisoformat(report_event["at"])
    wall = (stored - fired).total_seconds()
    with capsys.disabled():  # printed in every run, CI included
        print(f"\nSRE stack: alert firing -> report stored in {wall:.1f} s (embedded LLM; target <= 30 s); "
              f"report {report['id']}, degraded: {[d['component'] for d in report['degraded']]}")
    assert wall > 0
    # The metrics came from Prometheus (not a file): both queries, every pod.
    inputs = report["inputs"]
    assert (inputs["metric_source"] or "").startswith("prometheus:http://127.0.0.1"), (inputs, report["degraded"])
    channels = inputs["metric_channels"]
    assert sum("latency_p95" in c for c in channels) == 3 and sum("checkout_errors_per_second" in c for c in channels) == 3
    assert all(any(p in c for c in channels) for p in PODS)
    # The alert expression behind it (generatorURL's g0.expr) was queried as well.
    assert any(c.endswith("alert:CheckoutHighLatency") for c in channels), channels
    # One group of three alerts, with the alert's runbook, and the journald logs were read.
    assert report["alert"]["name"] == "CheckoutHighLatency" and report["alert"]["group_alerts"] == 3
    assert report["runbook"] is not None and "latency" in report["runbook"]["title"].lower()
    if stack["journal"] is not None:  # the entries that fall in the alert's window, read through journalctl
        assert 0 < inputs["lines_read"] <= 120, inputs
    # repeat_interval re-sends: Alertmanager notifies again, the service triages no more.
    _wait("Alertmanager re-sent the group", lambda: _value(
        httpx.get(f"{anomalist}/metrics", headers=AUTH, timeout=5).text,
        'anomalist_alerts_total{handling="duplicate",status="firing"}') >= 3, 40, procs)
    events = [e for e in _events(anomalist) if e.get("alertname") == "CheckoutHighLatency" or
              e.get("group", "").endswith('{alertname="CheckoutHighLatency"}')]
    assert sum(e["event"] == "report" for e in events) == 1
    assert sum(e["event"] == "firing" for e in events) == 1
    assert _notifications(stack["alertmanager"]) >= 2
    # Resolution: latency back to normal, Prometheus resolves, Alertmanager sends it, the report is marked.
    stack["exporter"].slow = False
    resolved = _wait("the report marked resolved", lambda: (lambda r: r if r["alert"]["resolved_at"] else None)(
        httpx.get(f"{anomalist}/v1/reports/{report['id']}", headers=AUTH, timeout=5).json()), 90, procs)
    assert resolved["alert"]["status"] == "resolved"
    assert resolved["findings"] == report["findings"]  # marked, not re-triaged
    assert sum(e["event"] == "report" and e.get("alertname") == "CheckoutHighLatency" for e in _events(anomalist)) == 1


def test_a_wrong_bearer_token_is_refused_and_alertmanager_logs_it(stack: dict[str, Any]) -> None:
    log = stack["logs"]["alertmanager"]
    _wait("Alertmanager logged the 401", lambda: "401" in log.read_text(encoding="utf-8", errors="replace"), 60,
          stack["procs"])
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "wrong-token" in text and "401" in text
    metrics = httpx.get(f"{stack['anomalist']}/metrics", headers=AUTH, timeout=5).text
    assert _value(metrics, 'anomalist_http_requests_total{method="POST",route="/v1/alerts/alertmanager",status="401"}') >= 1
    assert not any(e.get("alertname") == "AnomalistAuthProbe" for e in _events(stack["anomalist"]))


def test_prometheus_scrapes_anomalist(stack: dict[str, Any]) -> None:
    prometheus, procs = stack["prometheus"], stack["procs"]
    up = _wait("anomalist scraped", lambda: [r for r in _prom(prometheus, 'up{job="anomalist"}')
                                             if r["value"][1] == "1"], 30, procs)
    assert up
    # The service's own series, as a real Prometheus parsed them.
    for name in ("anomalist_http_requests_total", "anomalist_queue_depth", "anomalist_llm_calls_total",
                 "anomalist_llm_failures_total", "anomalist_alerts_total", "anomalist_triages_total",
                 "anomalist_triage_seconds_count", "anomalist_store_seconds_count", "anomalist_prometheus_queries_total"):
        assert _wait(f"{name} in Prometheus", lambda n=name: _prom(prometheus, n), 30, procs), name
    health = _prom(prometheus, 'scrape_samples_scraped{job="anomalist"}')
    assert health and float(health[0]["value"][1]) > 10


def test_prometheus_client_bounds_and_errors(stack: dict[str, Any]) -> None:
    from anomalist.tools.errors import InputError
    from anomalist.tools.prometheus import PrometheusClient, PrometheusError, PrometheusQuery

    prometheus = stack["prometheus"]
    end = time.time()
    start = end - 20
    ok = PrometheusClient(prometheus).metric_set([PrometheusQuery("checkout_request_latency_seconds", "lat")],
                                                 start, end, 1.0)
    assert sorted(ok.entities) == sorted(PODS) and ok.layout == "prometheus" and ok.frame.shape[1] == 3
    assert ok.frame.index.tz is None and len(ok.frame) >= 15
    with pytest.raises(PrometheusError, match="3 series, over the limit of 2"):
        PrometheusClient(prometheus, max_series=2).query_range("checkout_request_latency_seconds", start, end, 1.0)
    with pytest.raises(PrometheusError, match="points, over the limit"):
        PrometheusClient(prometheus, max_points=10).query_range("checkout_request_latency_seconds", start, end, 1.0)
    with pytest.raises(PrometheusError, match="rejected query"):
        PrometheusClient(prometheus).query_range("rate(checkout_request_latency_seconds", start, end, 1.0)
    with pytest.raises(PrometheusError, match="cannot reach Prometheus"):
        PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout_s=2).query_range("up", start, end, 1.0)
    with pytest.raises(InputError, match="allows 11000"):
        PrometheusClient(prometheus).query_range("up", start - 86400, end, 1.0)
    with pytest.raises(InputError, match="no series"):
        PrometheusClient(prometheus).metric_set(["no_such_metric_anywhere"], start, end, 1.0)


def test_basic_auth_and_token_files(tmp_path: Path) -> None:
    """A real Prometheus behind basic auth (its --web.config.file): refused without credentials, answered with them."""
    require(PROMETHEUS is not None, "the prometheus binary (Debian package prometheus) is not installed")
    import bcrypt

    from anomalist.tools.prometheus import PrometheusClient, PrometheusError

    web = {"basic_auth_users": {"ops": bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()}}
    (tmp_path / "web.yml").write_text(yaml.safe_dump(web), encoding="utf-8")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({"global": {"scrape_interval": "1s"}}), encoding="utf-8")
    port = free_port()
    proc = subprocess.Popen(
        [str(PROMETHEUS), f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", f"--web.config.file={tmp_path / 'web.yml'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait("prometheus ready", lambda: httpx.get(f"{url}/-/ready", auth=("ops", "s3cret"), timeout=2).status_code
              == 200, 60, {"prometheus": proc})
        end = time.time()
        with pytest.raises(PrometheusError, match="refused the credentials"):
            PrometheusClient(url).query_range("vector(1)", end - 10, end, 1.0)
        with pytest.raises(PrometheusError, match="refused the credentials"):
            PrometheusClient(url, username="ops", password="wrong").query_range("vector(1)", end - 10, end, 1.0)
        got = PrometheusClient(url, username="ops", password="s3cret").query_range("vector(1)", end - 10, end, 1.0)
        assert len(got) == 1 and len(got[0]["values"]) >= 10
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    token = tmp_path / "token"
    token.write_text("abc123\n", encoding="utf-8")
    assert PrometheusClient(url, bearer_token_file=str(token))._headers() == {"Authorization": "Bearer abc123"}
    with pytest.raises(PrometheusError, match="token file"):
        PrometheusClient(url, bearer_token_file=str(tmp_path / "missing"))._headers()


def test_ask_reads_prometheus_metrics_as_the_chat_tools_do(stack: dict[str, Any]) -> None:
    from anomalist.agent.cli.chat_cmd import _prometheus_csv
    from anomalist.agent.settings import load_settings
    from anomalist.tools.metrics_io import read_metric_set

    path = _prometheus_csv(load_settings(), stack["prometheus"], ["checkout_errors_per_second"], "30s", None)
    ms = read_metric_set(path)
    assert ms.frame.shape[1] == 3 and len(ms.frame) >= 2


def test_cli_triage_pulls_metrics_from_prometheus(stack: dict[str, Any], tmp_path: Path) -> None:
    import sys

    from test_service import REPO

    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "anomalist.agent.cli.main", "triage", "--prometheus", stack["prometheus"],
         "--query", 'lat=checkout_request_latency_seconds{service="checkout"}', "--query",
         "checkout_errors_per_second", "--since", "20s", "--prom-baseline", "preceding:30s", "--no-llm", "-q",
         "-o", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=180,
        env={**os.environ, "ANOMALIST_DATA_DIR": str(tmp_path / "data")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["inputs"]["metric_source"].startswith("prometheus:")
    assert sum(c.endswith("/lat") for c in report["inputs"]["metric_channels"]) == 3
    # The baseline came from Prometheus too: the same queries over the 30 s before the window.
    assert "prometheus:" in report["rca"]["baseline"], report["rca"]
    bad = subprocess.run(
        [sys.executable, "-m", "anomalist.agent.cli.main", "triage", "--prometheus", stack["prometheus"], "--query", "rate(",
         "--no-llm", "-q"], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "ANOMALIST_DATA_DIR": str(tmp_path / "data")})
    assert bad.returncode == 2 and "rejected query" in bad.stderr


class _Stall:
    """A socket that accepts connections and never answers (a hung Prometheus)."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[Any] = []
        self._t = threading.Thread(target=self._accept, daemon=True)
        self._t.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.mark.parametrize("case", ["down", "stalled", "error", "too_many_series"])
def test_a_broken_prometheus_still_gives_a_report_marked_degraded(stack: dict[str, Any], tmp_path: Path,
                                                                  case: str) -> None:
    from anomalist.agent.service.jobs import Job
    from anomalist.agent.service.runtime import ServiceRuntime
    from anomalist.agent.settings import load_settings
    from anomalist.tools.alerts import Alert

    stall = _Stall() if case == "stalled" else None
    url = {"down": f"http://127.0.0.1:{free_port()}", "stalled": f"http://127.0.0.1:{stall.port if stall else 0}"}.get(
        case, stack["prometheus"])
    query = "rate(checkout_request_latency_seconds" if case == "error" else "checkout_request_latency_seconds"
    settings = load_settings(overrides={
        "data_dir": str(tmp_path / "data"), "llm": {"backend": "none"}, "store": {"path": str(tmp_path / "store")},
        "prometheus": {"url": url, "timeout_s": 2.0, "step_s": 1.0, "baseline": "none",
                       "max_series": 1 if case == "too_many_series" else 500},
        "server": {"alert_lookback_minutes": 1,
                   "metrics_sources": {"checkout": {"prometheus": {"queries": {"lat": query}}}}},
    })
    runtime = ServiceRuntime(settings)
    try:
        alert = Alert.model_validate({"status": "firing", "fingerprint": f"broken-{case}",
                                      "startsAt": pd_now_iso(), "labels": {"alertname": "CheckoutHighLatency",
                                                                            "service": "checkout"}})
        started = time.perf_counter()
        out = runtime.alert_work(alert, "http://anomalist")(Job(id=f"j-{case}", kind="alert"))
        assert time.perf_counter() - started < 30  # bounded by the query timeout, not hung
        report = runtime.reports.get(out["report_id"])
        assert report is not None
        flags = {d.component: d.reason for d in report.degraded}
        expect = {"down": "cannot reach Prometheus", "stalled": "did not answer within 2s",
                  "error": "rejected query", "too_many_series": "over the limit of 1"}[case]
        assert expect in flags["metrics"], flags
    finally:
        runtime.shutdown()
        if stall is not None:
            stall.close()


def pd_now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


def _notifications(am: str) -> float:
    """Webhook notifications Alertmanager sent (its own counter)."""
    text = httpx.get(f"{am}/metrics", timeout=5).text
    return _value(text, 'alertmanager_notifications_total{integration="webhook"}')


def _value(text: str, series: str) -> float:
    """The sum of the samples named like ``series`` whose labels include its labels, in a Prometheus text
    exposition (parsed by prometheus_client's own parser; 0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    name, _, labels = series.partition("{")
    want = dict(kv.split("=", 1) for kv in labels.rstrip("}").split(",")) if labels else {}
    want = {k: v.strip('"') for k, v in want.items()}
    return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
               if s.name == name and want.items() <= s.labels.items())
