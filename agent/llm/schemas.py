"""Pydantic models the LLM layer takes and returns (never vendor types). ``Verdict``, ``Explanation`` and
``SampleLine`` are also the report's (``agent.report`` uses these, not copies)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JudgeMethod = Literal["label_likelihood", "json_schema", "tool_call", "json_text", "cache"]
Cited = Literal["model", "filled"]
"""Who chose an output's evidence ids: ``model`` = ids the model cited (of those it was given); ``filled`` = the model
cited none of them (or cannot cite, as in label-likelihood judgment) and the code put in the given ones."""


def cite(cited: Any, given: Any, fallback: Any) -> tuple[list[str], Cited, list[str]]:
    """``(evidence ids, who chose them, rejected ids)``: the ``cited`` ids that were ``given`` (in order, once), or
    ``fallback`` marked ``filled`` when none was; ids cited but never given (invented) are returned as rejected."""
    given_set = {str(i) for i in given}
    out = list(dict.fromkeys(str(i) for i in (cited or [])))
    kept = [i for i in out if i in given_set]
    rejected = [i for i in out if i not in given_set]
    if kept:
        return kept, "model", rejected
    return [str(i) for i in fallback], "filled", rejected


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TemplateInfo(_Model):
    """One log template of a log finding."""

    id: str = Field(description="Evidence id, e.g. F1.T1")
    template: str
    level: str | None = None
    component: str | None = None
    count: int = Field(0, ge=0, description="Occurrences in the finding's span")
    baseline_per_window: float | None = Field(None, ge=0.0, description="Mean occurrences per window elsewhere")
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    varying_params: list[str] = Field(default_factory=list, description="A few parameter values that vary")


class SampleLine(_Model):
    """One raw log line shown as evidence (redacted before it reaches a prompt or a report)."""

    id: str = Field(description="Evidence id, e.g. F1.L1")
    source: str | None = Field(None, description="File (or stream) the line came from")
    line_no: int | None = Field(None, description="1-based line number in its source")
    timestamp: datetime | None = None
    text: str = Field(description="The redacted line content")


class LogFindingInput(_Model):
    """What the judge sees of a log finding."""

    id: str = Field("F1", description="Evidence id of the finding")
    templates: list[TemplateInfo] = Field(min_length=1)
    samples: list[SampleLine] = Field(default_factory=list)
    context: str | None = Field(None, description="Optional context (service, alert name)")


class ChannelSummary(_Model):
    """A compact numeric summary of one metric channel around the anomaly (scaled and rounded)."""

    id: str = Field(description="Evidence id, e.g. F1.M1")
    channel: str
    baseline_mean: float | None = None
    baseline_std: float | None = None
    span_mean: float | None = None
    span_min: float | None = None
    span_max: float | None = None
    change_sigma: float | None = Field(None, description="(span_mean - baseline_mean) / baseline_std")
    values: list[float] = Field(default_factory=list, description="Scaled, rounded values around the window")
    shape: str | None = Field(None, description="Shape descriptor: spike, level shift, drift, dip, ...")


class MetricFindingInput(_Model):
    """What the judge sees of a metric finding."""

    id: str = "F1"
    start: datetime | None = None
    end: datetime | None = None
    channels: list[ChannelSummary] = Field(min_length=1)
    detector: str | None = None
    context: str | None = None


class Verdict(_Model):
    """A machine-readable judgment, with its provenance. From the LLM layer it is valid in every call, or the call
    raised an ``LLMError``; in a report its evidence ids are the report's."""

    anomalous: bool
    confidence: float = Field(ge=0.0, le=1.0, description="Confidence in the stated verdict (0..1)")
    category: str = "unknown"
    reason: str = ""
    evidence_ids: list[str] = Field(default_factory=list)
    p_anomalous: float = Field(0.5, ge=0.0, le=1.0, description="Probability of 'anomalous' (orientation fixed)")
    source: Literal["llm", "llm+prior", "prior", "detectors"] = Field(
        "llm", description="Who judged: the LLM, the LLM combined with the semantic prior, the prior alone, or the "
                           "detectors")
    method: JudgeMethod = "label_likelihood"
    scores: dict[str, float] = Field(default_factory=dict, description="Component scores, e.g. llm, prior")
    model: str = ""
    prompt_name: str = ""
    prompt_version: str = ""
    cached: bool = False
    flags: list[str] = Field(default_factory=list, description="e.g. injection payload kinds cut from the data")
    cited: Cited = Field("model", description="'model': the model cited evidence_ids; 'filled': the code did")
    rejected_ids: list[str] = Field(default_factory=list, description="Ids the model cited that it was not given")


class VerdictOut(_Model):
    """The schema a generating model must fill (structured output / tool arguments)."""

    anomalous: bool
    confidence: float = Field(ge=0.0, le=1.0)
    category: str = Field(max_length=60)
    reason: str = Field(max_length=400)
    evidence_ids: list[str] = Field(default_factory=list, max_length=10)


class Explanation(_Model):
    """Text that explains something, with the evidence ids it rests on (only ids that were given survive)."""

    text: str
    evidence_ids: list[str] = Field(default_factory=list)
    source: Literal["llm", "template"] = Field(
        "template", description="'llm' when generated by the model, 'template' when composed from the evidence")
    likely_cause: str = ""
    next_steps: list[str] = Field(default_factory=list)
    model: str = ""
    prompt_name: str = ""
    prompt_version: str = ""
    cited: Cited = Field("model", description="'model': the model (or the template) cited evidence_ids; 'filled': "
                                              "the model cited none and the code filled them in")
    rejected_ids: list[str] = Field(default_factory=list, description="Ids the model cited that it was not given")


class ServerCapabilities(_Model):
    """What the start-up probe found out about an OpenAI-compatible server."""

    reachable: bool = False
    models: list[str] = Field(default_factory=list)
    json_schema: bool = False
    tool_calls: bool = False
    error: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
