"""Running the chat agent's tool calls: errors become fix-it results, outputs fit a token budget.

Every tool result that reaches the model is a JSON object with ``status`` (``ok``, ``no_data`` or ``error``), an
evidence id (``E1``, ``E2``, ...) that the answer cites, and the tool's data cut down to the budget. Errors that the
model caused (an unknown tool, arguments that do not validate, a tool refusing its input) go back to the model as
``error`` results with a message saying how to fix the call; they never raise.

Tools that change something outside the conversation (``tool.metadata["side_effects"]`` is true: restart, silence,
scale, ...) are never run from a model's tool call: the call is refused (an ``error`` result with ``refused``) and
counted, because the model's plan may come from text in the logs (prompt injection), not from the person asking. Such
a tool runs only through :meth:`ToolExecutor.run_confirmed`, which the caller uses after a person confirmed it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anomalist.prompts import neutralise

logger = logging.getLogger(__name__)

Status = Literal["ok", "no_data", "error"]

# Rough characters per token of JSON tool output (English text and JSON punctuation both land near 3.5-4).
CHARS_PER_TOKEN = 3.5


class Evidence(BaseModel):
    """One tool result as evidence an answer may cite."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Evidence id cited in answers, e.g. 'E3'")
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    status: Status
    summary: str = ""
    truncated: bool = False
    elapsed_ms: float = 0.0
    refused: bool = False  # a tool with side effects that a model's call cannot run


def has_side_effects(tool: BaseTool) -> bool:
    """Whether ``tool`` changes something outside the conversation (``metadata={"side_effects": True}``)."""
    return bool((tool.metadata or {}).get("side_effects"))


def tool_budget_tokens(context_tokens: int, n_calls: int = 1, share: float = 0.5) -> int:
    """Tokens one tool result may use: ``share`` of the model's context, split over the calls of one step.

    Args:
        context_tokens: the model's context window in tokens.
        n_calls: tool calls whose results go into the same model turn.
        share: fraction of the context reserved for tool results (the rest: system prompt, history, answer).
    """
    if context_tokens <= 0:
        raise ValueError(f"context_tokens must be > 0, got {context_tokens}")
    return max(64, int(context_tokens * share / max(1, n_calls)))


def _normalize(raw: Any) -> dict[str, Any]:
    """Whatever a tool returned, as ``{"status": ..., ...}`` (empty results are ``no_data``)."""
    if isinstance(raw, BaseModel):
        raw = raw.model_dump(mode="json")
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        raw = parsed if isinstance(parsed, dict) else {"status": "ok" if raw.strip() else "no_data", "text": raw}
    if raw is None or raw == [] or raw == {}:
        return {"status": "no_data", "summary": "the tool found nothing"}
    if isinstance(raw, list):
        return {"status": "ok", "items": raw}
    if not isinstance(raw, dict):
        return {"status": "ok", "value": raw}
    out = dict(raw)
    if out.get("status") not in ("ok", "no_data", "error"):
        out["status"] = "ok"
    return out


