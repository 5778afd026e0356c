"""Root-cause analysis from the command line on files laid out as a cluster writes them, the baseline profile
command, and ``anomalist eval rca`` (its loader on an export of the same layout, and the suite on the shared data)."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from anomalist.eval.nezha import NezhaData

DATA = Path(__file__).parent / "data" / "k8s"
CLI = [sys.executable, "-m", "anomalist.agent.cli.main"]


def _run(args: list[str], tmp_path: Path, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "--data-dir", str(tmp_path / "data"), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_triage_pod_log_dirs_with_traces_and_a_baseline(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    p = _run(["triage", str(DATA / "case_contacts_return" / "logs"),
              "--traces", str(DATA / "case_contacts_return" / "spans.csv.gz"),
              "--baseline", str(DATA / "normal" / "logs"), "--baseline-traces", str(DATA / "normal" / "spans.csv.gz"),
              "--no-llm", "--quiet", "--out", str(out), "--out", str(tmp_path / "r.md")], tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert doc["root_causes"][0]["service"] == "ts-contacts-service" and doc["root_causes"][0]["kind"] == "code"
    assert doc["inputs"]["log_format"] == "timestamped" and doc["service_graph"]["edges"]
    assert "## Root cause" in (tmp_path / "r.md").read_text()


def test_baseline_profile_command_then_triage_metrics_dirs(tmp_path: Path) -> None:
    prof = tmp_path / "normal.json"
    p = _run(["baseline", "build", "--metrics", str(DATA / "normal" / "metrics"), "--out", str(prof)], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "baseline profile written" in p.stderr and json.loads(prof.read_text())["kind"] == "anomalist-baseline-profile"
    p = _run(["triage", "--metrics", str(DATA / "case_contacts_cpu" / "metrics"), "--baseline", str(prof), "--no-llm",
              "--quiet", "--format", "json"], tmp_path)
    assert p.returncode == 0, p.stderr
    top = json.loads(p.stdout)["root_causes"][0]
    assert (top["service"], top["kind"]) == ("ts-contacts-service", "cpu")
    bad = _run(["triage", "--metrics", str(DATA / "case_contacts_cpu" / "metrics"), "--baseline", str(prof),
                "--baseline-metrics", str(DATA / "normal" / "metrics"), "--no-llm", "--quiet"], tmp_path)
    assert bad.returncode == 2 and "give it alone" in bad.stderr


def _mini_export(src: Path, dst: Path) -> None:
    """An export of the same layout: two cases, their log minutes, one trace minute, three pods' metrics."""
    doc = json.loads(next(src.glob("*fault_list.json")).read_text())
    (dst / "log").mkdir(parents=True)
    (dst / "metric").mkdir()
    (dst / "normal" / "log").mkdir(parents=True)
    (dst / "normal" / "metric").mkdir()
    (dst / "2023-01-29-fault_list.json").write_text(json.dumps({"08": doc["08"][:1], "13": doc["13"]}))
    (dst / "trace").mkdir()
    for m in ("08_43", "08_44", "13_31"):
        shutil.copy(src / "log" / f"{m}_log.csv.gz", dst / "log")
    shutil.copy(src / "trace" / "08_43_trace.csv.gz", dst / "trace")  # 08:44's trace minute is missing
    shutil.copy(src / "normal" / "log" / "08_50_log.csv.gz", dst / "normal" / "log")
    for f in sorted((src / "metric").glob("ts-contacts-service-*"))[:1] + sorted((src / "metric").glob("ts-seat-*"))[:1]:
        shutil.copy(f, dst / "metric")
        shutil.copy(f, dst / "normal" / "metric")
    shutil.copy(src / "metric" / "front_service.csv.gz", dst / "metric")
    with gzip.open(dst / "log" / "09_99_log.csv.gz", "wt") as fh:  # not a minute that exists: ignored
        fh.write("x\n")


def test_the_loader_takes_any_export_of_the_layout(datasets: Path, tmp_path: Path) -> None:
    src = datasets / "nezha_trainticket"
    _mini_export(src, tmp_path / "export")
    ds = NezhaData.load(tmp_path / "export")
    assert [c.fault_type for c in ds.cases] == ["return", "cpu_contention"]
    assert ds.cases[0].service == "ts-contacts-service" and ds.cases[0].kind == "code" and ds.cases[1].kind == "cpu"
    w = ds.write_case(ds.cases[0], tmp_path / "case")
    assert w.logs is not None and w.log_records > 1000 and w.traces is not None and w.metric_files == 2
    assert any("front_service.csv.gz: not a per-pod metric file" in n for n in w.notes)
    assert "trace minute 08:44 missing (its log minute is there): skipped" in w.notes
    pods = sorted((w.logs / "var" / "log" / "pods").iterdir())
    assert pods and all(p.name.startswith("default_ts-") for p in pods)
    assert (pods[0] / "server" / "0.log").read_text().startswith('{"log":')
    w2 = ds.write_case(ds.cases[1], tmp_path / "case2")
    assert w2.log_records > 0  # 13:31's minute file, cut to the case's range


@pytest.mark.slow
def test_eval_rca_suite_on_the_shared_data(datasets: Path, tmp_path: Path) -> None:
    p = _run(["eval", "rca", "--data", str(datasets / "nezha_trainticket"), "--cases", "08:43,13:31",
              "--backend", "none", "--no-lofo", "--json"], tmp_path, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout)
    assert {"ac@1", "ac@3", "avg@5", "kind_accuracy", "onset_error_min_p50", "seconds_per_case"} <= set(res["total"])
    assert set(res["baselines"]) == {"most_new_error_lines", "largest_metric_z_shift"}
    assert [c["service"] for c in res["cases"]] == ["ts-contacts-service", "ts-contacts-service"]
    assert all(c["rank"] == 1 for c in res["cases"]) and [c["kind_predicted"] for c in res["cases"]] == ["code", "cpu"]
