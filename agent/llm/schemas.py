"""Pydantic models the LLM layer takes and returns (never vendor types)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JudgeMethod = Literal["label_likelihood", "json_schema", "tool_call", "json_text", "cache"]


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
    """A raw log line (redacted before it reaches a prompt)."""

    id: str
    text: str


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
    """A machine-readable judgment. Valid in every call, or the call raised an ``LLMError``."""

    anomalous: bool
    confidence: float = Field(ge=0.0, le=1.0, description="Confidence in the stated verdict (0..1)")
    category: str = "unknown"
    reason: str = ""
    evidence_ids: list[str] = Field(default_factory=list)
    p_anomalous: float = Field(0.5, ge=0.0, le=1.0, description="Probability of 'anomalous' (orientation fixed)")
    source: Literal["llm", "llm+prior", "prior"] = "llm"
    method: JudgeMethod = "label_likelihood"
    scores: dict[str, float] = Field(default_factory=dict, description="Component scores, e.g. llm, prior")
    model: str = ""
    prompt_name: str = ""
    prompt_version: str = ""
    cached: bool = False
    flags: list[str] = Field(default_factory=list, description="e.g. injection payload kinds cut from the data")


class VerdictOut(_Model):
    """The schema a generating model must fill (structured output / tool arguments)."""

    anomalous: bool
    confidence: float = Field(ge=0.0, le=1.0)
    category: str = Field(max_length=60)
    reason: str = Field(max_length=400)
    evidence_ids: list[str] = Field(default_factory=list, max_length=10)


class Explanation(_Model):
    """An explanation that cites evidence ids (only ids that were given to the model survive)."""

    text: str
    evidence_ids: list[str] = Field(default_factory=list)
    likely_cause: str = ""
    next_steps: list[str] = Field(default_factory=list)
    model: str = ""
    prompt_name: str = ""
    prompt_version: str = ""


class ServerCapabilities(_Model):
    """What the start-up probe found out about an OpenAI-compatible server."""

    reachable: bool = False
    models: list[str] = Field(default_factory=list)
    json_schema: bool = False
    tool_calls: bool = False
    error: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
