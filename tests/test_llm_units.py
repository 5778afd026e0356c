"""Unit tests of the LLM layer's parts that need no model: breaker, retries, cache, JSON parsing, settings,
plus the semantic prior with the real offline embedder."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from anomalist.agent.llm.backends import parse_json_object
from anomalist.agent.llm.cache import VerdictCache, cache_key
from anomalist.agent.llm.errors import LLMError, LLMOutputError, LLMTimeout, LLMUnavailable
from anomalist.agent.llm.resilience import CircuitBreaker, Resilience


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_breaker_opens_half_opens_and_closes() -> None:
    clock = _Clock()
    b = CircuitBreaker(failure_threshold=2, reset_after_s=10, clock=clock)
    b.record_failure()
    assert b.state == "closed"
    b.record_failure()
    assert b.state == "open"
    with pytest.raises(LLMUnavailable, match="circuit breaker open"):
        b.before_call()
    clock.t = 11
    assert b.state == "half_open"
    b.before_call()  # the one trial call
    with pytest.raises(LLMUnavailable):
        b.before_call()  # others wait while the trial runs
    b.record_failure()
    assert b.state == "open"  # trial failed: open again
    clock.t = 22
    b.before_call()
    b.record_success()
    assert b.state == "closed"


def test_retries_with_backoff_then_typed_error() -> None:
    attempts: list[float] = []

    def flaky() -> str:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise LLMTimeout("slow")
        return "ok"

    r = Resilience(max_retries=2, backoff_s=0.01)
    assert r.call(flaky) == "ok" and len(attempts) == 3

    def dead() -> str:
        raise LLMUnavailable("down")

    r2 = Resilience(max_retries=1, backoff_s=0.01, breaker=CircuitBreaker(failure_threshold=2, reset_after_s=60))
    for _ in range(2):
        with pytest.raises(LLMUnavailable, match="down"):
            r2.call(dead)
    t0 = time.monotonic()
    with pytest.raises(LLMUnavailable, match="circuit breaker"):
        r2.call(dead)
    assert time.monotonic() - t0 < 0.05


def test_output_errors_are_not_retried_and_do_not_open_the_breaker() -> None:
    n = {"calls": 0}

    def bad() -> str:
        n["calls"] += 1
        raise LLMOutputError("garbage")

    r = Resilience(max_retries=3, backoff_s=0.01, breaker=CircuitBreaker(failure_threshold=1))
    for _ in range(3):
        with pytest.raises(LLMOutputError):
            r.call(bad)
    assert n["calls"] == 3 and r.breaker.state == "closed"
    assert issubclass(LLMOutputError, LLMError) and issubclass(LLMTimeout, LLMError)


def test_concurrency_limit() -> None:
    r = Resilience(concurrency=2)
    live, peak = [0], [0]
    lock = threading.Lock()

    def work() -> None:
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.05)
        with lock:
            live[0] -= 1

    threads = [threading.Thread(target=r.call, args=(work,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2
    with pytest.raises(LLMTimeout, match="no free LLM slot"):
        r2 = Resilience(concurrency=1)
        started = threading.Event()

        def hold() -> None:
            started.set()
            time.sleep(0.3)

        th = threading.Thread(target=r2.call, args=(hold,))
        th.start()
        started.wait()
        try:
            r2.call(lambda: None, slot_timeout_s=0.05)
        finally:
            th.join()


def test_cache_round_trip_bound_and_corruption(tmp_path: Path) -> None:
    c = VerdictCache(tmp_path, max_entries=100)
    k = cache_key("m", "v1", "label", {"templates": ["x"]})
    assert k == cache_key("m", "v1", "label", {"templates": ["x"]}) != cache_key("m", "v2", "label", {"templates": ["x"]})
    assert c.get(k) is None
    c.put(k, {"anomalous": True})
    assert c.get(k) == {"anomalous": True} and c.hits == 1 and c.misses == 1
    for i in range(600):
        c.put(cache_key("m", "v", "l", i), {"i": i})
    assert len(c) <= 101 + 500  # evicted at the 500th write down to max_entries, then grows again
    c._db().execute("UPDATE verdicts SET value = '{broken' WHERE key = ?", (k,))
    assert c.get(k) is None  # corrupt row = miss, never an exception
    c.close()


def test_parse_json_object() -> None:
    assert parse_json_object('Sure! ```json\n{"a": {"b": 1}, "c": "}"}\n```') == {"a": {"b": 1}, "c": "}"}
    for bad in ("no json here", "[1, 2]", '{"a": '):
        with pytest.raises(LLMOutputError):
            parse_json_object(bad)


def test_settings_fields_and_validation() -> None:
    from pydantic import ValidationError

    from anomalist.agent.settings import LLMSettings

    s = LLMSettings()
    assert s.backend == "local" and s.prior_weight is None and s.judge_mode == "auto"
    with pytest.raises(ValidationError):
        LLMSettings(prior_weight=1.5)
    with pytest.raises(ValidationError):
        LLMSettings(no_such_field=1)  # type: ignore[call-arg]


def test_backend_none_is_unavailable() -> None:
    from anomalist.agent.llm import LLMService, make_chat_model
    from anomalist.agent.settings import LLMSettings

    s = LLMSettings(backend="none")
    with pytest.raises(LLMUnavailable):
        make_chat_model(s)
    with pytest.raises(LLMUnavailable):
        LLMService(s).judge_log({"templates": [{"id": "T1", "template": "x"}]})


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    from anomalist.agent.llm import LLMService
    from anomalist.agent.settings import LLMSettings

    with pytest.raises(LLMUnavailable, match="not found"):
        LLMService(LLMSettings(model_path=tmp_path / "nope.gguf")).judge_log({"templates": [{"id": "T1", "template": "x"}]})


def test_semantic_prior_orders_failure_above_routine() -> None:
    from anomalist.agent.llm.prior import SemanticPrior, combine

    prior = SemanticPrior()
    failure = ["kernel panic - not syncing: fatal exception", "Connection reset by peer while reading from upstream",
               "mount of /data failed: input/output error"]
    # No "corrected error" here: calling a corrected error routine is one data set's convention (BGL's), not general.
    routine = ["user bob logged in", "GC pause 12ms", "served GET /index.html in 3 ms"]
    s = prior.score(failure + routine)
    assert s.shape == (6,) and np.all((s >= 0) & (s <= 1))
    assert s[:3].min() > 0.5 and s[:3].mean() > s[3:].mean() + 0.3
    assert (s[3:] < 0.5).sum() >= 2  # "GC pause" scores high: the prior is a rough signal, not a judge
    assert prior.categories(["Connection reset by peer"])[0] == "network"
    assert prior.score([]).shape == (0,)
    with pytest.raises(TypeError):
        prior.score("a single string")  # type: ignore[arg-type]
    assert float(combine(0.2, 1.0, 0.8)) == pytest.approx(0.84)
    with pytest.raises(ValueError):
        combine(0.5, 0.5, 2.0)


def test_report_findings_adapt_to_llm_inputs() -> None:
    from anomalist.agent.llm.inputs import as_log_input, as_metric_input
    from anomalist.agent.report import Finding

    f = Finding.model_validate({
        "id": "F1", "rank": 1, "title": "db errors", "start": "2026-01-01T00:00:00", "end": "2026-01-01T00:05:00",
        "severity": "critical", "scores": {"total": 0.9, "strength": 0.9, "severity": 0.8, "novelty": 0.5},
        "explanation": {"text": "x", "evidence_ids": ["F1"]}, "services": ["checkout"],
        "templates": [{"id": "F1.T1", "template_id": "t1", "template": "Connection to <*> lost", "level": "ERROR",
                       "components": ["db"], "count": 40,
                       "samples": [{"id": "F1.L1", "text": "Connection to db-1 lost"}]}],
        "metrics": [{"id": "F1.M1", "channel": "latency", "drove": True, "baseline_mean": 1.0, "baseline_std": 0.1,
                     "span_mean": 3.0, "change": 20.0}],
    })
    log = as_log_input(f)
    assert log.templates[0].id == "F1.T1" and log.templates[0].component == "db"
    assert log.samples[0].id == "F1.L1" and log.context == "services: checkout"
    met = as_metric_input(f)
    assert met.channels[0].change_sigma == 20.0 and met.channels[0].shape == "rise of 20.0 sd (extreme)"
    with pytest.raises(ValueError):
        as_log_input({"id": "F2", "templates": []})


def test_cite_keeps_given_ids_marks_filled_ones_and_rejects_invented_ones() -> None:
    from anomalist.agent.llm.schemas import cite

    assert cite(["F1.T1", "F9.T9", "F1.T1"], ["F1", "F1.T1"], ["F1"]) == (["F1.T1"], "model", ["F9.T9"])
    assert cite(["F9.T9"], ["F1", "F1.T1"], ["F1"]) == (["F1"], "filled", ["F9.T9"])
    assert cite([], ["F1"], ["F1"]) == (["F1"], "filled", [])


class _ScriptedEngine:
    """Stands in for the in-process model's chat call only; what is under test is the code around it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def chat(self, messages: list[dict[str, str]], **kw: object) -> dict[str, object]:
        return {"choices": [{"message": {"content": self.text}, "finish_reason": "stop"}], "usage": {}}


