"""Typed errors of the LLM layer. Callers catch ``LLMError`` and run degraded; nothing else escapes."""

from __future__ import annotations


class LLMError(RuntimeError):
    """Base class: the LLM could not give a usable answer."""


class LLMUnavailable(LLMError):
    """The backend is down, unreachable, not installed, or the circuit breaker is open (raised quickly)."""


class LLMTimeout(LLMError):
    """The backend did not answer within the configured timeout (after retries)."""


class LLMOutputError(LLMError):
    """The backend answered, but not with output that fits the schema (after one repair attempt)."""
