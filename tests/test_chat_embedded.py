"""The router path end to end with the real embedded LLM (SmolLM2 via llama.cpp) and the real embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
LOGS = REPO / "examples" / "logs"
METRICS = REPO / "examples" / "metrics.csv"

pytestmark = [pytest.mark.llm, pytest.mark.slow]


@pytest.fixture(scope="module")
def agent() -> object:
    from agent.chat.agent import ChatAgent

    settings = load_settings(overrides={"llm": {"backend": "local"}})
    try:
        return ChatAgent.from_settings(settings, logs={"app": [str(LOGS)]}, metrics={"main": str(METRICS)})
    except Exception as exc:  # the embedded model package is part of the install; say so if it is missing
        pytest.fail(f"embedded chat model unavailable: {exc}")


def test_embedded_model_uses_the_router(agent: object) -> None:
    assert agent.supports_tools is False  # type: ignore[attr-defined]
    names = {t.name for t in agent.tools}  # type: ignore[attr-defined]
    assert {"parse_logs", "search_logs", "top_templates", "new_templates", "detect_metric_anomalies",
            "run_triage"} <= names


def test_router_path_answers_with_cited_evidence(agent: object) -> None:
    events = list(agent.stream("which new error messages appeared after 14:00?"))  # type: ignore[attr-defined]
    kinds = [e.type for e in events]
    assert kinds[0] == "conversation" and kinds[-1] == "final"
    calls = [e.data for e in events if e.type == "tool_call"]
    assert [c["name"] for c in calls] == ["new_templates"] and calls[0]["args"]["start"] == "14:00:00"
    result = next(e.data for e in events if e.type == "tool_result")
    assert result["status"] == "ok" and result["id"] == "E1"
    final = events[-1].data
    tokens = "".join(e.data["text"] for e in events if e.type == "token")
    assert tokens == final["answer"] and final["path"] == "router"
    model_text, _, evidence = final["answer"].partition("\n\nEvidence:\n")
    assert model_text.strip(), "the model phrased nothing"
    assert "[E1] new_templates" in evidence and "No space left on device" in evidence
    assert len(final["answer"]) < 6000  # bounded even when a small model loops


def test_ask_cli_json(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.cli.main import app

    result = CliRunner().invoke(app, ["ask", "--json", "--logs", str(LOGS), "--metrics", str(METRICS),
                                      "show me lines containing 'No space left'"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    assert payload["type"] == "final" and payload["evidence"][0]["tool"] == "search_logs"
    assert payload["evidence"][0]["status"] == "ok"


def test_ask_cli_missing_logs_is_input_error(tmp_path: Path) -> None:
    from agent.cli.main import app

    result = CliRunner().invoke(app, ["ask", "--logs", str(tmp_path / "nope.log"), "anything?"])
    assert result.exit_code == 2


def test_chat_repl_streams_and_exits() -> None:
    from agent.cli.main import app

    result = CliRunner().invoke(app, ["chat", "--logs", str(LOGS)],
                                input="which kinds of events are the most common?\nexit\n")
    assert result.exit_code == 0, result.output
    assert "→ top_templates()" in result.output and "[E1] top_templates" in result.output
    assert "Evidence:" in result.output
