"""The LLM layer: backends (openai / local / vllm), judgment, semantic prior, explanation, redaction-aware prompts.

Public API:
- ``make_chat_model(settings) -> BaseChatModel``: the shared LangChain chat model (``supports_tools`` discoverable).
- ``LLMService(settings, cache_dir)``: ``judge_log``, ``judge_metric``, ``explain``, ``summarize``, ``health``,
  ``info``; every failure is an ``LLMError`` subclass.
- ``SemanticPrior`` (``agent.llm.prior``): zero-shot failure-vs-normal score from embeddings.
"""

from typing import Any

from anomalist.agent.llm.errors import LLMError, LLMOutputError, LLMTimeout, LLMUnavailable
from anomalist.agent.llm.schemas import Explanation, LogFindingInput, MetricFindingInput, Verdict

_LAZY = {"make_chat_model": "anomalist.agent.llm.backends", "probe_server": "anomalist.agent.llm.backends", "LLMService": "anomalist.agent.llm.service"}


def __getattr__(name: str) -> Any:
    """The backends and the service load on first use: the report imports the schemas without them."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Explanation",
    "LLMError",
    "LLMOutputError",
    "LLMService",
    "LLMTimeout",
    "LLMUnavailable",
    "LogFindingInput",
    "MetricFindingInput",
    "Verdict",
    "make_chat_model",
    "probe_server",
]
