"""Log-parsing accuracy metrics as defined in the Loghub-2.0 study (Jiang et al., ICSE'24).

- GA (grouping accuracy): share of lines whose predicted group equals their true group as sets of lines.
- FGA: F1 of the group level: a predicted group is correct when it is exactly one true group.
- PA (parsing accuracy): share of lines whose template text equals the true template.
- FTA: F1 of the template level: a predicted template is correct when all of its lines have that same text as
  their true template.

Templates are compared after :func:`normalize_template` (wildcard spelling and whitespace only).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

_WILDCARD_RE = re.compile(r"<\*>|<[A-Z]+>|\{\*\}")  # <*> (Loghub), <NUM>/<IP>-style masks, {*}


def normalize_template(template: object) -> str:
    """The comparable text of a template: any wildcard spelling becomes ``<*>``, whitespace runs one space."""
    if not isinstance(template, str):
        return ""
    return " ".join(_WILDCARD_RE.sub("<*>", template).split())


def _series(values: Sequence[object] | pd.Series) -> pd.Series:
    return pd.Series(list(values)).reset_index(drop=True)


def grouping_accuracy(truth: Sequence[object] | pd.Series, predicted: Sequence[object] | pd.Series) -> float:
    """GA: lines in a predicted group that is exactly one true group, over all lines."""
    t, p = _series(truth), _series(predicted)
    if len(t) != len(p):
        raise ValueError(f"truth and predicted differ in length: {len(t)} vs {len(p)}")
    if len(t) == 0:
        return 0.0
    correct = _correct_groups(t, p)
    return float(sum(size for _, size in correct)) / len(t)


def _correct_groups(t: pd.Series, p: pd.Series) -> list[tuple[object, int]]:
    true_sizes = t.value_counts()
    df = pd.DataFrame({"t": t, "p": p})
    out: list[tuple[object, int]] = []
    for pid, grp in df.groupby("p", sort=False):
        uniq = grp["t"].unique()
        if len(uniq) == 1 and true_sizes[uniq[0]] == len(grp):
            out.append((pid, len(grp)))
    return out


def f1_grouping(truth: Sequence[object] | pd.Series, predicted: Sequence[object] | pd.Series) -> float:
    """FGA: F1 of group precision (correct groups / predicted groups) and recall (/ true groups)."""
    t, p = _series(truth), _series(predicted)
    if len(t) == 0:
        return 0.0
    n_correct = len(_correct_groups(t, p))
    return _f1(n_correct, p.nunique(), t.nunique())


def parsing_accuracy(truth: Sequence[object] | pd.Series, predicted: Sequence[object] | pd.Series) -> float:
    """PA: share of lines whose normalized template text equals the true one."""
    t = _series(truth).map(normalize_template)
    p = _series(predicted).map(normalize_template)
    if len(t) != len(p):
        raise ValueError(f"truth and predicted differ in length: {len(t)} vs {len(p)}")
    return float((t == p).mean()) if len(t) else 0.0


def f1_template(truth: Sequence[object] | pd.Series, predicted: Sequence[object] | pd.Series) -> float:
    """FTA: F1 where a predicted template is correct when every line of it has that exact true template."""
    t = _series(truth).map(normalize_template)
    p = _series(predicted).map(normalize_template)
    if len(t) == 0:
        return 0.0
    df = pd.DataFrame({"t": t, "p": p})
    correct = 0
    for ptext, grp in df.groupby("p", sort=False):
        uniq = grp["t"].unique()
        if len(uniq) == 1 and uniq[0] == ptext:
            correct += 1
    return _f1(correct, p.nunique(), t.nunique())


def _f1(correct: int, n_pred: int, n_true: int) -> float:
    precision = correct / n_pred if n_pred else 0.0
    recall = correct / n_true if n_true else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def all_metrics(truth_templates: Sequence[object] | pd.Series, pred_ids: Sequence[object] | pd.Series,
                pred_templates: Sequence[object] | pd.Series) -> dict[str, float]:
    """GA and FGA on (true template text, predicted id); PA and FTA on the template texts."""
    return {
        "GA": grouping_accuracy(truth_templates, pred_ids),
        "PA": parsing_accuracy(truth_templates, pred_templates),
        "FGA": f1_grouping(truth_templates, pred_ids),
        "FTA": f1_template(truth_templates, pred_templates),
    }
