"""Batch triage: logs (+ metrics, + traces, + an alert) in, a ranked, evidence-cited report out.

The stages, one module each:

- ``pipeline``: :func:`triage`, the stages in order, timings, degraded flags, the summary and the report.
- ``inputs``: read and parse the logs into compact window counts (``LogData``), read the metrics.
- ``detect``: the log detectors (cross-fitted) and the metric detector (``tools.metric_anomalies``) -> hits.
- ``rank``: hits -> groups coinciding in time -> scored findings (pure functions).
- ``evidence``: scored groups -> findings with evidence ids, template explanations, the timeline.
- ``enrich``: similar incidents and the runbook (store), LLM judgment and explanation; all optional.
- ``assemble``: findings, memory and judgments -> the report; its summary composed from the evidence.
- ``rca``: the root-cause stage (``agent.rca`` against a baseline) -> root causes and the service graph.
"""

from anomalist.agent.triage.assemble import alert_severity
from anomalist.agent.triage.pipeline import triage

__all__ = ["alert_severity", "triage"]
