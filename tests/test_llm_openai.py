"""The ``openai`` backend against real server processes on loopback: llama.cpp's OpenAI-compatible server on the
embedded model, a server that stalls, and a server that answers garbage. Also the circuit breaker."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from anomalist.agent.llm import (
    LLMOutputError,
    LLMService,
    LLMTimeout,
    LLMUnavailable,
    make_chat_model,
    probe_server,
)
from anomalist.agent.llm.engines import embedded_model_path
from anomalist.agent.llm.schemas import LogFindingInput
from anomalist.agent.settings import LLMSettings

pytestmark = [pytest.mark.server, pytest.mark.llm, pytest.mark.timeout(300)]

# A tiny HTTP server: mode "stall" accepts and never answers; "garbage" answers 200 with broken JSON on the chat
# endpoint (and a valid model list, so the probe finds it reachable); "garbage_all" breaks every endpoint.
FAKE_SERVER = r'''
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
mode, port = sys.argv[1], int(sys.argv[2])
class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def _reply(self):
        if mode == "stall":
            time.sleep(3600)
        if self.path.endswith("/models") and mode in ("garbage", "prose_json"):
            body = b'{"object": "list", "data": [{"id": "fake-model", "object": "model"}]}'
        elif mode == "prose_json":  # a verdict as JSON inside prose, citing one given and one invented id
            import json
            content = ('Here is my verdict: {"anomalous": true, "confidence": 0.8, "category": "network", '
                       '"reason": "the database connection was lost", "evidence_ids": ["F1.T1", "F7.Q1"]} Hope it helps.')
            body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "fake-model",
                               "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                            "finish_reason": "stop"}],
                               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
        else:
            body = b'{"choices": [{"message": {"content": "<<<not json at all'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self._reply()
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        self._reply()
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float, path: str | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server process exited with {proc.returncode}")
        try:
            if path is None:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            elif httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2.0).status_code == 200:
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not come up within {timeout_s}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def serve_embedded_model(*extra: str, n_ctx: int = 2048) -> Iterator[str]:
    """``python -m llama_cpp.server`` on the embedded model, on a free loopback port; yields its ``/v1`` URL."""
    pytest.importorskip("llama_cpp.server")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_model_path()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", "1", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, proc, 120, "/v1/models")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    yield from serve_embedded_model()


def _fake(mode: str) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", FAKE_SERVER, mode, str(port)])
    try:
        _wait_port(port, proc, 30)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        _stop(proc)


@pytest.fixture
def stall_server() -> Iterator[str]:
    yield from _fake("stall")


@pytest.fixture
def garbage_server() -> Iterator[str]:
    yield from _fake("garbage")


@pytest.fixture
def garbage_all_server() -> Iterator[str]:
    yield from _fake("garbage_all")


def _finding(template: str = "Connection to database <*> lost: Connection reset by peer") -> LogFindingInput:
    return LogFindingInput(id="F1", templates=[{"id": "F1.T1", "template": template, "level": "ERROR", "count": 12}],
                           samples=[{"id": "F1.L1", "text": template.replace("<*>", "db-1")}])


def _settings(base_url: str, **kw: object) -> LLMSettings:
    base: dict[str, object] = {"backend": "openai", "base_url": base_url, "timeout_s": 60.0, "max_retries": 0,
                               "use_prior": False, "max_output_tokens": 160}
    return LLMSettings(**(base | kw))


def test_probe_records_capabilities(llama_server: str) -> None:
    caps = probe_server(llama_server, refresh=True)
    assert caps.reachable and caps.models
    assert caps.json_schema, caps.details
    assert caps.tool_calls, caps.details  # named tool_choice works on llama.cpp's server
    assert caps.details.get("tool_calls_auto") is False  # "auto" does not (the model writes the call as text)


def test_judgment_via_structured_output(llama_server: str, tmp_path: Path) -> None:
    svc = LLMService(_settings(llama_server), cache_dir=tmp_path)
    v = svc.judge_log(_finding())
    assert v.method == "json_schema"
    assert 0.0 <= v.confidence <= 1.0 and isinstance(v.anomalous, bool)
    assert v.evidence_ids and set(v.evidence_ids) <= {"F1.T1", "F1.L1"}
    assert v.prompt_version and v.model
    again = svc.judge_log(_finding())
    assert again.cached and again.anomalous == v.anomalous


@pytest.fixture
def prose_json_server() -> Iterator[str]:
    yield from _fake("prose_json")


def test_judgment_via_tool_call(llama_server: str) -> None:
    svc = LLMService(_settings(llama_server, judge_mode="tool_call"), cache_dir=None)
    v = svc.judge_log(_finding())  # nothing swallowed: the real model must give a valid verdict this way
    assert v.method == "tool_call" and 0.0 <= v.confidence <= 1.0


def test_judgment_via_json_text(llama_server: str, prose_json_server: str) -> None:
    """JSON in prose is read, and an invented evidence id is dropped, recorded and counted. The embedded 135M model
    writes no JSON object in text at temperature 0: that is the typed error, asserted, not skipped."""
    svc = LLMService(_settings(prose_json_server, judge_mode="json_text"), cache_dir=None)
    v = svc.judge_log(_finding())
    assert v.method == "json_text" and v.anomalous and v.confidence == 0.8 and v.category == "network"
    assert v.evidence_ids == ["F1.T1"] and v.cited == "model" and v.rejected_ids == ["F7.Q1"]
    assert svc.stats["invented_ids"] == 1
    with pytest.raises(LLMOutputError, match="no JSON object"):
        LLMService(_settings(llama_server, judge_mode="json_text"), cache_dir=None).judge_log(_finding())


def test_structured_output_through_langchain(llama_server: str) -> None:
    from pydantic import BaseModel

    class Answer(BaseModel):
        city: str
        ok: bool

    chat = make_chat_model(_settings(llama_server))
    # llama.cpp's server takes structured output as a named tool call (the OpenAI json_schema form is rejected)
    assert chat.metadata["json_schema"] is True and chat.metadata["tool_calls_named"] is True
    out = chat.with_structured_output(Answer, method="function_calling").invoke("Give the capital of France and ok=true.")
    assert isinstance(out, Answer) and isinstance(out.city, str) and isinstance(out.ok, bool)


def test_tool_call_round_trip(llama_server: str) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool

    @tool
    def count_errors(service: str) -> int:
        """Count the error lines of a service."""
        return 42 if service else 0

    chat = make_chat_model(_settings(llama_server))
    assert chat.metadata["supports_tools"] is False  # the probe saw "auto" fail on this server
    bound = chat.bind_tools([count_errors], tool_choice="count_errors")
    q = HumanMessage("How many errors did the checkout service log?")
    ai = bound.invoke([q])
    assert ai.tool_calls and ai.tool_calls[0]["name"] == "count_errors"
    result = count_errors.invoke(ai.tool_calls[0]["args"])
    final = chat.invoke([q, ai, ToolMessage(str(result), tool_call_id=ai.tool_calls[0]["id"])])
    assert isinstance(final.content, str) and final.content.strip()


def test_explain_and_summary_cite_given_ids(llama_server: str) -> None:
    svc = LLMService(_settings(llama_server, max_output_tokens=160), cache_dir=None)
    finding = {"id": "F1", "title": "database connection errors", "severity": "critical",
               "templates": [{"id": "F1.T1", "template": "Connection to database <*> lost", "level": "ERROR", "count": 40,
                              "samples": [{"id": "F1.L1", "text": "Connection to database db-1 lost"}]}]}
    e = svc.explain([finding])
    assert e.text and set(e.evidence_ids) <= {"F1", "F1.T1", "F1.L1"} and e.evidence_ids
    s = svc.summarize([finding])
    assert isinstance(s, str) and s and set(s.evidence_ids) <= {"F1", "F1.T1", "F1.L1"}


def test_timeout_against_stalling_server(stall_server: str) -> None:
    svc = LLMService(_settings(stall_server, timeout_s=1.0, probe=False, model="m"), cache_dir=None)
    t0 = time.monotonic()
    with pytest.raises(LLMTimeout):
        svc.judge_log(_finding())
    assert time.monotonic() - t0 < 10


def test_garbage_answers_are_typed_errors(garbage_server: str, garbage_all_server: str) -> None:
    svc = LLMService(_settings(garbage_server, timeout_s=5.0), cache_dir=None)
    with pytest.raises(LLMOutputError):
        svc.judge_log(_finding())
    svc2 = LLMService(_settings(garbage_all_server, timeout_s=5.0), cache_dir=None)
    with pytest.raises(LLMUnavailable):  # the probe cannot read its model list: unreachable for our purposes
        svc2.judge_log(_finding())


def test_breaker_opens_and_calls_fail_fast(stall_server: str) -> None:
    s = _settings(stall_server, timeout_s=0.5, probe=False, model="m", breaker_failures=2, breaker_reset_s=60.0)
    svc = LLMService(s, cache_dir=None)
    for _ in range(2):
        with pytest.raises(LLMTimeout):
            svc.judge_log(_finding())
    assert svc.health()["breaker"] == "open"
    for call in (lambda: svc.judge_log(_finding()), lambda: svc.explain([{"id": "F1", "templates": []}]),
                 lambda: svc.summarize([{"id": "F1"}])):
        t0 = time.monotonic()
        with pytest.raises(LLMUnavailable):
            call()
        assert time.monotonic() - t0 < 0.2


def test_unreachable_server_is_unavailable_quickly() -> None:
    port = _free_port()  # nothing listens there
    svc = LLMService(_settings(f"http://127.0.0.1:{port}/v1", timeout_s=2.0), cache_dir=None)
    t0 = time.monotonic()
    with pytest.raises(LLMUnavailable):
        svc.judge_log(_finding())
    assert time.monotonic() - t0 < 5
    assert json.dumps(svc.health())  # health is JSON-able


def test_the_top_root_cause_is_explained_by_the_server_model(llama_server: str, tmp_path: Path) -> None:
    """On an OpenAI-compatible server the model writes the top candidate's explanation (the embedded in-process
    model keeps the one composed from the evidence)."""
    from anomalist.agent.baseline import Baseline
    from anomalist.agent.settings import Settings
    from anomalist.agent.triage import triage

    data = Path(__file__).parent / "data" / "k8s"
    s = Settings(data_dir=tmp_path, llm={"backend": "openai", "base_url": llama_server, "timeout_s": 60.0,
                                         "max_retries": 0, "max_output_tokens": 160},
                 triage={"llm_budget_s": 240.0, "top_k": 1, "llm_explain_k": 0, "llm_summary": False})
    base = Baseline.build(s, logs=[data / "normal" / "logs"])
    r = triage([data / "case_contacts_return" / "logs"], None, settings=s, baseline=base)
    top = r.root_causes[0]
    assert top.service == "ts-contacts-service"
    assert top.llm_explanation is not None, r.degraded
    assert top.llm_explanation.source == "llm" and top.llm_explanation.text.strip()
    assert set(top.llm_explanation.evidence_ids) <= {top.id, *(e.id for e in top.evidence)}
    assert top.explanation.source == "template"  # the composed one stays beside it
