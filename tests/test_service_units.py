"""Service parts without a server: alert ledger (dedup across restarts), Slack blocks, safety helpers, jobs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from anomalist.agent.report import Explanation, TriageReport, Versions
from anomalist.agent.service.alerts import AlertLedger, resolve_service, slack_blocks
from anomalist.agent.service.jobs import JobManager, QueueFull
from anomalist.agent.service.reports import ReportStore, valid_report_id
from anomalist.agent.service.security import exposure_warning, is_loopback
from anomalist.tools.alerts import Alert, AlertmanagerWebhook


def _alert(fp: str = "abc", status: str = "firing", starts: str = "2026-11-02T14:06:00Z") -> Alert:
    return Alert.model_validate({
        "status": status, "labels": {"alertname": "DiskFull", "container": "checkout", "service": "kube-state-metrics"},
        "annotations": {"summary": "disk almost full"}, "startsAt": starts, "fingerprint": fp,
        **({"endsAt": "2026-11-02T14:30:00Z"} if status == "resolved" else {}),
    })


def _fire(ledger: AlertLedger, group: str, *alerts: Alert, job: str = "j1") -> tuple[str, bool]:
    """What the webhook does for a firing notification: register it, and record a new episode's job."""
    ep, _, new = ledger.firing(group, list(alerts))
    if new:
        ledger.attach(group, ep.id, job_id=job)
        ledger.record("firing", alerts[0], group=group, episode=ep.id, keys=sorted(ep.alerts), job_id=job)
    return ep.id, new


def test_one_episode_per_group_across_resends_and_a_restart(tmp_path: Path) -> None:
    ledger = AlertLedger(tmp_path, capacity=100)
    ledger.load()
    ep1, new = _fire(ledger, "{}:{alertname=DiskFull}", _alert("a"), _alert("b"))
    assert new
    # repeat_interval re-send, and a group_interval update where a third alert joined: no new episode.
    assert _fire(ledger, "{}:{alertname=DiskFull}", _alert("a"), _alert("b")) == (ep1, False)
    ep, joined, new = ledger.firing("{}:{alertname=DiskFull}", [_alert("a"), _alert("b"), _alert("c")])
    assert (ep.id, new) == (ep1, False) and joined == {_alert("c").dedup_key()}
    ledger.record("joined", None, group="{}:{alertname=DiskFull}", episode=ep1, keys=sorted(joined))
    ledger.attach("{}:{alertname=DiskFull}", ep1, report_id="r1")
    ledger.record("report", None, group="{}:{alertname=DiskFull}", episode=ep1, report_id="r1")
    # Another group is its own episode.
    assert _fire(ledger, "{}:{alertname=Other}", _alert("z"))[1]
    # A restart replays the episodes: Alertmanager's re-send after it is still a duplicate.
    restarted = AlertLedger(tmp_path, capacity=100)
    restarted.load()
    assert _fire(restarted, "{}:{alertname=DiskFull}", _alert("c")) == (ep1, False)
    assert restarted.episode("{}:{alertname=DiskFull}").report_id == "r1"  # type: ignore[union-attr]
    # Part of the group resolving does not close it; the whole group resolving does, once.
    assert restarted.resolved("{}:{alertname=DiskFull}", [_alert("a", "resolved")], whole_group=False) is None
    closed = restarted.resolved("{}:{alertname=DiskFull}", [_alert(x, "resolved") for x in "abc"], whole_group=True)
    assert closed is not None and closed.id == ep1 and closed.resolved_at.startswith("2026-11-02T14:30")  # type: ignore[union-attr]
    assert restarted.resolved("{}:{alertname=DiskFull}", [_alert("a", "resolved")], whole_group=True) is None
    # The group firing again later (new startsAt) is a new episode, with a new report.
    ep2, new = _fire(restarted, "{}:{alertname=DiskFull}", _alert("a", starts="2026-11-03T09:00:00Z"))
    assert new and ep2 != ep1
    restarted.forget("{}:{alertname=DiskFull}")  # could not be queued: the redelivery must be processed
    assert _fire(restarted, "{}:{alertname=DiskFull}", _alert("a", starts="2026-11-03T09:00:00Z"))[1]
    (tmp_path / "ledger.jsonl").open("a").write("{broken\n")
    AlertLedger(tmp_path, capacity=100).load()  # a bad line is skipped, not fatal


def test_ledger_capacity_is_bounded(tmp_path: Path) -> None:
    ledger = AlertLedger(tmp_path, capacity=100)
    for i in range(250):
        ledger.firing(f"g{i}", [_alert(fp=f"fp{i}")])
    assert len(ledger._episodes) == 100
    assert ledger.firing("g0", [_alert(fp="fp0")])[2] is True  # forgotten (oldest) -> processed again


