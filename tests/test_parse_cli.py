"""``anomalist parse`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from anomalist.agent.cli.main import app

LINES = "".join(
    f"2026-11-02 14:{m:02d}:0{s},123 {lvl} checkout.db: query {m * 7 + s} took {s * 3} ms\n"
    for m in range(10) for s, lvl in enumerate(["INFO", "INFO", "WARN"])
) + "2026-11-02 14:10:00,000 ERROR checkout.api: request failed\nTraceback (most recent call last):\n  boom\n"


@pytest.fixture()
def logdir(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    (d / "checkout.log").write_text(LINES)
    return d


def test_parse_prints_summary(logdir: Path) -> None:
    res = CliRunner().invoke(app, ["parse", str(logdir)])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "format: app (detected" in out
    for label in ("lines read", "continuation lines", "unparsed", "truncated", "templates", "Top 2 templates"):
        assert label in out
    assert "query <*> took <*> ms" in out and "request failed" in out


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_parse_writes_events(logdir: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"events{suffix}"
    res = CliRunner().invoke(app, ["parse", str(logdir), "--format", "app", "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert len(df) == 31
    for col in ("line_no", "timestamp", "level", "component", "template_id", "template", "params", "content"):
        assert col in df.columns
    assert df["n_lines"].iloc[-1] == 3


def test_parse_state_keeps_ids(logdir: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    outs = []
    for k in range(2):
        out = tmp_path / f"e{k}.csv"
        res = CliRunner().invoke(app, ["parse", str(logdir), "--state", str(state), "--out", str(out)])
        assert res.exit_code == 0, res.output
        outs.append(pd.read_csv(out)["template_id"].tolist())
    assert outs[0] == outs[1] and state.is_file()


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        (["--format", "bogus"], LINES, "unknown log format"),
        ([], "", "empty input"),
        ([], None, "no such file"),
    ],
)
def test_parse_bad_input_exits_2(tmp_path: Path, args: list[str], content: str | None, message: str) -> None:
    path = tmp_path / "x.log"
    if content is not None:
        path.write_text(content)
    res = CliRunner().invoke(app, ["parse", str(path), *args])
    assert res.exit_code == 2
    assert message in res.output


def test_parse_reports_skipped_binary_file(logdir: Path) -> None:
    (logdir / "image.bin").write_bytes(b"\x00\x01\x02" * 1000)
    res = CliRunner().invoke(app, ["parse", str(logdir)])
    assert res.exit_code == 0, res.output
    assert "skipped" in res.output and "binary" in res.output


def test_parse_stdin_via_console_script(logdir: Path) -> None:
    exe = Path(sys.executable).parent / "anomalist"
    proc = subprocess.run([str(exe), "parse", "-", "--format", "app", "--top", "1"], input=LINES.encode(),
                          capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Top 1 templates" in proc.stdout and b"lines read" in proc.stdout


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_parse_out_of_mixed_formats_keeps_header_fields(tmp_path: Path, suffix: str) -> None:
    d = tmp_path / "mixed"
    d.mkdir()
    (d / "a.log").write_text(LINES)
    (d / "b.log").write_text("081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block "
                             "blk_38865049064139660 terminating\n")
    out = tmp_path / f"events{suffix}"
    res = CliRunner().invoke(app, ["parse", str(d), "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert len(df) == 32
    last = df.iloc[-1]
    assert json.loads(last["fields"]) == {"date": "081109", "time": "203615", "pid": "148"}
    assert last["params"].split("\t") == ["1", "blk_38865049064139660"]
