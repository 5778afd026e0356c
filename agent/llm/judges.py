"""The call paths behind ``LLMService``: label-likelihood verdicts and schema-bound generation.

Kept apart from the service so each path reads on its own; every function returns a validated pydantic object or
raises an ``LLMError`` subclass.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from anomalist.agent.llm.backends import invoke_openai, parse_json_object
from anomalist.agent.llm.errors import LLMError, LLMOutputError
from anomalist.agent.llm.schemas import Explanation, Verdict, VerdictOut, cite

if TYPE_CHECKING:  # pragma: no cover
    from anomalist.agent.llm.service import LLMService
    from anomalist.prompts import RenderedPrompt

logger = logging.getLogger(__name__)

LABELS = (" normal", " anomalous")
_STOPS = ["\n", "<|im_end|>", "<|endoftext|>", "</s>"]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _content_free(name: str) -> dict[str, Any]:
    """Variables of the content-free input used for contextual calibration ("N/A" in every slot)."""
    if name == "judge_metric":
        return {"channels": [{"id": "X", "channel": "N/A", "baseline_mean": None, "baseline_std": None, "span_mean": None,
                              "span_min": None, "span_max": None, "change_sigma": None, "shape": None, "series": []}],
                "window": None, "detector": None, "context": None}
    return {"templates": [{"id": "X", "level": None, "component": None, "count": 0, "baseline": None,
                           "template": "N/A", "params": ""}], "samples": [], "context": None}


def _engine_error(exc: Exception) -> LLMError:
    return exc if isinstance(exc, LLMError) else LLMOutputError(f"local model failed: {type(exc).__name__}: {exc}")


def _split(text: str) -> int | None:
    """End of the fixed part of a formatted prompt: just after the user's opening ``<log_data>`` line."""
    i = text.rfind("<log_data>")
    return i + len("<log_data>") if i > 0 else None


def label_verdict(svc: LLMService, rendered: RenderedPrompt, evidence: list[str], p_prior: float | None = None,
                  prior_category: str | None = None) -> Verdict:
    """Verdict from the likelihood of " normal" vs " anomalous" after the prompt (calibrated against a content-free
    input), blended with the prior's probability when given; then a short generated reason."""
    from anomalist import prompts
    engine = svc._pool.acquire()
    s = svc.settings
    try:
        text = engine.format_chat(rendered.messages()) + rendered.assistant_prefix
        lp_n, lp_a = engine.label_logprobs(text, LABELS, split=_split(text))

        def _baseline() -> float:
            cf = prompts.load(rendered.name).render(**_content_free(rendered.name))
            cf_text = engine.format_chat(cf.messages()) + cf.assistant_prefix
            n, a = engine.label_logprobs(cf_text, LABELS, split=_split(cf_text))
            return a - n

        margin = (lp_a - lp_n) - svc.calibration(engine, rendered.name, _baseline)
        p_llm = _sigmoid(margin)
        scores = {"llm": round(p_llm, 4), "llm_margin": round(margin, 4)}
        p = p_llm
        if p_prior is not None:
            from anomalist.agent.llm.prior import combine

            p = float(combine(p_llm, p_prior, svc.prior_weight))
            scores |= {"prior": round(p_prior, 4), "combined": round(p, 4)}
        anomalous = p >= 0.5
        svc._count("prompt_tokens", engine.count_tokens(text))
        reason = ""
        if s.reason_tokens > 0 and (s.reason_for == "all" or (s.reason_for == "anomalous" and anomalous)):
            out, n_tok = engine.complete(text + LABELS[int(anomalous)] + ". Reason:", max_tokens=s.reason_tokens,
                                         stop=_STOPS)
            svc._count("completion_tokens", n_tok)
            reason = _clean_reason(out)
    except Exception as exc:  # noqa: BLE001 - llama.cpp raises plain exceptions
        raise _engine_error(exc) from exc
    evidence_reason = f"P(anomalous) = {p:.2f} (label likelihood {p_llm:.2f}" + (
        f", semantic prior {p_prior:.2f})" if p_prior is not None else ")")
    reason = f"{reason} [{evidence_reason}]" if reason else evidence_reason
    category = (prior_category or "anomaly") if anomalous else "normal"
    return Verdict(anomalous=anomalous, confidence=round(p if anomalous else 1.0 - p, 4), p_anomalous=round(p, 4),
                   category=category, reason=reason, evidence_ids=evidence[:3], cited="filled",  # a label cites nothing
                   source="llm+prior" if p_prior is not None else "llm", method="label_likelihood", scores=scores)


