"""Parsing metrics on tiny hand-made cases, and ``anomalist eval parsing`` on a small Loghub slice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anomalist.agent.cli.main import app
from anomalist.eval.parsing_metrics import (
    all_metrics,
    f1_grouping,
    f1_template,
    grouping_accuracy,
    normalize_template,
    parsing_accuracy,
)

# 6 lines, true groups: A = {0,1,2}, B = {3,4}, C = {5}
TRUTH = ["a <*>", "a <*>", "a <*>", "b <*>", "b <*>", "c"]


def test_perfect_parse() -> None:
    m = all_metrics(TRUTH, [1, 1, 1, 2, 2, 3], TRUTH)
    assert m == {"GA": 1.0, "PA": 1.0, "FGA": 1.0, "FTA": 1.0}


def test_grouping_accuracy_counts_only_exact_groups() -> None:
    # A split in two (no credit), B exact (2 lines), C exact (1 line): GA = 3/6
    assert grouping_accuracy(TRUTH, [1, 1, 9, 2, 2, 3]) == pytest.approx(3 / 6)
    # B and C merged: only A is exact: GA = 3/6
    assert grouping_accuracy(TRUTH, [1, 1, 1, 2, 2, 2]) == pytest.approx(3 / 6)
    assert grouping_accuracy(TRUTH, [0] * 6) == 0.0


def test_f1_grouping() -> None:
    # predicted groups {0,1},{2},{3,4},{5}: correct 2 (B, C) of 4 predicted, 3 true -> P=.5 R=2/3
    p, r = 0.5, 2 / 3
    assert f1_grouping(TRUTH, [1, 1, 9, 2, 2, 3]) == pytest.approx(2 * p * r / (p + r))


def test_parsing_accuracy_and_normalization() -> None:
    pred = ["a <*>", "a <NUM>", "a  {*}", "b x", "b <*>", "c"]
    assert normalize_template("a  <IP>  port <*>") == "a <*> port <*>"
    assert parsing_accuracy(TRUTH, pred) == pytest.approx(5 / 6)


def test_f1_template() -> None:
    # predicted texts: "a <*>" on lines 0-2 (correct), "b x" on 3 (wrong), "b <*>" on 4: its lines' truth is
    # all "b <*>" and the text matches: correct (template level does not require the group to be complete)
    pred = ["a <*>", "a <*>", "a <*>", "b x", "b <*>", "c"]
    p, r = 3 / 4, 3 / 3
    assert f1_template(TRUTH, pred) == pytest.approx(2 * p * r / (p + r))


def test_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="length"):
        grouping_accuracy(TRUTH, [1, 2])


@pytest.fixture(scope="module")
def loghub_slice(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 300 lines of two systems, in the Loghub-2k layout (corrected only)."""
    import pandas as pd

    root = tmp_path_factory.mktemp("loghub-slice")
    for system in ("HDFS", "Apache"):
        src = datasets / "loghub_2k" / "corrected" / system
        dst = root / "corrected" / system
        dst.mkdir(parents=True)
        lines = (src / f"{system}_2k.log").read_text(encoding="utf-8").split("\n")[:300]
        (dst / f"{system}_2k.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
        gt = pd.read_csv(src / f"{system}_2k.log_structured_corrected.csv").head(300)
        gt.to_csv(dst / f"{system}_2k.log_structured_corrected.csv", index=False)
    return root


def test_eval_parsing_cli_json(loghub_slice: Path) -> None:
    res = CliRunner().invoke(app, ["eval", "parsing", "--data", str(loghub_slice), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert set(out["systems"]) == {"HDFS", "Apache"}
    for s in out["systems"].values():
        assert set(s) >= {"GA", "PA", "FGA", "FTA", "lines", "lines_per_s"}
        assert s["lines"] == 300 and s["GA"] > 0.9
    assert set(out["mean"]) == {"GA", "PA", "FGA", "FTA"}
    one = CliRunner().invoke(app, ["eval", "parsing", "--data", str(loghub_slice), "--systems", "apache", "--json"])
    assert list(json.loads(one.output)["systems"]) == ["Apache"]


def test_eval_parsing_unknown_system_exits_2(loghub_slice: Path) -> None:
    import sys

    from anomalist.agent.cli.main import main

    argv = sys.argv
    sys.argv = ["anomalist", "eval", "parsing", "--data", str(loghub_slice), "--systems", "Nope"]
    try:
        with pytest.raises(SystemExit) as exc:
            main()
    finally:
        sys.argv = argv
    assert exc.value.code == 2


def test_eval_parsing_speed_small(datasets: Path) -> None:
    from anomalist.eval import parsing_speed

    out = parsing_speed.run(datasets / "loghub_2k", n_lines=3000)
    assert out["lines"] == 3000
    assert 0.5 < out["anomalist"]["ga"] <= 1.0 and 0.0 < out["drain3"]["ga"] <= 1.0
    assert out["anomalist"]["peak_rss_mb"] > 0 and out["ratio"] > 0


# ---- the tuning protocol: leave one system out ---------------------------------------------------------------------
def _scores(table: dict[str, dict[str, tuple[float, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    return {c: {s: {"GA": ga, "PA": pa, "FGA": ga, "FTA": pa} for s, (ga, pa) in per.items()}
            for c, per in table.items()}


def test_cross_validate_selects_without_the_held_out_system() -> None:
    from anomalist.eval.parsing import cross_validate

    # "fit" is best on s1 alone, "general" on s2 and s3: s1's fold must choose "general" (the other two prefer it)
    # and score s1 with it, although "fit" would be better there
    scores = _scores({
        "general": {"s1": (0.2, 0.2), "s2": (0.9, 0.9), "s3": (0.9, 0.9)},
        "fit": {"s1": (1.0, 1.0), "s2": (0.5, 0.5), "s3": (0.6, 0.6)},
    })
    cv = cross_validate(scores)
    assert {n: s["config"] for n, s in cv["systems"].items()} == {"s1": "general", "s2": "fit", "s3": "fit"}
    # s2's fold: fit (1.0+0.6)/2 = 0.8 > general (0.2+0.9)/2 = 0.55; s3's fold alike
    assert [cv["systems"][n]["GA"] for n in ("s1", "s2", "s3")] == [0.2, 0.5, 0.6]
    assert cv["mean"]["GA"] == pytest.approx(round((0.2 + 0.5 + 0.6) / 3, 4))
    assert cv["min_GA"] == 0.2
    assert cv["chosen_all_in"] == "fit"  # on all three: fit 0.7 > general 0.667

def test_select_config_breaks_near_ties_on_pa() -> None:
    from anomalist.eval.parsing import GA_TIE, select_config

    scores = _scores({
        "a": {"s1": (0.95, 0.5), "s2": (0.95, 0.5)},
        "b": {"s1": (0.95 - GA_TIE / 2, 0.9), "s2": (0.95 - GA_TIE / 2, 0.9)},
        "c": {"s1": (0.90, 1.0), "s2": (0.90, 1.0)},
    })
    assert select_config(scores, ["s1", "s2"]) == "b"  # within the tie of the best GA, better PA; c is too far
    with pytest.raises(ValueError, match="at least one"):
        select_config(scores, [])


def test_eval_parsing_cv_json(loghub_slice: Path) -> None:
    from anomalist.eval.parsing import CONFIGS

    res = CliRunner().invoke(app, ["eval", "parsing", "--data", str(loghub_slice), "--cv", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert set(out) >= {"systems", "mean", "cv", "all_in", "configs", "by_config"}
    assert set(out["cv"]["systems"]) == {"HDFS", "Apache"}
    names = [c["name"] for c in out["configs"]]
    assert names[0] == "default" and len(names) == len(CONFIGS) == len(set(names))
    for s in out["cv"]["systems"].values():
        assert set(s) >= {"GA", "PA", "config"} and s["config"] in names
    assert set(out["cv"]["mean"]) == {"GA", "PA", "FGA", "FTA"}
    assert out["cv"]["min_GA"] == min(s["GA"] for s in out["cv"]["systems"].values())
    assert out["all_in"]["mean"] == out["mean"] and out["all_in"]["config"] == "default"
    # the held-out score is the chosen configuration's score on that system
    for name, s in out["cv"]["systems"].items():
        assert s["GA"] == out["by_config"][s["config"]]["GA"][name]
