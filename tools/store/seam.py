"""The store's typed seam: what the triage, the chat tools and the service may call on an incident store.
``tools.store.IncidentStore`` satisfies it; a stand-in (another vector store) needs only these members."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from anomalist.tools.alerts import Alert
    from anomalist.tools.store.records import IncidentHit, RunbookHit, StoreFilters

__all__ = ["IncidentMemory"]


@runtime_checkable
class IncidentMemory(Protocol):
    """Past incidents and runbooks, searched (the triage's and the chat tools' view of the store)."""

    @property
    def location(self) -> str: ...

    def warm_up(self) -> None: ...

    def similar_incidents(self, query: str, k: int = 5,
                          filters: StoreFilters | dict[str, Any] | None = None) -> list[IncidentHit]: ...

    def search_runbooks(self, query: str, k: int = 3,
                        filters: StoreFilters | dict[str, Any] | None = None) -> list[RunbookHit]: ...

    def runbook_for(self, alert: Alert | dict[str, Any], k: int = 3) -> list[RunbookHit]: ...
