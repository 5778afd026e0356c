"""``similar_incidents`` / ``runbook_for_alert`` LangChain tools over a real embedded store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from test_store_helpers import SAMPLE_INCIDENTS, runbook_subset

from anomalist.tools.memory_tools import make_memory_tools
from anomalist.tools.store import Incident, IncidentStore, import_runbooks


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory, datasets: Path) -> dict:
    root = tmp_path_factory.mktemp("memtools")
    store = IncidentStore.open("embedded", path=root / "db", create=True)
    store.upsert_incidents([Incident.model_validate(i) for i in SAMPLE_INCIDENTS])
    long = Incident(id="long-1", title="Very long incident", summary="cache stampede " * 1200)
    store.upsert_incidents([long])
    import_runbooks(runbook_subset(datasets, root / "rb") / "runbooks", store)
    return {t.name: t for t in make_memory_tools(store, max_chars=1500)}


def test_similar_incidents_tool(tools: dict) -> None:
    out = tools["similar_incidents"].invoke({"query": "certificate expired on ingress", "k": 2})
    assert out["status"] == "ok" and out["incidents"][0]["id"] == "inc-00005"
    assert out["incidents"][0]["why"] and isinstance(out["incidents"][0]["score"], float)
    big = tools["similar_incidents"].invoke({"query": "cache stampede", "k": 10})
    assert big["incidents"][0]["id"] == "long-1" and len(big["incidents"][0]["summary"]) <= 400
    assert len(json.dumps(big["incidents"])) <= 1500 + 1000 and big["truncated"] in (True, False)
    none = tools["similar_incidents"].invoke({"query": "anything", "service": "no-such-service"})
    assert none["status"] == "no_data"
    bad = tools["similar_incidents"].invoke({"query": "x", "min_severity": "apocalyptic"})
    assert bad["status"] == "error" and "min_severity" in bad["message"]
    with pytest.raises(ValidationError):
        tools["similar_incidents"].invoke({"query": "x", "k": 50})


def test_runbook_for_alert_tool(tools: dict) -> None:
    out = tools["runbook_for_alert"].invoke({"alert_name": "KubePodCrashLooping"})
    assert out["status"] == "ok" and out["runbooks"][0]["id"] == "kubernetes/KubePodCrashLooping"
    assert out["runbooks"][0]["why"][0] == "exact_name"
    steps = out["runbooks"][0]["sections"]["diagnosis"]["steps"]
    assert steps and all(len(s) <= 240 for s in steps)
    text = tools["runbook_for_alert"].invoke({"description": "alertmanager cannot deliver notifications to slack"})
    assert text["runbooks"][0]["id"].startswith("alertmanager/")
    assert tools["runbook_for_alert"].invoke({})["status"] == "error"
