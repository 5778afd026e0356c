from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from anomalist.agent.settings import load_settings


def test_precedence_file_env_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "a.yaml"
    cfg.write_text("llm:\n  backend: openai\n  timeout_s: 5\ntriage:\n  top_k: 7\n")
    s = load_settings(cfg)
    assert (s.llm.backend, s.llm.timeout_s, s.triage.top_k) == ("openai", 5, 7)
    monkeypatch.setenv("ANOMALIST_LLM__TIMEOUT_S", "9")
    s = load_settings(cfg)
    assert s.llm.timeout_s == 9 and s.llm.backend == "openai"  # env beats file, file kept for the rest
    s = load_settings(cfg, {"llm": {"timeout_s": 11, "model": None}})
    assert s.llm.timeout_s == 11 and s.llm.backend == "openai" and s.triage.top_k == 7


def test_toml_and_typos_are_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text('[llm]\nbackend = "none"\n')
    assert load_settings(cfg).llm.backend == "none"
    bad = tmp_path / "b.yaml"
    bad.write_text("llm:\n  bakend: openai\n")
    with pytest.raises(ValidationError):
        load_settings(bad)
    with pytest.raises(ValueError, match="not found"):
        load_settings(tmp_path / "missing.yaml")
