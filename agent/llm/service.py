"""``LLMService``: judgment, explanation and summary with typed errors, a verdict cache and a circuit breaker.

Judgment strategies (``llm.judge_mode``; ``auto`` picks the first that applies):
- ``label`` (in-process models): the verdict is read from the log-probabilities of the label continuations
  " normal" / " anomalous" after the prompt, calibrated against a content-free input (contextual calibration), so
  it is valid in every call; only the short reason is generated.
- ``json_schema`` (servers with structured outputs): the answer is constrained to the verdict schema.
- ``tool_call`` (servers with named tool calls): the verdict arrives as the arguments of ``submit_verdict``.
- ``json_text``: JSON in text, parsed, with one repair attempt.
- ``cot``: the LogPrompt-style reasoning prompt, then one of the structured paths above.
Every public call either returns a valid pydantic object or raises an ``LLMError`` subclass.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path
from typing import Any

from anomalist import prompts
from anomalist.agent.llm import judges
from anomalist.agent.llm.backends import resolve_openai_model
from anomalist.agent.llm.cache import VerdictCache, cache_key
from anomalist.agent.llm.engines import EMBEDDED_MODEL_NAME, shared_pool, shared_vllm
from anomalist.agent.llm.errors import LLMError, LLMUnavailable
from anomalist.agent.llm.inputs import PromptBuilder, as_log_input, as_metric_input
from anomalist.agent.llm.prior import SemanticPrior, combine
from anomalist.agent.llm.resilience import CircuitBreaker, Resilience
from anomalist.agent.llm.schemas import (
    Explanation,
    LogFindingInput,
    MetricFindingInput,
    ServerCapabilities,
    Verdict,
    cite,
)
from anomalist.tools.redact import InjectionFilter, Redactor

logger = logging.getLogger(__name__)


class CitedText(str):
    """A string (the summary) that also carries the evidence ids it cites and its prompt version."""

    evidence_ids: list[str]
    prompt_name: str
    prompt_version: str
    model: str

    def __new__(cls, text: str, evidence_ids: list[str], prompt_name: str, prompt_version: str, model: str) -> CitedText:
        obj = super().__new__(cls, text)
        obj.evidence_ids = evidence_ids
        obj.prompt_name = prompt_name
        obj.prompt_version = prompt_version
        obj.model = model
        return obj


class LLMService:
    """The LLM layer's entry point for triage and the HTTP service.

    Args:
        settings: ``LLMSettings``.
        cache_dir: directory of the verdict cache; None = ``settings.cache_dir`` (no cache when that is None too).
        prior: the semantic prior to blend into log verdicts (None = a default ``SemanticPrior`` when
            ``settings.use_prior``).
    """

    def __init__(self, settings: Any, cache_dir: Path | None = None, prior: SemanticPrior | None = None):
        self.settings = settings
        self.cache_dir = cache_dir if cache_dir is not None else settings.cache_dir
        self._prior = prior
        self._lock = threading.Lock()
        self._pool: Any = None
        self._chat: Any = None
        self._caps: ServerCapabilities | None = None
        self._model_name: str | None = None
        self._cache: VerdictCache | None = None
        self._builder: PromptBuilder | None = None
        self._calibration: dict[tuple[str, str], float] = {}
        self.redactor = Redactor.from_settings(settings)
        self.injection = InjectionFilter()
        self.resilience = Resilience(
            max_retries=settings.max_retries, concurrency=settings.concurrency,
            breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s),
        )
        self.stats = {"calls": 0, "cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0, "errors": 0,
                      "invented_ids": 0}
        self._stats_lock = threading.Lock()

    # ---- set-up --------------------------------------------------------------------------------------------
    @property
    def concurrency(self) -> int:
        return int(self.settings.concurrency)

    @property
    def in_process(self) -> bool:
        return self.settings.backend in ("local", "vllm")

    def _ensure(self) -> None:
        with self._lock:
            if self._pool is not None or self._chat is not None:
                return
            s = self.settings
            if s.backend == "none":
                raise LLMUnavailable("the LLM is disabled (llm.backend = 'none')")
            if s.backend == "openai":
                if self.resilience.breaker.state == "open":  # do not probe a server that just failed
                    raise LLMUnavailable("LLM circuit breaker open: the server failed repeatedly")
                name, caps = resolve_openai_model(s)
                if not caps.reachable:
                    self.resilience.breaker.record_failure()
                    raise LLMUnavailable(f"LLM server at {s.base_url} is unreachable: {caps.error}")
                from anomalist.agent.llm.backends import openai_chat_model

                self._caps, self._model_name = caps, name
                self._chat = openai_chat_model(s, model=name, max_retries=0)
            elif s.backend == "vllm":
                if not s.model:
                    raise LLMUnavailable("backend 'vllm' needs llm.model")
                self._pool, self._model_name = shared_vllm(s.model, s.n_ctx), s.model
            else:
                self._pool = shared_pool(s.model_path, s.n_ctx, s.n_threads, s.local_instances, s.seed, s.gguf_f16)
                self._model_name = (EMBEDDED_MODEL_NAME + ("-as-F16" if getattr(self._pool.primary, "f16", False) else "")
                                    if s.model_path is None else self._pool.primary.name)
            count = None
            if self._pool is not None:
                engine = self._pool.primary
                count = engine.count_tokens
            self._builder = PromptBuilder(self.redactor, self.injection, s.n_ctx, count, s.max_output_tokens)
            if self.cache_dir is not None:
                self._cache = VerdictCache(Path(self.cache_dir), s.cache_max_entries)

    @property
    def model_name(self) -> str:
        return self._model_name or (EMBEDDED_MODEL_NAME if self.settings.backend == "local" and not self.settings.model_path
                                    else str(self.settings.model or self.settings.model_path or "unknown"))

    def prior(self) -> SemanticPrior | None:
        if not self.settings.use_prior:
            return None
        if self._prior is None:
            self._prior = SemanticPrior()
        return self._prior

    @property
    def prior_weight(self) -> float:
        """The prior's weight in blended verdicts (``llm.prior_weight``, or the default for this model)."""
        w = self.settings.prior_weight
        if w is not None:
            return float(w)
        return 0.8 if self.settings.backend == "local" and self.settings.model_path is None else 0.5

    def prime_prior(self, texts: list[str]) -> None:
        """Score many templates with the prior in one batch (later judgments of them reuse the result)."""
        prior = self.prior()
        if prior is not None and texts:
            redacted = [self.redactor.redact(self.injection.strip(t)[0])[0] for t in texts]
            prior.margins(redacted)

    def judge_method(self) -> str:
        """The strategy ``judge_log``/``judge_metric`` use with this backend."""
        mode = self.settings.judge_mode
        if mode not in ("auto", "cot"):
            return mode
        if self.in_process:
            return "label" if mode == "auto" else "json_text"
        caps = self._caps or ServerCapabilities()
        return "json_schema" if caps.json_schema else "tool_call" if caps.tool_calls else "json_text"

    def info(self) -> dict[str, Any]:
        """Backend, model, judge method and prompt versions (for reports)."""
        return {
            "backend": self.settings.backend, "model": self.model_name, "judge_method": self.judge_method(),
            "prompts": prompts.versions(), "capabilities": self._caps.model_dump() if self._caps else None,
            "prior": self.settings.use_prior, "prior_weight": self.prior_weight,
        }

    def health(self) -> dict[str, Any]:
        """Cheap status: breaker state, capabilities, counters (loads the backend if needed, never generates)."""
        out: dict[str, Any] = {"backend": self.settings.backend, "breaker": self.resilience.breaker.state,
                               "stats": dict(self.stats)}
        try:
            self._ensure()
            out["ok"] = self.resilience.breaker.state != "open"
            out["model"] = self.model_name
        except LLMError as exc:
            out["ok"] = False
            out["error"] = str(exc)
        if self._caps is not None:
            out["capabilities"] = self._caps.model_dump()
        if self._cache is not None:
            out["cache"] = {"hits": self._cache.hits, "misses": self._cache.misses, "path": str(self._cache.path)}
        return out

    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] = self.stats.get(key, 0) + n

    def _guard(self, fn: Any, what: str) -> Any:
        self._count("calls")
        try:
            return self.resilience.call(fn, slot_timeout_s=self.settings.timeout_s * (1 + self.settings.max_retries),
                                        what=what)
        except LLMError:
            self._count("errors")
            raise

    # ---- judgment ------------------------------------------------------------------------------------------
    def judge_log(self, finding: LogFindingInput | Any) -> Verdict:
        """Judge a log finding (``LogFindingInput``, a dict, or a report ``Finding`` with templates).

        Raises:
            LLMUnavailable, LLMTimeout, LLMOutputError: the call could not give a valid verdict.
            ValueError: the finding has no templates.
        """
        f = as_log_input(finding)
        self._ensure()
        assert self._builder is not None
        name = "judge_log_cot" if self.settings.judge_mode == "cot" else "judge_log"
        variables, flags = self._builder.log_vars(f, name, compact=self.judge_method() == "label")
        evidence = [t["id"] for t in variables["templates"]] + [s["id"] for s in variables["samples"]]
        prior = self._prior_scores([t["template"] for t in variables["templates"]])
        return self._judge(name, variables, evidence, flags, prior)

    def judge_metric(self, finding: MetricFindingInput | Any) -> Verdict:
        """Judge a metric finding (``MetricFindingInput``, a dict, or a report ``Finding`` with metrics)."""
        f = as_metric_input(finding)
        self._ensure()
        assert self._builder is not None
        variables, flags = self._builder.metric_vars(f)
        evidence = [c["id"] for c in variables["channels"]]
        return self._judge("judge_metric", variables, evidence, flags)

    def _judge(self, name: str, variables: dict[str, Any], evidence: list[str], flags: list[str],
               prior: tuple[float, str] | None = None) -> Verdict:
        template = prompts.load(name)
        method = self.judge_method()
        blend = f"prior={self.prior_weight}" if prior is not None else "noprior"
        key = cache_key(self.model_name, template.version, f"{method}:{self.settings.reason_for}:{blend}",
                        [variables, prior])
        if self._cache is not None:
            hit = self._cache.get(key)
            if hit is not None:
                try:
                    self._count("cache_hits")
                    if "cited" not in hit and hit.get("method") == "label_likelihood":
                        hit = {**hit, "cited": "filled"}  # cached before provenance was kept: a label cites nothing
                    return Verdict.model_validate({**hit, "cached": True})
                except ValueError:
                    logger.warning("dropping an invalid cached verdict")
        rendered = template.render(**variables)
        if method == "label":
            verdict = self._guard(lambda: judges.label_verdict(self, rendered, evidence, *(prior or (None, None))),
                                  f"{name} (label)")
        else:
            verdict = self._guard(lambda: judges.generated_verdict(self, rendered, method, evidence), f"{name} ({method})")
            if prior is not None:
                verdict = self._blend(verdict, *prior)
        ids, who, rejected = cite(verdict.evidence_ids, evidence, evidence[:3])
        if rejected:
            self._count("invented_ids", len(rejected))
        verdict = verdict.model_copy(update={
            "evidence_ids": ids, "cited": "filled" if verdict.cited == "filled" else who,
            "rejected_ids": [*verdict.rejected_ids, *rejected],
            "model": self.model_name, "prompt_name": name, "prompt_version": template.version,
            "flags": sorted(set(flags)),
        })
        if self._cache is not None:
            self._cache.put(key, verdict.model_dump(mode="json"))
        return verdict

    def _prior_scores(self, texts: list[str]) -> tuple[float, str] | None:
        """(prior probability, nearest failure category) of the most failure-like text; None when off or failing."""
        prior = self.prior()
        if prior is None or not texts:
            return None
        try:
            scores, cats = prior.score_with_categories(texts)
            i = int(scores.argmax())
            return float(scores[i]), cats[i]
        except Exception as exc:  # noqa: BLE001 - the prior is optional: judge with the LLM alone
            logger.warning("semantic prior failed (%s); judging with the LLM alone", exc)
            return None

    def _blend(self, verdict: Verdict, p_prior: float, category: str) -> Verdict:
        p = float(combine(verdict.p_anomalous, p_prior, self.prior_weight))
        anomalous = p >= 0.5
        return verdict.model_copy(update={
            "anomalous": anomalous, "confidence": round(p if anomalous else 1.0 - p, 4), "p_anomalous": round(p, 4),
            "source": "llm+prior", "scores": {**verdict.scores, "prior": round(p_prior, 4), "combined": round(p, 4)},
            "category": (verdict.category if verdict.category not in ("unknown", "normal", "anomaly") else category)
            if anomalous else "normal",
        })

    def calibration(self, engine: Any, name: str, build: Any) -> float:
        """Content-free baseline of the label margin for prompt ``name`` (computed once per engine)."""
        key = (str(id(engine)), name)
        with self._lock:
            if key in self._calibration:
                return self._calibration[key]
        value = build()
        with self._lock:
            self._calibration[key] = value
        return value

    # ---- explanation and summary ---------------------------------------------------------------------------
    def explain(self, findings: list[Any], context: str | None = None, examples: list[str] | None = None) -> Explanation:
        """Explain findings in plain words, citing evidence ids that were given (others are dropped).

        Args:
            findings: report ``Finding`` objects (or dicts with the same fields).
            context: optional context (service, alert).
            examples: optional labelled past incidents (few-shot, e.g. retrieved from the incident store).
        """
        if not findings:
            raise ValueError("explain needs at least one finding")
        self._ensure()
        assert self._builder is not None
        blocks, ids, _flags = self._builder.finding_blocks(findings, "explain")
        mapping: dict[str, str] = {}
        ex = [self._builder.clean(e, mapping, []) for e in (examples or [])][:3]
        ctx = self._builder.clean(context, mapping, []) if context else None
        template = prompts.load("explain")
        rendered = template.render(findings=blocks, examples=ex, context=ctx)
        out = self._guard(lambda: judges.generated_explanation(self, rendered, ids), "explain")
        return out.model_copy(update={"model": self.model_name, "prompt_name": "explain", "prompt_version": template.version})

    def summarize(self, findings: list[Any] | None, context: str | None = None) -> CitedText:
        """A report summary (at most three sentences) citing evidence ids; a ``str`` with ``evidence_ids``."""
        if not findings:
            raise ValueError("summarize needs at least one finding")
        self._ensure()
        assert self._builder is not None
        blocks, ids, _flags = self._builder.finding_blocks(findings, "summarize_report")
        ctx = self._builder.clean(context, {}, []) if context else None
        template = prompts.load("summarize_report")
        rendered = template.render(findings=blocks, context=ctx)
        expl = self._guard(lambda: judges.generated_explanation(self, rendered, ids, summary=True), "summarize")
        return CitedText(expl.text, expl.evidence_ids, "summarize_report", template.version, self.model_name)


def sigmoid(x: float) -> float:
    """Numerically safe logistic function."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def now() -> float:
    return time.perf_counter()
