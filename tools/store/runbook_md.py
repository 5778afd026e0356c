"""Markdown runbooks (prometheus-operator layout and similar) to ``Runbook`` records.

Layout: optional YAML front matter (``title``), ``# <AlertName>``, then ``## Meaning`` / ``## Impact`` /
``## Diagnosis`` / ``## Mitigation`` (other headings are kept under their own lower-cased name). Steps are the
top-level list items and fenced code blocks of a section.
"""

from __future__ import annotations

import re

import yaml

from anomalist.tools.store.records import Runbook, RunbookSection
from anomalist.tools.store.text import split_identifier

_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^(\s{0,3})(?:[-*+]|\d+[.)])\s+(.*)$")
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_:.-]*$")

# Heading words -> canonical section (first match wins).
_CANONICAL = (
    ("overview", ("meaning", "overview", "description", "summary", "about")),
    ("impact", ("impact", "consequence", "effect")),
    ("diagnosis", ("diagnos", "investigat", "troubleshoot", "debug", "check", "triage", "detect")),
    ("mitigation", ("mitigat", "remedia", "resol", "fix", "solution", "recover", "action", "runbook steps")),
)


def canonical_section(heading: str) -> str:
    """``Meaning`` -> ``overview``, ``How to fix`` -> ``mitigation``; unknown headings stay (lower-cased)."""
    low = heading.strip().lower()
    for name, words in _CANONICAL:
        if any(low.startswith(w) or f" {w}" in low for w in words):
            return name
    return re.sub(r"\s+", " ", low)[:100]


def _steps(body: str) -> list[str]:
    steps: list[str] = []
    current: list[str] | None = None
    in_code = False
    code: list[str] = []
    for line in body.splitlines():
        if line.strip().startswith("```"):
            if in_code:
                block = "\n".join(code).strip()
                if block:
                    steps.append(block[:2000])
                code = []
            in_code = not in_code
            current = None
            continue
        if in_code:
            code.append(line)
            continue
        m = _LIST_ITEM.match(line)
        if m and len(m.group(1)) <= 1:
            current = [m.group(2).strip()]
            steps.append("")
            steps[-1] = current[0]
            continue
        if current is not None and line.strip() and (line.startswith(" ") or line.startswith("\t")):
            steps[-1] = (steps[-1] + " " + line.strip())[:2000]
            continue
        if not line.strip():
            continue
        current = None
    return [s for s in steps if s][:100]


def parse_runbook_markdown(
    text: str, rid: str, stem: str, source: str = "", component: str | None = None
) -> Runbook:
    """Parse one Markdown runbook.

    Args:
        text: the file content.
        rid: the record id (e.g. ``kubernetes/KubePodCrashLooping``).
        stem: the file name without ``.md`` (an alert name in the prometheus-operator layout).
        source: path or URL, kept on the record.
        component: the sub-directory (``kubernetes``, ``etcd``), kept as service and tag.
    """
    front: dict[str, object] = {}
    m = _FRONT.match(text)
    if m:
        try:
            loaded = yaml.safe_load(m.group(1))
            front = loaded if isinstance(loaded, dict) else {}
        except yaml.YAMLError:
            front = {}
        text = text[m.end():]
    h1: str | None = None
    sections: dict[str, list[str]] = {"overview": []}
    current = "overview"
    in_code = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
        hm = None if in_code else _HEADING.match(line)
        if hm and len(hm.group(1)) == 1 and h1 is None:
            h1 = hm.group(2).strip()
            continue
        if hm and len(hm.group(1)) == 2:
            current = canonical_section(hm.group(2))
            sections.setdefault(current, [])
            continue
        sections.setdefault(current, []).append(line)
    names: list[str] = []
    if h1 and _IDENTIFIER.match(h1):
        names.append(h1)
    if _IDENTIFIER.match(stem) and stem not in names:
        names.append(stem)
    title = str(front.get("title") or "").strip() or (split_identifier(h1) if h1 and _IDENTIFIER.match(h1) else h1)
    title = title or split_identifier(stem)
    built = {}
    for name, lines in sections.items():
        body = "\n".join(lines).strip()
        if body:
            built[name] = RunbookSection(text=body, steps=_steps(body))
    extra = front.get("alerts") or front.get("alert_names")
    if isinstance(extra, list):
        names += [str(a) for a in extra if str(a) not in names]
    raw_url = front.get("url")
    url = raw_url if isinstance(raw_url, str) else None
    return Runbook(
        id=rid, title=title, alert_names=names, services=[component] if component else [], sections=built,
        url=url, source=source, tags=[component] if component else [],
    )
