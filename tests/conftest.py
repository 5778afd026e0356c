"""Shared pytest fixtures."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"

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
    if not DATASETS.is_dir():
        pytest.skip(f"shared datasets not found at {DATASETS}")
    return DATASETS


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's real data dir from a test."""
    monkeypatch.setenv("ANOMALIST_DATA_DIR", str(tmp_path_factory.mktemp("anomalist-data")))