def test_an_invented_evidence_id_is_dropped_recorded_and_counted(tmp_path: Path) -> None:
    from anomalist.agent.llm import LLMService
    from anomalist.agent.llm.judges import _plain_explanation
    from anomalist.agent.settings import Settings
    from anomalist.prompts import RenderedPrompt

    svc = LLMService(Settings(data_dir=str(tmp_path), llm={"backend": "none"}).llm, tmp_path / "cache")
    prompt = RenderedPrompt(name="explain", version="1", system="s", user="u")

    class _Pool:
        def __init__(self, text: str) -> None:
            self.engine = _ScriptedEngine(text)

        def acquire(self) -> _ScriptedEngine:
            return self.engine

    svc._pool = _Pool("The disk filled up [F1.T1], as in incident [I7].")
    e = _plain_explanation(svc, prompt, ["F1", "F1.T1"], summary=False)
    assert e.evidence_ids == ["F1.T1"] and e.cited == "model" and e.rejected_ids == ["I7"]
    assert svc.stats["invented_ids"] == 1
    svc._pool = _Pool("Something went wrong [F3.L2].")
    e = _plain_explanation(svc, prompt, ["F1", "F1.T1"], summary=False)
    assert e.evidence_ids == ["F1"] and e.cited == "filled" and e.rejected_ids == ["F3.L2"]
    assert svc.stats["invented_ids"] == 2


