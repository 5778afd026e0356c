"""Chat answers measured on a question set: are they true, and do they state anything the tools did not find?

Run: ``anomalist eval chat [--data ../shared/datasets/nezha_trainticket] [--backend local|openai --base-url URL
--model M] [--json]``.

The questions are data (``eval/data/chat_questions.jsonl``): each names its scenario (``demo``: the example
scenario under ``examples/`` with its incidents and runbooks in a fresh embedded store; ``nezha:HH:MM``: the pods'
logs and metrics of that fault case, 15 minutes before to 5 after the injection), the facts a correct answer must
contain (ids, service and channel names, as case-insensitive text), clock times it must mention within a tolerance,
and facts it must not contain. Nothing is judged by an LLM.

Per answer and in total:

- **fact recall**: the share of must-facts (texts and times) in the answer, over the questions that have some;
- **unsupported-claim rate**: the facts the answer states (numbers, times, ids, service names; see
  ``agent.chat.compose``) that no tool result of the turn contains, over all facts it states (the tools are re-run
  with the same arguments to get their whole output);
- **must-not violations**, **tool errors** and **seconds per answer**.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = Path(__file__).parent / "data" / "chat_questions.jsonl"
DEFAULT_NEZHA = REPO.parent / "shared" / "datasets" / "nezha_trainticket"
"""Where the CLI looks for the Nezha export when ``--data`` is not given."""


def load_questions(path: Path = QUESTIONS) -> list[dict[str, Any]]:
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{i}: not JSON: {exc}") from exc
    return out


def run(data: Path | None = None, *, backend: str = "local", base_url: str | None = None, model: str | None = None,
        limit: int | None = None, questions: Path = QUESTIONS) -> dict[str, Any]:
    from anomalist.agent.chat.agent import ChatAgent
    from anomalist.agent.settings import load_settings
    from anomalist.tools.store import IncidentStore, import_incidents, import_runbooks

    qs = load_questions(questions)
    if data is None:
        qs = [q for q in qs if q["scenario"] == "demo"]
    if limit:
        qs = qs[:limit]
    work = Path(tempfile.mkdtemp(prefix="anomalist-eval-chat-"))
    llm: dict[str, Any] = {"backend": backend}
    if base_url:
        llm["base_url"] = base_url
    if model:
        llm["model"] = model
    settings = load_settings(overrides={"data_dir": str(work / "data"), "llm": llm})
    store = IncidentStore.open("embedded", path=work / "store", create=True)
    import_runbooks(REPO / "examples" / "runbooks", store)
    import_incidents(REPO / "examples" / "incidents.jsonl", store)
    agents: dict[str, Any] = {}
    chat_model = None
    rows: list[dict[str, Any]] = []
    for q in qs:
        scn = q["scenario"]
        if scn not in agents:
            logs, metrics = _scenario(scn, data, work)
            agents[scn] = ChatAgent.from_settings(settings, logs={"logs": [str(logs)]}, metrics={"metrics": str(metrics)},
                                                  store=store, model=chat_model)
            chat_model = agents[scn].model  # one model for every scenario
        agent = agents[scn]
        t0 = time.perf_counter()
        events = list(agent.stream(q["question"]))
        secs = time.perf_counter() - t0
        rows.append(_score(q, events, agent, secs))
        logger.info("%s: recall %s, unsupported %s (%.1fs)", q["id"], rows[-1]["fact_recall"],
                    rows[-1]["unsupported"], secs)
    skipped = 0 if data is not None else sum(1 for q in load_questions(questions) if q["scenario"] != "demo")
    return {"questions": len(rows), "skipped_without_data": skipped, "backend": backend, "model": model, "rows": rows,
            "total": _totals(rows),
            "by_scenario": {s: _totals([r for r in rows if r["scenario"] == s]) for s in sorted({r["scenario"] for r in rows})}}


def _scenario(scn: str, data: Path | None, work: Path) -> tuple[Path, Path]:
    if scn == "demo":
        return REPO / "examples" / "logs", REPO / "examples" / "metrics.csv"
    if not scn.startswith("nezha:") or data is None:
        raise ValueError(f"unknown scenario {scn!r} (or no --data for it)")
    from anomalist.eval.nezha import NezhaData

    ds = NezhaData.load(data)
    hm = scn.split(":", 1)[1]
    case = next((c for c in ds.cases if c.inject_time.strftime("%H:%M") == hm), None)
    if case is None:
        raise ValueError(f"no case at {hm} in {data}")
    w = ds.write_case(case, work / f"nezha-{hm.replace(':', '')}")
    if w.logs is None or w.metrics is None:
        raise ValueError(f"case {hm}: no logs or metrics written ({w.notes[:3]})")
    return w.logs, w.metrics


def _score(q: dict[str, Any], events: list[Any], agent: Any, secs: float) -> dict[str, Any]:
    from anomalist.agent.chat.compose import _facts

    final = events[-1].data if events else {}
    answer = str(final.get("answer", ""))
    body = answer.partition("\n\nEvidence:\n")[0]
    low = body.lower()
    calls = [e.data for e in events if e.type == "tool_call"]
    results = [e.data for e in events if e.type == "tool_result"]
    found = [f for f in q.get("must", []) if f.lower() in low]
    times_ok = [t for t in q.get("times", []) if _time_within(body, t["time"], float(t.get("tolerance_min", 5)))]
    n_must = len(q.get("must", [])) + len(q.get("times", []))
    violations = [f for f in q.get("must_not", []) if f.lower() in low]
    # What the tools returned, whole (the events carry summaries only): the same calls again.
    tools = {t.name: t for t in agent.tools}
    outputs = []
    for c in calls:
        try:
            outputs.append(tools[c["name"]].invoke(c["args"]))
        except Exception as exc:  # noqa: BLE001 - a failing re-run counts as a tool error, not a crash of the eval
            outputs.append({"status": "error", "summary": str(exc)})
    blob = json.dumps(outputs, default=str).lower()
    facts = [f for line in body.splitlines() for f in _facts(line)]
    unsupported = [f for f in facts if f.lower() not in blob and f.replace(",", "").lower() not in blob]
    return {
        "id": q["id"], "scenario": q["scenario"], "kind": q.get("kind", ""), "question": q["question"],
        "tools": [c["name"] for c in calls], "tool_errors": sum(1 for r in results if r.get("status") == "error"),
        "must": n_must, "found": len(found) + len(times_ok),
        "missing": [f for f in q.get("must", []) if f not in found]
                   + [t["time"] for t in q.get("times", []) if t not in times_ok],
        "fact_recall": round((len(found) + len(times_ok)) / n_must, 3) if n_must else None,
        "facts_stated": len(facts), "unsupported": len(unsupported), "unsupported_examples": unsupported[:5],
        "must_not_violations": violations, "seconds": round(secs, 2), "answer": body[:1500],
    }


def _time_within(text: str, hm: str, tol: float) -> bool:
    want = int(hm[:2]) * 60 + int(hm[3:5])
    return any(abs(int(h) * 60 + int(m) - want) <= tol for h, m in re.findall(r"\b(\d{1,2}):(\d{2})\b", text))


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    with_must = [r for r in rows if r["must"]]
    facts = sum(r["facts_stated"] for r in rows)
    secs = sorted(r["seconds"] for r in rows)
    return {
        "n": len(rows),
        "fact_recall": round(sum(r["found"] for r in with_must) / max(sum(r["must"] for r in with_must), 1), 3),
        "questions_fully_answered": round(sum(r["found"] == r["must"] for r in with_must) / max(len(with_must), 1), 3),
        "unsupported_claim_rate": round(sum(r["unsupported"] for r in rows) / facts, 4) if facts else 0.0,
        "facts_stated": facts,
        "must_not_violations": sum(len(r["must_not_violations"]) for r in rows),
        "tool_errors": sum(r["tool_errors"] for r in rows),
        "seconds_per_answer": round(sum(secs) / len(secs), 2) if secs else None,
        "seconds_per_answer_max": secs[-1] if secs else None,
    }


def render(result: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"anomalist eval chat ({result['backend']}, {result['questions']} questions)")
    for col in ("scenario", "n", "fact recall", "fully answered", "unsupported", "tool errors", "s/answer"):
        table.add_column(col)
    for name, t in [*result["by_scenario"].items(), ("total", result["total"])]:
        table.add_row(name, str(t["n"]), str(t["fact_recall"]), str(t["questions_fully_answered"]),
                      str(t["unsupported_claim_rate"]), str(t["tool_errors"]), str(t["seconds_per_answer"]))
    return table
