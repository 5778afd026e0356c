"""The labelled template sets of ``anomalist eval llm``: one row per template with a 0/1 label.

Two sets, built on the fly from ``../shared/datasets`` (nothing is cached in the repository):

``bgl`` (Loghub-2k BGL, or any Loghub system with a ``Label`` column): the templates of the structured CSV; a template
is anomalous when any of its lines carries an alert tag (``Label`` is not ``-``).

``nezha`` (Nezha TrainTicket fault injection): a mechanical labelling that reads only the pod logs and the fault list.

1. Every pod log record of the fault-free phase (``normal/``) and of the fault day (``log/``) is written out as the
   cluster wrote it (:class:`eval.nezha.NezhaData`) and parsed in one pass by Anomalist's own reader and parser
   (:class:`tools.parsing.ParseStream`, as the triage reads pod logs: container unwrapping, format detection,
   Drain), so template ids are shared and the final, most general template text is used.
2. A fault case's window is ``[inject_time, inject_time + window)``, cut at the next case's ``inject_time``
   (default 10 minutes). The export holds only the log minutes around the cases, so a record after a case and
   before the next one was written either under that fault or after it cleared; the dataset does not say when a
   fault ends, and back-to-back faults on one service (three per service, minutes apart) keep writing their
   messages until the next injection.
   A record is *root-cause evidence* when it lies in the window of a code-level case (``inject_type`` ``return`` or
   ``exception``: the kinds that show in logs, ``eval.nezha.FAULT_KINDS``) and its pod belongs to that case's
   ``inject_pod`` service.
3. NORMAL (label 0): a template seen at least once in the fault-free phase.
   ANOMALOUS (label 1): a template never seen in the fault-free phase, all of whose records on the fault day are
   root-cause evidence (it appears only in the root-cause service, only during code-level fault windows).
   Every other template (new on the fault day but also seen outside a root-cause window or service) fits neither
   and is dropped.

The labelling knows nothing about the text of a template, so it cannot leak a convention into the prior or the
prompt. Its limits: the fault-free phase is one minute (about 2,500 records), so a routine template first seen on
the fault day is dropped (or, if it happens only in the root-cause service during a window, labelled anomalous);
TrainTicket's messages carry literal values (station names, train types) that Drain keeps, so most of the ~380
dropped templates are routine messages with new values, and most fault effects show in the callers' logs, which
the rule drops as well. What remains is small: on 2023-01-29, 4 anomalous and about 115 normal templates (the
exact count moves by a few with the parser). An anomalous template is one a fault *caused to be written*, whether
or not its text says "error". Building the set parses all 171k records: about 50 s on 2 cores.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from anomalist.tools.errors import InputError

if TYPE_CHECKING:
    from anomalist.eval.nezha import Case

logger = logging.getLogger(__name__)

SetName = Literal["bgl", "nezha"]
SET_NAMES: tuple[SetName, ...] = ("bgl", "nezha")

BAD_LEVELS = {"FATAL", "ERROR", "ERR", "CRITICAL", "CRIT", "SEVERE", "FAILURE", "EMERG", "ALERT", "PANIC"}
CODE_KIND = "code"


def _row(template: str, label: float, levels: Counter[str], comps: Counter[str], count: int, sample: str) -> dict:
    return {
        "template": template,
        "label": label,
        "level": levels.most_common(1)[0][0] if levels else None,
        "bad_level": int(any(str(lv).upper() in BAD_LEVELS for lv in levels)),
        "component": comps.most_common(1)[0][0] if comps else None,
        "count": count,
        "sample": sample,
    }


def loghub_templates(data: Path, system: str = "BGL") -> pd.DataFrame:
    """One row per ground-truth template of a Loghub system: template, label (or NaN), level, bad_level, component,
    count, a sample line."""
    from anomalist.eval.loghub import load_system

    gt = load_system(data, system, "original").ground_truth()
    if gt.empty:
        raise InputError(f"{system}: the structured CSV is empty")
    has_label = "Label" in gt.columns
    rows = []
    for tpl, g in gt.groupby("EventTemplate", sort=False):
        levels = Counter(g["Level"]) if "Level" in g.columns else Counter()
        comps = Counter(g["Component"]) if "Component" in g.columns else Counter()
        label = int((g["Label"] != "-").any()) if has_label else np.nan
        rows.append(_row(str(tpl), label, levels, comps, len(g), str(g["Content"].iloc[0])))
    return pd.DataFrame(rows)


def nezha_templates(root: Path, window: pd.Timedelta = pd.Timedelta(minutes=10)) -> pd.DataFrame:
    """The Nezha set (see the module docstring for the rule): the same columns as :func:`loghub_templates`, plus
    ``service`` (the most frequent service of the template's records).

    Raises:
        InputError: the folder is not a Nezha export, or it has no fault-free or no fault-day pod logs.
    """
    from anomalist.eval.nezha import NezhaData
    from anomalist.tools.parsing import ParseStream

    if window <= pd.Timedelta(0):
        raise ValueError(f"window must be > 0, got {window}")
    try:
        data = NezhaData.load(root)
    except FileNotFoundError as exc:
        raise InputError(f"not a Nezha export: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="anomalist-eval-llm-nezha-") as tmp:  # nothing is cached
        normal = data.write_normal(Path(tmp) / "normal")
        day = data.write(data.day, data.day + pd.Timedelta(days=1), Path(tmp) / "faults")
        if normal.logs is None or day.logs is None:
            raise InputError(f"{root}: needs pod logs of both the fault-free phase (normal/log/) and the fault day (log/)")
        stream = ParseStream([str(normal.logs), str(day.logs)], with_params=False)  # as the triage reads pod logs
        ev = pd.concat(list(stream), ignore_index=True)
        fault_free = ev["source"].astype(str).str.startswith(str(normal.logs)).to_numpy()
    # Final ids and texts: clusters merge and templates generalise after their first events.
    parser = stream.parser
    if parser is None:  # set by the first chunk; no chunk means no event
        raise InputError(f"{root}: no pod log event could be read")
    ids = {t: parser.resolve(t) for t in ev["template_id"].unique().tolist()}
    ev["template_id"] = ev["template_id"].map(ids)
    ev["template"] = ev["template_id"].map({t: parser.template(t) for t in set(ids.values())})
    return _label(ev, fault_free, data.cases, window)


def _label(ev: pd.DataFrame, fault_free: np.ndarray, cases: list[Case], window: pd.Timedelta) -> pd.DataFrame:
    """Apply the rule to parsed events (``template_id, template, timestamp, service, level, component, content``)."""
    ts = pd.to_datetime(ev["timestamp"], errors="coerce")
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    if not cases:
        raise ValueError("the labelling needs at least one fault case")
    starts = pd.DatetimeIndex([c.inject_time for c in cases])
    ends = [min(c.inject_time + window, nxt.inject_time) for c, nxt in zip(cases, cases[1:], strict=False)]
    ends.append(cases[-1].inject_time + window)
    k = starts.searchsorted(pd.DatetimeIndex(ts), side="right") - 1  # the latest case injected at or before each record
    service = ev["service"].astype(object).to_numpy() if "service" in ev.columns else np.full(len(ev), None)
    evidence = np.zeros(len(ev), dtype=bool)
    for i in np.flatnonzero((k >= 0) & ~fault_free & ts.notna().to_numpy()):
        c = cases[k[i]]
        evidence[i] = c.kind == CODE_KIND and ts.iloc[i] < ends[k[i]] and service[i] == c.service
    frame = pd.DataFrame({"tid": ev["template_id"].to_numpy(), "free": fault_free, "evidence": evidence})
    per = frame.groupby("tid").agg(free=("free", "sum"), evidence=("evidence", "sum"), n=("free", "size"))
    label = pd.Series(np.nan, index=per.index)
    label[per["free"] > 0] = 0
    label[(per["free"] == 0) & (per["evidence"] == per["n"])] = 1
    keep = label.dropna()
    rows = []
    for tid, g in ev[ev["template_id"].isin(keep.index)].groupby("template_id", sort=True):
        levels = Counter(v for v in g["level"] if isinstance(v, str) and v)
        comps = Counter(v for v in g["component"] if isinstance(v, str) and v)
        row = _row(str(g["template"].iloc[0]), int(keep[tid]), levels, comps, len(g),
                   str(g["content"].iloc[0]).split("\n", 1)[0])
        svcs = Counter(v for v in g["service"] if isinstance(v, str) and v) if "service" in g.columns else Counter()
        row["service"] = svcs.most_common(1)[0][0] if svcs else None
        rows.append(row)
    out = pd.DataFrame(rows)
    logger.info("nezha set: %d normal, %d anomalous templates (%d dropped)", int((out["label"] == 0).sum()),
                int((out["label"] == 1).sum()), len(per) - len(out))
    return out