def _shrink(obj: Any, depth: int = 0) -> tuple[Any, bool]:
    """Halve the longest list found in ``obj`` (in place on copies); returns (new obj, changed)."""
    best: list[Any] | None = None
    best_path: list[Any] = []

    def walk(node: Any, path: list[Any]) -> None:
        nonlocal best, best_path
        if isinstance(node, list):
            if len(node) > 1 and (best is None or len(node) > len(best)):
                best, best_path = node, list(path)
            for i, child in enumerate(node):
                walk(child, [*path, i])
        elif isinstance(node, dict):
            for key, child in node.items():
                walk(child, [*path, key])

    walk(obj, [])
    if best is None:
        return obj, False
    keep = max(1, len(best) // 2)
    omitted = len(best) - keep
    new_list = best[:keep] + [f"... {omitted} more omitted to fit the token budget"]
    if not best_path:
        return new_list, True
    parent = obj
    for key in best_path[:-1]:
        parent = parent[key]
    parent[best_path[-1]] = new_list
    return obj, True


def _cut_strings(obj: Any, limit: int) -> Any:
    if isinstance(obj, str):
        return obj if len(obj) <= limit else obj[:limit] + "...[cut]"
    if isinstance(obj, list):
        return [_cut_strings(x, limit) for x in obj]
    if isinstance(obj, dict):
        return {k: _cut_strings(v, limit) for k, v in obj.items()}
    return obj


def fit_to_budget(payload: dict[str, Any], max_tokens: int) -> tuple[str, bool]:
    """Serialize ``payload`` to JSON within ``max_tokens`` (estimated); lists shrink first, then long strings.

    Returns:
        (json text, whether anything was cut).
    """
    max_chars = max(64, int(max_tokens * CHARS_PER_TOKEN))
    obj = json.loads(json.dumps(payload, default=str))
    text = json.dumps(obj, ensure_ascii=False, default=str)
    truncated = False
    for _ in range(64):
        if len(text) <= max_chars:
            return text, truncated
        obj, changed = _shrink(obj)
        if not changed:
            break
        truncated = True
        text = json.dumps(obj, ensure_ascii=False, default=str)
    if len(text) > max_chars:
        for limit in (400, 200, 80):
            obj = _cut_strings(obj, limit)
            truncated = True
            text = json.dumps(obj, ensure_ascii=False, default=str)
            if len(text) <= max_chars:
                return text, truncated
        # Last resort: a valid JSON object with the head of the text.
        head = {"status": obj.get("status", "ok") if isinstance(obj, dict) else "ok", "truncated": True,
                "text": text[: max(0, max_chars - 60)]}
        text = json.dumps(head, ensure_ascii=False)
        truncated = True
    return text, truncated


def _fix_it_for_validation(tool: BaseTool, exc: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(arguments)'}: {err['msg']}" for err in exc.errors()[:6]
    )
    schema = tool.args
    return (
        f"The arguments for {tool.name} are invalid ({problems}). Call {tool.name} again with arguments "
        f"matching this schema: {json.dumps(schema, default=str)[:800]}"
    )


class ToolExecutor:
    """Runs tool calls by name with error capture, evidence ids and a token budget per result.

    Args:
        tools: the tools the model may call.
        context_tokens: the model's context window, from which the per-result budget is derived.
        tool_share: fraction of the context reserved for one step's tool results.
    """

    def __init__(self, tools: Sequence[BaseTool], context_tokens: int = 2048, tool_share: float = 0.5):
        self.tools = {t.name: t for t in tools}
        self.context_tokens = context_tokens
        self.tool_share = tool_share
        self.refused = 0  # model calls of tools with side effects that were not run

    def run_confirmed(self, call: dict[str, Any], first_evidence_no: int) -> tuple[list[ToolMessage], list[Evidence]]:
        """Run one call of a tool with side effects that a person confirmed (the only way such a tool runs)."""
        return self.run([call], first_evidence_no, confirmed=True)

    def run(self, calls: Sequence[dict[str, Any]], first_evidence_no: int, *, confirmed: bool = False
            ) -> tuple[list[ToolMessage], list[Evidence]]:
        """Execute ``calls`` (LangChain tool-call dicts: name, args, id) in order.

        Args:
            calls: the tool calls of one model turn.
            first_evidence_no: number of the first evidence id to assign (E<n>).
            confirmed: a person confirmed these calls (only then do tools with side effects run).

        Returns:
            One ``ToolMessage`` per call (same order, ``tool_call_id`` matching) and the evidence records.
        """
        budget = tool_budget_tokens(self.context_tokens, len(calls), self.tool_share)
        messages: list[ToolMessage] = []
        evidence: list[Evidence] = []
        for offset, call in enumerate(calls):
            ev_id = f"E{first_evidence_no + offset}"
            name = str(call.get("name", ""))
            args = call.get("args") or {}
            started = time.perf_counter()
            payload = self._invoke(name, args, confirmed)
            elapsed = (time.perf_counter() - started) * 1000
            payload = {"evidence_id": ev_id, "tool": name, **payload}
            text, truncated = fit_to_budget(payload, budget)
            # Log text is untrusted: defuse chat role tags and data delimiters it may carry (JSON stays valid).
            text = neutralise(text)
            if truncated:
                logger.debug("tool %s output cut to %d tokens", name, budget)
            status: Status = payload["status"]
            summary = str(payload.get("summary") or payload.get("message") or "")[:300]
            messages.append(
                ToolMessage(
                    content=text,
                    tool_call_id=str(call.get("id") or ev_id),
                    name=name,
                    status="error" if status == "error" else "success",
                    artifact={"evidence_id": ev_id, "status": status},
                )
            )
            evidence.append(
                Evidence(id=ev_id, tool=name, args=dict(args) if isinstance(args, dict) else {}, status=status,
                         summary=summary, truncated=truncated, elapsed_ms=round(elapsed, 1),
                         refused=bool(payload.get("refused")))
            )
        return messages, evidence

    def _invoke(self, name: str, args: Any, confirmed: bool = False) -> dict[str, Any]:
        tool = self.tools.get(name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "(none)"
            return {"status": "error", "message": f"There is no tool named {name!r}. Use one of: {known}."}
        if has_side_effects(tool) and not confirmed:
            self.refused += 1
            logger.warning("refused a model call of %s (side effects need a person's confirmation): %s", name, args)
            return {"status": "error", "refused": True,
                    "message": f"{name} changes the system and runs only when a person confirms it. Do not call it; "
                               f"answer the question, and say which action you would suggest."}
        if not isinstance(args, dict):
            return {"status": "error",
                    "message": f"Arguments for {name} must be a JSON object, got {type(args).__name__}. "
                               f"Call {name} again with an object matching its schema."}
        try:
            raw = tool.invoke(args)
        except ValidationError as exc:
            return {"status": "error", "message": _fix_it_for_validation(tool, exc)}
        except (ValueError, TypeError, KeyError, LookupError) as exc:
            # The tools raise these for input the model chose (bad time range, unknown source, ...).
            return {"status": "error", "message": f"{name} could not run with {args}: {exc}. "
                                                  f"Fix the arguments and call it again, or answer without it."}
        except Exception as exc:  # a failing tool must not end the conversation
            logger.warning("tool %s failed: %s", name, exc, exc_info=logger.isEnabledFor(logging.DEBUG))
            return {"status": "error",
                    "message": f"{name} failed ({type(exc).__name__}: {exc}). Try other arguments or another tool, "
                               f"or answer with what you have and say this tool failed."}
        return _normalize(raw)
