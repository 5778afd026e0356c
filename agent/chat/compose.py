"""Chat answers that state only what the tools found.

- :func:`compose_answer`: for models that cannot be trusted to write (the embedded one, or any backend with
  ``llm.writes_answers: false``) the answer is composed from the turn's tool results, each fact with the evidence id
  of the result it comes from, as the triage's explanations are. No model text states a fact.
- :func:`ground_answer`: for models that write (OpenAI-compatible servers), every sentence that states a number, a
  time, an incident id or a service must cite evidence that contains it; sentences that do not are dropped and
  counted, so an uncited or invented fact cannot reach the on-call engineer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

MAX_ITEMS = 3
_CITE = re.compile(r"\[(E\d+)\]")
# Facts a sentence can state: clock times and dates, numbers (with units or signs), incident-like ids, and
# service-like names (dash-joined words such as ts-food-service or checkout-db).
_TIME = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\b|\b\d{4}-\d{2}-\d{2}\b")
_NUMBER = re.compile(r"(?<![\w.])[+-]?\d+(?:[.,]\d+)*(?:\s?%)?")
_ID = re.compile(r"\b[A-Z]{2,}-\d[\w-]*\b")
_SERVICE = re.compile(r"\b[a-z][a-z0-9]*(?:-[a-z0-9]+)+\b")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\[(\"'])")


def compose_answer(results: Sequence[tuple[str, Mapping[str, Any]]], question: str = "") -> str:
    """The answer from ``results`` ((evidence id, tool payload) in call order): what each tool found, cited."""
    if not results:
        return "No tool matched the question, so there is nothing to report; ask about logs, metrics, a time range, " \
               "an alert or past incidents."
    out: list[str] = ["Here is what the tools found."]
    for eid, p in results:
        tool = str(p.get("tool", "tool"))
        status = str(p.get("status", ""))
        summary = _one_line(str(p.get("summary") or p.get("message") or ""))
        if status == "error":
            out.append(f"{_label(tool)} could not answer: {summary} [{eid}].")
            continue
        lines = [f"{_label(tool)}: {summary} [{eid}]." if summary else f"{_label(tool)} returned no summary [{eid}]."]
        lines += [f"- {x} [{eid}]" for x in _details(p, question)]
        out.append("\n".join(lines))
    return "\n\n".join(out)


def _label(tool: str) -> str:
    return {"detect_metric_anomalies": "Metrics", "similar_incidents": "Seen before", "runbook_for_alert": "Runbook",
            "search_logs": "Log search", "new_templates": "New log events", "top_templates": "Most common log events",
            "parse_logs": "Logs", "run_triage": "Triage"}.get(tool, tool)


def _asked_first(items: list[dict[str, Any]], key: str, question: str) -> list[dict[str, Any]]:
    """The items whose ``key`` shares words with the question (what was asked about, best match first; at most
    ``MAX_ITEMS``), then the two strongest of the others (in the tool's order)."""
    words = {w for w in re.findall(r"[a-z0-9]+", question.lower()) if len(w) > 2}

    def overlap(item: dict[str, Any]) -> int:
        return len(words & set(re.findall(r"[a-z0-9]+", str(item.get(key, "")).lower())))

    asked = sorted((it for it in items if overlap(it)), key=lambda it: -overlap(it))[:MAX_ITEMS]
    rest = [it for it in items if not any(it is a for a in asked)][:2]  # and the strongest of the others
    return asked + rest


def _details(p: Mapping[str, Any], question: str = "") -> list[str]:
    out: list[str] = []
    for c in _items(p, "root_causes")[:MAX_ITEMS]:
        out.append(f"root cause candidate {c.get('rank')}: {c.get('service')}"
                   + (f" (pod {c['pod']})" if c.get("pod") else "")
                   + f", {c.get('kind')}, from {_hm(c.get('onset'))}")
    for f in _items(p, "findings")[:MAX_ITEMS]:
        if isinstance(f, dict) and f.get("title"):
            tpl = next((str(t.get("template")) for t in _items(f, "templates") if t.get("template")), "")
            out.append(f"finding {f.get('id')}: {_one_line(str(f['title']))[:160]} ({f.get('severity')}, "
                       f"{_hm(f.get('start'))}–{_hm(f.get('end'))})" + (f", e.g. \"{_one_line(tpl)[:160]}\"" if tpl else ""))
    rb = p.get("runbook")
    if isinstance(rb, dict) and rb.get("title"):
        steps = [str(x) for x in list(rb.get("steps") or [])[:3]]
        out.append(f"runbook {rb['title']}" + (": " + " / ".join(_one_line(x) for x in steps) if steps else ""))
    for i in _items(p, "similar_incidents")[:MAX_ITEMS]:
        if isinstance(i, dict):
            out.append(f"{i.get('id')} \"{i.get('title')}\" (similarity {_num(i.get('score'))})")
    for d in _asked_first(_items(p, "channel_shifts"), "channel", question):
        out.append(f"{d.get('channel')} moved {_num(d.get('change_sd'), signed=True)} SD from {_hm(d.get('start'))} "
                   f"to {_hm(d.get('end'))} (mean {_num(d.get('before_mean'))} before, {_num(d.get('during_mean'))} "
                   f"during, max {_num(d.get('during_max'))})")
    for s in _items(p, "spans")[:MAX_ITEMS]:
        drivers = ", ".join(list((s.get("drivers") or {}).keys())[:3])
        out.append(f"anomalous span {_hm(s.get('start'))}–{_hm(s.get('end'))}" + (f", driven by {drivers}" if drivers else ""))
    for i in _items(p, "incidents")[:MAX_ITEMS]:
        text = f"{i.get('id')} \"{i.get('title')}\" (similarity {_num(i.get('score'))}, {i.get('severity') or '?'})"
        if i.get("root_cause"):
            text += f"; root cause: {_one_line(str(i['root_cause']))}"
        if i.get("resolution"):
            text += f"; resolution: {_one_line(str(i['resolution']))}"
        out.append(text)
    for r in _items(p, "runbooks")[:2]:
        steps = [str(x.get("text") or "") if isinstance(x, dict) else str(x) for x in list(r.get("steps") or [])[:3]]
        out.append(f"{r.get('title')}" + (": " + " / ".join(_one_line(str(s)) for s in steps if s) if steps else ""))
    for key in ("templates", "new_templates", "events"):
        for t in _items(p, key)[:MAX_ITEMS]:
            if isinstance(t, dict) and t.get("template"):
                count = t.get("count") or t.get("lines")
                first = t.get("first_seen") or t.get("first")
                out.append(f"\"{_one_line(str(t['template']))[:160]}\"" + (f", {count} lines" if count else "")
                           + (f", first at {_hm(first)}" if first else ""))
    for ln in (_items(p, "lines") or _items(p, "matches"))[:MAX_ITEMS]:
        if isinstance(ln, dict):
            line = ln.get("line") or ln.get("text") or ln.get("message")
            if line:
                out.append(f"\"{_one_line(str(line))[:200]}\"")
    return out


def ground_answer(text: str, evidence: Mapping[str, str]) -> tuple[str, int]:
    """``text`` with every factual sentence checked against the evidence it cites (id -> the result's text).

    A sentence that states a number, time, incident id or service is kept only when it cites evidence and each of
    those facts appears in the cited evidence; otherwise it is dropped. Returns (text, sentences dropped)."""
    kept: list[str] = []
    dropped = 0
    for para in text.split("\n"):
        if not para.strip():
            kept.append(para)
            continue
        sentences = _SENTENCE.split(para)
        good = []
        for s in sentences:
            facts = _facts(_CITE.sub("", s))
            if not facts:
                good.append(s)
                continue
            cited = [evidence[c] for c in _CITE.findall(s) if c in evidence]
            blob = " ".join(cited).lower()
            if cited and all(f.lower() in blob or f.lower().replace(",", "") in blob for f in facts):
                good.append(s)
            else:
                dropped += 1
        if good:
            kept.append(" ".join(good))
    out = "\n".join(kept).strip()
    if dropped:
        out += (f"\n\n({dropped} sentence{'s' if dropped != 1 else ''} stating facts that no cited tool result "
                "contains were removed.)")
    return out, dropped


def _facts(sentence: str) -> list[str]:
    facts = _TIME.findall(sentence) + _ID.findall(sentence) + _SERVICE.findall(sentence)
    for m in _NUMBER.findall(sentence):
        v = m.strip().rstrip("%").strip()
        if v.lstrip("+-") in ("0", "1", "2", "3") and "%" not in m:
            continue  # counting words ("2 reasons") are not facts worth citing
        if any(v in f for f in facts):
            continue
        facts.append(v.lstrip("+"))
    return facts


def _items(p: Mapping[str, Any], key: str) -> list[Any]:
    """``p[key]`` when it is a list of objects (a count or a text under that key is not a list of items)."""
    v = p.get(key)
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def _num(v: Any, signed: bool = False) -> str:
    """The tool's own value, as it gave it (so every number of the answer can be found in the result)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "?"
    s = str(int(f)) if f.is_integer() and abs(f) < 1e15 else repr(round(f, 4))
    return ("+" + s) if signed and f > 0 else s


def _hm(v: Any) -> str:
    s = str(v or "")
    m = re.search(r"\d{2}:\d{2}", s)
    return m.group(0) if m else (s or "?")


def _one_line(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()
