"""The project's own set-up: what CI refuses to skip, and the Python it needs."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_missing_dataset_fails_in_ci_and_skips_elsewhere(tmp_path: Path, ci: str) -> None:
    env = {**os.environ, "CI": ci, "ANOMALIST_DATASETS": str(tmp_path / "no-such-datasets")}
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "tests/test_eval_ts.py::test_hdfs_real_count_pca"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    if ci:
        assert p.returncode == 1 and "1 error" in p.stdout and "CI=true" in p.stdout, p.stdout[-2000:]
    else:
        assert p.returncode == 0 and "1 skipped" in p.stdout and "no-such-datasets" in p.stdout, p.stdout[-2000:]


def test_requires_python_is_what_the_code_needs() -> None:
    """3.11 (``tomllib``, ``datetime.UTC``): the metadata says so, and this interpreter satisfies it."""
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    assert declared == ">=3.11"
    assert metadata.metadata("anomalist")["Requires-Python"] == declared
    assert sys.version_info >= (3, 11)
