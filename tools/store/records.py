"""Records of the incident memory (versioned pydantic schema, ``extra="forbid"``) and retrieval results."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = 1

# Bounds on what one record may hold: larger input is rejected (with the reason), never silently cut.
MAX_ID = 200
MAX_TITLE = 500
MAX_TEXT = 20_000
MAX_ITEM = 2_000
MAX_ITEMS = 200

Severity = Literal["critical", "high", "warning", "low", "info", "unknown"]
SEVERITY_RANK: dict[str, int] = {"unknown": 0, "info": 1, "low": 2, "warning": 3, "high": 4, "critical": 5}
_SEVERITY_ALIASES = {
    "crit": "critical", "fatal": "critical", "emergency": "critical", "page": "critical", "p1": "critical",
    "sev1": "critical", "error": "high", "major": "high", "p2": "high", "sev2": "high", "warn": "warning",
    "medium": "warning", "moderate": "warning", "p3": "warning", "sev3": "warning", "minor": "low", "p4": "low",
    "none": "info", "informational": "info", "notice": "info", "": "unknown",
}
MatchReason = Literal["exact_name", "runbook_url", "keyword", "semantic"]
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")

Text = str  # documentation alias: free text bounded by MAX_TEXT


def normalize_severity(value: Any) -> str:
    """Map common severity spellings (Alertmanager, PagerDuty, log levels) onto ``Severity``."""
    if value is None:
        return "unknown"
    s = str(value).strip().lower()
    if s in SEVERITY_RANK:
        return s
    return _SEVERITY_ALIASES.get(s, s)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _check_items(values: list[str], name: str) -> list[str]:
    if len(values) > MAX_ITEMS:
        raise ValueError(f"{name}: at most {MAX_ITEMS} items, got {len(values)}")
    out: list[str] = []
    for v in values:
        if len(v) > MAX_ITEM:
            raise ValueError(f"{name}: items must be at most {MAX_ITEM} characters, got {len(v)}")
        if v and v not in out:
            out.append(v)
    return out


class Symptoms(_Record):
    """What the incident looked like: log templates, metric names, alert names."""

    templates: list[str] = Field(default_factory=list)
    metrics: list[str] = Field(default_factory=list)
    alerts: list[str] = Field(default_factory=list)

    @field_validator("templates", "metrics", "alerts")
    @classmethod
    def _bounded(cls, v: list[str], info: Any) -> list[str]:
        return _check_items(v, info.field_name)


class Incident(_Record):
    """A past incident (postmortem, saved triage report, ...)."""

    schema_version: Literal[1] = 1
    id: str = Field(min_length=1, max_length=MAX_ID)
    title: str = Field(min_length=1, max_length=MAX_TITLE)
    summary: str = Field(default="", max_length=MAX_TEXT)
    services: list[str] = Field(default_factory=list)
    symptoms: Symptoms = Field(default_factory=Symptoms)
    root_cause: str = Field(default="", max_length=MAX_TEXT)
    resolution: str = Field(default="", max_length=MAX_TEXT)
    severity: Severity = "unknown"
    started_at: datetime | None = None
    resolved_at: datetime | None = None
    links: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    source: str = Field(default="", max_length=MAX_ITEM)

    @field_validator("id")
    @classmethod
    def _id_chars(cls, v: str) -> str:
        if not _ID_RE.match(v):
            raise ValueError("id must start with a letter or digit and use only letters, digits and ._:/@+-")
        return v

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, v: Any) -> Any:
        return normalize_severity(v) if isinstance(v, str) or v is None else v

    @field_validator("services", "links", "tags")
    @classmethod
    def _lists(cls, v: list[str], info: Any) -> list[str]:
        return _check_items(v, info.field_name)

    @field_validator("started_at", "resolved_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            return v.replace(tzinfo=UTC)  # naive times are taken as UTC
        return v

    @model_validator(mode="after")
    def _times_ordered(self) -> Incident:
        if self.started_at and self.resolved_at and self.resolved_at < self.started_at:
            raise ValueError("resolved_at is before started_at")
        return self


SectionName = str  # "overview" | "impact" | "diagnosis" | "mitigation" | any other heading, lower-cased
CANONICAL_SECTIONS = ("overview", "impact", "diagnosis", "mitigation")


class RunbookSection(_Record):
    """One runbook section: its prose and the steps (list items, commands) found in it."""

    text: str = Field(default="", max_length=MAX_TEXT)
    steps: list[str] = Field(default_factory=list)

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[str]) -> list[str]:
        return _check_items(v, "steps")


class Runbook(_Record):
    """An SRE runbook for one or more alerts."""

    schema_version: Literal[1] = 1
    id: str = Field(min_length=1, max_length=MAX_ID)
    title: str = Field(min_length=1, max_length=MAX_TITLE)
    alert_names: list[str] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)
    sections: dict[SectionName, RunbookSection] = Field(default_factory=dict)
    url: str | None = Field(default=None, max_length=MAX_ITEM)
    source: str = Field(default="", max_length=MAX_ITEM, description="File path or URL the runbook was read from")
    tags: list[str] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id_chars(cls, v: str) -> str:
        if not _ID_RE.match(v):
            raise ValueError("id must start with a letter or digit and use only letters, digits and ._:/@+-")
        return v

    @field_validator("alert_names", "services", "tags")
    @classmethod
    def _lists(cls, v: list[str], info: Any) -> list[str]:
        return _check_items(v, info.field_name)

    @field_validator("sections")
    @classmethod
    def _sections(cls, v: dict[str, RunbookSection]) -> dict[str, RunbookSection]:
        if len(v) > 50:
            raise ValueError(f"sections: at most 50, got {len(v)}")
        return {k.strip().lower(): s for k, s in v.items() if k.strip()}


class StoreFilters(_Record):
    """Metadata filters for search and listing (all given conditions must hold)."""

    services: list[str] = Field(default_factory=list, description="Any of these services")
    severity: list[Severity] = Field(default_factory=list, description="One of these severities")
    min_severity: Severity | None = Field(default=None, description="At least this severity")
    since: datetime | None = Field(default=None, description="started_at >= since")
    until: datetime | None = Field(default=None, description="started_at <= until")
    tags: list[str] = Field(default_factory=list, description="Any of these tags")

    @field_validator("severity", mode="before")
    @classmethod
    def _sev(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        return [normalize_severity(s) for s in v] if isinstance(v, list) else v

    @field_validator("min_severity", mode="before")
    @classmethod
    def _min_sev(cls, v: Any) -> Any:
        return normalize_severity(v) if isinstance(v, str) else v

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            return v.replace(tzinfo=UTC)
        return v

    def is_empty(self) -> bool:
        return not (self.services or self.severity or self.min_severity or self.since or self.until or self.tags)


class ScoreParts(_Record):
    """The parts a hit's score was combined from (each 0..1)."""

    semantic: float = 0.0
    keyword: float = 0.0
    exact: float = 0.0


