"""The incident store on real chromadb (embedded, temporary directories) with the real embedding model."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_store_helpers import SAMPLE_INCIDENTS, incident, runbook_subset, write_jsonl

from anomalist.tools.store import (
    IncidentStore,
    StoreUnavailable,
    import_alert_rules,
    import_incidents,
    import_runbooks,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory, datasets: Path) -> Path:
    """A store with the sample incidents and a subset of the shared runbooks (built once for the module)."""
    root = tmp_path_factory.mktemp("store")
    data = runbook_subset(datasets, root / "data")
    store = IncidentStore.open("embedded", path=root / "db", create=True)
    write_jsonl(root / "incidents.jsonl", SAMPLE_INCIDENTS)
    s1 = import_incidents(root / "incidents.jsonl", store)
    assert (s1.added, s1.rejected) == (len(SAMPLE_INCIDENTS), [])
    s2 = import_runbooks(data / "runbooks", store)
    assert s2.added == 12 and not s2.rejected
    store.close()
    return root


@pytest.fixture()
def store(store_dir: Path) -> IncidentStore:
    s = IncidentStore.open("embedded", path=store_dir / "db")
    yield s
    s.close()


def test_reimport_is_idempotent(store_dir: Path, store: IncidentStore) -> None:
    before = (store.count(), store.count("runbooks"))
    again = import_incidents(store_dir / "incidents.jsonl", store)
    assert (again.added, again.updated, again.unchanged) == (0, 0, len(SAMPLE_INCIDENTS))
    rb_again = import_runbooks(store_dir / "data" / "runbooks", store)
    assert (rb_again.added, rb_again.updated, rb_again.unchanged) == (0, 0, 12)
    assert (store.count(), store.count("runbooks")) == before == (len(SAMPLE_INCIDENTS), 12)


def test_reimport_after_a_passage_recipe_change_reembeds(
    store_dir: Path, store: IncidentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anomalist.tools.store.store as store_module
    monkeypatch.setattr(store_module, "PASSAGE_RECIPE", "passages-test-next")
    again = import_incidents(store_dir / "incidents.jsonl", store)
    assert (again.added, again.updated, again.unchanged) == (0, len(SAMPLE_INCIDENTS), 0)
    assert import_incidents(store_dir / "incidents.jsonl", store).unchanged == len(SAMPLE_INCIDENTS)
    monkeypatch.undo()  # the module's store goes back to the current recipe for the other tests
    assert import_incidents(store_dir / "incidents.jsonl", store).updated == len(SAMPLE_INCIDENTS)


def test_exact_alert_name_wins_over_better_text(store: IncidentStore) -> None:
    # The text describes a filesystem running out of space, the name says crash looping: the name wins.
    alert = {"labels": {"alertname": "KubePodCrashLooping"},
             "annotations": {"description": "Filesystem on /dev/sda1 has only 2% available space left."}}
    hits = store.runbook_for(alert)
    assert hits[0].runbook.id == "kubernetes/KubePodCrashLooping"
    assert hits[0].why[0] == "exact_name" and hits[0].parts.exact == 1.0
    assert all(h.parts.exact == 0 for h in hits[1:])
    assert hits[1].runbook.id.startswith("node/NodeFilesystemAlmostOutOf")  # the text still ranks the rest
    # Only the runbook URL (no alertname label): matched through the URL's last segment.
    by_url = store.runbook_for({"labels": {}, "annotations": {
        "summary": "x", "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/general/targetdown"}})
    assert by_url[0].runbook.id == "general/TargetDown" and by_url[0].why[0] == "runbook_url"


def test_description_only_alert_finds_runbook(store: IncidentStore) -> None:
    # Look-alike runbooks (out of space / out of inodes): the text decides.
    hits = store.runbook_for({"labels": {}, "annotations": {
        "summary": "Filesystem has less than 3% inodes left.",
        "description": "Filesystem on /dev/sda1 at 10.0.0.1:9100 has only 2.10% available inodes left."}})
    assert hits[0].runbook.id == "node/NodeFilesystemAlmostOutOfFiles"
    assert "exact_name" not in hits[0].why and hits[0].score > hits[1].score
    hard = store.runbook_for({"labels": {}, "annotations": {
        "summary": "Target disappeared from Prometheus target discovery.",
        "description": "Kubelet has disappeared from Prometheus target discovery on cluster eu-1."}})
    assert "kubernetes/KubeletDown" in [h.runbook.id for h in hard]


def test_similar_incidents_hybrid_and_filters(store: IncidentStore) -> None:
    hits = store.similar_incidents("postgres connection pool exhausted, checkout returns 500", k=3)
    assert hits[0].incident.id == "inc-00001"
    assert "keyword" in hits[0].why and hits[0].matched_terms
    assert hits[0].score >= hits[-1].score
    named = store.similar_incidents("NodeFilesystemAlmostOutOfSpace firing on logging-3", k=2)
    assert named[0].incident.id == "inc-00003" and named[0].why[0] == "exact_name"
    only_checkout = store.similar_incidents("latency spike", k=5, filters={"services": ["checkout"]})
    assert only_checkout and {h.incident.id for h in only_checkout} <= {"inc-00001", "inc-00004"}
    crit = store.similar_incidents("outage", k=5, filters={"min_severity": "critical"})
    assert {h.incident.severity for h in crit} == {"critical"}
    recent = store.similar_incidents("outage", k=5, filters={"since": "2026-03-01T00:00:00Z",
                                                             "until": "2026-06-01T00:00:00Z"})
    assert {h.incident.id for h in recent} == {"inc-00001", "inc-00002"}
    listed = store.list_incidents({"severity": ["critical"]})
    assert [i.id for i in listed] == ["inc-00004", "inc-00001", "inc-00005"]  # newest first


def test_upsert_update_and_delete(tmp_path: Path) -> None:
    s = IncidentStore.open("embedded", path=tmp_path / "db", create=True)
    from anomalist.tools.store import Incident

    r1 = s.upsert_incidents([Incident.model_validate(incident(1)), Incident.model_validate(incident(2))])
    assert (r1.added, r1.updated, r1.unchanged) == (2, 0, 0)
    r2 = s.upsert_incidents([Incident.model_validate(incident(1, title="Renamed incident"))])
    assert (r2.added, r2.updated) == (0, 1)
    assert s.get_incident("inc-00001").title == "Renamed incident"
    assert s.similar_incidents("Renamed", k=1)[0].incident.id == "inc-00001"  # keyword index saw the update
    assert s.delete(["inc-00001", "nope"]) == 1
    assert s.count() == 1 and s.get_incident("inc-00001") is None
    s.close()


def test_bad_records_rejected_one_by_one(tmp_path: Path) -> None:
    rows = [
        incident(1),
        "{not json",
        incident(2, title=None),                       # wrong type
        {k: v for k, v in incident(3).items() if k != "title"},  # missing field
        incident(4, summary="x" * 20_001),             # oversized text
        incident(5, colour="red"),                     # unknown field
        [1, 2, 3],                                     # not an object
        incident(1, title="duplicate id"),             # duplicate of line 1
        "",                                            # blank line: skipped, not an error
        incident(6, severity="sev2", started_at="2026-01-01T00:00:00"),
    ]
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    s = IncidentStore.open("embedded", path=tmp_path / "db", create=True)
    summary = import_incidents(path, s)
    reasons = {r.where.split(":")[1]: r.reason for r in summary.rejected}
    assert (summary.read, summary.added, summary.skipped, len(summary.rejected)) == (9, 2, 1, 7)
    assert "invalid JSON" in reasons["2"]
    assert reasons["3"].startswith("title:") and "string" in reasons["3"]
    assert reasons["4"].startswith("title:") and "required" in reasons["4"].lower()
    assert "summary" in reasons["5"] and "20000" in reasons["5"]
    assert "colour" in reasons["6"] and "extra" in reasons["6"].lower()
    assert "JSON object" in reasons["7"]
    assert "duplicate id" in reasons["8"]
    assert s.count() == 2 and s.get_incident("inc-00006").severity == "high"
    s.close()


def test_postmortems_import_and_alert_rules(datasets: Path, store_dir: Path, tmp_path: Path) -> None:
    s = IncidentStore.open("embedded", path=tmp_path / "db", create=True)
    pm = datasets / "postmortems" / "postmortems.jsonl"
    lines = pm.read_text(encoding="utf-8").splitlines()[:15]
    summary = import_incidents(write_jsonl(tmp_path / "pm.jsonl", lines), s)
    assert (summary.added, len(summary.rejected)) == (15, 0)
    assert s.get_incident("danluu-pm-001").links
    import_runbooks(store_dir / "data" / "runbooks", s)
    rules = import_alert_rules(store_dir / "data" / "alert_rules.jsonl", s)
    assert rules.read == 139 and rules.updated >= 10 and rules.notes  # many rules point to runbooks not here
    rb = s.get_runbook("alertmanager/AlertmanagerClusterFailedToSendAlerts")
    assert rb.url and rb.url.endswith("/alertmanagerclusterfailedtosendalerts")
    yaml_rules = tmp_path / "rules.yaml"
    yaml_rules.write_text(textwrap.dedent("""\
        apiVersion: monitoring.coreos.com/v1
        kind: PrometheusRule
        spec:
          groups:
          - name: custom
            rules:
            - record: job:up:sum
              expr: sum(up)
            - alert: CheckoutPodsRestarting
              expr: rate(kube_pod_container_status_restarts_total[5m]) > 0
              annotations:
                runbook_url: https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping
        """))
    custom = import_alert_rules(yaml_rules, s)
    assert (custom.read, custom.skipped, custom.updated) == (2, 1, 1)
    hits = s.runbook_for({"labels": {"alertname": "CheckoutPodsRestarting"}, "annotations": {}})
    assert hits[0].runbook.id == "kubernetes/KubePodCrashLooping" and hits[0].why[0] == "exact_name"
    s.close()


def test_persistence_across_process_restart(tmp_path: Path) -> None:
    db = tmp_path / "db"
    script = f"""
