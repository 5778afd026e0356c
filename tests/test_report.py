"""TriageReport: schema, citations that must resolve, severity helpers, JSON round trip."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from anomalist.agent.report import (
    SCHEMA_VERSION,
    DetectorHit,
    Explanation,
    Finding,
    MetricEvidence,
    SampleLine,
    Scores,
    SimilarIncident,
    TemplateEvidence,
    TriageReport,
    Versions,
    check_citations,
    max_severity,
    report_json_schema,
    severity_at_least,
)

T0 = datetime(2026, 11, 2, 14, 0)


def _finding(fid: str = "F1", cite: list[str] | None = None) -> Finding:
    return Finding(
        id=fid, rank=1, title="new error templates", start=T0, end=T0 + timedelta(minutes=10), services=["checkout"],
        severity="critical", scores=Scores(strength=0.9, severity=1.0, novelty=1.0, total=0.95),
        templates=[TemplateEvidence(id=f"{fid}.T1", template_id="7", template="disk full <*>", level="ERROR", count=12,
                                    samples=[SampleLine(id=f"{fid}.L1", line_no=3, text="disk full /var")])],
        metrics=[MetricEvidence(id=f"{fid}.M1", channel="latency", drove=True, contribution=0.8)],
        detectors=[DetectorHit(id=f"{fid}.D1", detector="new_template", source="log", start=T0,
                               end=T0 + timedelta(minutes=5), score=9.0, strength=1.0)],
        explanation=Explanation(text="x", evidence_ids=cite if cite is not None else [f"{fid}.T1", f"{fid}.L1", f"{fid}.M1"]),
    )


def _report(**kw: object) -> TriageReport:
    base: dict[str, object] = dict(
        id="r1", created_at=T0, severity="critical", summary=Explanation(text="s", evidence_ids=["F1"]),
        findings=[_finding()], versions=Versions(anomalist="0.1.0"),
    )
    base.update(kw)
    return TriageReport(**base)  # type: ignore[arg-type]


def test_valid_report_resolves_every_citation() -> None:
    r = _report()
    assert check_citations(r) == set()
    assert {"F1", "F1.T1", "F1.L1", "F1.M1", "F1.D1"} <= r.evidence_ids()
    assert r.schema_version == SCHEMA_VERSION


@pytest.mark.parametrize("bad", ["F2", "F1.T9", "I1", "R1", "nonsense"])
def test_citing_missing_evidence_is_rejected(bad: str) -> None:
    with pytest.raises(ValidationError, match="does not contain"):
        _report(findings=[_finding(cite=[bad])])


def test_summary_and_incident_citations_are_checked() -> None:
    with pytest.raises(ValidationError):
        _report(summary=Explanation(text="s", evidence_ids=["I1"]))
    inc = SimilarIncident(id="I1", incident_id="INC-1", title="t", score=0.5, for_findings=["F1"])
    r = _report(summary=Explanation(text="s", evidence_ids=["F1", "I1"]), similar_incidents=[inc])
    assert "I1" in r.evidence_ids()
    with pytest.raises(ValidationError):
        _report(similar_incidents=[SimilarIncident(id="I1", incident_id="x", title="t", score=0.1, for_findings=["F7"])])


def test_extra_fields_are_forbidden() -> None:
    data = json.loads(_report().model_dump_json())
    data["unexpected"] = 1
    with pytest.raises(ValidationError):
        TriageReport.model_validate(data)
    data.pop("unexpected")
    data["findings"][0]["scores"]["bonus"] = 1
    with pytest.raises(ValidationError):
        TriageReport.model_validate(data)


def test_json_round_trip_and_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    r = _report()
    text = r.model_dump_json()
    back = TriageReport.model_validate_json(text)
    assert back == r
    jsonschema.validate(json.loads(text), report_json_schema())
    broken = json.loads(text)
    broken["severity"] = "apocalyptic"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, report_json_schema())


def test_bounds_are_enforced() -> None:
    with pytest.raises(ValidationError):
        Scores(strength=1.5, severity=0, novelty=0, total=1)
    with pytest.raises(ValidationError):
        MetricEvidence(id="F1.M1", channel="c", drove=True, contribution=2.0)


def test_severity_helpers() -> None:
    assert max_severity([]) == "info"
    assert max_severity(["info", "critical", "warning"]) == "critical"
    assert severity_at_least("critical", "warning")
    assert severity_at_least("warning", "warning")
    assert not severity_at_least("info", "warning")
    assert not severity_at_least("warning", "critical")
