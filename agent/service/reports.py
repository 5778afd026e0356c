"""Reports the service produced, kept as JSON files under ``<data_dir>/reports`` (survive restarts)."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from anomalist.agent.report import TriageReport

logger = logging.getLogger(__name__)

_ID = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


def valid_report_id(report_id: str) -> bool:
    """Report ids are short tokens; anything else (slashes, dots only, ..) is refused before touching disk."""
    return bool(_ID.match(report_id)) and report_id.strip(".") != ""


class ReportStore:
    """Saves and loads :class:`TriageReport` objects by id (atomic writes, ids never used unchecked as paths).

    Args:
        root: directory of the report files.
    """

    def __init__(self, root: Path):
        self.root = root

    def save(self, report: TriageReport) -> str:
        if not valid_report_id(report.id):
            raise ValueError(f"unusable report id {report.id!r}")
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / f"{report.id}.json"
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(report.model_dump_json())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return report.id

    def get(self, report_id: str) -> TriageReport | None:
        if not valid_report_id(report_id):
            return None
        path = self.root / f"{report_id}.json"
        if not path.is_file():
            return None
        return TriageReport.model_validate_json(path.read_text(encoding="utf-8"))

    def mark_resolved(self, report_id: str, resolved_at: str) -> bool:
        """Mark a stored alert report resolved (its findings stay as triaged); False when there is no such report."""
        report = self.get(report_id)
        if report is None or report.alert is None:
            return False
        at = datetime.fromisoformat(resolved_at.replace("Z", "+00:00"))
        if at.tzinfo is not None:
            at = at.astimezone(UTC).replace(tzinfo=None)
        alert = report.alert.model_copy(update={"resolved_at": at, "status": "resolved"})
        self.save(report.model_copy(update={"alert": alert}))
        return True

    def count(self) -> int:
        return len(list(self.root.glob("*.json"))) if self.root.is_dir() else 0
