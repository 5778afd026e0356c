"""Alertmanager alerts, the one model: the alert and the webhook body (version 4), parsing payloads, rendering rule
annotation templates, building retrieval queries. The service, the triage and the store all use these."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

_TEMPLATE = re.compile(r"\{\{-?(.*?)-?\}\}", re.S)
_WITH = re.compile(r"\{\{-?\s*with\s+\$labels\.(\w+)\s*-?\}\}(.*?)\{\{-?\s*end\s*-?\}\}", re.S)
_LABEL_REF = re.compile(r"\$labels\.(\w+)")
# Labels that identify an instance (addresses, ids, hashes) say nothing about *what* is wrong.
_VOLATILE_LABELS = frozenset(
    {"alertname", "severity", "instance", "pod", "uid", "fingerprint", "prometheus", "endpoint", "container_id",
     "pod_ip", "ip", "node_ip", "id", "image_id"}
)


class Alert(BaseModel):
    """One Alertmanager alert. Unknown fields are kept (Alertmanager adds some over time). Only labels and
    annotations are needed to retrieve with it; a webhook delivery (:class:`AlertmanagerWebhook`) requires
    ``status``, ``startsAt`` and ``fingerprint`` too."""

    model_config = ConfigDict(extra="allow")

    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    status: Literal["firing", "resolved"] | None = None
    startsAt: datetime | None = None  # noqa: N815 - Alertmanager's field names
    endsAt: datetime | None = None  # noqa: N815
    generatorURL: str | None = None  # noqa: N815
    fingerprint: str | None = Field(None, min_length=1, max_length=128)

    @property
    def name(self) -> str | None:
        return self.labels.get("alertname") or None

    @property
    def display_name(self) -> str:
        return self.name or "unnamed-alert"

    @property
    def runbook_url(self) -> str | None:
        return self.annotations.get("runbook_url") or self.annotations.get("runbook") or None

    def dedup_key(self) -> str:
        """Alertmanager redelivers the same alert with the same fingerprint and startsAt."""
        if not self.fingerprint or self.startsAt is None:
            raise ValueError("an alert without fingerprint and startsAt has no delivery identity")
        return f"{self.fingerprint}|{self.startsAt.isoformat()}"

    @classmethod
    def coerce(cls, alert: Alert | dict[str, Any]) -> Alert:
        """Accept an ``Alert``, an Alertmanager alert dict, or a whole webhook payload (first alert). Lenient: a
        field that does not parse (an odd ``startsAt``) is left out rather than failing the retrieval."""
        if isinstance(alert, Alert):
            return alert
        if not isinstance(alert, dict):
            raise TypeError(f"alert must be a dict with labels/annotations, got {type(alert).__name__}")
        raw: dict[str, Any] = alert
        if "alerts" in raw and isinstance(raw["alerts"], list):
            if not raw["alerts"] or not isinstance(raw["alerts"][0], dict):
                raise ValueError("the webhook payload holds no alerts")
            raw = raw["alerts"][0]
        labels = {str(k): str(v) for k, v in (raw.get("labels") or {}).items()}
        annotations = {str(k): str(v) for k, v in (raw.get("annotations") or {}).items()}
        rest: dict[str, Any] = {}
        for k in ("status", "startsAt", "endsAt", "generatorURL", "fingerprint"):
            if raw.get(k) in (None, ""):
                continue
            try:
                cls(**{k: raw[k]})
            except ValidationError:
                continue
            rest[k] = raw[k]
        return cls(labels=labels, annotations=annotations, **rest)


class AlertmanagerWebhook(BaseModel):
    """The webhook body Alertmanager POSTs (version 4); every alert must carry status, startsAt and fingerprint."""

    model_config = ConfigDict(extra="allow")

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupKey: str = ""  # noqa: N815
    truncatedAlerts: int = 0  # noqa: N815
    groupLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonAnnotations: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    externalURL: str = ""  # noqa: N815
    alerts: list[Alert] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _delivered(self) -> AlertmanagerWebhook:
        for i, a in enumerate(self.alerts):
            missing = [k for k in ("status", "startsAt", "fingerprint") if getattr(a, k) is None]
            if missing:
                raise ValueError(f"alerts[{i}] lacks {', '.join(missing)}")
        return self


def alerts_from_payload(payload: dict[str, Any]) -> list[Alert]:
    """All alerts of an Alertmanager webhook payload (or the one alert when given a single alert)."""
    if isinstance(payload.get("alerts"), list):
        return [Alert.coerce(a) for a in payload["alerts"] if isinstance(a, dict)]
    return [Alert.coerce(payload)]


def render_template(template: str, labels: dict[str, str], value: str = "1") -> str:
    """Render the common subset of Prometheus annotation templates (``$labels.x``, ``$value``, ``with``).

    Unknown constructs render as empty text, so the result is always plain prose.
    """

    def _with(m: re.Match[str]) -> str:
        got = labels.get(m.group(1), "")
        return re.sub(r"\{\{-?\s*\.\s*-?\}\}", got, m.group(2)) if got else ""

    def _one(m: re.Match[str]) -> str:
        inner = m.group(1)
        ref = _LABEL_REF.search(inner)
        if ref:
            return labels.get(ref.group(1), "")
        if "$value" in inner:
            if "humanizePercentage" in inner:
                return f"{float(value) * 100:.4g}%" if _is_number(value) else value
            return value
        return ""

    return re.sub(r"\s+", " ", _TEMPLATE.sub(_one, _WITH.sub(_with, template))).strip()


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def url_key(url: str | None) -> str | None:
    """A runbook URL reduced to host + path, lower-cased, without scheme, query or trailing slash."""
    if not url:
        return None
    parsed = urlparse(url.strip())
    if not parsed.netloc and not parsed.path:
        return None
    path = re.sub(r"(\.md|\.html?)$", "", parsed.path.rstrip("/"))
    return f"{parsed.netloc}{path}".lower() or None


def url_name(url: str | None) -> str | None:
    """The last path segment of a runbook URL (``.../kubernetes/kubepodcrashlooping`` -> ``kubepodcrashlooping``)."""
    key = url_key(url)
    if not key:
        return None
    last = key.rsplit("/", 1)[-1]
    return last or None


def alert_query_text(alert: Alert, labels: bool = True) -> str:
    """The prose a runbook search uses for ``alert``: its name in words, annotations and (``labels``) the values
    of identifying labels (job, service, namespace, ...; not addresses or ids)."""
    parts: list[str] = []
    if alert.name:
        from anomalist.tools.store.text import split_identifier  # tools.store imports this module

        parts.append(split_identifier(alert.name) + ".")
    for key in ("summary", "message", "description"):
        text = alert.annotations.get(key)
        if text:
            parts.append(render_template(text, alert.labels) if "{{" in text else text)
    for key, value in sorted(alert.annotations.items()):
        if key not in ("summary", "message", "description", "runbook_url", "runbook", "dashboard", "dashboard_url"):
            if value and len(value) < 500 and "://" not in value:
                parts.append(value)
    if not labels:
        return " ".join(parts).strip()
    ident = [v for k, v in sorted(alert.labels.items()) if k not in _VOLATILE_LABELS and v and len(v) < 100]
    if ident:
        parts.append(" ".join(ident))
    return " ".join(parts).strip()
