"""Backend factory: LangChain chat models for ``openai`` (any OpenAI-compatible server, vLLM in production),
``local`` (the embedded llama.cpp model, or any GGUF / HF folder) and ``vllm`` (in process, optional), plus the
start-up probe that records what an OpenAI-compatible server supports.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import httpx

from anomalist.agent.llm.engines import EMBEDDED_MODEL_NAME, shared_pool, shared_vllm
from anomalist.agent.llm.errors import LLMError, LLMOutputError, LLMTimeout, LLMUnavailable
from anomalist.agent.llm.schemas import ServerCapabilities

logger = logging.getLogger(__name__)

_PROBE_SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
    "additionalProperties": False,
}
_PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the current time in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

_lock = threading.Lock()
_probes: dict[tuple[str, str | None], ServerCapabilities] = {}
_models: dict[str, Any] = {}


def _api_key(settings: Any) -> str:
    return settings.api_key.get_secret_value() if settings.api_key is not None else "not-needed"


def map_openai_error(exc: BaseException) -> LLMError:
    """Translate an ``openai``/``httpx`` exception into the layer's typed errors."""
    import openai

    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)):
        return LLMTimeout(f"LLM server timed out: {type(exc).__name__}")
    if isinstance(exc, (openai.APIConnectionError, httpx.TransportError)):
        return LLMUnavailable(f"LLM server unreachable: {type(exc).__name__}: {exc}")
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500 or exc.status_code in (408, 429):
            return LLMUnavailable(f"LLM server error {exc.status_code}")
        return LLMError(f"LLM server rejected the request ({exc.status_code}): {str(exc)[:200]}")
    if isinstance(exc, (openai.APIResponseValidationError, json.JSONDecodeError, ValueError, KeyError, TypeError)):
        return LLMOutputError(f"LLM server returned malformed output: {type(exc).__name__}: {str(exc)[:200]}")
    return LLMError(f"LLM call failed: {type(exc).__name__}: {str(exc)[:200]}")


