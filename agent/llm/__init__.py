"""The LLM layer: backends (openai / local / vllm), judgment, semantic prior, explanation, redaction-aware prompts.

Public API:
- ``make_chat_model(settings) -> BaseChatModel``: the shared LangChain chat model (``supports_tools`` discoverable).
- ``LLMService(settings, cache_dir)``: ``judge_log``, ``judge_metric``, ``explain``, ``summarize``, ``health``,
  ``info``; every failure is an ``LLMError`` subclass.
- ``SemanticPrior`` (``agent.llm.prior``): zero-shot failure-vs-normal score from embeddings.
"""

from agent.llm.backends import make_chat_model, probe_server
from agent.llm.errors import LLMError, LLMOutputError, LLMTimeout, LLMUnavailable
from agent.llm.schemas import Explanation, LogFindingInput, MetricFindingInput, Verdict
from agent.llm.service import LLMService

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
