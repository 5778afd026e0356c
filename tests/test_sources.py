"""Where telemetry lives: Prometheus query helpers, journald through the real journalctl, source settings."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import require

from anomalist.agent.settings import load_settings
from anomalist.agent.sources import journald_sources, log_files, metric_paths, service_queries
from anomalist.tools.errors import InputError
from anomalist.tools.journald import entry_record, journal_command, read_journal
from anomalist.tools.prometheus import (
    PrometheusClient,
    PrometheusQuery,
    baseline_ranges,
    choose_step,
    fill,
    generator_expr,
    selector_query,
    series_name,
)

JOURNAL_REMOTE = next((p for p in ("/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote")
                       if Path(p).exists()), None)


def test_generator_url_expression() -> None:
    url = ("http://prometheus:9090/graph?g0.expr=rate%28http_requests_total%7Bcode%3D~%225..%22%7D%5B5m%5D%29+%3E+0.1"
           "&g0.tab=1")
    assert generator_expr(url) == 'rate(http_requests_total{code=~"5.."}[5m]) > 0.1'
    assert generator_expr("http://prometheus:9090/graph?g0.tab=1") is None
    assert generator_expr(None) is None


def test_placeholders_are_filled_from_labels_and_escaped() -> None:
    labels = {"service": "checkout", "namespace": 'sh"op', "pod": "checkout-1"}
    assert fill('up{namespace="{{namespace}}",pod="{{ pod }}"}', labels) == 'up{namespace="sh\\"op",pod="checkout-1"}'
    with pytest.raises(InputError, match="needs label"):
        fill('up{cluster="{{cluster}}"}', labels)
    assert selector_query('namespace="shop"') == '{namespace="shop"}'


def test_step_and_baseline_ranges() -> None:
    end = pd.Timestamp("2026-12-03 12:00")
    assert choose_step(end - pd.Timedelta(minutes=10), end) == 15.0  # never below a scrape interval
    assert choose_step(end - pd.Timedelta(days=7), end) == 1008.0  # about 600 points
    assert baseline_ranges(end - pd.Timedelta(hours=1), end, "preceding:6h") == [
        (pd.Timestamp("2026-12-03 05:00"), pd.Timestamp("2026-12-03 11:00"))]
    day, week = baseline_ranges(end - pd.Timedelta(hours=1), end, "offsets:1d,7d")
    assert day == (pd.Timestamp("2026-12-02 11:00"), pd.Timestamp("2026-12-02 12:00"))
    assert week[1] == pd.Timestamp("2026-11-26 12:00")
    with pytest.raises(InputError):
        baseline_ranges(end, end, "yesterday")


def test_series_names_keep_the_pod_and_distinguishing_labels() -> None:
    q = PrometheusQuery("rate(x[5m])", "latency")
    assert series_name({"pod": "checkout-1", "instance": "10.0.0.1:8080", "le": "0.5"}, q) == ("checkout-1", "latency{le=0.5}")
    assert series_name({"__name__": "up", "instance": "h:9100", "job": "node"}, PrometheusQuery("up")) == ("h:9100", "up")
    with pytest.raises(InputError, match="http"):
        PrometheusClient("localhost:9090")


def test_service_queries_for_an_alert() -> None:
    settings = load_settings(overrides={"server": {"metrics_sources": {
        "checkout": {"prometheus": {"queries": {"lat": 'lat{service="{{service}}"}', "disk": 'd{mount="{{mountpoint}}"}'},
                                    "selector": '{namespace="{{namespace}}"}'}},
        "billing": "metrics/billing.csv"}}})
    src = settings.server.metrics_sources["checkout"]
    assert not isinstance(src, str)
    qs = service_queries(src, {"service": "checkout", "namespace": "shop", "alertname": "HighLatency"},
                         alert_generator_url="http://p:9090/graph?g0.expr=lat+%3E+1")
    assert [q.expr for q in qs] == ['lat{service="checkout"}', '{namespace="shop"}', "lat > 1"]  # disk: no mountpoint
    assert qs[-1].name == "alert:HighLatency"
    assert metric_paths(settings.server.metrics_sources) == {"billing": "metrics/billing.csv"}


def test_log_source_settings() -> None:
    settings = load_settings(overrides={"server": {"sources": {"checkout": [
        "/var/log/pods/shop_checkout-*/*/*.log", {"journald": {"units": ["checkout.service"]}},
        {"files": ["/srv/checkout/*.log"]}]}}})
    entries = settings.server.sources["checkout"]
    assert log_files(entries) == ["/var/log/pods/shop_checkout-*/*/*.log", "/srv/checkout/*.log"]
    assert [j.units for j in journald_sources(entries)] == [["checkout.service"]]
    with pytest.raises(ValueError):
        load_settings(overrides={"server": {"sources": {"checkout": [{"journal": {}}]}}})


def test_journal_entries_are_counted_not_lost() -> None:
    skipped: dict[str, int] = {}
    ok = entry_record(json.dumps({"MESSAGE": [104, 105, 255], "__REALTIME_TIMESTAMP": "1764770000000000",
                                  "PRIORITY": "3", "_SYSTEMD_UNIT": "nginx.service"}), skipped)
    assert ok == {"timestamp": "2025-12-03T13:53:20Z", "level": "ERROR", "service": "nginx", "message": "hi\ufffd"}
    assert entry_record("not json", skipped) is None
    assert entry_record(json.dumps({"__REALTIME_TIMESTAMP": "1"}), skipped) is None
    assert entry_record(json.dumps({"MESSAGE": "x"}), skipped) is None
    assert skipped == {"not JSON": 1, "no MESSAGE": 1, "no __REALTIME_TIMESTAMP": 1}
    cmd = journal_command(since=pd.Timestamp("2025-12-03 13:00"), units=["a.service"], directory="/j")
    assert cmd[cmd.index("--since") + 1] == "@1764766800" and ["-D", "/j"] == cmd[cmd.index("-D"):cmd.index("-D") + 2]
    with pytest.raises(InputError, match="not found"):
        read_journal(Path("/tmp/none.jsonl"), journalctl="no-such-journalctl")


def test_journald_through_the_real_journalctl(tmp_path: Path) -> None:
    require(shutil.which("journalctl") is not None and JOURNAL_REMOTE is not None,
            "journalctl and systemd-journal-remote (Debian package systemd-journal-remote) are needed")
    export = tmp_path / "export.txt"
    base = 1764770000000000
    export.write_text("".join(
        f"__REALTIME_TIMESTAMP={base + i * 1_000_000}\n__MONOTONIC_TIMESTAMP={i}\n_BOOT_ID={'0' * 31}1\n"
        f"_SYSTEMD_UNIT={'api' if i % 2 else 'db'}.service\nPRIORITY={3 if i == 5 else 6}\nMESSAGE=line {i}\n\n"
        for i in range(10)), encoding="utf-8")
    jdir = tmp_path / "journal"
    jdir.mkdir()
    subprocess.run([JOURNAL_REMOTE, f"--output={jdir / 'remote.journal'}", str(export)], check=True,
                   capture_output=True, timeout=30)
    out = tmp_path / "api.jsonl"
    rep = read_journal(out, directory=str(jdir), units=["api.service"], since=pd.Timestamp("2025-12-03 13:53:22"),
                       until=pd.Timestamp("2025-12-03 13:54:00"))
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rep.read == rep.written == 4 and [r["message"] for r in rows] == ["line 3", "line 5", "line 7", "line 9"]
    assert rows[1]["level"] == "ERROR" and rows[0]["service"] == "api"
    # The log reader takes the written file like any other (JSON lines: time, level, service, message).
    from anomalist.agent.triage.inputs import load_logs

    data = load_logs([str(out)], load_settings(), lambda *_: None)
    assert data.stats["lines_read"] == 4 and data.stats.get("lines_unparsed", 0) == 0
    with pytest.raises(InputError, match="exited with"):  # journalctl's own error, passed on
        read_journal(tmp_path / "x.jsonl", file=str(tmp_path / "missing.journal"))