def test_resolve_service_prefers_configured_labels() -> None:
    assert resolve_service(_alert(), {"checkout"}) == ("checkout", True)
    assert resolve_service(_alert(), set()) == ("kube-state-metrics", False)


def test_webhook_model_refuses_other_versions() -> None:
    with pytest.raises(ValueError):
        AlertmanagerWebhook.model_validate({"version": "3", "status": "firing", "alerts": [_alert().model_dump()]})


def _report(rid: str = "r1") -> TriageReport:
    return TriageReport(id=rid, created_at=datetime.now(UTC), severity="critical",
                        summary=Explanation(text="Disk full on the database."), versions=Versions(anomalist="0"))


def test_slack_blocks() -> None:
    msg = slack_blocks(_report(), _alert(), "http://anomalist/v1/reports/r1")
    assert msg["text"].startswith("[CRITICAL] DiskFull")
    assert [b["type"] for b in msg["blocks"]] == ["header", "section", "context"]
    assert "http://anomalist/v1/reports/r1" in msg["blocks"][-1]["elements"][0]["text"]
    assert len(msg["blocks"][0]["text"]["text"]) <= 150


def test_report_store_refuses_path_like_ids(tmp_path: Path) -> None:
    store = ReportStore(tmp_path / "reports")
    store.save(_report("abc123"))
    assert store.get("abc123") is not None and store.count() == 1
    for bad in ("../abc123", "..", "a/b", "", "x" * 200):
        assert not valid_report_id(bad) and store.get(bad) is None


def test_exposure_warning() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("")
    assert exposure_warning("127.0.0.1", token_set=False) is None
    assert exposure_warning("0.0.0.0", token_set=True) is None
    assert "WITHOUT a bearer token" in (exposure_warning("0.0.0.0", token_set=False) or "")


def test_job_manager_bounds_and_records_failures() -> None:
    jobs = JobManager(workers=1, max_queue=2)
    gate = threading.Event()
    first, f1 = jobs.submit("upload", lambda job: (gate.wait(10), {"report_id": "r"})[1])
    for _ in range(500):  # wait until the worker holds the first job: then two more may queue
        if jobs.running == 1:
            break
        threading.Event().wait(0.01)
    _, f2 = jobs.submit("upload", lambda job: {"report_id": "r2"})
    _, f3 = jobs.submit("upload", lambda job: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(QueueFull):
        jobs.submit("upload", lambda job: {})
    gate.set()
    assert f1.result(10).status == "done" and f2.result(10).report_id == "r2"
    failed = f3.result(10)
    assert failed.status == "failed" and "boom" in (failed.error or "") and failed.error_kind == "internal"
    assert jobs.get(first.id).status == "done" and jobs.queue_depth == 0 and jobs.running == 0  # type: ignore[union-attr]
    jobs.shutdown()


def test_alert_work_reports_on_every_firing_alert(tmp_path: Path) -> None:
    """Unusable configured logs, globs that match nothing, and an unconfigured service: each alert gets a stored
    alert-only report whose flags say why no logs / metrics were triaged (LLM off, no store: both flagged)."""
    from anomalist.agent.service.jobs import Job
    from anomalist.agent.service.runtime import ServiceRuntime
    from anomalist.agent.settings import load_settings

    empty = tmp_path / "empty.log"
    empty.write_text("")
    settings = load_settings(overrides={
        "data_dir": str(tmp_path / "data"), "llm": {"backend": "none"}, "store": {"path": str(tmp_path / "no-store")},
        "server": {"sources": {"checkout": [str(empty)], "billing": [str(tmp_path / "none-*.log")]}},
    })
    runtime = ServiceRuntime(settings)
    try:
        for service, expect in (("checkout", "hold nothing usable"), ("billing", "match no files"),
                                ("search", "no log sources are configured for service 'search'")):
            alert = Alert.model_validate({**_alert(fp=service).model_dump(mode="json"),
                                          "labels": {"alertname": "DiskFull", "service": service,
                                                     "severity": "critical"}})
            out = runtime.alert_work(alert, "http://anomalist")(Job(id="j1", kind="alert"))
            assert out.get("status") != "failed", out
            assert out["detail"]["alert_only"] is True and out["severity"] == "critical"
            report = runtime.reports.get(out["report_id"])
            assert report is not None and report.alert is not None and report.alert.service == service
            flags = {d.component: d.reason for d in report.degraded}
            assert expect in flags["logs"] and "metrics" in flags and "store" in flags and "llm" not in flags
    finally:
        runtime.shutdown()
