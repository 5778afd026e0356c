"""The service side of the Alertmanager webhook: which service an alert is about, the alert ledger (duplicate
detection), Slack blocks. The alert and webhook models are :mod:`tools.alerts`."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from anomalist.agent.report import TriageReport
from anomalist.tools.alerts import Alert

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


@dataclass
class Episode:
    """One firing episode of an Alertmanager group: from its first firing notification to its resolution. It gets
    one triage and one report, however often Alertmanager re-sends it (``repeat_interval``, ``group_interval``
    updates, retries)."""

    group: str
    id: str
    alerts: set[str] = field(default_factory=set)  # the (fingerprint, startsAt) keys of its alerts
    job_id: str | None = None
    report_id: str | None = None
    resolved_at: str | None = None


def group_of(group_key: str | None, alert: Alert) -> str:
    """The group an alert is triaged in: Alertmanager's ``groupKey``, or the alert itself when posted without one."""
    return group_key or f"alert:{alert.fingerprint}"


class AlertLedger:
    """Which alert groups are firing, which notifications were already handled, and what became of them.

    One report per alert group and firing episode: a notification whose firing alerts are already part of the
    group's open episode is a re-send (duplicate); new alerts joining it are recorded, not re-triaged. A resolved
    notification closes the episode and marks its report resolved. Every event is appended to
    ``<root>/ledger.jsonl`` and the episodes are replayed at start-up, so a restart does not re-triage a group that
    Alertmanager re-sends.

    Args:
        root: directory of the ledger file.
        capacity: episodes remembered (oldest forgotten first).
    """

    def __init__(self, root: Path, capacity: int):
        self.root = root
        self.capacity = capacity
        self._episodes: OrderedDict[str, Episode] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self.root / "ledger.jsonl"

    def load(self) -> None:
        """Replay the episodes from the ledger file (bad lines are counted and skipped)."""
        with self._lock:
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
                    if isinstance(rec, dict) and rec.get("group"):
                        self._replay(rec)
            if bad:
                logger.warning("alert ledger %s: %d unreadable lines skipped", self.path, bad)

    def _replay(self, rec: dict[str, Any]) -> None:
        group, event = str(rec["group"]), rec.get("event")
        ep = self._episodes.get(group)
        if event == "firing" and rec.get("episode"):
            if ep is None or ep.id != rec["episode"]:
                ep = Episode(group=group, id=str(rec["episode"]))
                self._put(ep)
            ep.alerts |= set(rec.get("keys") or [])
            ep.job_id = rec.get("job_id") or ep.job_id
        elif ep is not None and rec.get("episode") == ep.id:
            if event == "joined":
                ep.alerts |= set(rec.get("keys") or [])
            elif event == "report":
                ep.report_id = rec.get("report_id") or ep.report_id
            elif event == "resolved":
                ep.resolved_at = rec.get("resolved_at") or rec.get("at")
            elif event == "refused":
                self._episodes.pop(group, None)

    def _put(self, ep: Episode) -> None:
        self._episodes[ep.group] = ep
        self._episodes.move_to_end(ep.group)
        while len(self._episodes) > self.capacity:
            self._episodes.popitem(last=False)

    def firing(self, group: str, alerts: list[Alert]) -> tuple[Episode, set[str], bool]:
        """Register a firing notification of ``group`` (its firing ``alerts``).

        Returns:
            (the episode, keys of alerts new to it, whether the episode is new: triage it only then).
        """
        keys = {a.dedup_key() for a in alerts}
        with self._lock:
            ep = self._episodes.get(group)
            if ep is not None and ep.alerts & keys:
                new = keys - ep.alerts
                ep.alerts |= new
                self._episodes.move_to_end(group)
                return ep, new, False
            first = min((a.startsAt for a in alerts if a.startsAt is not None), default=None)
            ident = hashlib.sha1(f"{group}|{first.isoformat() if first else ''}|{sorted(keys)}".encode()).hexdigest()
            ep = Episode(group=group, id=ident[:16], alerts=set(keys))
            self._put(ep)
            return ep, set(keys), True

    def resolved(self, group: str, alerts: list[Alert], whole_group: bool) -> Episode | None:
        """Register resolved alerts of ``group``; the episode closes when the whole group resolved (the
        notification's status) or every alert it had resolved. Returns the episode when it closed now."""
        keys = {a.dedup_key() for a in alerts}
        with self._lock:
            ep = self._episodes.get(group)
            if ep is None or ep.resolved_at is not None:
                return None
            if not (ep.alerts & keys) and not whole_group:
                return None
            if whole_group or ep.alerts <= keys:
                ends = [a.endsAt for a in alerts if a.endsAt is not None and a.endsAt.year > 1]
                ep.resolved_at = (max(ends) if ends else datetime.now(UTC)).isoformat()
                return ep
            return None

    def forget(self, group: str) -> None:
        """Drop a group's episode (its triage could not be queued; Alertmanager's retry must be processed)."""
        with self._lock:
            self._episodes.pop(group, None)

    def episode(self, group: str) -> Episode | None:
        with self._lock:
            return self._episodes.get(group)

    def attach(self, group: str, episode_id: str, *, job_id: str | None = None, report_id: str | None = None
               ) -> Episode | None:
        """Note the job / report of an episode; returns the episode (None when it is gone or was replaced)."""
        with self._lock:
            ep = self._episodes.get(group)
            if ep is None or ep.id != episode_id:
                return None
            if job_id:
                ep.job_id = job_id
            if report_id:
                ep.report_id = report_id
            return ep

    def record(self, event: str, alert: Alert | None = None, **fields: Any) -> None:
        """Append one event (firing, joined, duplicate, resolved, report, failed, posted, refused) to the file."""
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
