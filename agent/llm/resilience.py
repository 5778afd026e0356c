"""Retries with backoff, a concurrency limit and a circuit breaker around every LLM call.

- Retried: ``LLMTimeout`` and ``LLMUnavailable`` (server down, 5xx, connection reset), with exponential backoff
  and jitter. Not retried: ``LLMOutputError`` (the caller makes one repair attempt itself) and other errors.
- The breaker opens after ``failure_threshold`` consecutive failed calls (a failed call = all its attempts
  failed with timeout/unavailable); while open, calls fail at once with ``LLMUnavailable``; after
  ``reset_after_s`` one trial call is let through (half-open) and its outcome closes or re-opens the breaker.
- The concurrency limit is a semaphore; waiting for a slot counts against the call's deadline.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from anomalist.agent.llm.errors import LLMError, LLMTimeout, LLMUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class CircuitBreaker:
    """Consecutive-failure circuit breaker (closed -> open -> half-open -> closed)."""

    failure_threshold: int = 3
    reset_after_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _failures: int = field(default=0, init=False)
    _opened_at: float | None = field(default=None, init=False)
    _trial_running: bool = field(default=False, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half_open" if self.clock() - self._opened_at >= self.reset_after_s else "open"

    def before_call(self) -> None:
        """Raise ``LLMUnavailable`` at once while open; let one trial through when half-open."""
        with self._lock:
            if self._opened_at is None:
                return
            waited = self.clock() - self._opened_at
            if waited < self.reset_after_s or self._trial_running:
                raise LLMUnavailable(
                    f"LLM circuit breaker open after {self._failures} consecutive failures; "
                    f"retrying in {max(self.reset_after_s - waited, 0):.0f}s"
                )
            self._trial_running = True

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_running = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._trial_running = False
            if self._failures >= self.failure_threshold or self._opened_at is not None:
                if self._opened_at is None:
                    logger.warning("LLM circuit breaker opens after %d consecutive failures", self._failures)
                self._opened_at = self.clock()


@dataclass
class Resilience:
    """Runs calls with a concurrency limit, retries with backoff and a circuit breaker.

    Args:
        max_retries: extra attempts after the first (for timeouts and unavailability only).
        concurrency: calls in flight at once.
        backoff_s: first backoff; doubles each retry, with up to 25 % jitter, capped at ``max_backoff_s``.
        breaker: the circuit breaker shared by all calls to one backend.
    """

    max_retries: int = 2
    concurrency: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    _sem: threading.BoundedSemaphore | None = field(default=None, init=False, repr=False)
    _sem_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def _semaphore(self) -> threading.BoundedSemaphore:
        with self._sem_lock:
            if self._sem is None:
                self._sem = threading.BoundedSemaphore(max(1, self.concurrency))
            return self._sem

    def call(self, fn: Callable[[], T], *, slot_timeout_s: float | None = None, what: str = "LLM call") -> T:
        """Run ``fn`` under the policy. ``fn`` must raise typed ``LLMError`` subclasses on failure."""
        self.breaker.before_call()
        sem = self._semaphore()
        if not sem.acquire(timeout=slot_timeout_s):
            raise LLMTimeout(f"{what}: no free LLM slot within {slot_timeout_s:.0f}s (concurrency {self.concurrency})")
        try:
            attempt = 0
            while True:
                try:
                    result = fn()
                except (LLMTimeout, LLMUnavailable) as exc:
                    if attempt >= self.max_retries:
                        self.breaker.record_failure()
                        raise
                    delay = min(self.backoff_s * (2**attempt), self.max_backoff_s) * (1 + 0.25 * random.random())
                    logger.info("%s failed (%s: %s); retry %d/%d in %.2fs", what, type(exc).__name__, exc,
                                attempt + 1, self.max_retries, delay)
                    time.sleep(delay)
                    attempt += 1
                    continue
                except LLMError:
                    # The server answered (badly): it is alive, so the breaker counts a success.
                    self.breaker.record_success()
                    raise
                self.breaker.record_success()
                return result
        finally:
            sem.release()
