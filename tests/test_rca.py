"""Root-cause analysis: the evidence statistics on hand-built input, the ranking rules, and two tiny real cases of
the Nezha TrainTicket data (tests/data/k8s) through the same triage() users run, rendered in every format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomalist.agent.baseline import Baseline
from anomalist.agent.rca import RCAParams
from anomalist.agent.rca.evidence import (
    Signal,
    inflation,
    log_signals,
    shared_channels,
    statement_key,
    tail_surprise,
)
from anomalist.agent.rca.rank import rank
from anomalist.agent.render import render
from anomalist.agent.report import TriageReport
from anomalist.agent.settings import Settings
from anomalist.agent.triage import triage

DATA = Path(__file__).parent / "data" / "k8s"
T0 = pd.Timestamp("2026-11-02 14:00")
STEP = pd.Timedelta(minutes=1)


def _cells(rows: dict[tuple[int, str, str], int]) -> pd.Series:
    idx = pd.MultiIndex.from_tuples([(T0 + STEP * b, s, e) for b, s, e in rows], names=["bin", "service", "event"])
    return pd.Series(list(rows.values()), index=idx, dtype="int64")


def _base(rows: dict[tuple[str, str], int]) -> pd.Series:
    return pd.Series(list(rows.values()), index=pd.MultiIndex.from_tuples(list(rows), names=["service", "event"]))


# ---- evidence ---------------------------------------------------------------------------------------------------
def test_a_statement_that_stops_and_an_error_that_appears_are_found_at_their_onset() -> None:
    levels = {"1|api.Handler#10": "INFO", "2|api.Handler#12": "INFO", "3|api.Handler#20": "ERROR",
              "4|db.Pool#5": "INFO", "5|db.Pool#6": "INFO"}
    base = _base({("api", "1|api.Handler#10"): 300, ("api", "2|api.Handler#12"): 300,
                  ("db", "4|db.Pool#5"): 300, ("db", "5|db.Pool#6"): 290})
    rows: dict[tuple[int, str, str], int] = {}
    for b in range(6):
        broken = b >= 3  # from bin 3 on, the api's second statement is never reached and an error is logged instead
        rows[(b, "api", "1|api.Handler#10")] = 50
        rows[(b, "api", "2|api.Handler#12")] = 0 if broken else 50
        if broken:
            rows[(b, "api", "3|api.Handler#20")] = 50
        rows[(b, "db", "4|db.Pool#5")] = 50
        rows[(b, "db", "5|db.Pool#6")] = 48 + (b % 3)
    sigs = log_signals(_cells(rows), base, levels)
    api = [s for s in sigs if s.service == "api"]
    assert {s.kind for s in api} >= {"log_drop", "log_new"}
    assert min(s.bin for s in api if s.score > 2) == T0 + 3 * STEP  # onset: the first changed bin
    assert all(s.score < 1.0 for s in sigs if s.service == "db")  # the healthy service stays quiet
    drop = max((s for s in api if s.kind == "log_drop"), key=lambda s: s.score)
    assert drop.subject == "|api.Handler#12" and drop.observed == 0  # judged per statement (logger + line)


def test_an_error_that_disappears_is_a_recovery_not_evidence() -> None:
    levels = {"1|a#1": "INFO", "9|a#9": "ERROR"}
    base = _base({("a", "1|a#1"): 300, ("a", "9|a#9"): 100})
    cells = _cells({(b, "a", "1|a#1"): 50 for b in range(4)})
    assert not [s for s in log_signals(cells, base, levels) if s.score > 0.5]


def test_statement_keys_and_inflation() -> None:
    assert statement_key("12|t.s.TravelServiceImpl#457") == "|t.s.TravelServiceImpl#457"
    assert statement_key("12") == "12"  # no logger: the template is the statement
    rng = np.random.default_rng(0)
    assert inflation(rng.standard_normal(5000)) == pytest.approx(1.0, abs=0.1)
    assert inflation(3.0 * rng.standard_normal(5000)) == pytest.approx(9.0, rel=0.15)
    assert inflation(np.array([1.0, 2.0])) == 1.0  # too few cells to say


def test_tail_surprise_respects_the_baselines_tail() -> None:
    rng = np.random.default_rng(1)
    light = rng.normal(5.0, 0.5, 900)  # a CPU that never moved
    heavy = np.abs(rng.standard_cauchy(900))  # latencies that spike now and then
    assert tail_surprise(light, np.array([50.0]))[0] > 10
    assert tail_surprise(heavy, np.array([50.0]))[0] < 4
    s = tail_surprise(light, np.array([4.0, 5.5, 6.0, 7.0, 20.0]))
    assert np.all(np.diff(s) >= 0) and s[0] < 0.2  # monotone; an ordinary value says nothing
    contaminated = np.concatenate([light, np.full(5, 500.0)])  # a "fault-free" baseline holding one incident
    assert tail_surprise(contaminated, np.array([500.0]))[0] > 10


def test_channels_repeated_across_pods_are_set_aside() -> None:
    idx = pd.date_range(T0, periods=5, freq="1min")
    node = [1.0, 2.0, 3.0, 2.0, 1.0]
    f = pd.DataFrame({"a/NodeCpu": node, "b/NodeCpu": node, "a/Cpu": [1, 2, 3, 4, 5.0], "b/Cpu": [5, 4, 3, 2, 1.0]},
                     index=idx)
    ent = {"a/NodeCpu": "a", "b/NodeCpu": "b", "a/Cpu": "a", "b/Cpu": "b"}
    met = {"a/NodeCpu": "NodeCpu", "b/NodeCpu": "NodeCpu", "a/Cpu": "Cpu", "b/Cpu": "Cpu"}
    assert shared_channels(f, ent, met) == {"a/NodeCpu", "b/NodeCpu"}


# ---- ranking ------------------------------------------------------------------------------------------------------
def _sig(service: str, minute: int, score: float, modality: str = "log", kind: str = "log_new", **kw: object) -> Signal:
    kw.setdefault("subject", f"{sum(map(ord, service))}|{service}.Main#1")  # each service its own error event
    return Signal(service, T0 + STEP * minute, modality, kind, score, **kw)  # type: ignore[arg-type]


def test_the_deepest_anomalous_callee_ranks_first() -> None:
    sigs = [_sig("frontend", 2, 9.0), _sig("checkout", 1, 7.0), _sig("payments", 1, 6.0)]
    callees = {"frontend": {"checkout"}, "checkout": {"payments"}}
    flat = rank(sigs, STEP, RCAParams(propagation=0.0, recency="none"))
    assert [c.service for c in flat] == ["frontend", "checkout", "payments"]
    down = rank(sigs, STEP, RCAParams(propagation=0.5, recency="none"), callees=callees)
    assert down[0].service == "payments" and down[0].explained_by == []
    assert "checkout" in next(c for c in down if c.service == "frontend").explained_by


def test_the_recent_incident_outranks_an_earlier_one_that_ended() -> None:
    sigs = [_sig("basic", 0, 20.0), _sig("basic", 1, 18.0), _sig("food", 14, 6.0), _sig("food", 15, 6.0)]
    assert rank(sigs, STEP, RCAParams(recency="none"))[0].service == "basic"
    top = rank(sigs, STEP, RCAParams(recency="decay", half_life_min=5.0))[0]
    assert top.service == "food" and top.onset == T0 + 14 * STEP
    assert rank(sigs, STEP, RCAParams(recency="ongoing"))[0].service == "food"


def test_fault_kind_follows_the_strongest_evidence() -> None:
    cpu = [_sig("contacts", 3, 49.0, "metric", "metric_up", pod="contacts-1", subject="CpuUsage(m)",
                detail={"kind": "cpu"})]
    code = [_sig("price", 3, 9.0, "log", "log_drop", subject="|p.c.PriceController#46")]
    slow = [_sig("cart", 3, 49.0, "metric", "metric_up", pod="cart-1", subject="ServerLatencyP90(s)",
                 detail={"kind": "latency"})]
    assert rank(cpu, STEP, RCAParams())[0].kind == "cpu"
    assert rank(cpu, STEP, RCAParams())[0].pods == ["contacts-1"]
    assert rank(code, STEP, RCAParams())[0].kind == "code"
    assert rank(slow, STEP, RCAParams())[0].kind == "network"


def test_errors_naming_another_service_can_count_for_it() -> None:
    sigs = [_sig("travel", 2, 9.0, subject="117|x.Servlet#175->ts-basic-service"), _sig("travel2", 2, 4.0)]
    assert rank(sigs, STEP, RCAParams(mentions="emitter"))[0].service == "travel"
    named = rank(sigs, STEP, RCAParams(mentions="named"))
    assert named[0].service == "ts-basic-service" and named[0].signals[0].detail["logged_by"] == "travel"


# ---- real cases through triage() ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("rca-data"), llm={"backend": "none"})


@pytest.fixture(scope="module")
def code_case(settings: Settings) -> TriageReport:
    """ts-contacts-service returns a wrong value from 08:43:04 (Nezha case 1); four services' pod logs and spans."""
    base = Baseline.build(settings, logs=[DATA / "normal" / "logs"], traces=[DATA / "normal" / "spans.csv.gz"])
    return triage([DATA / "case_contacts_return" / "logs"], None, settings=settings,
                  traces=[DATA / "case_contacts_return" / "spans.csv.gz"], baseline=base)


