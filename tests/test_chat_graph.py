"""The chat graph driven by a scripted chat model: tool sequence, final answer, max_steps, tool errors, budget."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from anomalist.agent.chat.graph import build_chat_graph
from anomalist.agent.chat.tool_exec import fit_to_budget, tool_budget_tokens


class ScriptedChatModel(BaseChatModel):
    """A real LangChain chat model that replies with a fixed script of AIMessages and records what it saw."""

    script: list[AIMessage] = Field(default_factory=list)
    _calls: list[list[BaseMessage]] = PrivateAttr(default_factory=list)
    _bound: list[list[str]] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:  # type: ignore[override]
        self._bound.append([t.name for t in tools])
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._calls.append(list(messages))
        if not self.script:
            raise RuntimeError("script exhausted")
        msg = self.script.pop(0)
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        result = self._generate(messages, stop, run_manager, **kwargs)
        msg = result.generations[0].message
        assert isinstance(msg, AIMessage)
        if msg.tool_calls:
            yield ChatGenerationChunk(message=AIMessageChunk(
                content=msg.content, tool_call_chunks=[
                    {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
                    for i, c in enumerate(msg.tool_calls)]))
            return
        for word in str(msg.content).split(" "):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word + " "))
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


class RangeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: str = Field(description="start time")
    end: str = Field(description="end time")
    k: int = Field(5, ge=1, le=50)


def _tools(calls: list[str]) -> list[StructuredTool]:
    def top_templates(start: str, end: str, k: int = 5) -> dict[str, Any]:
        calls.append(f"top_templates:{start}-{end}")
        return {"status": "ok", "summary": "2 templates", "templates": [
            {"template_id": "T1", "template": "disk full on <*>", "count": 40},
            {"template_id": "T2", "template": "request ok", "count": 9}]}

    def new_templates(start: str, end: str, k: int = 5) -> dict[str, Any]:
        calls.append(f"new_templates:{start}-{end}")
        return {"status": "no_data", "summary": "no template first seen in range"}

    def broken(start: str, end: str, k: int = 5) -> dict[str, Any]:
        raise ValueError("start is after end")

    def huge(start: str, end: str, k: int = 5) -> dict[str, Any]:
        return {"status": "ok", "lines": [f"line {i} " + "x" * 80 for i in range(5000)]}

    return [
        StructuredTool.from_function(top_templates, name="top_templates", description="Most frequent templates.",
                                     args_schema=RangeArgs),
        StructuredTool.from_function(new_templates, name="new_templates", description="Templates first seen.",
                                     args_schema=RangeArgs),
        StructuredTool.from_function(broken, name="broken_tool", description="Always refuses.", args_schema=RangeArgs),
        StructuredTool.from_function(huge, name="search_logs", description="Huge output.", args_schema=RangeArgs),
    ]


def _call(name: str, args: dict[str, Any], cid: str) -> dict[str, Any]:
    return {"name": name, "args": args, "id": cid, "type": "tool_call"}


def _tool_messages(result: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in result["messages"] if isinstance(m, ToolMessage)]


def test_planning_path_runs_tools_in_order_and_cites() -> None:
    seen: list[str] = []
    model = ScriptedChatModel(script=[
        AIMessage("", tool_calls=[_call("top_templates", {"start": "14:00", "end": "14:10"}, "c1")]),
        AIMessage("", tool_calls=[_call("new_templates", {"start": "14:00", "end": "14:10"}, "c2")]),
        AIMessage("Disk full errors dominate [E1]; nothing new appeared [E2]."),
    ])
    graph = build_chat_graph(model, _tools(seen), system_prompt="sys", supports_tools=True, max_steps=5)
    out = graph.invoke({"messages": [HumanMessage("why errors at 14:05?")]})
    assert seen == ["top_templates:14:00-14:10", "new_templates:14:00-14:10"]
    final = out["messages"][-1]
    assert isinstance(final, AIMessage)
    assert final.content.startswith("Disk full errors dominate [E1]")
    assert "- [E1] top_templates" in final.content and "- [E2] new_templates" in final.content
    assert [e["status"] for e in out["evidence"]] == ["ok", "no_data"]
    tms = _tool_messages(out)
    assert [m.tool_call_id for m in tms] == ["c1", "c2"]
    assert json.loads(tms[0].content)["evidence_id"] == "E1"
    assert out["steps"] == 3
    assert model._bound == [["top_templates", "new_templates", "broken_tool", "search_logs"]]


def test_max_steps_forces_a_toolless_final_step() -> None:
    seen: list[str] = []
    loop = [AIMessage("", tool_calls=[_call("top_templates", {"start": "a", "end": "b"}, f"c{i}")]) for i in range(3)]
    model = ScriptedChatModel(script=[*loop, AIMessage("", tool_calls=[_call("top_templates", {"start": "a", "end": "b"},
                                                                              "c9")])])
    graph = build_chat_graph(model, _tools(seen), system_prompt="sys", supports_tools=True, max_steps=3)
    out = graph.invoke({"messages": [HumanMessage("loop forever")]})
    assert len(seen) == 2  # steps 1 and 2 ran tools; step 3 had no tools
    last_call = model._calls[-1]
    assert isinstance(last_call[-1], SystemMessage) and "Do not call tools" in last_call[-1].content
    final = out["messages"][-1]
    assert isinstance(final, AIMessage) and not final.tool_calls
    assert out["steps"] == 3


def test_tool_errors_go_back_as_fix_it_messages() -> None:
    model = ScriptedChatModel(script=[
        AIMessage("", tool_calls=[
            _call("no_such_tool", {}, "c1"),
            _call("top_templates", {"start": "14:00"}, "c2"),  # missing end
            _call("broken_tool", {"start": "b", "end": "a"}, "c3"),
        ]),
        AIMessage("I could not get data [E1]."),
    ])
    graph = build_chat_graph(model, _tools([]), system_prompt="sys", supports_tools=True, max_steps=4)
    out = graph.invoke({"messages": [HumanMessage("q")]})
    payloads = [json.loads(m.content) for m in _tool_messages(out)]
    assert [p["status"] for p in payloads] == ["error", "error", "error"]
    assert "Use one of" in payloads[0]["message"] and "top_templates" in payloads[0]["message"]
    assert "end" in payloads[1]["message"] and "schema" in payloads[1]["message"]
    assert "start is after end" in payloads[2]["message"]
    # The model saw the errors on its second call.
    second = model._calls[1]
    assert sum(isinstance(m, ToolMessage) for m in second) == 3


def test_tool_output_respects_the_budget() -> None:
    model = ScriptedChatModel(script=[
        AIMessage("", tool_calls=[_call("search_logs", {"start": "a", "end": "b"}, "c1")]),
        AIMessage("Many lines [E1]."),
    ])
    graph = build_chat_graph(model, _tools([]), system_prompt="sys", supports_tools=True, context_tokens=1024)
    out = graph.invoke({"messages": [HumanMessage("q")]})
    content = _tool_messages(out)[0].content
    assert len(content) <= tool_budget_tokens(1024) * 3.5
    payload = json.loads(content)
    assert payload["status"] == "ok" and "omitted" in payload["lines"][-1]
    assert out["evidence"][0]["truncated"] is True


def test_router_path_phrases_from_results() -> None:
    seen: list[str] = []

    def planner(question: str, tools: Sequence[Any]) -> list[dict[str, Any]]:
        assert "14:05" in question
        return [{"name": "top_templates", "args": {"start": "14:00", "end": "14:10"}}]

    model = ScriptedChatModel(script=[AIMessage("Disk full dominates.")])
    graph = build_chat_graph(model, _tools(seen), system_prompt="sys", supports_tools=False, planner=planner)
    out = graph.invoke({"messages": [HumanMessage("what happened at 14:05?")]})
    assert seen == ["top_templates:14:00-14:10"]
    prompt = model._calls[0]
    assert "Evidence E1:\n<log_data>" in prompt[-1].content and "disk full on <*>" in prompt[-1].content
    assert model._bound == []  # never offered tools
    final = out["messages"][-1].content
    assert final.startswith("Disk full dominates.") and "[E1] top_templates" in final


def test_streaming_yields_tokens_and_tool_updates() -> None:
    model = ScriptedChatModel(script=[
        AIMessage("", tool_calls=[_call("top_templates", {"start": "a", "end": "b"}, "c1")]),
        AIMessage("alpha beta gamma [E1]"),
    ])
    graph = build_chat_graph(model, _tools([]), system_prompt="sys", supports_tools=True)
    tokens: list[str] = []
    nodes: list[str] = []
    for mode, chunk in graph.stream({"messages": [HumanMessage("q")]}, stream_mode=["messages", "updates"]):
        if mode == "messages":
            msg, meta = chunk
            if isinstance(msg, AIMessageChunk) and msg.content:
                tokens.append(str(msg.content))
        else:
            nodes.extend(chunk.keys())
    assert "".join(tokens).strip() == "alpha beta gamma [E1]"
    assert nodes == ["start_turn", "model", "tools", "model", "finalize"]


def test_fit_to_budget_always_valid_json() -> None:
    text, cut = fit_to_budget({"status": "ok", "blob": "y" * 10_000}, 100)
    assert cut and json.loads(text)["status"] == "ok" and len(text) <= 350
    with pytest.raises(ValueError):
        tool_budget_tokens(0)


def test_agent_stream_events_and_memory() -> None:
    from anomalist.agent.chat.agent import ChatAgent

    model = ScriptedChatModel(script=[
        AIMessage("", tool_calls=[_call("top_templates", {"start": "14:00", "end": "14:10"}, "c1")]),
        AIMessage("Disk full dominates [E1]."),
        AIMessage("Still disk [E1]."),  # the second turn answers without tools
        AIMessage("Hello."),
    ])
    agent = ChatAgent(model, _tools([]), system_prompt="sys", supports_tools=True, max_steps=4, max_conversations=1)
    events = list(agent.stream("what happened at 14:05?"))
    kinds = [e.type for e in events]
    assert kinds[0] == "conversation" and kinds[-1] == "final"
    assert kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("token")
    final = events[-1].data
    assert "".join(e.data["text"] for e in events if e.type == "token") == final["answer"]
    assert final["evidence"][0]["id"] == "E1" and final["path"] == "planning"
    cid = final["conversation_id"]
    second = agent.ask("and now?", cid)
    assert second.type == "final" and second.data["answer"].startswith("Still disk")
    seen = model._calls[-1]
    assert any(isinstance(m, HumanMessage) and m.content == "what happened at 14:05?" for m in seen)
    assert not any(isinstance(m, ToolMessage) for m in seen)  # tool results are not carried across turns
    other = agent.ask("a new conversation evicts the old one (max_conversations=1)")
    assert other.data["conversation_id"] != cid and agent.conversations == 1
    assert not any(isinstance(m, AIMessage) and "Still disk" in str(m.content) for m in model._calls[-1])


def test_model_supports_tools_detection() -> None:
    from anomalist.agent.chat.agent import model_supports_tools

    class NoTools(ScriptedChatModel):
        def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:  # type: ignore[override]
            raise NotImplementedError

    assert model_supports_tools(ScriptedChatModel()) is True
    assert model_supports_tools(NoTools()) is False
