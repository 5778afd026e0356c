"""Importers: incidents (our JSONL schema, danluu/post-mortems JSONL, triage reports), runbook Markdown
directories, and alert rules (Prometheus rule YAML, ``alert_rules.jsonl``) that link alert names to runbooks.

Every importer counts what it read, skipped, added, updated, left unchanged and rejected (with the reason, one
record at a time); a bad record never stops the rest of the import.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from anomalist.tools.alerts import url_key, url_name
from anomalist.tools.store.records import (
    ImportSummary,
    Incident,
    Rejection,
    Runbook,
    RunbookSection,
    normalize_severity,
)
from anomalist.tools.store.runbook_md import parse_runbook_markdown
from anomalist.tools.store.store import IncidentStore

logger = logging.getLogger(__name__)

IncidentFormat = Literal["auto", "anomalist", "postmortems"]
MAX_LINE_BYTES = 1_000_000
MAX_RUNBOOK_BYTES = 500_000
_BATCH = 2048  # records per upsert call (the store pipelines its 256-record batches within a call)
_POSTMORTEM_KEYS = {"company", "category", "summary", "link", "other_links", "summary_markdown", "source_line", "id"}


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err["loc"]) or "record"
        parts.append(f"{loc}: {err['msg']}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def _jsonl_files(path: Path, patterns: tuple[str, ...] = ("*.jsonl",)) -> list[Path]:
    if path.is_dir():
        files = sorted({p for pat in patterns for p in path.rglob(pat) if p.is_file()})
        if not files:
            raise FileNotFoundError(f"no {' or '.join(patterns)} files under {path}")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"no such file or directory: {path}")
    return [path]


# ---- incidents ---------------------------------------------------------------------------------------------------
def incident_from_postmortem(obj: dict[str, Any], source: str) -> Incident:
    """Map one danluu/post-mortems record (company, category, summary, link, ...) onto an ``Incident``."""
    unknown = set(obj) - _POSTMORTEM_KEYS
    if unknown:
        raise ValueError(f"unknown postmortem fields: {sorted(unknown)}")
    summary = str(obj.get("summary") or "").strip()
    company = str(obj.get("company") or "").strip()
    if not summary:
        raise ValueError("summary: missing or empty")
    first = re.split(r"(?<=[.!?])\s", summary, maxsplit=1)[0]
    title = f"{company}: {first}" if company else first
    if len(title) > 200:
        title = title[:199].rstrip() + "…"
    links = [str(obj["link"])] if obj.get("link") else []
    links += [str(x) for x in obj.get("other_links") or []]
    tags = [t for t in (str(obj.get("category") or "").strip().lower(), company.lower()) if t]
    rid = obj.get("id") or "pm-" + hashlib.sha256(summary.encode()).hexdigest()[:16]
    return Incident(id=str(rid), title=title, summary=summary, links=links, tags=tags, source=source)


def _parse_incident(obj: Any, fmt: IncidentFormat, where: str) -> Incident:
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    kind = fmt
    if kind == "auto":
        kind = "postmortems" if "company" in obj and "title" not in obj else "anomalist"
    if kind == "postmortems":
        return incident_from_postmortem(obj, source=where)
    if not obj.get("source"):
        obj = {**obj, "source": where}
    return Incident.model_validate(obj)


def iter_incident_records(path: Path, fmt: IncidentFormat = "auto") -> Iterator[tuple[str, Incident | None, str | None, bool]]:
    """Yield ``(where, incident, rejection_reason, is_blank)`` for every line of every JSONL file under ``path``."""
    for file in _jsonl_files(path):
        try:
            handle = file.open("rb")
        except OSError as exc:
            yield str(file), None, f"cannot read: {exc.strerror or exc}", False
            continue
        with handle:
            for n, raw in enumerate(handle, start=1):
                where = f"{file.name}:{n}"
                if not raw.strip():
                    yield where, None, None, True
                    continue
                if len(raw) > MAX_LINE_BYTES:
                    yield where, None, f"line longer than {MAX_LINE_BYTES} bytes ({len(raw)})", False
                    continue
                try:
                    obj = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    yield where, None, f"not UTF-8 text: {exc.reason} at byte {exc.start}", False
                    continue
                except json.JSONDecodeError as exc:
                    yield where, None, f"invalid JSON: {exc.msg} (column {exc.colno})", False
                    continue
                try:
                    yield where, _parse_incident(obj, fmt, where), None, False
                except ValidationError as exc:
                    yield where, None, _reason(exc), False
                except (ValueError, TypeError) as exc:
                    yield where, None, str(exc), False


def import_incidents(path: Path | str, store: IncidentStore, fmt: IncidentFormat = "auto") -> ImportSummary:
    """Import incidents from a JSONL file (or every ``*.jsonl`` under a directory) into ``store``.

    Lines are our ``Incident`` schema or danluu/post-mortems records (``fmt="auto"`` decides per line).
    Re-importing the same file changes nothing (counted as unchanged). A later line repeating an id is rejected.
    """
    path = Path(path)
    t0 = time.perf_counter()
    summary = ImportSummary(source=str(path))
    seen: dict[str, str] = {}
    batch: list[Incident] = []

    def flush() -> None:
        if batch:
            res = store.upsert_incidents(batch)
            summary.added += res.added
            summary.updated += res.updated
            summary.unchanged += res.unchanged
            batch.clear()

    for where, inc, reason, blank in iter_incident_records(path, fmt):
        if blank:
            summary.skipped += 1
            continue
        summary.read += 1
        if inc is None:
            summary.rejected.append(Rejection(where=where, reason=reason or "unreadable"))
            continue
        if inc.id in seen:
            summary.rejected.append(Rejection(where=where, id=inc.id, reason=f"duplicate id (first at {seen[inc.id]})"))
            continue
        seen[inc.id] = where
        batch.append(inc)
        if len(batch) >= _BATCH:
            flush()
    flush()
    summary.seconds = round(time.perf_counter() - t0, 3)
    logger.info("imported incidents from %s: %s", path, summary.model_dump(exclude={"rejected"}))
    return summary


# ---- triage reports ----------------------------------------------------------------------------------------------
def _text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("text") or value.get("summary") or "")
    return "" if value is None else str(value)


def incident_from_report(report: dict[str, Any], source: str = "triage report") -> Incident:
    """A finished triage report (``agent.report.TriageReport`` JSON, read generically) as an ``Incident``.

    Reads title/summary/severity/services/findings (their titles, templates, metric channels, services, times)
    and the alert; the id is derived from the report id (or its content), so saving the same report twice is
    idempotent.
    """
    if not isinstance(report, dict):
        raise ValueError(f"a report must be a JSON object, got {type(report).__name__}")
    findings = [f for f in report.get("findings") or [] if isinstance(f, dict)]
    raw_alert = report.get("alert")
    alert: dict[str, Any] = raw_alert if isinstance(raw_alert, dict) else {}
    summary = _text(report.get("summary"))
    title = str(report.get("title") or "").strip()
    if not title:
        title = (alert.get("summary") if alert else None) or (findings[0].get("title") if findings else None) or ""
        title = str(title).strip() or summary.split(". ")[0][:200]
    if not title:
        raise ValueError("the report has no title, summary, alert or findings to describe the incident")
    services: list[str] = list(report.get("services") or [])
    templates: list[str] = [str(t) for t in report.get("templates") or []]
    metrics: list[str] = []
    starts: list[str] = []
    ends: list[str] = []
    explanations: list[str] = []
    for f in findings:
        services += [str(s) for s in f.get("services") or []]
        for t in f.get("templates") or []:
            templates.append(str(t.get("template") if isinstance(t, dict) else t))
        for m in f.get("metrics") or []:
            if isinstance(m, dict) and m.get("drove", True):
                metrics.append(str(m.get("channel")))
        if f.get("start"):
            starts.append(str(f["start"]))
        if f.get("end"):
            ends.append(str(f["end"]))
        line = _text(f.get("explanation"))
        if f.get("title"):
            line = f"{f['title']}: {line}" if line else str(f["title"])
        if line:
            explanations.append(line)
    if alert.get("service"):
        services.append(str(alert["service"]))
    alerts = [str(alert["name"])] if alert.get("name") else []
    full_summary = "\n".join([summary, *explanations[:10]]).strip()
    rid = report.get("id") or hashlib.sha256(json.dumps(report, sort_keys=True, default=str).encode()).hexdigest()[:16]
    started = min(starts) if starts else (alert.get("starts_at") or report.get("created_at"))
    resolved = max(ends) if ends else None
    return Incident.model_validate({
        "id": f"report-{rid}", "title": title[:500], "summary": full_summary[:20_000],
        "services": list(dict.fromkeys(services)),
        "symptoms": {"templates": list(dict.fromkeys(templates))[:50], "metrics": list(dict.fromkeys(metrics))[:50],
                     "alerts": alerts},
        "severity": normalize_severity(report.get("severity")), "started_at": started,
        "resolved_at": resolved if resolved and started and str(resolved) >= str(started) else None,
        "tags": ["triage-report"], "source": source,
    })


# ---- runbooks ----------------------------------------------------------------------------------------------------
_SKIP_FILES = {"_index.md", "readme.md", "index.md"}


def read_runbook_file(path: Path, root: Path) -> Runbook:
    """Parse one Markdown runbook (id = path under ``root`` without ``.md``)."""
    size = path.stat().st_size
    if size > MAX_RUNBOOK_BYTES:
        raise ValueError(f"file larger than {MAX_RUNBOOK_BYTES} bytes ({size})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    if not text.strip():
        raise ValueError("empty file")
    rel = path.relative_to(root).with_suffix("")
    rid = re.sub(r"[^A-Za-z0-9._:/@+-]+", "-", rel.as_posix()).strip("-")
    component = rel.parts[0] if len(rel.parts) > 1 else None
    return parse_runbook_markdown(text, rid=rid, stem=path.stem, source=str(path), component=component)


def import_runbooks(path: Path | str, store: IncidentStore) -> ImportSummary:
    """Import every ``*.md`` runbook under ``path`` (or one file). ``_index.md``/README files are skipped."""
    path = Path(path)
    t0 = time.perf_counter()
    summary = ImportSummary(source=str(path))
    if path.is_file():
        files, root = [path], path.parent
    elif path.is_dir():
        files, root = sorted(p for p in path.rglob("*.md") if p.is_file()), path
        if not files:
            raise FileNotFoundError(f"no *.md runbooks under {path}")
    else:
        raise FileNotFoundError(f"no such file or directory: {path}")
    runbooks: list[Runbook] = []
    seen: dict[str, str] = {}
    for file in files:
        if file.name.lower() in _SKIP_FILES:
            summary.skipped += 1
            continue
        summary.read += 1
        where = str(file.relative_to(root)) if file != root else file.name
        try:
            rb = read_runbook_file(file, root)
        except ValidationError as exc:
            summary.rejected.append(Rejection(where=where, reason=_reason(exc)))
            continue
        except (ValueError, OSError) as exc:
            summary.rejected.append(Rejection(where=where, reason=str(exc)))
            continue
        if rb.id in seen:
            summary.rejected.append(Rejection(where=where, id=rb.id, reason=f"duplicate id (first in {seen[rb.id]})"))
            continue
        seen[rb.id] = where
        runbooks.append(rb)
    if runbooks:
        res = store.upsert_runbooks(runbooks)
        summary.added, summary.updated, summary.unchanged = res.added, res.updated, res.unchanged
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary


# ---- alert rules -------------------------------------------------------------------------------------------------
def iter_alert_rules(path: Path) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
    """``(where, rule, error)`` for each alerting rule in a JSONL file or a Prometheus rule YAML file
    (plain ``groups:`` or a ``PrometheusRule`` object with ``spec.groups``; several YAML documents allowed)."""
    if path.suffix.lower() == ".jsonl":
        yield from _jsonl_objects(path)
        return
    try:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        yield path.name, None, f"cannot parse YAML: {exc}"
        return
    for d, doc in enumerate(docs):
        if not isinstance(doc, dict):
            continue
        groups = doc.get("groups") or (doc.get("spec") or {}).get("groups") or []
        for g, group in enumerate(groups):
            for r, rule in enumerate((group or {}).get("rules") or []):
                yield f"{path.name}[doc {d} group {g} rule {r}]", rule if isinstance(rule, dict) else None, (
                    None if isinstance(rule, dict) else "rule is not a mapping")


def _jsonl_objects(path: Path) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
    with path.open("rb") as handle:
        for n, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                yield f"{path.name}:{n}", None, f"invalid JSON: {exc}"
                continue
            yield f"{path.name}:{n}", obj if isinstance(obj, dict) else None, None if isinstance(obj, dict) else "not an object"


def import_alert_rules(path: Path | str, store: IncidentStore) -> ImportSummary:
    """Link alert names to stored runbooks through the rules' ``runbook_url`` annotations.

    A rule's URL matches a runbook when it equals the runbook's URL, or when its last path segment is the
    runbook's name (``.../kubernetes/kubepodcrashlooping`` -> ``KubePodCrashLooping``). The rule's alert name
    is then added to the runbook's ``alert_names``, so ``runbook_for`` finds it by exact name. Recording rules
    and rules without a ``runbook_url`` are skipped (counted); URLs that match no runbook are listed in notes.
    """
    path = Path(path)
    t0 = time.perf_counter()
    summary = ImportSummary(source=str(path))
    files = _jsonl_files(path, ("*.jsonl", "*.yaml", "*.yml")) if path.is_dir() else [path]
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    runbooks = {rb.id: rb for rb in store.list_runbooks(limit=1_000_000)}
    by_url = {url_key(rb.url): rb.id for rb in runbooks.values() if rb.url}
    by_name: dict[str, str] = {}
    for rb in runbooks.values():
        for n in [*rb.alert_names, rb.id.rsplit("/", 1)[-1]]:
            by_name.setdefault(n.lower(), rb.id)
    changed: dict[str, Runbook] = {}
    unmatched: list[str] = []
    for file in files:
        for where, rule, err in iter_alert_rules(file):
            summary.read += 1
            if rule is None:
                summary.rejected.append(Rejection(where=where, reason=err or "unreadable rule"))
                continue
            alert = rule.get("alert")
            raw_ann = rule.get("annotations")
            annotations: dict[str, Any] = raw_ann if isinstance(raw_ann, dict) else {}
            url = rule.get("runbook_url") or annotations.get("runbook_url")
            if not alert or not url:
                summary.skipped += 1  # recording rule, or an alert without a runbook link
                continue
            if not isinstance(alert, str) or not isinstance(url, str):
                summary.rejected.append(Rejection(where=where, reason="alert and runbook_url must be strings"))
                continue
            rid = by_url.get(url_key(url)) or by_name.get(url_name(url) or "")
            if rid is None:
                unmatched.append(alert)
                continue
            rb = changed.get(rid) or runbooks[rid]
            if alert not in rb.alert_names or not rb.url:
                rb = rb.model_copy(update={"alert_names": list(dict.fromkeys([*rb.alert_names, alert])),
                                           "url": rb.url or url})
                changed[rid] = Runbook.model_validate(rb.model_dump())
    if changed:
        res = store.upsert_runbooks(list(changed.values()))
        summary.updated = res.added + res.updated
        summary.unchanged = res.unchanged
    if unmatched:
        uniq = list(dict.fromkeys(unmatched))
        summary.notes.append(f"{len(unmatched)} rules link to no stored runbook: {', '.join(uniq[:10])}"
                             + (" ..." if len(uniq) > 10 else ""))
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary


def parse_datetime(value: str) -> datetime:
    """ISO 8601 (``Z`` allowed) -> datetime; ``ValueError`` naming the value otherwise."""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 time: {value!r}") from exc


__all__ = [
    "import_incidents", "import_runbooks", "import_alert_rules", "incident_from_report", "incident_from_postmortem",
    "read_runbook_file", "iter_alert_rules", "parse_datetime", "RunbookSection",
]
