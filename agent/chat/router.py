"""A deterministic tool router for models that do not call tools (the embedded default).

The router reads the question, picks tools by rules (keywords) plus embedding similarity between the question and
each tool's description (the shared offline embedder), and fills the tools' arguments from what it finds in the
question: times ("at 14:05", "between 14:00 and 14:30", ISO timestamps, "in the last 30 minutes"), quoted
phrases and salient words to search for, alert names (``KubePodCrashLooping``). The same question always gives
the same tool calls. The model never chooses tools on this path; it only phrases the answer from their results.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from langchain_core.tools import BaseTool

logger = logging.getLogger(__name__)

# (tool name, pattern): a match selects the tool. Order = priority when more tools match than max_tools.
RULES: tuple[tuple[str, str], ...] = (
    ("run_triage", r"\b(triage|what'?s wrong|what is wrong|what went wrong|overall|full report|root cause|"
                   r"summari[sz]e (the )?(logs|incident))"),
    ("new_templates", r"\b(new|first[- ]seen|never seen|novel|appear(ed|s)?|unusual|unseen) (log )?(message|template|"
                      r"error|event|line|pattern|warning)s?\b|\bnew (errors?|messages?)\b|\bappeared\b"),
    ("top_templates", r"\b(top|most (common|frequent)|frequent|noisiest|dominat\w*|most often|kinds? of (events?|"
                      r"messages?))\b"),
    ("search_logs", r"\b(search|grep|find|show( me)?|lines? (with|containing|mentioning)|mention\w*|contain\w*|"
                    r"say about|exception|timeout|refused|denied|crash\w*)\b|\"[^\"]+\"|'[^']+'"),
    ("detect_metric_anomalies", r"\b(metrics?|latency|cpu|memory|disk|throughput|error[- ]rate|p9\d|saturat\w*|"
                                r"spike\w*|jump\w*|rose|rise|drop\w*|slow\w*)\b"),
    ("similar_incidents", r"\b(seen (this|it|that) before|seen\b[\w\s-]{0,60}\bbefore|(like|as) this before|"
                          r"happened before|similar|past|previous|earlier|history|"
                          r"recurr\w*|again|postmortem|outage|incidents?)\b"),
    ("runbook_for_alert", r"\b(runbook|how (do|should|can) (i|we) (fix|resolve|mitigate)|what should (i|we) do|"
                          r"remediat\w*|mitigat\w*|next steps?|alert)\b"),
    ("parse_logs", r"\b(parse|format|how many (lines|events)|which (files|sources)|overview|templates? count)\b"),
)

_STOP = set(
    "a an the and or but of in on at to for from by with about into over under between is are was were be been "
    "do does did have has had i we you it this that these those what why how when where which who whom whose "
    "there their our my your me us show find search lines line logs log messages message any all some please "
    "can could would should will tell see seen happen happened before after during since until last jump spike "
    "errors error say says said about wrong why did going went".split()
)
_CAMEL = re.compile(r"\b[A-Z][a-z]+(?:[A-Z][a-z0-9]+){2,}\b")
_ISO = re.compile(r"\b\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}(?::\d{2})?\b")
_CLOCK = re.compile(r"(?<![\d:])(\d{1,2}):(\d{2})(?::(\d{2}))?(?![\d:])")
_LAST = re.compile(r"\b(?:last|past|previous)\s+(\d+)\s*(s|sec|seconds?|m|mins?|minutes?|h|hrs?|hours?)\b", re.I)
_QUOTED = re.compile(r"\"([^\"]{2,120})\"|'([^']{2,120})'")


@dataclass(frozen=True)
class TimeRange:
    """Start and end as strings the log tools understand (ISO, ``HH:MM:SS`` or ``end-30m``)."""

    start: str | None
    end: str | None


def extract_time_range(question: str, around_minutes: int = 15) -> TimeRange:
    """Times in ``question``: two = a range; "after/since T" = from T; "before/until T" = up to T; one = ``around_minutes``
    either side; "last N minutes" = relative to the end of the data."""
    last = _LAST.search(question)
    if last:
        unit = last.group(2).lower()[0]
        return TimeRange(start=f"end-{last.group(1)}{unit}", end="end")
    found: list[str] = [m.group(0).replace(" ", "T") for m in _ISO.finditer(question)]
    if not found:
        scrub = _ISO.sub(" ", question)
        for m in _CLOCK.finditer(scrub):
            hh, mm = int(m.group(1)), int(m.group(2))
            if hh < 24 and mm < 60:
                found.append(f"{hh:02d}:{mm:02d}:{int(m.group(3) or 0):02d}")
    if len(found) >= 2:
        return TimeRange(start=found[0], end=found[1])
    if len(found) == 1:
        lowered = question.lower()
        if re.search(r"\b(after|since|starting|from)\s+(about\s+|around\s+)?(\d|\w+\s+\d)", lowered):
            return TimeRange(start=found[0], end=None)
        if re.search(r"\b(before|until|up to|till)\s+(about\s+|around\s+)?\d", lowered):
            return TimeRange(start=None, end=found[0])
        return TimeRange(start=_shift(found[0], -around_minutes), end=_shift(found[0], around_minutes))
    return TimeRange(start=None, end=None)


def _shift(value: str, minutes: int) -> str:
    if "T" in value:
        return (datetime.fromisoformat(value) + timedelta(minutes=minutes)).isoformat(timespec="seconds")
    base = datetime(2000, 1, 2) + timedelta(hours=int(value[:2]), minutes=int(value[3:5]), seconds=int(value[6:8]))
    shifted = base + timedelta(minutes=minutes)
    # Clamp to the same day: a window around 00:05 starts at 00:00, not on the day before.
    shifted = min(max(shifted, datetime(2000, 1, 2)), datetime(2000, 1, 2, 23, 59, 59))
    return shifted.strftime("%H:%M:%S")


def extract_search_terms(question: str, max_terms: int = 4) -> list[str]:
    """Quoted phrases, else salient words (not stop words, not times) of ``question``."""
    quoted = [a or b for a, b in _QUOTED.findall(question)]
    if quoted:
        return quoted[:max_terms]
    text = _CLOCK.sub(" ", _ISO.sub(" ", question))
    words = re.findall(r"[A-Za-z_][A-Za-z0-9_./-]{2,}", text)
    out: list[str] = []
    for word in words:
        low = word.lower().strip("./-")
        if low in _STOP or low in out:
            continue
        out.append(low)
    return out[:max_terms]


def extract_alert_name(question: str) -> str | None:
    m = _CAMEL.search(question)
    return m.group(0) if m else None


class ToolRouter:
    """Picks tool calls for a question by rules plus embedding similarity to the tools' descriptions.

    Args:
        embedder: a ``tools.embeddings.Embedder`` (None = rules only).
        max_tools: most tools called for one question.
        min_similarity: cosine similarity above which a tool is picked on meaning alone.
        margin: ... and only when it is within this much of the best tool's similarity.
    """

    def __init__(self, embedder: Any = None, max_tools: int = 3, min_similarity: float = 0.4, margin: float = 0.1):
        self.embedder = embedder
        self.max_tools = max_tools
        self.min_similarity = min_similarity
        self.margin = margin
        self._desc_cache: dict[tuple[str, str], np.ndarray] = {}

    def similarities(self, question: str, tools: Sequence[BaseTool]) -> dict[str, float]:
        """Cosine similarity of the question to each tool's name + description."""
        if self.embedder is None or not tools:
            return {}
        missing = [t for t in tools if (t.name, t.description) not in self._desc_cache]
        if missing:
            vecs = self.embedder.encode([f"{t.name.replace('_', ' ')}: {t.description}" for t in missing])
            for tool, vec in zip(missing, vecs, strict=True):
                self._desc_cache[(tool.name, tool.description)] = vec
        q = self.embedder.encode([question])[0]
        return {t.name: float(np.dot(q, self._desc_cache[(t.name, t.description)])) for t in tools}

    def select(self, question: str, tools: Sequence[BaseTool]) -> list[str]:
        """Names of the tools to call, in call order."""
        names = {t.name for t in tools}
        picked = [name for name, pattern in RULES if name in names and re.search(pattern, question, re.I)]
        if "runbook_for_alert" in names and "runbook_for_alert" not in picked and extract_alert_name(question):
            picked.append("runbook_for_alert")  # an alert name (CamelCase) in the question
        sims = self.similarities(question, tools)
        ranked = sorted(sims.items(), key=lambda kv: -kv[1])
        best = ranked[0][1] if ranked else 0.0
        for name, sim in ranked:
            # On meaning alone only tools close to the best match: a runner-up far behind it is noise.
            if sim >= self.min_similarity and sim >= best - self.margin and name not in picked:
                picked.append(name)
        if not picked and ranked and ranked[0][1] >= self.min_similarity / 2:  # nothing else: the closest tool
            picked.append(ranked[0][0])
        if len(picked) > self.max_tools:
            # Keep the rule order, but let similarity decide which ones to keep.
            keep = set(sorted(picked, key=lambda n: -sims.get(n, 0.0))[: self.max_tools]) if sims else set(
                picked[: self.max_tools])
            picked = [n for n in picked if n in keep]
        logger.debug("router picked %s (similarities %s)", picked, sims)
        return picked

    def plan(self, question: str, tools: Sequence[BaseTool]) -> list[dict[str, Any]]:
        """Tool calls (``{"name", "args"}``) for ``question``; tools whose required arguments cannot be filled
        from the question are left out."""
        by_name = {t.name: t for t in tools}
        calls: list[dict[str, Any]] = []
        for name in self.select(question, tools):
            args = self._args_for(by_name[name], question)
            if args is not None:
                calls.append({"name": name, "args": args})
        return calls

    def _args_for(self, tool: BaseTool, question: str) -> dict[str, Any] | None:
        schema: dict[str, Any] = tool.tool_call_schema.model_json_schema() if hasattr(
            tool.tool_call_schema, "model_json_schema") else {}
        props: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", []))
        span = extract_time_range(question)
        alert = extract_alert_name(question)
        args: dict[str, Any] = {}
        for field in props:
            value: Any = None
            if field in ("start", "start_time"):
                value = span.start
            elif field in ("end", "end_time"):
                value = span.end
            elif field in ("terms", "keywords"):
                value = extract_search_terms(question) or None
            elif field == "query":
                value = " ".join(extract_search_terms(question)) if tool.name == "search_logs" else question
                value = value or None
            elif field in ("description", "question", "text"):
                value = question
            elif field in ("alertname", "alert_name"):
                value = alert or (question if field in required else None)
            if value is not None:
                args[field] = value
        if required - set(args):
            logger.debug("router skips %s: cannot fill %s", tool.name, sorted(required - set(args)))
            return None
        return args
