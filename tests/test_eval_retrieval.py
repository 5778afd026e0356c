"""``anomalist eval retrieval`` on a small subset of the shared runbooks (contract JSON, sane figures)."""

from __future__ import annotations

import json
from pathlib import Path

from test_store_helpers import runbook_subset
from typer.testing import CliRunner

from anomalist.agent.cli.main import app
from anomalist.eval.retrieval import alert_labels, build_alerts


def test_alert_synthesis_modes() -> None:
    rule = {"alert": "KubeletDown", "expr": 'absent(up{job="kubelet", metrics_path="/metrics"} == 1)',
            "labels": {"severity": "critical"},
            "annotations": {"summary": "Target disappeared.", "runbook_url": "https://x/kubernetes/kubeletdown",
                            "description": "Kubelet has disappeared on cluster {{ $labels.cluster }} ({{ $value }})."},
            "runbook_url": "https://x/kubernetes/kubeletdown"}
    labels = alert_labels(rule)
    assert labels["job"] == "kubelet" and labels["alertname"] == "KubeletDown" and labels["cluster"].startswith("x")
    full, desc = build_alerts(rule)
    assert full["labels"]["alertname"] == "KubeletDown" and full["annotations"]["runbook_url"]
    assert desc["labels"] == {} and "runbook_url" not in desc["annotations"]
    assert "{{" not in desc["annotations"]["description"] and "0.25" in desc["annotations"]["description"]
    assert "KubeletDown" not in json.dumps(desc)


def test_eval_retrieval_cli_json(datasets: Path, tmp_path: Path) -> None:
    data = runbook_subset(datasets, tmp_path / "rb")
    result = CliRunner().invoke(app, ["eval", "retrieval", "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"full", "description", "n_queries", "import_s"}
    rules = [json.loads(line) for line in (data / "alert_rules.jsonl").read_text().splitlines() if line.strip()]
    ids = {str(p.relative_to(data / "runbooks").with_suffix("")) for p in (data / "runbooks").rglob("*.md")}
    assert out["n_queries"] == sum(r["runbook_id"] in ids for r in rules) >= 12
    for mode in ("full", "description"):
        assert set(out[mode]) == {"recall@1", "recall@3", "mrr", "queries_per_s"}
        assert 0.0 <= out[mode]["recall@1"] <= out[mode]["recall@3"] <= 1.0
    assert out["full"]["recall@1"] == 1.0
    assert out["description"]["recall@3"] >= 0.8 and out["import_s"] > 0
