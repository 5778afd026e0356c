"""The labelled sets of ``anomalist eval llm``: the Nezha labelling rule on a hand-built case, the real sets, and the
check that neither the prior's prototypes nor the judge prompt paraphrase BGL templates."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomalist.eval.llm_sets import _label
from anomalist.eval.nezha import Case

T0 = pd.Timestamp("2023-01-29 09:00:00")


def _case(minute: int, service: str, fault_type: str) -> Case:
    t = T0 + pd.Timedelta(minutes=minute)
    return Case(id=f"{t:%H%M}", inject_time=t, pod=f"{service}-abc-123", service=service, fault_type=fault_type)


def _events(rows: list[tuple[int, str, int, str]]) -> tuple[pd.DataFrame, np.ndarray]:
    """rows: (template id, service, minute after T0 (-1 = the fault-free phase), level)."""
    ev = pd.DataFrame({
        "template_id": [r[0] for r in rows],
        "template": [f"template {r[0]}" for r in rows],
        "timestamp": [T0 + pd.Timedelta(minutes=r[2]) if r[2] >= 0 else T0 - pd.Timedelta(hours=5) for r in rows],
        "service": [r[1] for r in rows],
        "level": [r[3] for r in rows],
        "component": ["c"] * len(rows),
        "content": [f"line of {r[0]}" for r in rows],
    })
    return ev, np.array([r[2] < 0 for r in rows])


def test_nezha_rule_on_a_hand_built_day() -> None:
    cases = [_case(0, "ts-a", "exception"), _case(4, "ts-b", "cpu_contention"), _case(10, "ts-a", "return")]
    ev, free = _events([
        (1, "ts-a", -1, "INFO"), (1, "ts-a", 1, "INFO"),   # seen in the fault-free phase: normal
        (2, "ts-a", 1, "ERROR"), (2, "ts-a", 11, "ERROR"),  # only root-cause service, only code windows: anomalous
        (3, "ts-a", 5, "ERROR"),                            # root-cause service of a cpu case: neither
        (4, "ts-c", 1, "ERROR"),                            # another service in a code window: neither
        (5, "ts-a", 3, "WARN"), (5, "ts-a", 16, "WARN"),    # second record after the window (10 + 5 min): neither
        (6, "ts-a", 3, "WARN"),                             # window of case 0 cut at case 1 (minute 4): anomalous
        (7, "ts-b", -1, "INFO"), (7, "ts-a", 2, "ERROR"),   # normal wins over fault-window records
    ])
    out = _label(ev, free, cases, pd.Timedelta(minutes=5)).set_index("template")["label"].to_dict()
    assert out == {"template 1": 0, "template 2": 1, "template 6": 1, "template 7": 0}


def test_nezha_window_is_cut_at_the_next_case() -> None:
    cases = [_case(0, "ts-a", "exception"), _case(2, "ts-b", "exception")]
    ev, free = _events([(1, "ts-a", 3, "ERROR"), (2, "ts-b", 3, "ERROR"), (3, "ts-a", -1, "INFO")])
    out = _label(ev, free, cases, pd.Timedelta(minutes=5)).set_index("template")["label"].to_dict()
    assert out == {"template 2": 1, "template 3": 0}  # template 1 is after case 0's window ends at minute 2


def test_nezha_set_from_the_real_export(datasets: Path) -> None:
    from anomalist.eval.llm_sets import nezha_templates

    df = nezha_templates(datasets / "nezha_trainticket")
    assert set(df["label"]) == {0, 1}
    assert (df["label"] == 0).sum() >= 10 and (df["label"] == 1).sum() >= 3
    assert df["template"].is_unique and df["service"].notna().all()
    assert set(df.columns) >= {"template", "label", "level", "bad_level", "component", "count", "sample"}


def test_head_keeps_both_labels() -> None:
    from anomalist.eval.llm import _head

    df = pd.DataFrame({"template": [f"t{i}" for i in range(20)], "label": [0] * 15 + [1] * 5})
    small = _head(df, 8)
    assert len(small) == 8 and set(small["label"]) == {0, 1}
    assert len(_head(df, None)) == 20


def test_run_sets_rejects_unknown_names() -> None:
    from anomalist.eval.llm import run_sets

    with pytest.raises(ValueError, match="unknown set"):
        run_sets(["hdfs"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at least one"):
        run_sets([])


_STOP = {"a", "an", "the", "of", "or", "and", "to", "is", "was", "in", "on", "for", "by", "that", "be", "are", "as",
         "with", "at", "from", "it", "no", "not"}


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z]+", text.lower()) if w not in _STOP]


def _runs(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


# Everyday failure vocabulary that any log source uses; sharing it is not paraphrasing one source.
_GENERIC_PHRASES = {("timed", "out")}


def test_prior_and_prompt_do_not_paraphrase_bgl(datasets: Path) -> None:
    """No prototype and no "Answer ..." line of the judge prompt shares a run of two content words with a BGL
    template (a paraphrase of a message repeats its key phrase). The earlier texts failed this: "an error was
    detected and automatically corrected" and "errors that were detected and corrected" (BGL's "ddr error(s)
    detected and corrected"), "an input/output error occurred" ("failed: Input/output error")."""
    from anomalist.agent.llm.prior import FAILURE_PROTOTYPES, NORMAL_PROTOTYPES

    bgl = pd.read_csv(datasets / "loghub_2k" / "BGL" / "BGL_2k.log_structured.csv", usecols=["EventTemplate"])
    bgl_runs = set().union(*(_runs(_words(t), 2) for t in bgl["EventTemplate"].unique()))
    prompt = resources.files("prompts").joinpath("judge_log.j2").read_text(encoding="utf-8")
    texts = [d for _, d in FAILURE_PROTOTYPES + NORMAL_PROTOTYPES]
    texts += [line for line in prompt.splitlines() if line.startswith("Answer ")]
    assert len(texts) >= 2 + len(FAILURE_PROTOTYPES)
    shared = {t: sorted((_runs(_words(t), 2) & bgl_runs) - _GENERIC_PHRASES) for t in texts}
    assert not {t: r for t, r in shared.items() if r}


def test_cli_checks_the_set_and_its_folder(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from anomalist.agent.cli.main import app

    bad = CliRunner().invoke(app, ["eval", "llm", "--set", "hdfs"])
    assert bad.exit_code != 0 and "bgl" in bad.output
    missing = CliRunner().invoke(app, ["eval", "llm", "--set", "nezha", "--nezha", str(tmp_path / "nope")])
    assert missing.exit_code != 0 and "not a directory" in missing.output
