"""``anomalist triage`` end to end: outputs and exit codes 0 / 2 / 3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require
from typer.testing import CliRunner

from anomalist.agent.cli.main import app

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _args(tmp_path: Path, *rest: str) -> list[str]:
    return ["--data-dir", str(tmp_path), "triage", *rest, "--no-llm"]


def test_writes_each_format_and_exits_0(runner: CliRunner, tmp_path: Path) -> None:
    out_json = tmp_path / "r.json"
    res = runner.invoke(app, _args(tmp_path, str(EXAMPLES / "logs"), "--metrics", str(EXAMPLES / "metrics.csv"),
                                   "--alert", str(EXAMPLES / "alert.json"), "--out", str(out_json)))
    assert res.exit_code == 0, res.output
    data = json.loads(out_json.read_text())
    assert data["severity"] == "critical" and data["findings"][0]["rank"] == 1
    assert data["alert"]["name"] == "NodeFilesystemSpaceFillingUp"
    out_html = tmp_path / "r.html"
    res = runner.invoke(app, _args(tmp_path, str(EXAMPLES / "logs"), "-q", "--out", str(out_html)))
    assert res.exit_code == 0, res.output
    assert out_html.read_text().startswith("<!DOCTYPE html>")
    res = runner.invoke(app, _args(tmp_path, str(EXAMPLES / "logs" / "checkout.log"), "-q", "--format", "markdown"))
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("# Triage report:")


def test_fail_on_exits_3(runner: CliRunner, tmp_path: Path) -> None:
    args = _args(tmp_path, str(EXAMPLES / "logs"), "--metrics", str(EXAMPLES / "metrics.csv"), "-q",
                 "--out", str(tmp_path / "r.md"))
    assert runner.invoke(app, [*args, "--fail-on", "critical"]).exit_code == 3
    assert runner.invoke(app, [*args, "--fail-on", "warning"]).exit_code == 3


def test_fail_on_not_reached_exits_0(runner: CliRunner, tmp_path: Path) -> None:
    # Normal traffic only (before the deploy and the incident): nothing reaches critical.
    src = (EXAMPLES / "logs" / "checkout.log").read_text().splitlines()
    p = tmp_path / "quiet.log"
    p.write_text("\n".join(ln for ln in src if ln[11:16] < "12:30") + "\n")
    res = runner.invoke(app, _args(tmp_path, str(p), "-q", "--fail-on", "critical", "--out", str(tmp_path / "q.md")))
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("extra", [
    ["/definitely/missing.log"],
    [str(EXAMPLES / "logs"), "--format", "pdf"],
    [str(EXAMPLES / "logs"), "--fail-on", "sometimes"],
    [str(EXAMPLES / "logs"), "--alert", "/definitely/missing.json"],
    [str(EXAMPLES / "logs"), "--window", "fortnightly"],
    [],
])
def test_unusable_input_exits_2(runner: CliRunner, tmp_path: Path, extra: list[str]) -> None:
    res = runner.invoke(app, _args(tmp_path, *extra, "-q"))
    assert res.exit_code == 2, res.output


def test_alert_alone_gives_an_alert_only_report(runner: CliRunner, tmp_path: Path) -> None:
    out_json = tmp_path / "r.json"
    res = runner.invoke(app, _args(tmp_path, "--alert", str(EXAMPLES / "alert.json"), "--out", str(out_json)))
    assert res.exit_code == 0, res.output
    data = json.loads(out_json.read_text())
    assert data["alert"]["name"] == "NodeFilesystemSpaceFillingUp" and data["findings"] == []
    assert data["severity"] == "critical" and {"logs", "metrics"} <= {d["component"] for d in data["degraded"]}
    assert "No logs or metrics were triaged" in res.output


def test_bad_alert_json_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "alert.json"
    bad.write_text("{not json")
    res = runner.invoke(app, _args(tmp_path, str(EXAMPLES / "logs"), "--alert", str(bad), "-q"))
    assert res.exit_code == 2


def test_console_script_exit_code_and_progress(tmp_path: Path) -> None:
    """The real ``anomalist`` process: progress bars and the summary go to stderr, the report to stdout."""
    exe = Path(sys.executable).with_name("anomalist")
    require(exe.exists(), "console script not installed")
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.run(
        [str(exe), "--data-dir", str(tmp_path), "triage", str(EXAMPLES / "logs"), "--metrics",
         str(EXAMPLES / "metrics.csv"), "--no-llm", "--format", "json", "--fail-on", "critical"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 3, proc.stderr
    assert json.loads(proc.stdout)["severity"] == "critical"
    assert "log detectors" in proc.stderr and "Triage: CRITICAL" in proc.stderr


def test_format_takes_a_log_format_as_parse_does(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    log = str(EXAMPLES / "logs" / "checkout.log")
    res = runner.invoke(app, _args(tmp_path, log, "-q", "--no-llm", "--format", "app", "--out", str(out)))
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["findings"], "the incident in checkout.log must be found"
    res = runner.invoke(app, _args(tmp_path, log, "-q", "--format", "app", "--log-format", "app"))
    assert res.exit_code == 2, res.output
