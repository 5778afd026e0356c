"""The typed seams between the triage, the chat agent and the service on one side and the incident store and the
LLM layer on the other: what each side may call, as Protocols (the store's lives in ``tools.store.seam``, since
the chat's memory tools in ``tools`` take it too). ``tools.store.IncidentStore`` and
``agent.llm.LLMService`` satisfy them (checked by mypy where they are passed in, and at run time in the tests);
a stand-in for either (another store, a remote judge) needs only these members."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from anomalist.tools.store.seam import IncidentMemory

if TYPE_CHECKING:
    from anomalist.agent.llm.schemas import Explanation, LogFindingInput, MetricFindingInput, Verdict
    from anomalist.agent.llm.service import CitedText

__all__ = ["IncidentMemory", "Judge"]


@runtime_checkable
class Judge(Protocol):
    """Zero-shot judgment and explanation (the triage's and the service's view of the LLM layer). Every failure is
    an ``agent.llm.LLMError``."""

    @property
    def concurrency(self) -> int: ...

    @property
    def in_process(self) -> bool: ...

    @property
    def stats(self) -> dict[str, Any]: ...

    def info(self) -> dict[str, Any]: ...

    def health(self) -> dict[str, Any]: ...

    def judge_log(self, finding: LogFindingInput | Any) -> Verdict: ...

    def judge_metric(self, finding: MetricFindingInput | Any) -> Verdict: ...

    def explain(self, findings: list[Any], context: str | None = None,
                examples: list[str] | None = None) -> Explanation: ...

    def summarize(self, findings: list[Any] | None, context: str | None = None) -> CitedText: ...
