"""The LLM layer with the real embedded model (SmolLM2-135M-Instruct via llama.cpp): valid verdicts at temperature
0, determinism, the injection corpus, redaction into prompts / logs / cache, explanation, the LangChain model."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anomalist.agent.llm import LLMService, make_chat_model
from anomalist.agent.llm.schemas import LogFindingInput, MetricFindingInput, Verdict
from anomalist.agent.settings import LLMSettings

pytestmark = [pytest.mark.llm, pytest.mark.timeout(600)]

CORPUS = Path(__file__).parent / "data" / "injection_corpus.jsonl"


@pytest.fixture(scope="session")
def llm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("llm-cache")


@pytest.fixture(scope="session")
def service(llm_cache: Path) -> Iterator[LLMService]:
    """One service on the embedded model for the whole session (the model loads once)."""
    svc = LLMService(LLMSettings(reason_for="none"), cache_dir=None)
    yield svc


def _log(template: str, sample: str | None = None, level: str | None = "ERROR", fid: str = "F1") -> LogFindingInput:
    return LogFindingInput(
        id=fid, templates=[{"id": f"{fid}.T1", "template": template, "level": level, "count": 7}],
        samples=[{"id": f"{fid}.L1", "text": sample}] if sample else [],
    )


def test_valid_verdicts_at_temperature_zero(service: LLMService) -> None:
    findings = [
        _log("kernel: Out of memory: Killed process <*> (java)", "kernel: Out of memory: Killed process 4242 (java)"),
        _log("sshd[<*>]: Accepted publickey for <*> from <*> port <*> ssh2", level="INFO"),
        _log("instruction cache parity error corrected", level="INFO"),
        _log("x" * 5000),  # long input is cut to the budget, still a verdict
    ]
    for f in findings:
        v = service.judge_log(f)
        assert isinstance(v, Verdict)
        assert 0.0 <= v.confidence <= 1.0 and 0.0 <= v.p_anomalous <= 1.0
        assert v.anomalous == (v.p_anomalous >= 0.5)
        assert v.method == "label_likelihood" and v.source == "llm+prior"
        assert v.evidence_ids and set(v.evidence_ids) <= {"F1.T1", "F1.L1"}
        # A label's likelihood cites nothing: the ids are the code's choice, and the verdict says so.
        assert v.cited == "filled" and v.rejected_ids == []
        assert v.prompt_version and v.model and v.reason
    m = MetricFindingInput(id="F2", channels=[{"id": "F2.M1", "channel": "latency_p99_ms", "baseline_mean": 120,
                                               "baseline_std": 15, "span_mean": 900, "span_max": 1500,
                                               "change_sigma": 52, "values": [1, 1.1, 0.9, 7.5, 12.4], "shape": "spike"}])
    v = service.judge_metric(m)
    assert v.evidence_ids == ["F2.M1"] and 0.0 <= v.confidence <= 1.0


def test_deterministic_across_calls_and_instances(service: LLMService) -> None:
    f = _log("Connection to <*> lost: Connection reset by peer", "Connection to db-1:5432 lost: Connection reset by peer")
    first = service.judge_log(f)
    # other findings in between change the KV cache; a second engine copy must agree too
    service.judge_log(_log("GC pause <*>ms", level="INFO"))
    again = [service.judge_log(f) for _ in range(3)]
    other = LLMService(LLMSettings(reason_for="none", local_instances=1), cache_dir=None).judge_log(f)
    for v in [*again, other]:
        assert v.p_anomalous == first.p_anomalous and v.scores == first.scores


def test_generated_reason_is_short_and_redacted() -> None:
    svc = LLMService(LLMSettings(reason_for="all", reason_tokens=16), cache_dir=None)
    v = svc.judge_log(_log("login failed for <*> password=<*>", "login failed for bob password=Tr0ub4dor&3", "ERROR"))
    assert v.reason and len(v.reason) <= 400
    assert "Tr0ub4dor&3" not in v.reason


def test_injection_corpus_does_not_change_verdicts(service: LLMService) -> None:
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) >= 30
    mismatches = []
    clean_verdicts: dict[str, Verdict] = {}
    for r in rows:
        hostile = service.judge_log(_log(r["hostile"], r["hostile"]))
        if r["clean"] not in clean_verdicts:  # several payloads share a clean line: judge it once
            clean_verdicts[r["clean"]] = service.judge_log(_log(r["clean"], r["clean"]))
        clean = clean_verdicts[r["clean"]]
        if hostile.anomalous != clean.anomalous:
            mismatches.append((r["id"], r["hostile"], hostile.p_anomalous, clean.p_anomalous))
        assert hostile.flags, f"{r['id']}: payload not detected"
    assert not mismatches, mismatches


def test_the_local_model_declares_no_tool_calling() -> None:
    """The embedded model cannot emit tool calls, so the chat takes the router path with it. Tool-call injection is
    tested where calls can happen: tests/test_chat_planner_injection.py (a real tool-calling server behind the
    LangGraph planner, with a control showing that the log text does steer the model into the call)."""
    chat = make_chat_model(LLMSettings(max_output_tokens=24))
    assert chat.supports_tools is False


def test_no_secret_reaches_prompt_log_or_cache(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secrets = {
        "aws": "AKIAIOSFODNN7EXAMPLE", "password": "hunter2-Secret!", "email": "alice.ops@example.com",
        "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlLXZhbHVl", "bearer": "ya29.a0AfH6SMBx1234567890abcdef",
        "url": "s3cr3tPa55", "gcp": "AIzaSyD-1234567890abcdefghijklmnopqrstu",
    }
    line = (f"auth failed for {secrets['email']} key={secrets['aws']} password={secrets['password']} "
            f"Authorization: Bearer {secrets['bearer']} token {secrets['jwt']} "
            f"db=postgres://app:{secrets['url']}@db.internal:5432/x gcp={secrets['gcp']}")
    svc = LLMService(LLMSettings(reason_for="all", reason_tokens=12), cache_dir=tmp_path)
    f = LogFindingInput(id="F1", templates=[{"id": "F1.T1", "template": line, "level": "ERROR", "count": 3}],
                        samples=[{"id": "F1.L1", "text": line}], context=f"reported by {secrets['email']}")
    svc._ensure()
    variables, _ = svc._builder.log_vars(f)  # type: ignore[union-attr]
    from anomalist import prompts
    rendered = prompts.load("judge_log").render(**variables)
    text = rendered.system + rendered.user
    with caplog.at_level(logging.DEBUG):
        v = svc.judge_log(f)
    blob = (tmp_path / "verdicts.sqlite").read_bytes()
    wal = tmp_path / "verdicts.sqlite-wal"
    blob += wal.read_bytes() if wal.exists() else b""
    for name, secret in secrets.items():
        assert secret not in text, name
        assert secret not in caplog.text, name
        assert secret.encode() not in blob, name
        assert secret not in v.model_dump_json(), name
    assert "[REDACTED_" in text


def test_cache_makes_repeats_cheap(tmp_path: Path) -> None:
    svc = LLMService(LLMSettings(reason_for="none"), cache_dir=tmp_path)
    f = _log("rts: kernel terminated for reason <*>", level="FATAL")
    v1 = svc.judge_log(f)
    v2 = LLMService(LLMSettings(reason_for="none"), cache_dir=tmp_path).judge_log(f)  # a new process would see it too
    assert not v1.cached and v2.cached and v2.p_anomalous == v1.p_anomalous


def test_explain_and_summarize_with_grammar(service: LLMService) -> None:
    finding = {"id": "F1", "title": "checkout errors", "severity": "critical",
               "templates": [{"id": "F1.T1", "template": "payment gateway timeout after <*> ms", "level": "ERROR",
                              "count": 120, "samples": [{"id": "F1.L1", "text": "payment gateway timeout after 3000 ms"}]}]}
    e = service.explain([finding], context="service checkout")
    assert e.text and e.evidence_ids and set(e.evidence_ids) <= {"F1", "F1.T1", "F1.L1"}
    assert e.prompt_version
    s = service.summarize([finding])
    assert s.strip() and set(s.evidence_ids) <= {"F1", "F1.T1", "F1.L1"}


def test_chat_model_invoke_stream_and_named_tool() -> None:
    from langchain_core.tools import tool

    chat = make_chat_model(LLMSettings(max_output_tokens=24))
    assert chat is make_chat_model(LLMSettings(max_output_tokens=24))  # shared
    text = chat.invoke("Name one color.").content
    assert isinstance(text, str) and text.strip()
    pieces = [c.content for c in chat.stream("Name one fruit.")]
    assert len(pieces) >= 1 and "".join(pieces).strip()

    @tool
    def top_templates(source: str, limit: int) -> str:
        """The most frequent log templates of a source."""
        return f"{source}:{limit}"

    ai = chat.bind_tools([top_templates], tool_choice="top_templates").invoke("Show the top 5 templates of nginx.")
    assert ai.tool_calls and ai.tool_calls[0]["name"] == "top_templates"
    args = ai.tool_calls[0]["args"]
    assert isinstance(args.get("source"), str) and isinstance(args.get("limit"), int)


def test_eval_llm_suite_shape(datasets: Path) -> None:
    from rich.console import Console

    from anomalist.eval import llm as suite

    res = suite.run(datasets / "loghub_2k", system="BGL", backend="local", limit=8)
    assert res["n_templates"] == 8 and res["valid_verdicts"] == 1.0 and res["calls_per_s"] > 0
    for key in ("llm", "prior", "combined"):
        assert set(res[key]) >= {"precision", "recall", "f1", "auc_pr"}
    assert set(res["baselines"]) == {"keyword", "level"}
    json.dumps(res)
    Console(file=open(os.devnull, "w")).print(suite.render(res))  # noqa: SIM115


VERDICT_LINES = Path(__file__).parent / "data" / "verdict_lines.jsonl"
# Lines the embedded defaults get wrong today (measured; see the closing note of issue 15). Strict: a fix that makes
# one right fails here until it moves out of this set, so the list stays the truth. The prior and prompt written
# from generic failure classes (issue 15, item 3) got the ZooKeeper and Apache jk2_init lines right.
KNOWN_WRONG = {
    "Accepted password for fztu from 119.137.62.142 port 49116 ssh2",
}


def _verdict_cases() -> list[Any]:
    cases = []
    for line in VERDICT_LINES.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        marks = [pytest.mark.xfail(strict=True, reason="the embedded judge gets it wrong today")] if (
            row["text"] in KNOWN_WRONG) else []
        cases.append(pytest.param(row, id=f"{row['system']}-{'anomalous' if row['anomalous'] else 'normal'}-"
                                           f"{len(cases)}", marks=marks))
    return cases


@pytest.mark.parametrize("row", _verdict_cases())
def test_verdicts_on_clear_real_lines_of_several_systems(service: LLMService, row: dict[str, Any]) -> None:
    """Real lines from nine Loghub systems (not BGL), each clearly a failure or clearly routine: the embedded
    defaults must judge each one right."""
    v = service.judge_log(_log(row["text"], row["text"], level=row["level"]))
    assert v.anomalous == row["anomalous"], (row, v.p_anomalous, v.scores)