import sys
from anomalist.tools.store import IncidentStore, Incident
s = IncidentStore.open("embedded", path={str(db)!r}, create=True)
s.upsert_incidents([Incident(id="persist-1", title="Kafka broker disk full", summary="Broker ran out of disk.")])
sys.stdout.write(str(s.count()))
sys.stdout.flush()
import os
os._exit(0)  # no clean shutdown: like a killed process
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=240,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "1"
    s = IncidentStore.open("embedded", path=db)
    assert s.get_incident("persist-1").title == "Kafka broker disk full"
    assert s.similar_incidents("kafka disk", k=1)[0].incident.id == "persist-1"
    s.close()


def test_missing_or_broken_directory_fails_fast_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    t0 = time.perf_counter()
    with pytest.raises(StoreUnavailable, match=str(missing)):
        IncidentStore.open("embedded", path=missing)
    assert time.perf_counter() - t0 < 2.0
    assert not missing.exists()  # readers never create it
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(StoreUnavailable, match="not a directory"):
        IncidentStore.open("embedded", path=a_file, create=True)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnavailable, match=str(broken)):
        IncidentStore.open("embedded", path=broken)


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root reads any directory")
def test_unreadable_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        with pytest.raises(StoreUnavailable, match="not readable"):
            IncidentStore.open("embedded", path=locked)
    finally:
        locked.chmod(0o700)


def test_unreachable_server_fails_fast_naming_address() -> None:
    from test_store_helpers import free_port

    port = free_port()
    t0 = time.perf_counter()
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
        IncidentStore.open("server", host="127.0.0.1", port=port, timeout_s=1.0)
    with pytest.raises(StoreUnavailable, match="10.255.255.1:8000"):  # non-routable: the timeout bounds it
        IncidentStore.open("server", host="10.255.255.1", port=8000, timeout_s=1.0)
    assert time.perf_counter() - t0 < 6.0


def test_from_settings_duck_types_agent_settings(tmp_path: Path) -> None:
    from anomalist.agent.settings import load_settings

    settings = load_settings(overrides={"data_dir": tmp_path})
    with pytest.raises(StoreUnavailable, match=str(tmp_path / "store")):
        IncidentStore.open(settings)
    s = IncidentStore.from_settings(settings.store, settings.store_path, create=True)
    assert s.count() == 0 and (tmp_path / "store").is_dir()
    s.close()
