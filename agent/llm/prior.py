"""A semantic prior that needs no generation: how close a log template's meaning is to failure vs normal operation.

Representation-driven and zero-shot: each text is embedded (the shared offline all-MiniLM-L6-v2) and compared with
short prototype descriptions of failures and of routine operation. The score is
``sigmoid((max cos to a failure prototype - max cos to a normal prototype) / temperature)`` in [0, 1], higher =
more anomalous.

How the prototypes were chosen (a fixed procedure, not fitted to any evaluated log): one plain-English sentence per
class of the generic taxonomies below, written from the taxonomies, not from the templates of the sets that
``anomalist eval llm`` scores (BGL, Nezha TrainTicket), and frozen before either set was scored with them.
- Failures: the error and saturation side of the SRE "four golden signals" (failed requests, slow or timed-out
  requests, saturated capacity) crossed with the USE method's resources (CPU and memory, disk, network), plus the
  failure classes every runtime reports: crash or unexpected exit, unhandled exception, unavailable dependency,
  corrupt or invalid data, denied access.
- Routine: the traffic side of the golden signals (requests served, data transferred, periodic statistics), the
  lifecycle of a service (start-up, shutdown, configuration loaded, scheduled jobs, health checks, sessions,
  records written) and the syslog severities debug, info and notice, plus a warning that needs no action.
No sentence names a system, a component or a message of any log source, so the same prior applies to any log source.
A prototype that only paraphrased one data set's messages (as earlier versions did for BGL's register dumps and
corrected-error reports) would make its score on that set meaningless; ``tests/test_eval_llm_sets.py`` checks that
none of them, nor the judge prompt's "Answer" lines, shares a run of two content words with a BGL template.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# (category, description). Categories name the kind of failure; the verdict's category comes from the nearest one.
FAILURE_PROTOTYPES: tuple[tuple[str, str], ...] = (
    ("crash", "the process crashed or exited unexpectedly"),
    ("crash", "an unhandled exception was thrown and the operation aborted"),
    ("errors", "a request failed and an error was returned to the caller"),
    ("latency", "an operation timed out waiting for a response"),
    ("network", "the connection was refused or reset by the remote side"),
    ("availability", "a required service or dependency is unavailable"),
    ("resource", "the system ran out of memory"),
    ("resource", "the disk is full and nothing more can be written"),
    ("resource", "a pool, queue or limit is exhausted and work is rejected"),
    ("storage", "reading from or writing to storage failed"),
    ("data", "the data is corrupt, invalid or cannot be parsed"),
    ("security", "access was denied because authentication or permission checks failed"),
)
NORMAL_PROTOTYPES: tuple[tuple[str, str], ...] = (
    ("normal", "a request was handled successfully"),
    ("normal", "data was sent or received"),
    ("normal", "periodic statistics or metrics were reported"),
    ("normal", "a health check or heartbeat succeeded"),
    ("normal", "the service started up or shut down cleanly"),
    ("normal", "the configuration was loaded"),
    ("normal", "a scheduled job started or finished"),
    ("normal", "a user or client session began or ended"),
    ("normal", "a record was created, read, updated or deleted"),
    ("normal", "a value was found in the cache"),
    ("normal", "an operation was retried and then succeeded"),
    ("normal", "a debug message describing what the program is doing"),
    ("normal", "an informational message about normal progress"),
    ("normal", "a notice or warning that needs no action"),
)

_MASKS = re.compile(r"<\*>|<[A-Z_]+>|\[REDACTED_[A-Z_]+_\d+\]")
_SPACES = re.compile(r"[\s.]{2,}")


def clean_template(text: str) -> str:
    """Drop parameter masks and dot leaders, which carry no meaning for the embedding."""
    return _SPACES.sub(" ", _MASKS.sub(" ", text)).strip() or text.strip()


@dataclass
class SemanticPrior:
    """Zero-shot failure-vs-normal score of texts from embedding similarity to prototype descriptions.

    Args:
        embedder: an object with ``encode(texts) -> (n, d)`` L2-normalised rows; None = the shared offline
            embedder (``tools.embeddings.get_embedder()``), loaded on first use.
        temperature: the sigmoid's temperature over the cosine-similarity margin.
        failure: failure prototypes (category, description).
        normal: normal-operation prototypes (category, description).
    """

    embedder: Any = None
    temperature: float = 0.05
    failure: Sequence[tuple[str, str]] = FAILURE_PROTOTYPES
    normal: Sequence[tuple[str, str]] = NORMAL_PROTOTYPES
    memo_size: int = 4096
    _protos: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False, repr=False)
    _memo: OrderedDict[str, tuple[float, int]] = field(default_factory=OrderedDict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def _emb(self) -> Any:
        if self.embedder is None:
            from anomalist.tools.embeddings import get_embedder

            self.embedder = get_embedder()
        return self.embedder

    def _prototypes(self) -> tuple[np.ndarray, np.ndarray]:
        if self._protos is None:
            if self.temperature <= 0:
                raise ValueError(f"temperature must be > 0, got {self.temperature}")
            if not self.failure or not self.normal:
                raise ValueError("the prior needs at least one failure and one normal prototype")
            e = self._emb()
            self._protos = (e.encode([d for _, d in self.failure]), e.encode([d for _, d in self.normal]))
        return self._protos

    def margins(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(similarity margin failure - normal, index of the nearest failure prototype) per text.

        Results are memoised per cleaned text (bounded LRU), so repeated templates cost nothing and a batch can be
        primed in one forward pass.
        """
        if isinstance(texts, str):
            raise TypeError("score expects a sequence of strings, got a single str")
        if len(texts) == 0:
            return np.zeros(0), np.zeros(0, dtype=int)
        keys = [clean_template(t) for t in texts]
        with self._lock:
            missing = list(dict.fromkeys(k for k in keys if k not in self._memo))
        if missing:
            fail, norm = self._prototypes()
            x = self._emb().encode(missing)  # (n, d)
            sf, sn = x @ fail.T, x @ norm.T  # (n, n_fail), (n, n_norm)
            margin, idx = sf.max(axis=1) - sn.max(axis=1), sf.argmax(axis=1)
            with self._lock:
                for k, m, i in zip(missing, margin, idx, strict=False):
                    self._memo[k] = (float(m), int(i))
                    self._memo.move_to_end(k)
                while len(self._memo) > self.memo_size:
                    self._memo.popitem(last=False)
        with self._lock:
            vals = [self._memo.get(k) for k in keys]
        if any(v is None for v in vals):  # evicted meanwhile by another thread: compute directly
            return self._direct(keys)
        return np.array([v[0] for v in vals]), np.array([v[1] for v in vals], dtype=int)  # type: ignore[index]

    def _direct(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        fail, norm = self._prototypes()
        x = self._emb().encode(keys)
        sf, sn = x @ fail.T, x @ norm.T
        return sf.max(axis=1) - sn.max(axis=1), sf.argmax(axis=1)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Prior probability that each text reports a failure, in [0, 1] (higher = more anomalous)."""
        margin, _ = self.margins(texts)
        return 1.0 / (1.0 + np.exp(-margin / self.temperature))

    def score_with_categories(self, texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """(scores, category of the nearest failure prototype) in one pass."""
        margin, idx = self.margins(texts)
        return 1.0 / (1.0 + np.exp(-margin / self.temperature)), [self.failure[int(i)][0] for i in idx]

    def categories(self, texts: Sequence[str]) -> list[str]:
        """The category of the nearest failure prototype for each text."""
        return self.score_with_categories(texts)[1]


def combine(p_llm: float | np.ndarray, p_prior: float | np.ndarray, prior_weight: float = 0.5) -> Any:
    """Weighted mean of the LLM's and the prior's probabilities of 'anomalous' (both in [0, 1])."""
    if not 0.0 <= prior_weight <= 1.0:
        raise ValueError(f"prior_weight must be in [0, 1], got {prior_weight}")
    return (1.0 - prior_weight) * np.asarray(p_llm, dtype=float) + prior_weight * np.asarray(p_prior, dtype=float)
