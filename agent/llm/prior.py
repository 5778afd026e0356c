"""A semantic prior that needs no generation: how close a log template's meaning is to failure vs normal operation.

Representation-driven and zero-shot: each text is embedded (the shared offline all-MiniLM-L6-v2) and compared with
short prototype descriptions of failures and of routine operation. The score is
``sigmoid((max cos to a failure prototype - max cos to a normal prototype) / temperature)`` in [0, 1], higher =
more anomalous. The prototypes describe failure semantics in general (crash, lost connection, failed mount, ...)
and routine operation in general (statistics, configuration dumps, corrected errors, ...); they name no system,
so the same prior applies to any log source.
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
    ("crash", "a component crashed or panicked and stopped running"),
    ("crash", "the kernel or process was terminated abnormally"),
    ("network", "a network connection was lost, reset, refused or timed out"),
    ("network", "a communication link failed or was severed"),
    ("storage", "failed to mount a file system or storage device"),
    ("storage", "an input/output error occurred while reading or writing"),
    ("crash", "a fatal error interrupted execution"),
    ("availability", "a service is unavailable and requests are failing"),
    ("hardware", "a hardware failure caused a fatal machine error"),
    ("resource", "out of memory, the process was killed"),
)
NORMAL_PROTOTYPES: tuple[tuple[str, str], ...] = (
    ("normal", "informational status message during normal operation"),
    ("normal", "a statistic or counter reported periodically"),
    ("normal", "a configuration setting or register value printed in a diagnostic dump"),
    ("normal", "an error was detected and automatically corrected"),
    ("normal", "a transient problem occurred and the operation was retried successfully"),
    ("normal", "a component started, stopped or was initialized as planned"),
    ("normal", "a warning that needs no action"),
    ("normal", "a request was completed successfully"),
    ("normal", "the user supplied a wrong path or file name"),
    ("normal", "debug information about processor state"),
    ("normal", "data was received, sent or transferred successfully"),
    ("normal", "a connection or session was opened or closed normally"),
    ("normal", "a file, block or record was created, stored, updated or deleted"),
    ("normal", "a user logged in or logged out"),
    ("normal", "a scheduled job or task started, progressed or finished"),
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
            from tools.embeddings import get_embedder

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
