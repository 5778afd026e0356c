"""``anomalist detect`` end to end, and the metrics CSV reader's handling of bad input."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomalist.tools.errors import InputError
from anomalist.tools.metrics_io import read_metrics

REPO = Path(__file__).resolve().parents[1]


def _metrics_csv(path: Path, n: int = 200, spike_at: int = 150) -> Path:
    rng = np.random.default_rng(0)
    t = pd.date_range("2026-01-01", periods=n, freq="min")
    lat = 100 + 5 * rng.normal(size=n)
    err = 0.01 + 0.002 * rng.normal(size=n)
    lat[spike_at : spike_at + 5] += 400
    pd.DataFrame({"timestamp": t, "latency_ms": lat, "error_rate": err, "cpu": 40 + rng.normal(size=n)}).to_csv(path, index=False)
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}  # rich wraps table cells at 80 columns otherwise
    return subprocess.run([sys.executable, "-m", "anomalist.agent.cli.main", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300, check=False, env=env)


def test_detect_end_to_end(tmp_path: Path) -> None:
    csv = _metrics_csv(tmp_path / "m.csv")
    out = tmp_path / "scores.csv"
    proc = _cli("detect", str(csv), "--detector", "auto", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "1 anomalous span" in proc.stdout
    assert "│ latency_ms (" in proc.stdout  # the top channel of the span
    scores = pd.read_csv(out)
    assert list(scores.columns) == ["timestamp", "score", "anomalous"] and len(scores) == 200
    assert scores["anomalous"].iloc[150:155].any() and not scores["anomalous"].iloc[:100].any()


def test_detect_with_train_and_bad_inputs(tmp_path: Path) -> None:
    train = _metrics_csv(tmp_path / "train.csv", spike_at=0)
    test = _metrics_csv(tmp_path / "test.csv", n=120, spike_at=60)
    proc = _cli("detect", str(test), "--detector", "pca", "--train", str(train))
    assert proc.returncode == 0, proc.stderr
    bad = _cli("detect", str(test), "--detector", "nope")
    assert bad.returncode == 2 and "unknown time-series detector" in bad.stderr
    missing = _cli("detect", str(tmp_path / "none.csv"))
    assert missing.returncode == 2 and "not found" in missing.stderr
    short = tmp_path / "short.csv"
    short.write_text("timestamp,v\n2026-01-01 00:00,1\n2026-01-01 00:01,2\n")
    too_short = _cli("detect", str(short), "--detector", "pca")
    assert too_short.returncode == 2 and "at least 10 rows" in too_short.stderr
    other = tmp_path / "other.csv"
    pd.read_csv(test).rename(columns={"cpu": "mem"}).to_csv(other, index=False)
    mismatch = _cli("detect", str(other), "--detector", "pca", "--train", str(train))
    assert mismatch.returncode == 2 and "columns differ" in mismatch.stderr


def test_read_metrics_reports_every_bad_cell(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv.gz"
    text = (
        "time,a,b,host,empty,flat\n"
        "2026-01-01 00:02,1,inf,x,,5\n"
        "2026-01-01 00:00,2,3,y,,5\n"
        "not a time,3,4,z,,5\n"
        "2026-01-01 00:01,oops,5,w,,5\n"
        "2026-01-01 00:01,4,6,v,,5\n"
        "2026-01-01 00:03,,7,u,,5\n"
    )
    p.write_bytes(gzip.compress(text.encode()))
    df, rep = read_metrics(p)
    assert rep.time_column == "time" and rep.rows_read == 6
    assert rep.dropped_rows == {"unparseable timestamp": 1}
    assert rep.dropped_columns["host"].startswith("not numeric") and rep.dropped_columns["empty"] == "no value at all"
    assert rep.masked_cells == {"a": {"missing": 1, "non_numeric": 1}, "b": {"inf": 1}}
    assert rep.merged_duplicate_rows == 1 and rep.reordered_rows > 0
    assert rep.constant_channels == ["flat"]
    assert list(df.columns) == ["a", "b", "flat"] and df.index.is_monotonic_increasing and df.index.is_unique
    assert len(df) == rep.rows_kept == 4
    assert df.loc["2026-01-01 00:01", "a"] == 4.0  # mean of NaN (masked) and 4
    assert np.isnan(df.loc["2026-01-01 00:02", "b"])  # inf is masked, not filled


def test_read_metrics_without_time_column_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "notime.csv"
    p.write_text("a,b\n1,2\n3,4\n")
    df, rep = read_metrics(p)
    assert rep.time_column is None and isinstance(df.index, pd.RangeIndex)
    with pytest.raises(InputError, match="no time column"):
        read_metrics(p, require_time=True)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="empty"):
        read_metrics(tmp_path / "empty.csv")
    (tmp_path / "text.csv").write_text("timestamp,name\n2026-01-01,a\n2026-01-02,b\n")
    with pytest.raises(InputError, match="no numeric channel"):
        read_metrics(tmp_path / "text.csv")
