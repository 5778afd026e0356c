"""The deterministic router: rules plus similarity with the real offline embedder, and argument filling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import BaseTool

from anomalist.agent.chat.router import ToolRouter, extract_search_terms, extract_time_range
from anomalist.tools.log_tools import LogWorkspace, make_log_tools
from anomalist.tools.metric_tools import make_metric_tools

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def router() -> ToolRouter:
    from anomalist.tools.embeddings import get_embedder

    return ToolRouter(embedder=get_embedder(device="cpu"))


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> list[BaseTool]:
    from anomalist.tools.memory_tools import make_memory_tools
    from anomalist.tools.store import IncidentStore

    ws = LogWorkspace(sources={"app": [str(REPO / "examples" / "logs")]},
                      metrics={"main": str(REPO / "examples" / "metrics.csv")})
    store = IncidentStore.open("embedded", path=tmp_path_factory.mktemp("store"), create=True)
    return make_log_tools(ws) + make_metric_tools(ws) + make_memory_tools(store)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("why did checkout latency jump at 14:05, and have we seen this before?",
         [("detect_metric_anomalies", {"start": "13:50:00", "end": "14:20:00"}),
          ("similar_incidents", {"query": "why did checkout latency jump at 14:05, and have we seen this before?"})]),
        ("which new error messages appeared after 14:00?", [("new_templates", {"start": "14:00:00"})]),
        ("show me lines containing 'connection refused'", [("search_logs", {"terms": ["connection refused"]})]),
        ("what should we do about KubePodCrashLooping?",
         [("runbook_for_alert", {"alert_name": "KubePodCrashLooping",
                                 "description": "what should we do about KubePodCrashLooping?"})]),
        ("which kinds of events are the most common?", [("top_templates", {})]),
        ("how many lines did we get and in which format?", [("parse_logs", {})]),
        ("what do the logs say about payments?", [("search_logs", {"terms": ["payments"]})]),
        ("tell me a joke about cats", []),
    ],
)
def test_router_plans(router: ToolRouter, tools: list[BaseTool], question: str,
                      expected: list[tuple[str, dict[str, Any]]]) -> None:
    plan = router.plan(question, tools)
    assert [(c["name"], c["args"]) for c in plan] == expected
    assert router.plan(question, tools) == plan  # deterministic


def test_similarity_ranks_the_right_tool_without_keywords(router: ToolRouter, tools: list[BaseTool]) -> None:
    sims = router.similarities("message types that showed up for the first time", tools)
    assert max(sims, key=lambda k: sims[k]) == "new_templates"


def test_extractors() -> None:
    assert extract_time_range("between 13:50 and 14:20?").start == "13:50:00"
    assert extract_time_range("errors in the last 30 minutes") == extract_time_range("past 30 min")
    assert extract_time_range("anything before 09:00").end == "09:00:00"
    assert extract_time_range("at 00:05").start == "00:00:00"  # clamped to the same day
    assert extract_search_terms("any timeout errors in checkout.api at 14:05?") == ["timeout", "checkout.api"]
