"""Turning findings (our pydantic inputs, dicts, or the triage report's ``Finding``) into redacted prompt variables.

Everything that reaches a prompt passes through here: texts are redacted (one shared placeholder mapping per
finding), instruction-like payloads are cut out of the data (``tools.redact.InjectionFilter``), and the variable
sections are cut to the token budget of the model's context window.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from anomalist import prompts
from anomalist.agent.llm.schemas import (
    ChannelSummary,
    LogFindingInput,
    MetricFindingInput,
    SampleLine,
    TemplateInfo,
)
from anomalist.tools.redact import InjectionFilter, Redactor


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def as_log_input(obj: Any) -> LogFindingInput:
    """A ``LogFindingInput`` from itself, a dict, or a report ``Finding`` (duck-typed: ``templates`` with samples)."""
    if isinstance(obj, LogFindingInput):
        return obj
    if isinstance(obj, dict):
        return LogFindingInput.model_validate(obj)
    templates = list(_get(obj, "templates", []) or [])
    if not templates:
        raise ValueError("a log finding needs at least one template")
    infos, samples = [], []
    for t in templates:
        comps = _get(t, "components") or []
        infos.append(TemplateInfo(
            id=str(_get(t, "id")), template=str(_get(t, "template", "")), level=_get(t, "level"),
            component=_get(t, "component") or (str(comps[0]) if comps else None),
            count=int(_get(t, "count", 0) or 0), baseline_per_window=_get(t, "baseline_per_window"),
            first_seen=_get(t, "first_seen"), last_seen=_get(t, "last_seen"),
        ))
        for s in _get(t, "samples", []) or []:
            samples.append(SampleLine(id=str(_get(s, "id")), text=str(_get(s, "text", ""))))
    services = _get(obj, "services") or []
    return LogFindingInput(id=str(_get(obj, "id", "F1")), templates=infos, samples=samples,
                           context=("services: " + ", ".join(services)) if services else None)


def as_metric_input(obj: Any) -> MetricFindingInput:
    """A ``MetricFindingInput`` from itself, a dict, or a report ``Finding`` (duck-typed: ``metrics``)."""
    if isinstance(obj, MetricFindingInput):
        return obj
    if isinstance(obj, dict):
        return MetricFindingInput.model_validate(obj)
    metrics = list(_get(obj, "metrics", []) or [])
    if not metrics:
        raise ValueError("a metric finding needs at least one channel")
    chans = [ChannelSummary(
        id=str(_get(m, "id")), channel=str(_get(m, "channel")), baseline_mean=_get(m, "baseline_mean"),
        baseline_std=_get(m, "baseline_std"), span_mean=_get(m, "span_mean"), span_min=_get(m, "span_min"),
        span_max=_get(m, "span_max"), change_sigma=_get(m, "change"), shape=_shape(_get(m, "change")),
    ) for m in metrics]
    dets = _get(obj, "detectors") or []
    return MetricFindingInput(id=str(_get(obj, "id", "F1")), start=_get(obj, "start"), end=_get(obj, "end"),
                              channels=chans, detector=str(_get(dets[0], "detector")) if dets else None)


_FILLER = re.compile(r"([.\-_=*#~])\1{3,}")


def _covers(template: str, text: str) -> bool:
    """Whether ``text`` is a line of ``template`` (``<*>`` = any text, possibly empty), in linear time.

    A regex with one lazy ``.*?`` per wildcard backtracks exponentially on a long line that does not match (a real
    Java template with a dozen ``<*>`` took minutes); matching the literal parts left to right, each at its first
    occurrence, decides the same question.
    """
    parts = template.split("<*>")
    if len(parts) == 1:
        return text == template
    head, *middle, tail = parts
    if not text.startswith(head) or len(text) < len(head) + len(tail) or not text.endswith(tail):
        return False
    pos, stop = len(head), len(text) - len(tail)
    for part in middle:
        at = text.find(part, pos, stop)
        if at < 0:
            return False
        pos = at + len(part)
    return True


def _shape(change: float | None) -> str | None:
    """A coarse shape descriptor from the change in baseline standard deviations."""
    if change is None:
        return None
    if abs(change) < 2:
        return "within usual variation"
    return f"{'rise' if change > 0 else 'drop'} of {abs(change):.1f} sd" + (" (extreme)" if abs(change) >= 6 else "")


def _r(x: float | None, n: int = 4) -> float | None:
    return None if x is None else float(f"{x:.{n}g}")


class PromptBuilder:
    """Builds the redacted, budgeted variables of each prompt.

    Args:
        redactor: the redactor (one mapping per finding).
        injection: the instruction-payload filter.
        n_ctx: the model's context window (tokens).
        count_tokens: token counter of the model (approximate counter when None).
        max_output_tokens: tokens reserved for the answer.
    """

    def __init__(self, redactor: Redactor, injection: InjectionFilter, n_ctx: int,
                 count_tokens: Callable[[str], int] | None = None, max_output_tokens: int = 256):
        self.redactor = redactor
        self.injection = injection
        self.n_ctx = n_ctx
        self.count = count_tokens or prompts.approx_tokens
        self.max_output_tokens = max_output_tokens

    def clean(self, text: str, mapping: dict[str, str], flags: list[str]) -> str:
        """Injection payloads cut, secrets redacted, runs of filler punctuation (dot leaders) shortened."""
        text, found = self.injection.strip(text)
        flags.extend(found)
        return _FILLER.sub(lambda m: m.group(1) * 3, self.redactor.redact(text, mapping)[0])

    def _budgets(self, name: str) -> dict[str, int]:
        fixed = self.count(prompts.load(name).source)
        return prompts.section_budgets(name, self.n_ctx, self.max_output_tokens, fixed)

    def log_vars(self, f: LogFindingInput, name: str = "judge_log", compact: bool = False) -> tuple[dict[str, Any], list[str]]:
        """(prompt variables, injection flags) for a log finding; ``compact`` drops samples their template covers."""
        mapping: dict[str, str] = {}
        flags: list[str] = []
        b = self._budgets(name)
        rows: list[dict[str, Any]] = []
        for t in f.templates:
            rows.append({
                "id": t.id, "level": t.level, "component": t.component, "count": t.count,
                "baseline": _r(t.baseline_per_window, 3),
                "template": self.clean(t.template, mapping, flags),
                "params": self.clean(", ".join(t.varying_params[:5]), mapping, flags) if t.varying_params else "",
            })
        cap = 128 if compact else None  # small models: short sections keep a judgment fast
        texts = prompts.fit([f"{r['template']} {r['params']}" for r in rows], b["templates"], self.count,
                            max_item=min(cap or 10**6, max(32, b["templates"] // 2)))
        rows = rows[: max(1, len(texts))]
        for r, txt in zip(rows, texts, strict=False):
            if txt.endswith("...[cut]"):
                r["template"], r["params"] = txt, ""
        samples = [{"id": s.id, "text": self.clean(s.text, mapping, flags)} for s in f.samples]
        if compact:  # small models: a sample that only fills in its template's parameters adds nothing
            covering = [str(r["template"]) for r in rows]
            samples = [x for x in samples if not any(_covers(t, x["text"]) for t in covering)]
        kept = prompts.fit([s["text"] for s in samples], min(b["samples"], 3 * (cap or 10**6)), self.count,
                           max_item=min(cap or 10**6, max(32, b["samples"] // 3)))
        samples = [{"id": s["id"], "text": t} for s, t in zip(samples, kept, strict=False)]
        ctx = self.clean(f.context, mapping, flags) if f.context else None
        return {"templates": rows, "samples": samples, "context": ctx}, flags

    def metric_vars(self, f: MetricFindingInput) -> tuple[dict[str, Any], list[str]]:
        mapping: dict[str, str] = {}
        flags: list[str] = []
        b = self._budgets("judge_metric")
        chans: list[dict[str, Any]] = []
        used = 0
        for c in f.channels:
            row = {"id": c.id, "channel": self.clean(c.channel, mapping, flags),
                   "baseline_mean": _r(c.baseline_mean), "baseline_std": _r(c.baseline_std),
                   "span_mean": _r(c.span_mean), "span_min": _r(c.span_min), "span_max": _r(c.span_max),
                   "change_sigma": _r(c.change_sigma, 3), "shape": c.shape, "series": [round(v, 3) for v in c.values[:48]]}
            n = self.count(str(row))
            if chans and used + n > b["channels"]:
                break
            chans.append(row)
            used += n
        window = f"{f.start} .. {f.end}" if f.start or f.end else None
        ctx = self.clean(f.context, mapping, flags) if f.context else None
        return {"channels": chans, "window": window, "detector": f.detector, "context": ctx}, flags

    def finding_blocks(self, findings: Sequence[Any], name: str) -> tuple[list[str], list[str], list[str]]:
        """(text blocks, evidence ids, injection flags) describing findings for explain/summarize prompts."""
        mapping: dict[str, str] = {}
        flags: list[str] = []
        blocks: list[str] = []
        ids: list[str] = []
        for f in findings:
            fid = str(_get(f, "id", f"F{len(blocks) + 1}"))
            ids.append(fid)
            lines = [f"[{fid}] {self.clean(str(_get(f, 'title', '') or ''), mapping, flags)}".rstrip()]
            sev = _get(f, "severity")
            if sev:
                lines.append(f"severity: {sev}")
            for t in (_get(f, "templates") or [])[:5]:
                ids.append(str(_get(t, "id")))
                lines.append(f"[{_get(t, 'id')}] level={_get(t, 'level')} count={_get(t, 'count', 0)} "
                             f"template: {self.clean(str(_get(t, 'template', '')), mapping, flags)}")
                for s in (_get(t, "samples") or [])[:2]:
                    ids.append(str(_get(s, "id")))
                    lines.append(f"[{_get(s, 'id')}] {self.clean(str(_get(s, 'text', '')), mapping, flags)}")
            for m in (_get(f, "metrics") or [])[:5]:
                ids.append(str(_get(m, "id")))
                lines.append(f"[{_get(m, 'id')}] metric {self.clean(str(_get(m, 'channel')), mapping, flags)}: "
                             f"baseline {_r(_get(m, 'baseline_mean'))} -> {_r(_get(m, 'span_mean'))} "
                             f"(change {_r(_get(m, 'change'), 3)} sd)")
            v = _get(f, "verdict")
            if v is not None:
                lines.append(f"verdict: {'anomalous' if _get(v, 'anomalous') else 'normal'} "
                             f"(confidence {_r(_get(v, 'confidence'), 2)}, {_get(v, 'category', '')})")
            blocks.append("\n".join(lines))
        b = self._budgets(name)
        kept = prompts.fit(blocks, b["findings"], self.count, max_item=max(64, b["findings"] // 2))
        return kept, list(dict.fromkeys(i for i in ids if i and i != "None")), flags