def test_a_code_fault_is_localised_from_pod_logs(code_case: TriageReport) -> None:
    r = code_case
    assert r.root_causes, r.rca
    top = r.root_causes[0]
    assert (top.service, top.kind) == ("ts-contacts-service", "code")
    assert top.pod == "ts-contacts-service-866bd68c97-xcqfx"
    assert pd.Timestamp("2023-01-29 08:42") <= pd.Timestamp(top.onset) <= pd.Timestamp("2023-01-29 08:45")
    kinds = {e.kind for e in top.evidence}
    assert "log_drop" in kinds and ({"log_new", "log_rise"} & kinds)
    assert any("ContactsServiceImpl#34" in e.subject for e in top.evidence)  # the statement the fault skipped
    assert r.rca is not None and "log" in r.rca.modalities and r.rca.baseline.startswith("given baseline")
    assert r.service_graph is not None and any(n.candidate_id == "C1" for n in r.service_graph.nodes)
    assert r.summary.text.startswith("Most likely root cause: ts-contacts-service") and "C1" in r.summary.evidence_ids


def test_candidates_are_rendered_first_with_citations(code_case: TriageReport) -> None:
    md = render(code_case, "markdown")
    assert md.index("## Root cause") < md.index("## Findings")
    assert "| 1 | C1 | ts-contacts-service |" in md and "[C1.E1]" in md
    doc = json.loads(render(code_case, "json"))
    assert doc["root_causes"][0]["service"] == "ts-contacts-service"
    assert TriageReport.model_validate(doc).root_causes[0].id == "C1"  # every cited id resolves
    html = render(code_case, "html")
    assert html.index('id="root-cause"') < html.index("<h2>Findings</h2>")
    assert '<svg class="chart graph"' in html and "#d0302f" in html  # the graph with the suspect marked