def _clean_reason(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip(" :-\"'")
    return text[:300]


def verdict_schema(evidence: list[str], reasoning: bool = False) -> dict[str, Any]:
    """JSON schema of the verdict a generating model fills (evidence ids limited to the given ones). With
    ``reasoning`` (the chain-of-thought prompt) an ``analysis`` field comes first, so the model reasons before it
    commits to the verdict fields."""
    items: dict[str, Any] = {"type": "string", "enum": evidence} if evidence else {"type": "string"}
    first: dict[str, Any] = {"analysis": {"type": "string", "maxLength": 800}} if reasoning else {}
    return {
        "type": "object",
        "properties": first | {
            "anomalous": {"type": "boolean"},
            "confidence": {"type": "number"},
            "category": {"type": "string", "maxLength": 40},
            "reason": {"type": "string", "maxLength": 200},
            "evidence_ids": {"type": "array", "items": items, "maxItems": 5},
        },
        "required": [*first, "anomalous", "confidence", "category", "reason", "evidence_ids"],
        "additionalProperties": False,
    }


def explanation_schema(ids: list[str], summary: bool, max_tokens: int = 256) -> dict[str, Any]:
    """Schema of an explanation; string lengths follow the token budget so the JSON closes before the limit."""
    items: dict[str, Any] = {"type": "string", "enum": ids} if ids else {"type": "string"}
    text_chars = max(80, min(800, int(max_tokens * (2.0 if summary else 1.2))))
    props: dict[str, Any] = {
        "text": {"type": "string", "maxLength": text_chars},
        "evidence_ids": {"type": "array", "items": items, "minItems": 1, "maxItems": 6},
    }
    if not summary:
        props["likely_cause"] = {"type": "string", "maxLength": 100}
        props["next_steps"] = {"type": "array", "items": {"type": "string", "maxLength": 80}, "maxItems": 2}
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def structured(svc: LLMService, messages: list[dict[str, str]], schema: dict[str, Any], name: str, method: str,
               max_tokens: int) -> dict[str, Any]:
    """A JSON object that fits ``schema``: grammar-constrained in process, else json_schema / tool call / JSON text
    on a server (one repair attempt for the text path)."""
    if svc._pool is not None:
        engine = svc._pool.acquire()
        try:
            out = engine.chat(messages, max_tokens=max_tokens, temperature=svc.settings.temperature, json_schema=schema,
                              seed=svc.settings.seed)
        except Exception as exc:  # noqa: BLE001
            raise _engine_error(exc) from exc
        _usage(svc, out.get("usage") or {})
        return _parse(str(out["choices"][0]["message"].get("content") or ""))
    chat = svc._chat
    body = {"max_tokens": max_tokens}
    if method == "json_schema":
        caps = svc._caps
        if caps is not None and caps.details.get("schema_format") == "json_object_schema":  # llama.cpp's form
            rf: dict[str, Any] = {"type": "json_object", "schema": schema}
        else:
            rf = {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
        msg = invoke_openai(chat, messages, extra_body=body | {"response_format": rf})
        _usage_msg(svc, msg)
        return _parse(_text(msg))
    if method == "tool_call":
        tool = {"type": "function", "function": {"name": name, "description": f"Submit the {name.replace('_', ' ')}.",
                                                 "parameters": schema}}
        msg = invoke_openai(chat.bind_tools([tool], tool_choice=name), messages, extra_body=body)
        _usage_msg(svc, msg)
        calls = getattr(msg, "tool_calls", None) or []
        if not calls:
            raise LLMOutputError(f"the server returned no {name} tool call")
        args = calls[0].get("args")
        if not isinstance(args, dict):
            raise LLMOutputError("tool call arguments are not an object")
        return args
    keys = ", ".join(schema["properties"])
    ask = messages[:-1] + [{"role": messages[-1]["role"], "content": messages[-1]["content"]
                            + f"\n\nAnswer with one JSON object only, with the keys: {keys}."}]
    msg = invoke_openai(chat, ask, extra_body=body)
    _usage_msg(svc, msg)
    try:
        return _parse(_text(msg))
    except LLMOutputError as exc:
        repair = ask + [{"role": "assistant", "content": _text(msg)[:2000]},
                        {"role": "user", "content": f"That was not valid ({exc}). Reply with the JSON object only."}]
        msg = invoke_openai(chat, repair, extra_body=body)
        _usage_msg(svc, msg)
        return _parse(_text(msg))


def _text(msg: Any) -> str:
    content = getattr(msg, "content", "")
    return content if isinstance(content, str) else json.dumps(content, default=str)


def _parse(text: str) -> dict[str, Any]:
    return parse_json_object(text)


def _usage(svc: LLMService, usage: dict[str, Any]) -> None:
    svc._count("prompt_tokens", int(usage.get("prompt_tokens", 0) or 0))
    svc._count("completion_tokens", int(usage.get("completion_tokens", 0) or 0))


def _usage_msg(svc: LLMService, msg: Any) -> None:
    um = getattr(msg, "usage_metadata", None) or {}
    svc._count("prompt_tokens", int(um.get("input_tokens", 0) or 0))
    svc._count("completion_tokens", int(um.get("output_tokens", 0) or 0))


def generated_verdict(svc: LLMService, rendered: RenderedPrompt, method: str, evidence: list[str]) -> Verdict:
    """Verdict generated under a schema (json_schema / tool call / JSON text); valid or ``LLMOutputError``."""
    cot = rendered.name.endswith("_cot")
    data = structured(svc, rendered.messages(), verdict_schema(evidence, reasoning=cot), "submit_verdict", method,
                      max_tokens=max(svc.settings.max_output_tokens, 512) if cot else min(svc.settings.max_output_tokens, 200))
    try:
        data["confidence"] = min(max(float(data.get("confidence", 0.5)), 0.0), 1.0)
        out = VerdictOut.model_validate({k: data[k] for k in ("anomalous", "confidence", "category", "reason", "evidence_ids")
                                         if k in data} | {"category": str(data.get("category", "unknown"))[:60],
                                                          "reason": str(data.get("reason", ""))[:400]})
    except (ValidationError, ValueError, TypeError) as exc:
        raise LLMOutputError(f"verdict does not fit the schema: {str(exc)[:200]}") from exc
    p = out.confidence if out.anomalous else 1.0 - out.confidence
    label = {"json_schema": "json_schema", "tool_call": "tool_call"}.get(method, "json_text")
    return Verdict(anomalous=out.anomalous, confidence=out.confidence, p_anomalous=round(p, 4),
                   category=out.category or "unknown", reason=out.reason, evidence_ids=list(out.evidence_ids),
                   source="llm", method=label, scores={"llm": round(p, 4)})  # type: ignore[arg-type]


def generated_explanation(svc: LLMService, rendered: RenderedPrompt, ids: list[str], summary: bool = False) -> Explanation:
    """Explanation (or summary) generated under a schema whose evidence ids are limited to ``ids``."""
    if svc._pool is not None:
        return _plain_explanation(svc, rendered, ids, summary)
    method = svc.judge_method()
    if method in ("label", "cot"):
        method = "json_schema"
    name = "submit_summary" if summary else "submit_explanation"
    data = structured(svc, rendered.messages(), explanation_schema(ids, summary, svc.settings.max_output_tokens), name,
                      method, max_tokens=svc.settings.max_output_tokens)
    text = str(data.get("text", "")).strip()
    if not text:
        raise LLMOutputError("the model returned an empty explanation")
    cited, who, rejected = cite(data.get("evidence_ids") or [], ids, ids[:1])
    _invented(svc, rejected)
    steps = [str(s)[:160] for s in (data.get("next_steps") or []) if str(s).strip()][:3]
    return Explanation(text=text[:1200], evidence_ids=cited, cited=who, rejected_ids=rejected, source="llm",
                       likely_cause=str(data.get("likely_cause", ""))[:200], next_steps=steps)


_ID = re.compile(r"\[?\b([A-Z]\d+(?:\.[A-Z]\d+)*)\b\]?")


def _plain_explanation(svc: LLMService, rendered: RenderedPrompt, ids: list[str], summary: bool) -> Explanation:
    """Small in-process models: plain bounded text (JSON under a grammar makes them loop until the token limit);
    the cited ids are the given ids the text mentions (others are dropped), else the first given id."""
    engine = svc._pool.acquire()
    limit = min(svc.settings.max_output_tokens, 120 if summary else 200)
    try:
        out = engine.chat(rendered.messages(), max_tokens=limit, temperature=svc.settings.temperature,
                          seed=svc.settings.seed)
    except Exception as exc:  # noqa: BLE001
        raise _engine_error(exc) from exc
    _usage(svc, out.get("usage") or {})
    text = re.sub(r"\s+", " ", str(out["choices"][0]["message"].get("content") or "")).strip()
    if out["choices"][0].get("finish_reason") == "length" and "." in text:
        text = text[: text.rfind(".") + 1]  # drop the sentence the token limit cut
    if not text:
        raise LLMOutputError("the model returned an empty explanation")
    cited, who, rejected = cite(_ID.findall(text), ids, ids[:1])
    _invented(svc, rejected)
    return Explanation(text=text[:1200], evidence_ids=cited, cited=who, rejected_ids=rejected, source="llm")


def _invented(svc: LLMService, rejected: list[str]) -> None:
    """Count ids a model cited that it was never given (``stats["invented_ids"]``); they are dropped."""
    if rejected:
        svc._count("invented_ids", len(rejected))
        logger.info("the model cited ids it was not given (dropped): %s", rejected[:5])
