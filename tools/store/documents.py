"""How records become searchable text: the passages that are embedded and the weighted keyword fields.

General rules, the same for every runbook and incident:
- A runbook is embedded as several passages (overview, impact, diagnosis, mitigation), each prefixed with the
  runbook's head (title and alert names in words), and scored by its best passage: the embedding model only reads
  the first 256 word pieces, and an alert's description usually echoes one section, not the whole page.
- Keyword fields are weighted by repetition: head x3, overview x2, the rest x1 (incidents: title and symptoms x2).
"""

from __future__ import annotations

import re

from anomalist.tools.store.records import Incident, Runbook
from anomalist.tools.store.text import split_identifier, tokenize

# Bump when the text embedded for a record changes: stored records then count as changed and are re-embedded.
PASSAGE_RECIPE = "passages-v2"

# Characters of an incident embedded (about 128 word pieces, the length all-MiniLM-L6-v2 was trained on).
INCIDENT_EMBED_CHARS = 600
PASSAGE_CHARS = 900

_FENCE = re.compile(r"```.*?```", re.S)
_SHORTCODE = re.compile(r"\{\{[<%].*?[>%]\}\}", re.S)
_HTML = re.compile(r"<[^>]+>")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_REF_LINK = re.compile(r"\[([^\]]*)\]\[[^\]]*\]")
_URL = re.compile(r"https?://\S+")
_MARKUP = re.compile(r"[`*_#>|]+")


def clean_markdown(text: str, keep_code: bool = False) -> str:
    """Markdown to one line of prose: links to their text, no code fences (unless ``keep_code``), no HTML."""
    if not keep_code:
        text = _FENCE.sub(" ", text)
    text = _SHORTCODE.sub(" ", text)
    text = _HTML.sub(" ", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _URL.sub(" ", text)
    text = _MARKUP.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()


def runbook_head(rb: Runbook) -> str:
    """Title plus every alert name in words (``KubePodCrashLooping`` -> ``Kube Pod Crash Looping``)."""
    names = [split_identifier(n) for n in rb.alert_names]
    parts = [rb.title] + [n for n in names if n.lower() != rb.title.lower()]
    return ". ".join(dict.fromkeys(p for p in parts if p)) + "."


def _section_text(rb: Runbook, name: str) -> str:
    sec = rb.sections.get(name)
    if sec is None:
        return ""
    return clean_markdown(sec.text)


def runbook_passages(rb: Runbook) -> list[str]:
    """The passages embedded for ``rb`` (at least one: the head with the overview)."""
    head = runbook_head(rb)
    others = [k for k in rb.sections if k not in ("overview", "impact", "diagnosis", "mitigation")]
    bodies = [
        _section_text(rb, "overview"),
        _section_text(rb, "impact"),
        " ".join([_section_text(rb, "diagnosis")] + [_section_text(rb, k) for k in others]).strip(),
        _section_text(rb, "mitigation"),
    ]
    passages = [f"{head} {bodies[0]}".strip()]
    passages += [f"{head} {b}"[:PASSAGE_CHARS] for b in bodies[1:] if len(b) > 20]
    passages[0] = passages[0][:PASSAGE_CHARS]
    return [embedding_text(p) for p in passages]


def runbook_keyword_tokens(rb: Runbook) -> list[str]:
    """Weighted keyword tokens of ``rb`` (head x3, overview x2, other sections x1)."""
    head = tokenize(runbook_head(rb) + " " + " ".join(rb.alert_names) + " " + " ".join(rb.services))
    overview = tokenize(_section_text(rb, "overview"))
    rest: list[str] = []
    for name in rb.sections:
        if name != "overview":
            rest += tokenize(_section_text(rb, name))
    return head * 3 + overview * 2 + rest


_SENTENCE = re.compile(r"(?<=[.!?])\s+")
# A hyphen, slash or underscore between two letters or digits: identifier glue (``us-east-1``, ``node_cpu``,
# ``checkout/api``). The tokenizer makes each one a word piece of its own.
_JOINER = re.compile(r"(?<=[^\W_])[-/_](?=[^\W_])")


def embedding_text(text: str) -> str:
    """``text`` as it is embedded, the same for passages and queries: identifier glue becomes a space.

    The WordPiece tokenizer splits ``eu-central-1`` into ``eu - central - 1`` either way; without the glue it is
    ``eu central 1``, the same words in fewer pieces. Ops text is full of such names (regions, pods, metrics,
    hosts): on the shared postmortems varied as in ``eval/bench_store.py`` this is 6.5% fewer pieces, and the
    embedding cost is linear in pieces (about 0.11 ms each per core with the int8 model).
    """
    return _JOINER.sub(" ", text)


_SPACES = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _SPACES.sub(" ", text.lower()).strip(" .!?…")


def _new_sentences(text: str, seen: str) -> str:
    """``text`` without the sentences already in ``seen`` (normalised). Titles are often the summary's first
    sentence (the postmortem importer builds them so), possibly cut short: a sentence whose first 100 characters
    are in ``seen`` counts as seen. Embedding it twice costs time and skews the vector toward it."""
    kept = []
    for sentence in _SENTENCE.split(text.strip()):
        n = _norm(sentence)
        if len(n) >= 20 and (n in seen or (len(n) > 100 and n[:100] in seen)):
            continue
        kept.append(sentence)
    return " ".join(kept)


def incident_passage(inc: Incident) -> str:
    """The text embedded for ``inc``: title, services, symptoms, then summary (less the sentences the title
    repeats) and root cause, bounded."""
    parts = [inc.title]
    # Services the title or summary already names are not listed again (embedding a name twice costs time and
    # weighs the vector toward it); they stay in the metadata filters and the keyword index.
    said = _norm(f"{inc.title} {inc.summary}")
    services = [s for s in inc.services if not re.search(rf"(?<!\w){re.escape(_norm(s))}(?!\w)", said)]
    if services:
        parts.append("Services: " + ", ".join(services) + ".")
    if inc.symptoms.alerts:
        parts.append("Alerts: " + ", ".join(split_identifier(a) for a in inc.symptoms.alerts) + ".")
    if inc.symptoms.metrics:
        parts.append("Metrics: " + ", ".join(inc.symptoms.metrics[:10]) + ".")
    if inc.summary:
        summary = _new_sentences(inc.summary, _norm(inc.title))
        if summary:
            parts.append(summary)
    if inc.root_cause:
        parts.append("Root cause: " + inc.root_cause)
    if inc.symptoms.templates:
        parts.append("Logs: " + " | ".join(inc.symptoms.templates[:5]))
    return embedding_text(" ".join(parts)[:INCIDENT_EMBED_CHARS])


def incident_keyword_tokens(inc: Incident) -> list[str]:
    """Weighted keyword tokens of ``inc`` (title and symptoms x2; summary, cause, resolution, tags x1)."""
    strong = tokenize(
        " ".join([inc.title, *inc.symptoms.alerts, *inc.symptoms.metrics, *inc.symptoms.templates, *inc.services])
    )
    weak = tokenize(" ".join([inc.summary, inc.root_cause, inc.resolution, *inc.tags]))
    return strong * 2 + weak
