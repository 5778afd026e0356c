"""Shared pytest fixtures."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("ANOMALIST_DATASETS") or REPO.parent / "shared" / "datasets")
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(ok: bool, what: str) -> None:
    """A prerequisite a test needs (a dataset, a binary, an extra): skipped with ``what`` on a developer machine, a
    failure in CI (``CI=true``), where ``.ci/run`` provides it and its absence is a broken set-up, not a pass."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"{what} (CI=true: a missing prerequisite fails the run)", pytrace=False)
    pytest.skip(what)

# Nothing may be downloaded at run time: make any hub access fail fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
# Files derived from packaged models (int8 ONNX embedder, F16 GGUF) are built once per test session, never in the
# user's cache (subprocesses inherit this).
if "ANOMALIST_CACHE_DIR" not in os.environ:
    _CACHE = os.environ["ANOMALIST_CACHE_DIR"] = tempfile.mkdtemp(prefix="anomalist-test-cache-")

    def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
        import shutil

        shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def datasets() -> Path:
    """``../shared/datasets`` beside the checkout (CI has it)."""
    require(DATASETS.is_dir(), f"shared datasets not found at {DATASETS}")
    return DATASETS


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's real data dir from a test."""
    monkeypatch.setenv("ANOMALIST_DATA_DIR", str(tmp_path_factory.mktemp("anomalist-data")))