def test_report_verdicts_keep_who_cited_and_what_was_rejected() -> None:
    from anomalist.agent.llm.schemas import Verdict
    from anomalist.agent.triage.enrich import _explanation, _verdict

    v = Verdict(anomalous=True, confidence=0.9, evidence_ids=["F1.T1", "F1.Z9"])
    out = _verdict(v, {"F1", "F1.T1"}, "F1")
    assert out.evidence_ids == ["F1.T1"] and out.cited == "model" and out.rejected_ids == ["F1.Z9"]
    label = Verdict(anomalous=False, confidence=0.7, evidence_ids=["F1.T1"], cited="filled")
    assert _verdict(label, {"F1", "F1.T1"}, "F1").cited == "filled"  # the code's choice stays the code's
    from anomalist.agent.llm.schemas import Explanation

    e = _explanation(Explanation(text="x", evidence_ids=["Q1"]), {"F1"}, None)
    assert e is None  # a claim that cites nothing it was given stays out of the report


def test_sample_cover_check_is_linear_and_exact() -> None:
    """A long line against a template with many wildcards: the regex it replaced backtracked for minutes."""
    import time

    from anomalist.agent.llm.inputs import _covers

    template = "TraceID: <*> SpanID: <*> " + " ".join(f"[k{i}: <*>]" for i in range(14)) + " done"
    line = "TraceID: 1 SpanID: 2 " + "x" * 20_000
    t0 = time.perf_counter()
    assert not _covers(template, line)
    assert time.perf_counter() - t0 < 0.5
    assert _covers("a <*> b <*> c", "a 1 b 2 c") and _covers("a <*>", "a ") and not _covers("a <*> b", "a b")
    assert _covers("ab<*>ba", "aba") is False and _covers("<*>", "") and _covers("x", "x") and not _covers("x", "y")