def test_a_cited_candidate_id_must_exist(code_case: TriageReport) -> None:
    doc = json.loads(render(code_case, "json"))
    doc["summary"]["evidence_ids"].append("C9")
    with pytest.raises(ValueError, match="C9"):
        TriageReport.model_validate(doc)


def test_a_cpu_fault_is_localised_from_pod_metrics(settings: Settings) -> None:
    """ts-contacts-service's CPU contention from 13:31:54 (Nezha case 25): per-pod metric files only."""
    base = Baseline.build(settings, metrics=DATA / "normal" / "metrics")
    r = triage(None, DATA / "case_contacts_cpu" / "metrics", settings=settings, baseline=base)
    top = r.root_causes[0]
    assert (top.service, top.kind, top.pod) == ("ts-contacts-service", "cpu", "ts-contacts-service-866bd68c97-xcqfx")
    assert pd.Timestamp("2023-01-29 13:31") <= pd.Timestamp(top.onset) <= pd.Timestamp("2023-01-29 13:34")
    assert any(e.modality == "metric" and "Cpu" in e.subject for e in top.evidence)
    assert r.inputs.metric_source and "4 entities" in " ".join(r.inputs.notes)


def test_without_a_baseline_the_batch_start_is_the_reference(settings: Settings) -> None:
    r = triage([DATA / "case_contacts_return" / "logs"], None, settings=settings)
    assert r.rca is not None
    assert r.rca.baseline.startswith("no baseline given") or "too short" in " ".join(r.rca.notes)


def test_a_baseline_profile_round_trips(tmp_path: Path, settings: Settings) -> None:
    base = Baseline.build(settings, logs=[DATA / "normal" / "logs"], metrics=DATA / "normal" / "metrics",
                          traces=[DATA / "normal" / "spans.csv.gz"])
    path = tmp_path / "profile.json"
    base.save(path)
    back = Baseline.load(path)
    assert back.log_cells is not None and base.log_cells is not None
    assert back.log_cells.sort_index().equals(base.log_cells.sort_index())
    assert back.metrics is not None and base.metrics is not None
    assert back.metrics.frame.shape == base.metrics.frame.shape
    np.testing.assert_allclose(back.metrics.frame.to_numpy(), base.metrics.frame.to_numpy(), rtol=1e-6, equal_nan=True)
    assert back.spans is not None and base.spans is not None and len(back.spans) == len(base.spans)
    assert back.parser() is not None and back.parser().n_templates == base.parser().n_templates  # type: ignore[union-attr]
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "something else"}')
    with pytest.raises(Exception, match="not an Anomalist baseline profile"):
        Baseline.load(bad)


def test_a_baseline_inside_the_batch_is_used_whole_and_one_overlapping_it_is_cut(settings: Settings) -> None:
    base = Baseline.build(settings, metrics=DATA / "normal" / "metrics")
    frame = base.metrics.frame  # type: ignore[union-attr]
    start, end = frame.index[10], frame.index[20]
    cut = base.excluding(start, end)
    assert len(cut.metrics.frame) == len(frame) - 10 and "left out" in cut.notes[-1]  # type: ignore[union-attr]
    whole = base.excluding(frame.index[0] - pd.Timedelta(hours=1), frame.index[-1] + pd.Timedelta(hours=1))
    assert len(whole.metrics.frame) == len(frame) and "used whole" in whole.notes[-1]  # type: ignore[union-attr]


def test_an_error_rising_in_many_services_at_once_is_common_mode() -> None:
    shared = [_sig(s, 2, 6.0, subject="117|web.Servlet#175") for s in ("travel", "basic", "travel2")]
    own = [_sig("verification", 2, 3.0, subject="230|v.VerifyCode#129")]
    assert rank(shared + own, STEP, RCAParams(common_mode=False))[0].service != "verification"
    top = rank(shared + own, STEP, RCAParams(common_mode=True))
    assert top[0].service == "verification" and top[1].signals[0].detail["shared_by"] == 3