class IncidentHit(_Record):
    """A similar incident: the record, its score (higher = more similar, 0..~1.5) and why it matched."""

    incident: Incident
    score: float
    why: list[MatchReason]
    parts: ScoreParts
    matched_terms: list[str] = Field(default_factory=list)

    @property
    def id(self) -> str:
        return self.incident.id


class RunbookHit(_Record):
    """A matching runbook: the record, its score and why it matched (an exact alert name outranks everything)."""

    runbook: Runbook
    score: float
    why: list[MatchReason]
    parts: ScoreParts
    matched_terms: list[str] = Field(default_factory=list)

    @property
    def id(self) -> str:
        return self.runbook.id


class Rejection(_Record):
    """One input record that was not imported, and why."""

    where: str = Field(description="File and line (or file alone)")
    id: str | None = None
    reason: str


class ImportSummary(_Record):
    """What an importer read and what became of it; ``added + updated + unchanged + rejected == parsed``-ish."""

    source: str
    read: int = Field(default=0, description="Records (lines, files, rules) looked at")
    skipped: int = Field(default=0, description="Blank lines and files that are not records (counted, not errors)")
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    seconds: float = 0.0

    @property
    def imported(self) -> int:
        return self.added + self.updated + self.unchanged

    def merge(self, other: ImportSummary) -> ImportSummary:
        return ImportSummary(
            source=self.source, read=self.read + other.read, skipped=self.skipped + other.skipped,
            added=self.added + other.added, updated=self.updated + other.updated,
            unchanged=self.unchanged + other.unchanged, rejected=[*self.rejected, *other.rejected],
            notes=[*self.notes, *other.notes], seconds=self.seconds + other.seconds,
        )