def probe_server(base_url: str, api_key: str = "not-needed", model: str | None = None, timeout_s: float = 30.0,
                 refresh: bool = False) -> ServerCapabilities:
    """Ask an OpenAI-compatible server what it supports (cached per base URL and model).

    Checks ``/models``, a ``response_format`` json_schema completion (valid JSON that fits the schema), a tool call
    with a named ``tool_choice`` and one with ``"auto"``. Never raises: failures are recorded in ``error``.
    """
    key = (base_url.rstrip("/"), model)
    with _lock:
        if not refresh and key in _probes:
            return _probes[key]
    caps = ServerCapabilities()
    headers = {"Authorization": f"Bearer {api_key}"}
    base = base_url.rstrip("/")
    try:
        with httpx.Client(timeout=timeout_s, headers=headers) as client:
            r = client.get(f"{base}/models")
            r.raise_for_status()
            caps.models = [str(m.get("id")) for m in r.json().get("data", []) if isinstance(m, dict)]
            caps.reachable = True
            name = model or (caps.models[0] if caps.models else "default")
            caps.details["model"] = name
            msg = [{"role": "user", "content": 'Reply with the JSON object {"ok": true}.'}]
            # The OpenAI form (vLLM, OpenAI) first, then llama.cpp's {"type": "json_object", "schema": ...}.
            for fmt, rf in (("json_schema", {"type": "json_schema",
                                             "json_schema": {"name": "probe", "schema": _PROBE_SCHEMA, "strict": True}}),
                            ("json_object_schema", {"type": "json_object", "schema": _PROBE_SCHEMA})):
                try:
                    r = client.post(f"{base}/chat/completions", json={
                        "model": name, "messages": msg, "max_tokens": 24, "temperature": 0, "response_format": rf})
                    r.raise_for_status()
                    content = r.json()["choices"][0]["message"]["content"]
                    if isinstance(json.loads(content).get("ok"), bool):
                        caps.json_schema = True
                        caps.details["schema_format"] = fmt
                        break
                except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
                    caps.details[f"{fmt}_error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
            ask = [{"role": "user", "content": "What time is it in Paris? Use the tool."}]
            for mode, choice in (("tool_calls", {"type": "function", "function": {"name": "get_time"}}),
                                 ("tool_calls_auto", "auto")):
                try:
                    r = client.post(f"{base}/chat/completions", json={
                        "model": name, "messages": ask, "max_tokens": 48, "temperature": 0,
                        "tools": [_PROBE_TOOL], "tool_choice": choice})
                    r.raise_for_status()
                    calls = r.json()["choices"][0]["message"].get("tool_calls") or []
                    ok = bool(calls) and calls[0]["function"]["name"] == "get_time"
                    json.loads(calls[0]["function"]["arguments"]) if ok else None
                except (httpx.HTTPError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
                    ok = False
                    caps.details[f"{mode}_error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
                if mode == "tool_calls":
                    caps.tool_calls = ok
                else:
                    caps.details["tool_calls_auto"] = ok
    except (httpx.HTTPError, ValueError) as exc:
        caps.error = f"{type(exc).__name__}: {str(exc)[:200]}"
    logger.info("probe %s: reachable=%s json_schema=%s tool_calls=%s auto=%s", base, caps.reachable,
                caps.json_schema, caps.tool_calls, caps.details.get("tool_calls_auto"))
    if caps.reachable:  # an unreachable server is probed again next time
        with _lock:
            _probes[key] = caps
    return caps


def _compat_chat_openai() -> type:
    from langchain_openai import ChatOpenAI

    class CompatChatOpenAI(ChatOpenAI):  # type: ignore[misc]
        """``ChatOpenAI`` that sends ``""`` instead of ``null`` as the content of assistant tool-call messages
        (llama.cpp's server rejects ``null``; vLLM and OpenAI accept both)."""

        def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
            payload = super()._get_request_payload(input_, stop=stop, **kwargs)
            for m in payload.get("messages", []) or []:
                if isinstance(m, dict) and m.get("role") == "assistant" and m.get("content") is None:
                    m["content"] = ""
            return payload

    return CompatChatOpenAI


def openai_chat_model(settings: Any, *, max_tokens: int | None = None, max_retries: int | None = None,
                      model: str | None = None, metadata: dict[str, Any] | None = None) -> Any:
    """A ``ChatOpenAI`` for the configured server (``max_tokens`` is also sent in the body: some servers ignore
    the standard field)."""
    ChatOpenAI = _compat_chat_openai()  # noqa: N806
    if not settings.base_url:
        raise LLMUnavailable("backend 'openai' needs llm.base_url (e.g. http://localhost:8000/v1)")
    n = int(max_tokens or settings.max_output_tokens)
    return ChatOpenAI(
        model=model or settings.model or "default",
        base_url=settings.base_url,
        api_key=_api_key(settings),
        timeout=settings.timeout_s,
        max_retries=settings.max_retries if max_retries is None else max_retries,
        temperature=settings.temperature,
        max_tokens=n,
        extra_body={"max_tokens": n},
        metadata=metadata or {},
        # A step that offers tools is not streamed (its output is a tool call, not text to show): llama.cpp's
        # server sends tool calls in a stream that yields no generation. Answers (no tools offered) still stream.
        disable_streaming="tool_calling",
    )


def resolve_openai_model(settings: Any) -> tuple[str, ServerCapabilities]:
    """(model name, capabilities): the configured model, else the server's first model."""
    caps = probe_server(settings.base_url, _api_key(settings), settings.model, timeout_s=settings.timeout_s) \
        if settings.probe else ServerCapabilities(reachable=True, json_schema=True, tool_calls=True)
    name = settings.model or (caps.models[0] if caps.models else None)
    if not caps.reachable and not settings.model:
        raise LLMUnavailable(f"LLM server at {settings.base_url} is unreachable: {caps.error}")
    return name or "default", caps


def make_chat_model(settings: Any) -> Any:
    """The LangChain chat model for ``settings`` (shared per configuration, thread-safe, loaded lazily).

    The returned model tells whether it plans with tools: ``supports_tools`` on local models, and
    ``metadata["supports_tools"]`` on ``ChatOpenAI`` (True when the server's probe saw ``tool_choice="auto"``
    produce a tool call, or when ``llm.supports_tools`` says so).

    Raises:
        LLMUnavailable: backend 'none', a missing model file, or an unreachable server without a configured model.
    """
    key = settings.model_dump_json()
    with _lock:
        if key in _models:
            return _models[key]
    model = _build(settings)
    with _lock:
        return _models.setdefault(key, model)


def _build(settings: Any) -> Any:
    from anomalist.agent.llm.chat_local import LocalChatModel

    if settings.backend == "none":
        raise LLMUnavailable("the LLM is disabled (llm.backend = 'none')")
    if settings.backend == "openai":
        name, caps = resolve_openai_model(settings)
        auto = bool(caps.details.get("tool_calls_auto"))
        supports = settings.supports_tools if settings.supports_tools is not None else auto
        return openai_chat_model(settings, model=name, metadata={
            "supports_tools": supports, "json_schema": caps.json_schema, "tool_calls_named": caps.tool_calls})
    if settings.backend == "vllm":
        if not settings.model:
            raise LLMUnavailable("backend 'vllm' needs llm.model (a model name or folder)")
        pool = shared_vllm(settings.model, settings.n_ctx)
        return LocalChatModel(pool=pool, model_name=settings.model, temperature=settings.temperature,
                              max_tokens=settings.max_output_tokens, seed=settings.seed,
                              supports_tools=bool(settings.supports_tools))
    pool = shared_pool(settings.model_path, settings.n_ctx, settings.n_threads, settings.local_instances, settings.seed,
                       settings.gguf_f16)
    name = (EMBEDDED_MODEL_NAME + ("-as-F16" if getattr(pool.primary, "f16", False) else "")
            if settings.model_path is None else pool.primary.name)
    return LocalChatModel(pool=pool, model_name=name, temperature=settings.temperature,
                          max_tokens=settings.max_output_tokens, seed=settings.seed,
                          supports_tools=bool(settings.supports_tools))


def invoke_openai(chat: Any, messages: list[dict[str, str]], **kwargs: Any) -> Any:
    """``chat.invoke`` with errors mapped to the typed errors."""
    try:
        return chat.invoke(messages, **kwargs)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a typed LLMError
        raise map_openai_error(exc) from exc


def parse_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in ``text`` (models wrap JSON in prose or code fences)."""
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch == "{":
            try:
                value, _ = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    raise LLMOutputError("no JSON object in the model's answer")
