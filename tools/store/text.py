"""Text helpers for retrieval: identifier-aware tokenization and a small BM25 index.

Alert names and metric names are CamelCase or snake_case identifiers (``KubePodCrashLooping``,
``node_filesystem_avail_bytes``); a plain word tokenizer would keep them as one opaque token that no prose query
ever contains. ``tokenize`` splits identifiers into their parts *and* keeps the joined form and adjacent-part
pairs, so "KubeAPI has disappeared" matches a runbook titled ``KubeAPIDown`` through ``kube``, ``api`` and
``kubeapi``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*|[0-9]+[A-Za-z][A-Za-z0-9]*")
_CAMEL_1 = re.compile(r"([a-z0-9])([A-Z])")
_CAMEL_2 = re.compile(r"([A-Z]+)([A-Z][a-z])")

# Function words carry no retrieval signal; the list is short on purpose (domain words like "down" must stay).
STOPWORDS = frozenset(
    """a an the of to in on for is are was were be been being has have had not no and or by with at as from this
    that these those it its any all more than less which who whom into onto over under after before while when
    there their they them then so such if else can could should would will may might must do does did done via
    per only also some very most other same each both either neither""".split()
)


def split_identifier(name: str) -> str:
    """``KubePodCrashLooping`` -> ``Kube Pod Crash Looping``; ``node_cpu-seconds`` -> ``node cpu seconds``."""
    spaced = _CAMEL_2.sub(r"\1 \2", _CAMEL_1.sub(r"\1 \2", name))
    return re.sub(r"[_\-.:/]+", " ", spaced).strip()


def stem(token: str) -> str:
    """A light suffix stripper (plural and -ing/-ed forms); enough to match "fails"/"failed"/"failing"."""
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if len(token) > len(suffix) + 3 and token.endswith(suffix):
            return token[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return token


def tokenize(text: str) -> list[str]:
    """Lower-cased, stemmed tokens; identifiers also yield their parts and adjacent-part pairs."""
    out: list[str] = []
    for raw in _WORD.findall(text):
        parts = [p.lower() for p in split_identifier(raw).split()]
        for p in parts:
            if len(p) > 1 and p not in STOPWORDS:
                out.append(stem(p))
        if len(parts) > 1:
            out.append(raw.lower())
            out.extend(parts[i] + parts[i + 1] for i in range(len(parts) - 1))
    return out


@dataclass
class KeywordHit:
    """Keyword score of one document and the query terms it contained."""

    score: float
    terms: list[str] = field(default_factory=list)


class KeywordIndex:
    """Okapi BM25 over weighted fields, with an inverted index so a query costs O(postings of its terms).

    Args:
        k1: term-frequency saturation.
        b: length normalization.
    """

    def __init__(self, k1: float = 1.2, b: float = 0.75):
        self.k1 = k1
        self.b = b
        self._ids: list[str] = []
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._doc_len = np.zeros(0, dtype=np.float32)
        self._avg_len = 1.0
        self._row: dict[str, int] = {}
        self._terms: list[frozenset[str]] = []

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> list[str]:
        return self._ids

    def build(self, docs: Iterable[tuple[str, Sequence[str]]]) -> KeywordIndex:
        """Index ``(id, tokens)`` pairs (tokens already weighted by repetition); returns self."""
        postings: dict[str, tuple[list[int], list[int]]] = {}
        ids: list[str] = []
        lengths: list[int] = []
        terms: list[frozenset[str]] = []
        for i, (doc_id, tokens) in enumerate(docs):
            ids.append(doc_id)
            lengths.append(len(tokens))
            counts = Counter(tokens)
            terms.append(frozenset(counts))
            for term, tf in counts.items():
                rows, tfs = postings.setdefault(term, ([], []))
                rows.append(i)
                tfs.append(tf)
        self._ids = ids
        self._row = {d: i for i, d in enumerate(ids)}
        self._terms = terms
        self._doc_len = np.asarray(lengths, dtype=np.float32)
        self._avg_len = float(self._doc_len.mean()) if ids else 1.0
        self._postings = {
            t: (np.asarray(r, dtype=np.int64), np.asarray(f, dtype=np.float32)) for t, (r, f) in postings.items()
        }
        return self

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """BM25 scores of all documents (row order = ``ids``), 0 where no query term occurs."""
        n = len(self._ids)
        totals = np.zeros(n, dtype=np.float32)
        if n == 0:
            return totals
        norm = self.k1 * (1.0 - self.b + self.b * self._doc_len / max(self._avg_len, 1e-9))
        for term in dict.fromkeys(query_tokens):
            post = self._postings.get(term)
            if post is None:
                continue
            rows, tfs = post
            df = len(rows)
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            totals[rows] += idf * tfs * (self.k1 + 1.0) / (tfs + norm[rows])
        return totals

    def top(self, scores: np.ndarray, m: int) -> list[tuple[str, float]]:
        """The ``m`` best ``(id, score)`` pairs with a positive score, best first."""
        if len(scores) == 0 or m <= 0:
            return []
        m = min(m, len(scores))
        part = np.argpartition(-scores, m - 1)[:m]
        part = part[np.argsort(-scores[part], kind="stable")]
        return [(self._ids[r], float(scores[r])) for r in part.tolist() if scores[r] > 0]

    def score_of(self, scores: np.ndarray, doc_id: str) -> float:
        row = self._row.get(doc_id)
        return float(scores[row]) if row is not None else 0.0

    def matched_terms(self, doc_id: str, query_tokens: Sequence[str]) -> list[str]:
        """The query terms ``doc_id`` contains (for "why it matched")."""
        row = self._row.get(doc_id)
        if row is None:
            return []
        return [t for t in dict.fromkeys(query_tokens) if t in self._terms[row]]

    def score(self, query_tokens: Sequence[str], allowed: set[str] | None = None) -> dict[str, KeywordHit]:
        """BM25 score of every document that contains at least one query term (higher = better match).

        ``KeywordHit.terms`` is left empty here (see ``matched_terms``): listing terms for every scored document
        would cost a Python loop over all postings.

        Args:
            query_tokens: output of ``tokenize``; repeated terms count once.
            allowed: when given, only these document ids are scored.
        """
        totals = self.scores(query_tokens)
        hits: dict[str, KeywordHit] = {}
        for r in np.flatnonzero(totals > 0).tolist():
            doc_id = self._ids[r]
            if allowed is not None and doc_id not in allowed:
                continue
            hits[doc_id] = KeywordHit(float(totals[r]))
        return hits
