"""Incident and runbook memory on chromadb (embedded ``PersistentClient`` or a ``chroma run`` server).

Public API:
- ``IncidentStore.open(mode, path=..., host=..., port=..., token=...)`` / ``IncidentStore.from_settings(...)``;
  ``similar_incidents``, ``runbook_for``, ``search_runbooks``, ``upsert_incidents``, ``upsert_runbooks``,
  ``delete``, ``list_incidents``, ``list_runbooks``, ``count``.
- ``StoreUnavailable``: the store cannot be used (message names the path or address); callers degrade.
- Records: ``Incident``, ``Runbook``, ``RunbookSection``, ``Symptoms``, ``StoreFilters``, hits and summaries.
- Importers: ``import_incidents``, ``import_runbooks``, ``import_alert_rules``, ``incident_from_report``.

The embedded store is for one writer process; several processes share memory through a ``chroma run`` server.
"""

from anomalist.tools.alerts import Alert, alert_query_text, alerts_from_payload, render_template
from anomalist.tools.store.backend import StoreUnavailable
from anomalist.tools.store.importers import (
    import_alert_rules,
    import_incidents,
    import_runbooks,
    incident_from_postmortem,
    incident_from_report,
)
from anomalist.tools.store.records import (
    SCHEMA_VERSION,
    ImportSummary,
    Incident,
    IncidentHit,
    Rejection,
    Runbook,
    RunbookHit,
    RunbookSection,
    ScoreParts,
    StoreFilters,
    Symptoms,
)
from anomalist.tools.store.store import IncidentStore, UpsertResult

__all__ = [
    "SCHEMA_VERSION", "Alert", "ImportSummary", "Incident", "IncidentHit", "IncidentStore", "Rejection", "Runbook",
    "RunbookHit", "RunbookSection", "ScoreParts", "StoreFilters", "StoreUnavailable", "Symptoms", "UpsertResult",
    "alert_query_text", "alerts_from_payload", "import_alert_rules", "import_incidents", "import_runbooks",
    "incident_from_postmortem", "incident_from_report", "render_template",
]
