"""A LangChain chat model over an in-process engine (llama.cpp by default): invoke, stream, and named tool calls.

Tool calls on small local models: with ``tool_choice`` naming a tool (or "required"/"any" with one tool), the
arguments are generated under a JSON-schema grammar built from the tool's parameters, so the call is always
well-formed. With ``tool_choice="auto"`` the model answers in text (small models cannot plan reliably), which is why
``supports_tools`` is False for the embedded default: the chat agent then lets its router pick the tools.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

from anomalist.agent.llm.errors import LLMOutputError


def to_dict_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages -> role/content dicts (tool calls and results rendered as text for the chat template)."""
    out: list[dict[str, str]] = []
    for m in messages:
        content = m.content if isinstance(m.content, str) else json.dumps(m.content, default=str)
        if isinstance(m, SystemMessage):
            out.append({"role": "system", "content": content})
        elif isinstance(m, HumanMessage):
            out.append({"role": "user", "content": content})
        elif isinstance(m, AIMessage):
            calls = "".join(f"\n[called {c['name']}({json.dumps(c['args'], default=str)})]" for c in m.tool_calls)
            out.append({"role": "assistant", "content": content + calls})
        elif isinstance(m, ToolMessage):
            out.append({"role": "user", "content": f"[result of tool call {m.tool_call_id}]\n{content}"})
        else:
            out.append({"role": "user", "content": content})
    # Chat templates want alternating turns after the system message: merge neighbours of the same role.
    merged: list[dict[str, str]] = []
    for msg in out:
        if merged and merged[-1]["role"] == msg["role"] and msg["role"] != "system":
            merged[-1] = {"role": msg["role"], "content": merged[-1]["content"] + "\n\n" + msg["content"]}
        else:
            merged.append(msg)
    return merged


class LocalChatModel(BaseChatModel):
    """Chat model over an ``agent.llm.engines`` pool (shared, thread-safe, loaded lazily)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    pool: Any = Field(exclude=True)
    model_name: str = "local"
    temperature: float = 0.0
    max_tokens: int = 256
    seed: int = 0
    supports_tools: bool = False
    guard: Callable[[Callable[[], Any]], Any] | None = Field(default=None, exclude=True)

    @property
    def _llm_type(self) -> str:
        return "anomalist-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "temperature": self.temperature, "max_tokens": self.max_tokens}

    def _run(self, fn: Callable[[], Any]) -> Any:
        return self.guard(fn) if self.guard is not None else fn()

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (OpenAI format). A named ``tool_choice`` yields a grammar-constrained call of that tool."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        return super().bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _pick_tool(self, tools: list[dict[str, Any]] | None, tool_choice: Any) -> dict[str, Any] | None:
        if not tools or tool_choice in (None, "auto", "none"):
            return None
        if isinstance(tool_choice, dict):
            tool_choice = tool_choice.get("function", {}).get("name") or tool_choice.get("name")
        if tool_choice in ("required", "any"):
            return tools[0] if len(tools) == 1 else None
        for t in tools:
            if t["function"]["name"] == tool_choice:
                return t
        raise ValueError(f"tool_choice names an unknown tool: {tool_choice!r}")

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        msgs = to_dict_messages(messages)
        max_tokens = int(kwargs.get("max_tokens") or self.max_tokens)
        tool = self._pick_tool(kwargs.get("tools"), kwargs.get("tool_choice"))
        schema = kwargs.get("json_schema")
        if tool is not None:
            fn = tool["function"]
            schema = fn.get("parameters") or {"type": "object", "properties": {}}
            if not msgs:
                raise ValueError("no messages to answer")
            msgs = list(msgs)
            msgs[-1] = {**msgs[-1], "content": msgs[-1]["content"]
                        + f"\n\nCall the tool `{fn['name']}` ({fn.get('description', '')}). Reply with its JSON arguments."}
        engine = self.pool.acquire()
        out = self._run(lambda: engine.chat(msgs, max_tokens=max_tokens, temperature=self.temperature,
                                            json_schema=schema, stop=stop, seed=self.seed))
        text = str(out["choices"][0]["message"].get("content") or "")
        usage = out.get("usage") or {}
        meta = {"model_name": self.model_name, "finish_reason": out["choices"][0].get("finish_reason"),
                "token_usage": usage}
        usage_md = {"input_tokens": int(usage.get("prompt_tokens", 0)), "output_tokens": int(usage.get("completion_tokens", 0)),
                    "total_tokens": int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))}
        if tool is not None:
            try:
                args = json.loads(text)
            except json.JSONDecodeError as exc:
                raise LLMOutputError(f"tool arguments are not JSON (output cut at {max_tokens} tokens?)") from exc
            msg = AIMessage(content="", tool_calls=[{"name": tool["function"]["name"], "args": args,
                                                     "id": "call_" + uuid.uuid4().hex[:12], "type": "tool_call"}],
                            response_metadata=meta, usage_metadata=usage_md)
        else:
            msg = AIMessage(content=text, response_metadata=meta, usage_metadata=usage_md)
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        if self._pick_tool(kwargs.get("tools"), kwargs.get("tool_choice")) is not None or kwargs.get("json_schema"):
            result = self._generate(messages, stop, run_manager, **kwargs)
            m = result.generations[0].message
            yield ChatGenerationChunk(message=AIMessageChunk(content=m.content, tool_call_chunks=[
                {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i, "type": "tool_call_chunk"}
                for i, c in enumerate(getattr(m, "tool_calls", []) or [])]))
            return
        msgs = to_dict_messages(messages)
        max_tokens = int(kwargs.get("max_tokens") or self.max_tokens)
        engine = self.pool.acquire()
        for piece in engine.chat_stream(msgs, max_tokens=max_tokens, temperature=self.temperature, stop=stop, seed=self.seed):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager is not None:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
