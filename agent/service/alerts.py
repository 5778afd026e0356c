"""The service side of the Alertmanager webhook: which service an alert is about, the alert ledger (duplicate
detection), Slack blocks. The alert and webhook models are :mod:`tools.alerts`."""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.report import TriageReport
from tools.alerts import Alert

logger = logging.getLogger(__name__)

# Labels that may name the service an alert is about, most specific first.
SERVICE_LABELS = ("service", "app", "app_kubernetes_io_name", "container", "job", "deployment", "namespace")


def resolve_service(alert: Alert, known: set[str]) -> tuple[str | None, bool]:
    """The service an alert is about: the first label value that names a configured source, else a best guess.

    Returns:
        (service name or None, whether it is configured in ``known``).
    """
    for label in SERVICE_LABELS:
        value = alert.labels.get(label)
        if value and value in known:
            return value, True
    for label in SERVICE_LABELS:
        value = alert.labels.get(label)
        if value:
            return value, False
    return None, False


class AlertLedger:
    """Which alerts were seen (duplicate deliveries are processed once) and what became of them.

    Keys live in a bounded LRU; every event is appended to ``<root>/ledger.jsonl`` and the last keys are reloaded
    at start-up, so a restart does not re-triage an alert Alertmanager redelivers.

    Args:
        root: directory of the ledger file.
        capacity: keys remembered.
    """

    def __init__(self, root: Path, capacity: int):
        self.root = root
        self.capacity = capacity
        self._seen: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._loaded = False

    @property
    def path(self) -> Path:
        return self.root / "ledger.jsonl"

    def load(self) -> None:
        """Reload the remembered keys from the ledger file (bad lines are counted and skipped)."""
        with self._lock:
            self._loaded = True
            if not self.path.is_file():
                return
            bad = 0
            with self.path.open(encoding="utf-8") as fh:
                for line in fh:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        bad += 1
                        continue
                    if rec.get("event") in ("firing", "resolved") and rec.get("key"):
                        self._remember(f"{rec['event']}|{rec['key']}", rec.get("job_id") or "")
            if bad:
                logger.warning("alert ledger %s: %d unreadable lines skipped", self.path, bad)

    def _remember(self, key: str, value: str) -> None:
        self._seen[key] = value
        self._seen.move_to_end(key)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

    def claim(self, alert: Alert) -> bool:
        """True the first time this (status, fingerprint, startsAt) is seen; False for a duplicate delivery."""
        key = f"{alert.status}|{alert.dedup_key()}"
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return False
            self._remember(key, "")
            return True

    def forget(self, alert: Alert) -> None:
        """Drop a claim (the alert could not be queued; its redelivery must be processed)."""
        with self._lock:
            self._seen.pop(f"{alert.status}|{alert.dedup_key()}", None)

    def record(self, event: str, alert: Alert | None = None, **fields: Any) -> None:
        """Append one event (firing, resolved, duplicate, report, failed, posted) to the ledger file."""
        rec: dict[str, Any] = {"at": datetime.now(UTC).isoformat(), "event": event}
        if alert is not None:
            rec.update(key=alert.dedup_key(), alertname=alert.display_name, fingerprint=alert.fingerprint,
                       startsAt=alert.startsAt.isoformat() if alert.startsAt else None,
                       endsAt=alert.endsAt.isoformat() if alert.endsAt else None)
        rec.update(fields)
        line = json.dumps(rec, default=str)
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """The last ``limit`` ledger events, newest last."""
        if not self.path.is_file():
            return []
        with self._lock:
            lines = self.path.read_text(encoding="utf-8").splitlines()[-limit:]
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


def slack_blocks(report: TriageReport, alert: Alert, report_url: str) -> dict[str, Any]:
    """A Slack-compatible message (``text`` fallback + Block Kit ``blocks``) summarizing ``report``.

    Args:
        report: the triage report of the alert.
        alert: the alert it answers.
        report_url: where the full report can be read.
    """
    sev = report.severity.upper()
    title = f"[{sev}] {alert.display_name}: {alert.annotations.get('summary', '')}".strip().rstrip(":")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(report.summary.text, 2900)}},
    ]
    if report.findings:
        lines = [
            f"*{f.rank}. {_cut(f.title, 120)}* ({f.severity}, {f.start:%H:%M}-{f.end:%H:%M} UTC)"
            for f in report.findings[:5]
        ]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "*Findings*\n" + "\n".join(lines)}})
    if report.runbook is not None:
        steps = [f"• {_cut(s.text, 200)}" for s in report.runbook.steps[:5]]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(
            f"*Runbook: {report.runbook.title}*\n" + "\n".join(steps), 2900)}})
    if report.similar_incidents:
        lines = [f"• {_cut(i.title, 120)} (score {i.score:.2f})" for i in report.similar_incidents[:3]]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "*Seen before*\n" + "\n".join(lines)}})
    context = f"Report <{report_url}|{report.id}>"
    if report.is_degraded:
        context += " · degraded: " + ", ".join(sorted({d.component for d in report.degraded}))
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(context, 2900)}]})
    return {"text": _cut(f"{title} - {report.summary.text}", 3000), "blocks": blocks}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
