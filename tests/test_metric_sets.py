"""Metrics of many pods at once: a directory of per-pod CSVs, a long CSV, per-entity rows; and spans -> call graph.
Real excerpts of the Nezha TrainTicket export (tests/data/k8s)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from anomalist.tools.errors import InputError
from anomalist.tools.metrics_io import entity_from_filename, parse_times, read_metric_set, read_metrics
from anomalist.tools.traces import call_edges, edge_stats, entry_spans, read_spans

DATA = Path(__file__).parent / "data" / "k8s"
PODS = DATA / "normal" / "metrics"
CONTACTS = "ts-contacts-service-866bd68c97-xcqfx"


def test_a_directory_of_per_pod_files_is_one_metric_set() -> None:
    ms = read_metric_set(PODS)
    assert ms.layout == "per-entity files" and len(ms.entities) == 4 and CONTACTS in ms.entities
    assert ms.step == "60s"  # the pods' scrapes are a few seconds apart: aligned on one axis
    ch = f"{CONTACTS}/CpuUsage(m)"
    assert ch in ms.frame.columns and ms.entity_of[ch] == CONTACTS and ms.metric_of[ch] == "CpuUsage(m)"
    assert isinstance(ms.frame.index, pd.DatetimeIndex) and ms.frame.index.is_monotonic_increasing
    # The entity's name column and the second time column are not channels.
    assert not any(c.endswith("/PodName") or c.endswith("/TimeStamp") for c in ms.frame.columns)


def test_go_time_strings_and_epoch_columns_parse() -> None:
    go = pd.Series(["2023-01-29 08:41:09.858280782 +0000 UTC m=+0.934442642"])
    assert str(parse_times(go)[0]) == "2023-01-29 08:41:09.858280782"
    assert str(parse_times(pd.Series(["1674981669"]))[0]) == "2023-01-29 08:41:09"
    assert str(parse_times(pd.Series(["1674981669000"]))[0]) == "2023-01-29 08:41:09"
    assert parse_times(pd.Series(["17", "18"])).isna().all()  # small numbers are counters, not times


def test_a_file_without_a_usable_time_column_is_skipped_with_the_reason(tmp_path: Path) -> None:
    d = tmp_path / "metrics"
    shutil.copytree(PODS, d)
    (d / "broken_metric.csv").write_text("Time,CpuUsage(m)\nsoon,1\nlater,2\n")
    (d / "notes.txt").write_text("not metrics")
    ms = read_metric_set(d)
    assert len(ms.entities) == 4
    assert "time" in ms.skipped[str(d / "broken_metric.csv")] and str(d / "notes.txt") in ms.skipped
    assert any("broken_metric.csv" in line for line in ms.lines())
    empty = tmp_path / "none"
    empty.mkdir()
    (empty / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="no usable metrics file"):
        read_metric_set(empty)


def test_long_and_per_entity_row_files(tmp_path: Path) -> None:
    wide, _ = read_metrics(PODS / f"{CONTACTS}_metric.csv")
    rows = []
    for t, v in wide["CpuUsage(m)"].head(30).items():
        rows.append({"time": t.isoformat(), "entity": CONTACTS, "metric": "cpu", "value": v})
        rows.append({"time": t.isoformat(), "entity": "other-pod-0", "metric": "cpu", "value": 1.0})
    rows.append({"time": "not a time", "entity": CONTACTS, "metric": "cpu", "value": 3})
    long_csv = tmp_path / "long.csv"
    pd.DataFrame(rows).to_csv(long_csv, index=False)
    ms = read_metric_set(long_csv)
    assert ms.layout == "long" and set(ms.entities) == {CONTACTS, "other-pod-0"}
    assert ms.reports[0].dropped_rows == {"unparseable timestamp": 1}
    assert ms.frame[f"{CONTACTS}/cpu"].iloc[:30].round(6).tolist() == wide["CpuUsage(m)"].head(30).round(6).tolist()
    per_rows = tmp_path / "rows.csv"
    pd.DataFrame([{"timestamp": r["time"], "pod": r["entity"], "cpu": r["value"]} for r in rows[:-1]]).to_csv(per_rows, index=False)
    ms2 = read_metric_set(per_rows)
    assert ms2.layout == "per-entity rows" and set(ms2.entities) == {CONTACTS, "other-pod-0"}


def test_entity_names_from_file_names() -> None:
    assert entity_from_filename(Path(f"{CONTACTS}_metric.csv.gz")) == CONTACTS
    assert entity_from_filename(Path("checkout-metrics.csv")) == "checkout"


def test_spans_build_a_call_graph() -> None:
    spans, rep = read_spans(DATA / "case_contacts_return" / "spans.csv.gz")
    assert rep.spans_kept == rep.spans_read == len(spans) and not rep.has_errors
    assert spans["service"].str.startswith("ts-").all() and (spans["duration_ms"] >= 0).all()
    edges = call_edges(spans)
    assert len(edges) and (edges["caller"] != edges["callee"]).all()
    st = edge_stats(edges)
    assert {"caller", "callee", "calls", "p90_ms"} <= set(st.columns)
    assert ("ts-gateway-service" in set(st["caller"]))  # the gateway fans out to the services
    entry = entry_spans(spans)
    assert 0 < len(entry) < len(spans) and set(entry["service"]) <= set(spans["service"])


def test_spans_in_other_shapes_and_bad_rows(tmp_path: Path) -> None:
    jaeger = {"data": [{"traceID": "t1", "processes": {"p1": {"serviceName": "frontend"}, "p2": {"serviceName": "cart"}},
                        "spans": [
                            {"traceID": "t1", "spanID": "a", "references": [], "operationName": "GET /", "processID": "p1",
                             "startTime": 1674981742000000, "duration": 12000, "tags": []},
                            {"traceID": "t1", "spanID": "b", "references": [{"refType": "CHILD_OF", "spanID": "a"}],
                             "operationName": "GetCart", "processID": "p2", "startTime": 1674981742001000,
                             "duration": 9000, "tags": [{"key": "error", "value": True}]}]}]}
    (tmp_path / "jaeger.json").write_text(json.dumps(jaeger))
    spans, rep = read_spans(tmp_path / "jaeger.json")
    assert list(spans["service"]) == ["frontend", "cart"] and rep.has_errors
    assert spans["duration_ms"].tolist() == [12.0, 9.0] and spans["error"].tolist()[1] is True
    assert call_edges(spans)[["caller", "callee"]].values.tolist() == [["frontend", "cart"]]
    with gzip.open(tmp_path / "otel.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"traceId": "t2", "spanId": "c", "parentSpanId": "", "name": "op",
                             "resource": {"service.name": "api"}, "startTimeUnixNano": "1674981742000000000",
                             "endTimeUnixNano": "1674981742005000000", "status": {"code": "STATUS_CODE_ERROR"}}) + "\n")
        fh.write("not json\n")
        fh.write(json.dumps({"traceId": "t2", "spanId": "d", "name": "op"}) + "\n")
    spans2, rep2 = read_spans(tmp_path / "otel.jsonl.gz")
    assert len(spans2) == 1 and spans2["service"][0] == "api" and spans2["error"][0] is True
    assert rep2.dropped == {"no service or pod": 1, "not a JSON object": 1}
    with pytest.raises(InputError):
        read_spans(tmp_path / "missing.csv")
