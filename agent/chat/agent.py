"""The chat agent: one graph, one streaming core, conversation memory; the CLI and the HTTP service adapt it.

``ChatAgent.stream(question, conversation_id)`` yields :class:`ChatEvent` objects: ``conversation`` (the id),
``tool_call``, ``tool_result``, ``token`` (answer text as it is generated) and ``final`` (the whole answer and
its evidence). Concatenating the ``token`` texts gives the final answer.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field

from anomalist.agent.chat.graph import build_chat_graph
from anomalist.agent.chat.router import ToolRouter
from anomalist.agent.chat.tool_exec import ToolExecutor
from anomalist.agent.seams import IncidentMemory, Judge
from anomalist.agent.settings import Settings

logger = logging.getLogger(__name__)

EventType = Literal["conversation", "tool_call", "tool_result", "token", "final", "error"]
_ANSWER_NODES = ("model", "answer")
HISTORY_MESSAGES = 8  # question/answer messages kept per conversation (tool results are not carried over)


class ChatEvent(BaseModel):
    """One event of a streamed chat turn."""

    model_config = ConfigDict(extra="forbid")

    type: EventType
    data: dict[str, Any] = Field(default_factory=dict)


def model_supports_tools(model: BaseChatModel) -> bool:
    """Whether ``model`` plans with tool calls (asks the model object; unknown = try ``bind_tools``)."""
    for attr in ("supports_tools", "supports_tool_calling", "tool_calling"):
        value = getattr(model, attr, None)
        if isinstance(value, bool):
            return value
        if callable(value):
            try:
                return bool(value())
            except TypeError:
                pass
    meta = getattr(model, "metadata", None) or {}
    if isinstance(meta, dict) and isinstance(meta.get("supports_tools"), bool):
        return bool(meta["supports_tools"])
    try:
        model.bind_tools([])
    except NotImplementedError:
        return False
    except Exception:  # noqa: BLE001 - an empty tool list may be refused; the method exists
        return True
    return True


class ChatAgent:
    """A conversational agent over the tools, with bounded per-conversation memory.

    Args:
        model: the chat model.
        tools: the tools it may use.
        system_prompt: the rendered chat system prompt.
        supports_tools: True = the model plans tool calls; False = the deterministic router picks them.
        router: the router (required when ``supports_tools`` is False).
        max_steps: most model calls per turn.
        context_tokens: the model's context window (bounds tool outputs).
        callbacks: LangChain callbacks for every turn (e.g. the service's LLM call counter).
        max_conversations: conversations remembered (least recently used are forgotten).
        serialize: run one turn at a time (in-process models that are not thread-safe).
        model_writes: the model writes answers (grounded: uncited facts are dropped); False = answers are
            composed from the tool results and the model states no fact (see ``agent.chat.compose``).
    """

    def __init__(
        self,
        model: BaseChatModel,
        tools: Sequence[BaseTool],
        *,
        system_prompt: str,
        supports_tools: bool,
        router: ToolRouter | None = None,
        max_steps: int = 6,
        context_tokens: int = 2048,
        callbacks: Sequence[Any] = (),
        max_conversations: int = 256,
        serialize: bool = False,
        model_writes: bool = True,
    ):
        self.model = model
        self.model_writes = model_writes
        self.tools = list(tools)
        self.supports_tools = supports_tools
        self.router = router
        self.max_steps = max_steps
        self.callbacks = list(callbacks)
        self.max_conversations = max_conversations
        self.system_prompt = system_prompt
        self.context_tokens = context_tokens
        self.executor = ToolExecutor(self.tools, context_tokens=context_tokens)
        self.graph = build_chat_graph(
            model, self.tools, system_prompt=system_prompt, supports_tools=supports_tools,
            planner=router.plan if router is not None else None, max_steps=max_steps,
            context_tokens=context_tokens, model_writes=model_writes, executor=self.executor,
        )
        self._history: OrderedDict[str, list[BaseMessage]] = OrderedDict()
        self._history_lock = threading.Lock()
        self._turn_lock = threading.Lock() if serialize else None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        logs: dict[str, list[str]] | None = None,
        metrics: dict[str, str] | None = None,
        store: IncidentMemory | None = None,
        llm_callbacks: Sequence[Any] = (),
        max_conversations: int | None = None,
        model: BaseChatModel | None = None,
        llm: Judge | None = None,
        on_report: Callable[[Any], Any] | None = None,
    ) -> ChatAgent:
        """The agent with the real model and tools.

        Args:
            settings: typed settings (``llm`` picks the model, ``server.sources`` are the default log sources).
            logs: source name -> file paths or globs (default: ``settings.server.sources``).
            metrics: source name -> metrics CSV (default: ``settings.server.metrics_sources``).
            store: an open incident store to share (None = open the configured one, or go without it).
            llm_callbacks: callbacks attached to every turn.
            max_conversations: conversations kept (default: ``settings.server.max_conversations``).
            model: a chat model to use instead of the configured one.
            llm: an ``agent.llm.LLMService`` for ``run_triage`` to share (None = triage builds its own).
            on_report: called with each report ``run_triage`` produces (the service stores them).
        """
        from anomalist.agent.chat.toolset import build_toolset
        from anomalist.agent.sources import log_files, metric_paths

        if model is None:
            from anomalist.agent.llm import make_chat_model

            model = make_chat_model(settings.llm)
        supports = model_supports_tools(model)
        toolset = build_toolset(
            settings,
            logs=logs if logs is not None else {k: log_files(v) for k, v in settings.server.sources.items()},
            metrics=metrics if metrics is not None else metric_paths(settings.server.metrics_sources),
            store=store,
            llm=llm,
            on_report=on_report,
        )
        router = None
        if not supports:
            from anomalist.tools.embeddings import get_embedder

            router = ToolRouter(embedder=get_embedder())
        context_tokens = int(getattr(model, "context_tokens", 0) or settings.llm.n_ctx)
        return cls(
            model,
            toolset.tools,
            system_prompt=toolset.system_prompt(supports),
            supports_tools=supports,
            router=router,
            max_steps=settings.server.chat_max_steps,
            context_tokens=context_tokens,
            callbacks=llm_callbacks,
            max_conversations=max_conversations or settings.server.max_conversations,
            serialize=False,  # the LLM layer's models hold their engine's lock per call
            model_writes=(settings.llm.writes_answers if settings.llm.writes_answers is not None
                          else settings.llm.backend in ("openai", "vllm")),
        )

    def ask(self, question: str, conversation_id: str | None = None) -> ChatEvent:
        """Run one turn to completion; returns the ``final`` (or ``error``) event."""
        last = ChatEvent(type="error", data={"message": "no answer"})
        for event in self.stream(question, conversation_id):
            if event.type in ("final", "error"):
                last = event
        return last

    def stream(self, question: str, conversation_id: str | None = None) -> Iterator[ChatEvent]:
        """Run one turn, yielding events as they happen (see the module docstring)."""
        if not question.strip():
            raise ValueError("question must not be empty")
        cid = conversation_id or uuid.uuid4().hex[:16]
        yield ChatEvent(type="conversation", data={"conversation_id": cid})
        with self._history_lock:
            history = list(self._history.get(cid, []))
        inputs = {"messages": [*history, HumanMessage(question)]}
        config = {"callbacks": self.callbacks, "recursion_limit": 4 * self.max_steps + 10}
        streamed: dict[Any, str] = {}
        last_step: Any = None
        final_text = ""
        replaced = False
        evidence: list[dict[str, Any]] = []
        with self._turn_lock or nullcontext():
            for mode, chunk in self.graph.stream(inputs, config=config, stream_mode=["messages", "updates"]):
                if mode == "messages":
                    msg, meta = chunk
                    if isinstance(msg, AIMessageChunk) and meta.get("langgraph_node") in _ANSWER_NODES:
                        text = msg.text if isinstance(msg.text, str) else str(msg.content)
                        if text:
                            step = meta.get("langgraph_step")
                            streamed[step] = streamed.get(step, "") + text
                            last_step = step
                            yield ChatEvent(type="token", data={"text": text})
                    continue
                for node, update in (chunk or {}).items():
                    if not update:
                        continue
                    msgs = update.get("messages", [])
                    if node in ("model", "route", "recall"):
                        for m in msgs:
                            if isinstance(m, AIMessage):
                                for call in m.tool_calls:
                                    yield ChatEvent(type="tool_call", data={
                                        "id": call.get("id"), "name": call["name"], "args": call.get("args", {})})
                    if node in ("tools", "recall"):
                        new_ev = update.get("evidence", [])
                        evidence.extend(new_ev)
                        by_call = {m.tool_call_id: m for m in msgs if isinstance(m, ToolMessage)}
                        for ev, m in zip(new_ev, by_call.values(), strict=False):
                            yield ChatEvent(type="tool_result", data={**ev, "tool_call_id": m.tool_call_id})
                    elif node == "finalize":
                        final_text = str(msgs[-1].content) if msgs else ""
                        already = streamed.get(last_step, "") if last_step is not None else ""
                        rest = final_text[len(already):] if final_text.startswith(already) else ""
                        replaced = bool(already) and not final_text.startswith(already)
                        if not already:
                            rest = final_text
                        if rest:
                            yield ChatEvent(type="token", data={"text": rest})
        self._remember(cid, question, final_text)
        yield ChatEvent(type="final", data={"conversation_id": cid, "answer": final_text, "evidence": evidence,
                                            "path": "planning" if self.supports_tools else "router",
                                            # The streamed text was not kept as is (uncited facts were removed):
                                            # the answer is this one.
                                            "replaced": replaced if final_text else False})

    def _remember(self, cid: str, question: str, answer: str) -> None:
        with self._history_lock:
            history = self._history.get(cid, [])
            history = [*history, HumanMessage(question), AIMessage(answer)][-HISTORY_MESSAGES:]
            self._history[cid] = history
            self._history.move_to_end(cid)
            while len(self._history) > self.max_conversations:
                self._history.popitem(last=False)

    @property
    def refused_tool_calls(self) -> int:
        """Model calls of tools with side effects that were refused (see ``agent.chat.tool_exec``)."""
        return self.executor.refused

    @property
    def conversations(self) -> int:
        return len(self._history)


def source_map(paths: Sequence[Path | str] | None, name: str = "logs") -> dict[str, list[str]]:
    """``--logs`` paths of the CLI as a one-source map."""
    return {name: [str(p) for p in paths]} if paths else {}
