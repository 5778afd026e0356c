"""``anomalist eval chat``: the question set is data, scored mechanically (runs the demo questions end to end)."""

from __future__ import annotations

import pytest

from anomalist.eval.chat import QUESTIONS, _time_within, load_questions

pytestmark = [pytest.mark.llm, pytest.mark.slow]


def test_question_set_is_data_with_mechanical_facts() -> None:
    qs = load_questions(QUESTIONS)
    assert len(qs) >= 40 and len({q["id"] for q in qs}) == len(qs)
    assert {q["scenario"].split(":")[0] for q in qs} == {"demo", "nezha"}
    assert all(isinstance(q["must"], list) and isinstance(q["must_not"], list) for q in qs)
    assert _time_within("from 13:53 to 14:38", "14:05", 15) and not _time_within("at 12:40", "14:05", 15)


def test_demo_questions_are_answered_from_the_evidence() -> None:
    from anomalist.eval.chat import run

    result = run(None, limit=6)
    total = result["total"]
    assert result["questions"] == 6 and total["tool_errors"] == 0
    assert total["unsupported_claim_rate"] == 0.0 and total["facts_stated"] > 20
    first = result["rows"][0]
    assert first["fact_recall"] == 1.0, first  # the checkout jumps, the disk, INC-2026-0814, a time near 14:05
