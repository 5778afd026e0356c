"""Records, parsing and text helpers of the store (no model, no database: exact expectations)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from anomalist.tools.alerts import Alert, alert_query_text, url_name
from anomalist.tools.store import (
    Incident,
    StoreFilters,
    incident_from_postmortem,
    incident_from_report,
    render_template,
)
from anomalist.tools.store.documents import embedding_text, incident_passage
from anomalist.tools.store.runbook_md import canonical_section, parse_runbook_markdown
from anomalist.tools.store.store import where_from_filters
from anomalist.tools.store.text import KeywordIndex, split_identifier, tokenize


def test_incident_schema_is_strict_and_bounded() -> None:
    inc = Incident(id="a-1", title="t", severity="Major", started_at=datetime(2026, 1, 1, 12, 0))
    assert inc.severity == "high" and inc.started_at.tzinfo == UTC and inc.schema_version == 1
    with pytest.raises(ValidationError, match="extra"):
        Incident(id="a", title="t", colour="red")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="summary"):
        Incident(id="a", title="t", summary="x" * 20_001)
    with pytest.raises(ValidationError, match="title"):
        Incident(id="a", title="")
    with pytest.raises(ValidationError, match="id"):
        Incident(id="has space", title="t")
    with pytest.raises(ValidationError, match="resolved_at is before started_at"):
        Incident(id="a", title="t", started_at="2026-01-02T00:00:00Z", resolved_at="2026-01-01T00:00:00Z")
    with pytest.raises(ValidationError, match="at most 200 items"):
        Incident(id="a", title="t", services=[f"s{i}" for i in range(201)])


def test_split_and_tokenize_identifiers() -> None:
    assert split_identifier("KubePodCrashLooping") == "Kube Pod Crash Looping"
    assert split_identifier("KubeAPIDown") == "Kube API Down"
    assert split_identifier("node_filesystem_avail_bytes") == "node filesystem avail bytes"
    toks = tokenize("KubeAPI has disappeared")
    assert {"kube", "api", "kubeapi", "disappear"} <= set(toks)
    assert "has" not in toks


def test_embedded_incident_text_drops_glue_and_repeats_only() -> None:
    assert embedding_text("eu-central-1 node_cpu_seconds a/b x - y -v /var") == "eu central 1 node cpu seconds a b x - y -v /var"
    inc = Incident(
        id="i-1", title="[checkout/eu-west-1] Checkout latency rose above 2 s", services=["checkout", "pay-api", "db"],
        summary="Checkout latency rose above 2 s. The db pool ran dry. Retries from pay-api made it worse.", root_cause="pool size 10",
    )
    text = incident_passage(inc)
    # Named in the title or summary: not listed again; unnamed ("dbx" is not "db") services still are.
    assert text == "[checkout eu west 1] Checkout latency rose above 2 s The db pool ran dry. Retries from pay api made it worse. " \
        "Root cause: pool size 10"
    inc2 = inc.model_copy(update={"services": ["checkout", "dbx"]})
    assert "Services: dbx." in incident_passage(inc2)


def test_bm25_ranks_rare_term_matches_first() -> None:
    idx = KeywordIndex().build([
        ("a", tokenize("disk full on node")), ("b", tokenize("pod crash looping")), ("c", tokenize("disk latency")),
    ])
    hits = idx.score(tokenize("node disk full"))
    assert max(hits, key=lambda k: hits[k].score) == "a"
    assert "b" not in hits
    assert set(idx.matched_terms("a", tokenize("node disk full"))) == {"node", "disk", "full"}
    assert set(idx.score(tokenize("disk"), allowed={"c"})) == {"c"}


def test_render_template_subset() -> None:
    labels = {"namespace": "shop", "pod": "web-1", "cluster": "eu"}
    tpl = ("Pod {{ $labels.namespace }}/{{ $labels.pod }} uses {{ $value | humanizePercentage }} "
           "{{ with $labels.cluster -}} on Cluster {{ . }} {{- end }} {{ printf \"%.2f\" 3 }}.")
    assert render_template(tpl, labels, "0.25") == "Pod shop/web-1 uses 25% on Cluster eu ."
    assert render_template("{{ with $labels.missing }}x {{ . }}{{ end }}done", {}) == "done"


def test_alert_query_and_url_name() -> None:
    a = Alert.coerce({"alerts": [{"labels": {"alertname": "KubePodCrashLooping", "namespace": "shop",
                                             "pod": "web-1", "job": "kube-state-metrics"},
                                  "annotations": {"summary": "Pod is crash looping.", "runbook_url":
                                                  "https://runbooks.example/runbooks/kubernetes/kubepodcrashlooping/"}}]})
    assert a.name == "KubePodCrashLooping"
    assert url_name(a.runbook_url) == "kubepodcrashlooping"
    q = alert_query_text(a)
    assert q.startswith("Kube Pod Crash Looping.") and "kube-state-metrics" in q and "web-1" not in q
    assert "shop" not in alert_query_text(a, labels=False)


def test_runbook_markdown_sections_steps_and_names() -> None:
    text = """---
