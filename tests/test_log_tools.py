"""The LangChain log and metric tools on tiny hand-built inputs with exact expectations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from anomalist.agent.chat.tool_exec import ToolExecutor
from anomalist.tools.log_tools import LogWorkspace, make_log_tools, resolve_time
from anomalist.tools.metric_tools import make_metric_tools

LINES = (
    # 10:00-10:09: normal traffic (2 templates)
    [f"2026-11-02 10:0{i}:00,000 INFO api: GET /items/{i} 200 in {10 + i} ms" for i in range(10)]
    + [f"2026-11-02 10:0{i}:30,000 INFO db: query ok in {i} ms" for i in range(10)]
    # 10:10-10:14: a new error template, with a secret in it
    + [f"2026-11-02 10:1{i}:05,000 ERROR db: could not write to /var/lib/pg/wal{i}: No space left on device "
       f"password=hunter{i}" for i in range(5)]
    + [f"2026-11-02 10:1{i}:40,000 INFO api: GET /items/{i} 500 in 900 ms" for i in range(5)]
)


@pytest.fixture()
def tools(tmp_path: Path) -> dict[str, Any]:
    log = tmp_path / "app.log"
    log.write_text("\n".join(sorted(LINES, key=lambda s: s[:23])) + "\n", encoding="utf-8")
    idx = pd.date_range("2026-11-02 10:00", periods=240, freq="1min")
    rng = np.random.default_rng(0)
    latency = 100 + rng.normal(0, 2, len(idx))
    latency[200:206] = 400  # one clear span
    other = 50 + rng.normal(0, 1, len(idx))
    csv = tmp_path / "metrics.csv"
    pd.DataFrame({"timestamp": idx.strftime("%Y-%m-%dT%H:%M:%SZ"), "latency_ms": latency, "cpu": other}).to_csv(
        csv, index=False)
    ws = LogWorkspace(sources={"app": [str(log)]}, metrics={"main": str(csv)},
                      redact=lambda s: s.replace("hunter", "[REDACTED]"))
    built = make_log_tools(ws) + make_metric_tools(ws, detector="zscore", detector_params={"window": 30}, robust_k=8)
    return {t.name: t for t in built}


def test_tool_names_are_snake_case_verbs(tools: dict[str, Any]) -> None:
    assert set(tools) == {"parse_logs", "search_logs", "top_templates", "new_templates", "detect_metric_anomalies"}


def test_parse_logs_counts(tools: dict[str, Any]) -> None:
    out = tools["parse_logs"].invoke({})
    assert out["status"] == "ok"
    assert out["events"] == 30 and out["lines_read"] == 30 and out["unparsed"] == 0
    assert out["levels"] == {"INFO": 25, "ERROR": 5}
    assert out["time_start"].startswith("2026-11-02T10:00:00")


def test_top_templates_in_range(tools: dict[str, Any]) -> None:
    out = tools["top_templates"].invoke({"start": "10:00", "end": "10:09:59", "k": 5})
    assert out["status"] == "ok" and out["events_in_range"] == 20
    assert sorted(t["count"] for t in out["templates"]) == [10, 10]


def test_new_templates_finds_the_disk_error_and_redacts(tools: dict[str, Any]) -> None:
    out = tools["new_templates"].invoke({"start": "10:10", "end": "10:15"})
    assert out["status"] == "ok"
    new = [t for t in out["templates"] if "No space left" in t["template"]]
    assert len(new) == 1 and new[0]["count"] == 5 and new[0]["level"] == "ERROR"
    assert "hunter" not in json.dumps(out)
    # The 500s share a template with earlier 200s (or are new): they must never outnumber the disk errors here.
    assert out["templates"][0]["count"] >= 5


def test_new_templates_without_baseline_is_no_data(tools: dict[str, Any]) -> None:
    assert tools["new_templates"].invoke({"start": "10:00"})["status"] == "no_data"
    # Without a start, the first quarter of the logs is the reference (as in the triage), and the answer says so.
    out = tools["new_templates"].invoke({})
    assert out["status"] == "ok" and "the first 25% of the logs are the reference" in out["summary"]
    assert out["range"]["start"] > out["range"]["end"][:11]  # a start inside the logs, after their first quarter


def test_search_logs(tools: dict[str, Any]) -> None:
    out = tools["search_logs"].invoke({"terms": ["no space", "wal3"], "limit": 3})
    assert out["status"] == "ok" and out["total_matches"] == 5 and len(out["lines"]) == 3
    assert "wal3" in out["lines"][0]["text"]  # matches both terms: ranked first
    assert all("[REDACTED]" in line["text"] for line in out["lines"])
    none = tools["search_logs"].invoke({"terms": ["kernel panic"]})
    assert none["status"] == "no_data"


def test_bad_arguments_become_fix_it_errors(tools: dict[str, Any]) -> None:
    ex = ToolExecutor(list(tools.values()))
    msgs, ev = ex.run([
        {"name": "top_templates", "args": {"start": "10:20", "end": "10:00"}, "id": "a"},
        {"name": "search_logs", "args": {"terms": []}, "id": "b"},
        {"name": "top_templates", "args": {"source": "nope"}, "id": "c"},
        {"name": "top_templates", "args": {"start": "yesterday-ish"}, "id": "d"},
        {"name": "detect_metric_anomalies", "args": {"channels": ["nope"]}, "id": "e"},
    ], 1)
    payloads = [json.loads(m.content) for m in msgs]
    assert [p["status"] for p in payloads] == ["error"] * 5
    assert "swap" in payloads[0]["message"]
    assert "terms" in payloads[1]["message"]
    assert "known sources: app" in payloads[2]["message"]
    assert "clock time" in payloads[3]["message"]
    assert "available: latency_ms, cpu" in payloads[4]["message"]
    assert [e.id for e in ev] == ["E1", "E2", "E3", "E4", "E5"]


def test_detect_metric_anomalies(tools: dict[str, Any]) -> None:
    out = tools["detect_metric_anomalies"].invoke({"start": "13:10", "end": "13:40"})
    assert out["status"] == "ok"
    span = out["spans"][0]
    assert "2026-11-02T13:20" <= span["start"] <= "2026-11-02T13:26" and span["strength"] > 10
    assert next(iter(span["drivers"])) == "latency_ms"
    assert span["values"]["latency_ms"]["span_max"] == pytest.approx(400, abs=1)
    quiet = tools["detect_metric_anomalies"].invoke({"start": "10:30", "end": "10:40"})
    assert quiet["status"] == "no_data"


def test_resolve_time_forms() -> None:
    d0, d1 = pd.Timestamp("2026-11-02 23:00"), pd.Timestamp("2026-11-03 02:00")
    assert resolve_time("01:30", d0, d1) == pd.Timestamp("2026-11-03 01:30")  # the day it falls in the data
    assert resolve_time("end-30m", d0, d1) == pd.Timestamp("2026-11-03 01:30")
    assert resolve_time("start+1h", d0, d1) == pd.Timestamp("2026-11-03 00:00")
    assert resolve_time("2026-11-03T00:15:00Z", d0, d1) == pd.Timestamp("2026-11-03 00:15")
    with pytest.raises(ValueError, match="clock time"):
        resolve_time("soon", d0, d1)


def test_chat_metric_tool_reports_the_spans_the_triage_reports(tmp_path: Path) -> None:
    """One operation behind both: the chat tool's spans are the triage's metric hits, same edges and channels."""
    from anomalist.agent.settings import Settings
    from anomalist.agent.triage.detect import run_metric_detector
    from anomalist.tools.metric_tools import MetricAnomalyTool
    from anomalist.tools.metrics_io import load_metric_set

    rng = np.random.default_rng(3)
    idx = pd.date_range("2026-01-01 10:00", periods=300, freq="1min")
    df = pd.DataFrame({"checkout_latency_ms": 100 + rng.normal(0, 3, 300), "cpu_pct": 40 + rng.normal(0, 2, 300),
                       "rps": 200 + rng.normal(0, 5, 300)}, index=idx)
    df.iloc[150:158, 0] += 120  # a latency jump of 40 SDs for 8 minutes
    csv = tmp_path / "m.csv"
    df.to_csv(csv, index_label="timestamp")
    s = Settings(data_dir=str(tmp_path), llm={"backend": "none"})
    name = s.detectors.metric_detector
    mset, _, _ = load_metric_set(csv)
    hits, _ = run_metric_detector(mset.frame, s, [], lambda *a: None)
    ws = LogWorkspace(sources={}, metrics={"m": str(csv)})
    out = MetricAnomalyTool(ws, name, s.detectors.params_for(name), robust_k=s.triage.metric_robust_k,
                            min_strength=s.triage.min_strength)()
    assert hits and out["status"] == "ok", out
    assert sorted((sp["start"], sp["end"]) for sp in out["spans"]) == sorted(
        (h.start.isoformat(), h.end.isoformat()) for h in hits)
    strongest = out["spans"][0]
    top = max(hits, key=lambda h: h.score)
    assert strongest["start"] <= idx[150].isoformat() < strongest["end"]
    assert list(strongest["drivers"])[0] == top.channels[0] == "checkout_latency_ms"
