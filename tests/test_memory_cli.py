"""``anomalist incidents ...`` and ``anomalist runbooks ...`` end to end (real store, real model)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_store_helpers import SAMPLE_INCIDENTS, runbook_subset, write_jsonl
from typer.testing import CliRunner

from anomalist.agent.cli.main import app

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    """Exit code and stdout (JSON) when --json is given, else everything printed (messages go to stderr)."""
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout if "--json" in args else result.output


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, datasets: Path) -> Path:
    root = tmp_path_factory.mktemp("cli")
    runbook_subset(datasets, root / "rb")
    write_jsonl(root / "incidents.jsonl", [*SAMPLE_INCIDENTS, "{broken", {"id": "x", "title": 5}])
    shutil.copyfile(datasets / "runbooks" / "alertmanager_webhook_example.json", root / "webhook.json")
    return root


def test_cli_end_to_end(data: Path, tmp_path: Path) -> None:
    d = str(tmp_path / "home")
    # Reading a store that does not exist yet: a clear error naming the path, exit 1.
    code, out = _run("--data-dir", d, "incidents", "search", "anything")
    assert code == 1 and "no incident store" in out and "store" in out

    code, out = _run("--data-dir", d, "runbooks", "import", str(data / "rb"), "--json")
    assert code == 0, out
    res = json.loads(out)
    assert res["runbooks"]["added"] == 12 and res["rules"][0]["read"] == 139

    code, out = _run("--data-dir", d, "runbooks", "search", "--alert", str(data / "webhook.json"), "--json")
    assert code == 0, out
    top = json.loads(out)["hits"][0]
    assert top["runbook"]["id"] == "kubernetes/KubePodCrashLooping" and top["why"][0] == "exact_name"

    code, out = _run("--data-dir", d, "runbooks", "search", "node has run out of inodes", "-k", "1", "--json")
    assert code == 0 and json.loads(out)["hits"][0]["runbook"]["id"] == "node/NodeFilesystemAlmostOutOfFiles"

    code, out = _run("--data-dir", d, "incidents", "import", str(data / "incidents.jsonl"), "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert (summary["added"], len(summary["rejected"])) == (len(SAMPLE_INCIDENTS), 2)
    code, out = _run("--data-dir", d, "incidents", "import", str(data / "incidents.jsonl"), "--json")
    assert json.loads(out)["unchanged"] == len(SAMPLE_INCIDENTS)

    code, out = _run("--data-dir", d, "incidents", "search", "postgres pool exhausted", "--service", "checkout",
                     "-k", "2", "--json")
    assert code == 0 and json.loads(out)["hits"][0]["incident"]["id"] == "inc-00001"

    report = {"id": "rep-1", "severity": "warning", "summary": {"text": "Redis evictions spiked in cart."},
              "findings": [{"title": "Redis evictions in cart", "services": ["cart"],
                            "start": "2026-11-01T10:00:00Z", "end": "2026-11-01T10:20:00Z",
                            "templates": [{"template": "OOM command not allowed when used memory > maxmemory"}]}]}
    (tmp_path / "report.json").write_text(json.dumps(report))
    code, out = _run("--data-dir", d, "incidents", "add", "--from-report", str(tmp_path / "report.json"), "--json")
    assert code == 0 and json.loads(out) == {"id": "report-rep-1", "status": "added"}
    code, out = _run("--data-dir", d, "incidents", "list", "--service", "cart", "--json")
    assert [i["id"] for i in json.loads(out)["incidents"]] == ["report-rep-1"]
    code, out = _run("--data-dir", d, "incidents", "search", "redis OOM maxmemory", "-k", "1", "--json")
    assert json.loads(out)["hits"][0]["incident"]["id"] == "report-rep-1"

    code, out = _run("--data-dir", d, "incidents", "delete", "report-rep-1", "--json")
    assert code == 0 and json.loads(out)["deleted"] == 1
    code, out = _run("--data-dir", d, "incidents", "delete", "report-rep-1")
    assert code == 1

    code, out = _run("--data-dir", d, "incidents", "list")
    assert code == 0 and "inc-00001" in out


def test_cli_input_errors(tmp_path: Path) -> None:
    d = str(tmp_path / "home")
    code, out = _run("--data-dir", d, "incidents", "import", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "no such file" in out
    bad = write_jsonl(tmp_path / "bad.jsonl", ["{nope", "[1]"])
    code, out = _run("--data-dir", d, "incidents", "import", str(bad))
    assert code == 2 and "rejected 2" in out
    (tmp_path / "r.json").write_text("{}")
    code, out = _run("--data-dir", d, "incidents", "add", "--from-report", str(tmp_path / "r.json"))
    assert code == 2 and "no title" in out
    code, out = _run("--data-dir", d, "incidents", "search", "x", "--min-severity", "bogus")
    assert code == 2 and "bad filter" in out
    code, out = _run("--data-dir", d, "incidents", "list", "--mode", "server", "--host", "127.0.0.1", "--port", "9")
    assert code == 1 and "127.0.0.1:9" in out