title: Kube Pod Crash Looping
weight: 20
---

# KubePodCrashLooping

## Meaning

Pod is in CrashLoop.

## Diagnosis

- Check template via `kubectl get pod`.
- Check logs
  with a continuation line.

```shell
kubectl describe pod $POD
```

## How to fix

Restart it.
"""
    rb = parse_runbook_markdown(text, rid="kubernetes/KubePodCrashLooping", stem="KubePodCrashLooping",
                                component="kubernetes")
    assert rb.title == "Kube Pod Crash Looping"
    assert rb.alert_names == ["KubePodCrashLooping"]
    assert set(rb.sections) == {"overview", "diagnosis", "mitigation"}
    assert rb.sections["diagnosis"].steps == [
        "Check template via `kubectl get pod`.", "Check logs with a continuation line.", "kubectl describe pod $POD"]
    assert rb.services == ["kubernetes"]
    assert canonical_section("Impact") == "impact" and canonical_section("Extra notes") == "extra notes"


def test_postmortem_and_report_mapping() -> None:
    inc = incident_from_postmortem({"id": "danluu-pm-001", "company": "Allegro", "category": "Config Errors",
                                    "summary": "Site went down. More text.", "link": "https://x/y",
                                    "other_links": ["https://z"]}, source="pm.jsonl:1")
    assert (inc.title, inc.tags, inc.links) == ("Allegro: Site went down.", ["config errors", "allegro"],
                                                 ["https://x/y", "https://z"])
    with pytest.raises(ValueError, match="unknown postmortem fields"):
        incident_from_postmortem({"company": "x", "summary": "y", "bogus": 1}, source="s")
    report = {
        "id": "r-42", "severity": "critical", "created_at": "2026-11-02T14:10:00Z",
        "summary": {"text": "Checkout errors after deploy."},
        "alert": {"name": "KubePodCrashLooping", "service": "checkout"},
        "findings": [{"title": "Error burst in checkout", "start": "2026-11-02T14:05:00Z",
                      "end": "2026-11-02T14:09:00Z", "services": ["checkout"],
                      "templates": [{"template": "connection refused to <*>"}],
                      "metrics": [{"channel": "error_rate", "drove": True}, {"channel": "cpu", "drove": False}],
                      "explanation": {"text": "Errors rose 40x."}}],
    }
    inc = incident_from_report(report, source="report.json")
    assert inc.id == "report-r-42" and inc.severity == "critical" and inc.services == ["checkout"]
    assert inc.symptoms.templates == ["connection refused to <*>"] and inc.symptoms.metrics == ["error_rate"]
    assert inc.symptoms.alerts == ["KubePodCrashLooping"] and inc.title == "Error burst in checkout"
    assert inc.resolved_at is not None and "Errors rose 40x." in inc.summary
    assert incident_from_report(report).id == inc.id  # same report -> same id (idempotent add)
    with pytest.raises(ValueError):
        incident_from_report({"findings": []})


def test_filters_to_where() -> None:
    assert where_from_filters(None) is None and where_from_filters(StoreFilters()) is None
    w = where_from_filters({"services": ["Checkout"], "min_severity": "high", "since": "2026-01-01T00:00:00Z"})
    assert w == {"$and": [{"services": {"$contains": "checkout"}}, {"severity_rank": {"$gte": 4}},
                          {"started_ts": {"$gte": datetime(2026, 1, 1, tzinfo=UTC).timestamp()}}]}
    assert where_from_filters({"severity": "warn"}) == {"severity": {"$in": ["warning"]}}
    with pytest.raises(ValidationError):
        StoreFilters(severity=["bogus"])


def test_shared_runbooks_all_parse(datasets: Path) -> None:
    from anomalist.tools.store.importers import read_runbook_file

    root = datasets / "runbooks" / "runbooks"
    files = sorted(root.rglob("*.md"))
    assert len(files) >= 10
    with_overview = 0
    for f in files:
        rb = read_runbook_file(f, root)
        assert rb.alert_names and rb.alert_names[0] == f.stem
        assert rb.sections, f
        with_overview += "overview" in rb.sections
    assert with_overview >= 0.9 * len(files)
