"""Renderers: Markdown, JSON (schema-valid) and the self-contained HTML page, opened in headless chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import require

from anomalist.agent.render import FORMATS, format_for_path, render
from anomalist.agent.report import (
    Explanation,
    Finding,
    Scores,
    Series,
    Span,
    TemplateEvidence,
    Timeline,
    TriageReport,
    Versions,
    report_json_schema,
)
from anomalist.agent.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> TriageReport:
    """A real report: the example scenario, without LLM and store (fast, deterministic detectors)."""
    from anomalist.agent.triage import triage

    data = tmp_path_factory.mktemp("render-data")
    settings = load_settings(overrides={"data_dir": str(data), "llm": {"backend": "none"},
                                        "store": {"path": str(data / "no-store")}})
    return triage([EXAMPLES / "logs"], EXAMPLES / "metrics.csv", settings=settings)


def _hostile() -> TriageReport:
    t0 = datetime(2026, 11, 2, 14, 0)
    evil = '<script>alert(1)</script> | `x` "q" & <img src=http://evil.example/x.png>'
    f = Finding(
        id="F1", rank=1, title=evil, start=t0, end=t0 + timedelta(minutes=5), severity="warning",
        scores=Scores(strength=0.8, severity=0.5, novelty=0.0, total=0.6),
        templates=[TemplateEvidence(id="F1.T1", template_id="1", template=evil, count=3)],
        explanation=Explanation(text=evil, evidence_ids=["F1", "F1.T1"]),
    )
    ts = [t0 + timedelta(minutes=i) for i in range(10)]
    return TriageReport(
        id="hostile", created_at=t0, severity="warning", summary=Explanation(text=evil, evidence_ids=["F1"]),
        findings=[f], versions=Versions(anomalist="0.1.0"),
        timeline=Timeline(metrics=[Series(name=evil, timestamps=ts, values=[1.0, None, 3.0, 4.0, 2.0, 1, 1, 1, 1, 1])],
                          spans=[Span(finding_id="F1", start=ts[2], end=ts[4])]),
    )


def test_markdown_has_findings_evidence_and_provenance(report: TriageReport) -> None:
    md = render(report, "markdown")
    assert md.startswith("# Triage report: ")
    top = report.findings[0]
    assert f"[{top.id}]" in md and top.title in md
    for t in top.templates[:3]:
        assert t.id in md
    assert "## Provenance" in md and "detectors:" in md
    assert "| # | id | severity |" in md


def test_json_is_the_schema(report: TriageReport) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    text = render(report, "json")
    data = json.loads(text)
    jsonschema.validate(data, report_json_schema())
    assert TriageReport.model_validate_json(text) == report


def test_html_is_self_contained_and_escapes(report: TriageReport) -> None:
    page = render(report, "html")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "external asset referenced"
    assert page.count("<svg") >= 2  # metric series and template counts
    assert 'class="span"' in page  # anomaly spans shaded
    assert 'id="findings"' in page
    hostile = render(_hostile(), "html")
    assert "<script>" not in hostile and "&lt;script&gt;" in hostile
    assert "<img" not in hostile


def test_render_rejects_unknown_format(report: TriageReport) -> None:
    with pytest.raises(ValueError, match="unknown report format"):
        render(report, "pdf")  # type: ignore[arg-type]
    assert set(FORMATS) == {"markdown", "json", "html"}
    assert format_for_path("r.HTML") == "html" and format_for_path("x.json") == "json"
    assert format_for_path("x.md") == "markdown" and format_for_path("x.txt", "json") == "json"


def test_html_renders_in_headless_chromium(report: TriageReport, tmp_path: Path) -> None:
    require(CHROMIUM is not None, "Debian chromium not installed (.ci/run installs it)")
    page = tmp_path / "report.html"
    page.write_text(render(report, "html"), encoding="utf-8")
    base = [CHROMIUM, *CHROMIUM_FLAGS]
    dom = subprocess.run(
        [*base, f"--user-data-dir={tmp_path / 'profile1'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=90, check=True,
    ).stdout
    # The browser parsed the page: the findings table, the plots and the top finding's section are in its DOM.
    assert 'id="findings"' in dom and "<svg" in dom and "<polyline" in dom
    assert f'id="{report.findings[0].id}"' in dom
    shot = tmp_path / "report.png"
    subprocess.run(
        [*base, f"--user-data-dir={tmp_path / 'profile2'}", f"--screenshot={shot}", "--window-size=1100,1600",
         page.as_uri()],
        capture_output=True, text=True, timeout=90, check=True,
    )
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a real, non-blank rendering
