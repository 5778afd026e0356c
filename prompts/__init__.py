"""Prompt templates (Jinja2 files), versioned by content hash, rendered with strict undefined.

Each ``<name>.j2`` file defines a ``system`` block and a ``user`` block (and optionally ``assistant_prefix``, the
text the answer starts with, used by label-likelihood scoring). Rendering returns a :class:`RenderedPrompt` that
carries the prompt's name and version (the first 12 hex digits of the SHA-256 of the file's bytes); that version
goes into every result built from the prompt.

Log content is only ever placed inside ``<log_data>`` ... ``</log_data>`` blocks (see ``_rules.j2``); the
``data`` filter neutralises anything inside the data that looks like a delimiter or a chat role tag, so a log line
cannot close the block or open a new turn.

Token budgets: :func:`section_budgets` splits a model's context window (minus the output reserve and the fixed
instructions) among the variable sections of a prompt, and :func:`fit` cuts a list of items to a token budget.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import jinja2

PROMPT_NAMES = ("judge_log", "judge_log_cot", "judge_metric", "explain", "summarize_report", "chat_system")

# Share of the variable budget per section (the rest of the window holds instructions and the answer).
SECTION_SHARES: dict[str, dict[str, float]] = {
    "judge_log": {"templates": 0.45, "samples": 0.45, "context": 0.10},
    "judge_log_cot": {"templates": 0.45, "samples": 0.45, "context": 0.10},
    "judge_metric": {"channels": 0.85, "context": 0.15},
    "explain": {"findings": 0.75, "context": 0.25},
    "summarize_report": {"findings": 0.8, "context": 0.2},
    "chat_system": {"context": 1.0},
}

_ROLE_TAGS = re.compile(
    r"<\|?/?(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id|begin_of_text)\|?>"
    r"|</?log_data>|\[/?INST\]|<</?SYS>>",
    re.IGNORECASE,
)


def neutralise(text: object) -> str:
    """Data-block filter: defuse delimiters and chat role tags inside untrusted text (they become visible words)."""
    s = "" if text is None else str(text)
    return _ROLE_TAGS.sub(lambda m: "(" + m.group(0).strip("<>|[]/").replace("|", "") + ")", s)


@dataclass(frozen=True)
class RenderedPrompt:
    """A rendered prompt: chat messages plus the version that produced them."""

    name: str
    version: str
    system: str
    user: str
    assistant_prefix: str = ""

    def messages(self) -> list[dict[str, str]]:
        """OpenAI-style messages (system, user)."""
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


@dataclass
class PromptTemplate:
    """One prompt file."""

    name: str
    source: str
    version: str
    _template: jinja2.Template = field(repr=False)

    def render(self, **variables: object) -> RenderedPrompt:
        """Render with ``variables`` (a missing variable raises ``jinja2.UndefinedError``)."""
        ctx = self._template.new_context(dict(variables))
        parts = {}
        for block in ("system", "user", "assistant_prefix"):
            fn = self._template.blocks.get(block)
            parts[block] = "".join(fn(ctx)).strip() if fn is not None else ""
        return RenderedPrompt(self.name, self.version, parts["system"], parts["user"], parts["assistant_prefix"])


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load_source),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["data"] = neutralise
    env.filters["round_list"] = lambda xs, n=3: "[" + ", ".join(f"{float(x):.{n}g}" for x in xs) + "]"
    return env


def _load_source(name: str) -> str:
    path = resources.files(__package__).joinpath(name)
    if not path.is_file():
        raise jinja2.TemplateNotFound(name)
    return path.read_text(encoding="utf-8")


@lru_cache(maxsize=32)
def load(name: str) -> PromptTemplate:
    """Load ``prompts/<name>.j2``. The version hashes the file and the shared files it includes."""
    if name not in PROMPT_NAMES:
        raise ValueError(f"unknown prompt {name!r}; known: {', '.join(PROMPT_NAMES)}")
    source = _load_source(f"{name}.j2")
    digest = hashlib.sha256(source.encode("utf-8"))
    for inc in sorted(set(re.findall(r"{%-?\s*(?:include|import|extends)\s+['\"]([^'\"]+)['\"]", source))):
        digest.update(_load_source(inc).encode("utf-8"))
    template = _env().get_template(f"{name}.j2")
    return PromptTemplate(name=name, source=source, version=digest.hexdigest()[:12], _template=template)


def versions() -> dict[str, str]:
    """Every prompt's current version."""
    return {n: load(n).version for n in PROMPT_NAMES}


def approx_tokens(text: str) -> int:
    """A cheap token estimate (about 3.5 characters per token for English and log text)."""
    return max(1, int(len(text) / 3.5) + 1) if text else 0


def section_budgets(name: str, n_ctx: int, max_output_tokens: int, fixed_tokens: int) -> dict[str, int]:
    """Token budget per variable section of prompt ``name``.

    Args:
        name: prompt name (keys of ``SECTION_SHARES``).
        n_ctx: the model's context window in tokens.
        max_output_tokens: tokens reserved for the answer.
        fixed_tokens: tokens of the instructions (the prompt rendered with empty sections).

    Returns:
        section -> tokens (at least 16 each).

    Raises:
        ValueError: when the window cannot hold the instructions and the answer.
    """
    free = n_ctx - max_output_tokens - fixed_tokens - 8
    if free < 32:
        raise ValueError(
            f"context window {n_ctx} too small for prompt {name!r} ({fixed_tokens} fixed + {max_output_tokens} output tokens)"
        )
    return {sec: max(16, int(free * share)) for sec, share in SECTION_SHARES[name].items()}


def fit(items: Sequence[str], budget: int, count: Callable[[str], int] = approx_tokens, max_item: int | None = None) -> list[str]:
    """Keep items in order while they fit ``budget`` tokens; long items are cut (marked ``...[cut]``)."""
    out: list[str] = []
    used = 0
    cap = max_item or budget
    for item in items:
        text = item
        if count(text) > cap:
            text = text[: max(8, int(cap * 3.5))] + "...[cut]"
        n = count(text)
        if used + n > budget:
            break
        out.append(text)
        used += n
    return out
