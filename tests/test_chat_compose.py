"""Chat answers state only what the tools found: composed answers, and grounding of model-written ones."""

from __future__ import annotations

import json

from anomalist.agent.chat.compose import _facts, compose_answer, ground_answer
from anomalist.agent.chat.graph import evidence_terms

METRICS = {"tool": "detect_metric_anomalies", "status": "ok",
           "summary": "2 channels shifted between 2026-11-02 11:30:00 and 2026-11-02 15:29:00",
           "channel_shifts": [
               {"channel": "checkout_error_rate", "start": "2026-11-02T13:54:00", "end": "2026-11-02T14:38:00",
                "change_sd": 199.0, "before_mean": 0.002, "during_mean": 0.1709, "during_max": 0.2961},
               {"channel": "db_disk_used_pct", "start": "2026-11-02T11:40:00", "end": "2026-11-02T14:38:00",
                "change_sd": 520.0, "before_mean": 61.042, "during_mean": 73.73, "during_max": 100.0}]}
INCIDENTS = {"tool": "similar_incidents", "status": "ok", "summary": "1 similar incident",
             "incidents": [{"id": "INC-2026-0814", "title": "Checkout database volume full", "score": 0.821,
                            "severity": "critical", "root_cause": "WAL archiving failed"}]}


def test_composed_answer_cites_every_fact_and_states_nothing_else() -> None:
    text = compose_answer([("E1", METRICS), ("E2", INCIDENTS)], "why did checkout latency jump?")
    assert "checkout_error_rate moved +199 SD from 13:54 to 14:38" in text and "INC-2026-0814" in text
    blob = json.dumps([METRICS, INCIDENTS]).lower()
    for line in text.splitlines()[1:]:
        if not line.strip():
            continue
        assert "[E1]" in line or "[E2]" in line, line
        for fact in _facts(line.replace("[E1]", "").replace("[E2]", "")):
            # numbers are rounded for reading: compare on their leading digits
            assert fact.lower() in blob or fact.replace(",", "")[:4] in blob, (fact, line)
    assert "could not answer" in compose_answer([("E1", {"tool": "search_logs", "status": "error",
                                                          "summary": "no logs"})])
    assert "No tool matched" in compose_answer([])


def test_grounding_drops_sentences_whose_facts_no_cited_result_contains() -> None:
    evidence = {"E1": json.dumps(METRICS), "E2": json.dumps(INCIDENTS)}
    text = ("The error rate jumped at 13:54 [E1]. It matches INC-2026-0814 [E2]. "
            "The outage began at 03:17 and cost 4,200 dollars [E1]. Revenue fell by 37% overall. "
            "The payments-gateway service failed first [E2]. Look at the disk next.")
    out, dropped = ground_answer(text, evidence)
    assert dropped == 3
    assert "13:54 [E1]" in out and "INC-2026-0814 [E2]" in out and "Look at the disk next." in out
    assert "03:17" not in out and "4,200" not in out and "37%" not in out and "payments-gateway" not in out
    assert "3 sentences stating facts" in out
    # A fact cited from the wrong result is not supported either.
    out2, dropped2 = ground_answer("INC-2026-0814 is the match [E1].", evidence)
    assert dropped2 == 1 and "INC-2026-0814 is the match" not in out2


def test_memory_searches_use_what_the_turn_found() -> None:
    terms = evidence_terms([METRICS, {"tool": "new_templates", "status": "ok",
                                      "templates": [{"template": "No space left on device <*>", "count": 9}]}])
    assert terms[:2] == ["checkout error rate", "db disk used pct"] and "No space left on device" in terms
