"""Batch triage: logs (+ metrics, + an alert) in, a ranked and explained :class:`~agent.report.TriageReport` out.

Work in progress: the signature below is the contract other modules code against; the pipeline lands next.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from agent.report import TriageReport
from agent.settings import Settings

ProgressCallback = Callable[[str, float, str], None]
"""``progress(stage, fraction_done, message)``: called at stage boundaries (fraction 0.0 then 1.0) and within
long stages."""


def triage(
    logs: Sequence[str | Path] | None,
    metrics: Path | pd.DataFrame | None = None,
    alert: dict[str, Any] | None = None,
    *,
    settings: Settings,
    progress: ProgressCallback | None = None,
    store: Any = None,
    llm: Any = None,
) -> TriageReport:
    """Triage a batch of logs and optional metrics (and an optional Alertmanager alert).

    Args:
        logs: log files, directories or ``"-"`` (stdin); None or empty when only metrics are given.
        metrics: a metrics CSV path or a DataFrame (DatetimeIndex × numeric channels).
        alert: one Alertmanager alert (labels, annotations, startsAt, ...) or a whole v4 webhook payload.
        settings: the typed settings (``settings.triage`` holds top_k, window and the LLM budget).
        progress: optional stage progress callback.
        store: an open ``tools.store.IncidentStore`` to share; None = open the configured one (or run without).
        llm: an ``agent.llm.LLMService`` to share; None = build one from ``settings.llm`` (or run without).

    Returns:
        The report; it is produced even when the LLM, the store, the metrics or a detector fail (marked degraded).

    Raises:
        tools.errors.InputError: when neither logs nor metrics hold anything usable.
    """
    raise NotImplementedError("triage pipeline: in progress (issue 6)")
