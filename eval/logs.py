"""``anomalist eval logs``: the log detectors on HDFS sessions and on the BGL 2k sample.

* ``hdfs-sessions`` (layout of ``../shared/datasets/hdfs_sessions``): every detector is trained on the normal
  ``hdfs_train`` sessions only. It is evaluated on the balanced ``robust_log_valid.csv`` (precision, recall, F1 at
  the detector's own threshold, AUC-PR of its scores) and its recall is reported on ``hdfs_test_abnormal``
  (``recall_abnormal``). Count detectors see one row of key counts per session; ``deeplog`` sees the key sequences.
* ``bgl2k`` (layout of ``../shared/datasets/loghub_2k``): ``BGL/BGL_2k.log`` is parsed with Anomalist's own parser
  (``tools.parsing``), cut into windows of 20 lines (``tools.windows.count_windows``); a window is anomalous when
  one of its lines carries an alert label (first token of the raw line is not ``-``). Chronological split: the
  first half of the windows is fitted (unsupervised: it may hold alerts), the second half evaluated.

JSON: ``{"detectors": {NAME: {"precision", "recall", "f1", "auc_pr", "recall_abnormal", "fit_s", "score_s"}},
"train": N, "test": N, "test_anomalous": N}`` (``recall_abnormal`` is null for bgl2k).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from anomalist import detectors as registry
from anomalist.eval.ts_metrics import auc_pr

logger = logging.getLogger(__name__)

BGL_WINDOW = 20


def read_sessions(path: Path) -> list[list[str]]:
    """DeepLog session file: one session per line, space-separated keys (empty lines skipped)."""
    return [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_labelled(path: Path) -> tuple[list[list[str]], np.ndarray]:
    """logdeep CSV ``Sequence,label``."""
    df = pd.read_csv(path, dtype={"Sequence": str})
    if not {"Sequence", "label"} <= set(df.columns):
        raise ValueError(f"{path}: expected columns Sequence,label; got {list(df.columns)}")
    seqs = [str(s).split() for s in df["Sequence"].fillna("")]
    return seqs, df["label"].to_numpy(dtype=np.int64)


def counts_of(seqs: list[list[str]]) -> pd.DataFrame:
    """Event-count matrix (sessions x keys) of key sequences, the same shape as ``Windows.counts``."""
    rows = [Counter(s) for s in seqs]
    df = pd.DataFrame.from_records(rows).fillna(0)
    return df.reindex(sorted(df.columns, key=lambda k: (len(k), k)), axis=1).astype(np.int64)


def _prf(labels: np.ndarray, flags: np.ndarray) -> tuple[float, float, float]:
    tp = int((flags & (labels == 1)).sum())
    fp = int((flags & (labels == 0)).sum())
    fn = int((~flags & (labels == 1)).sum())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _evaluate(name: str, train: Any, test: Any, labels: np.ndarray, extra: Any | None) -> dict[str, Any]:
    det = registry.get_detector(name)
    t0 = time.perf_counter()
    det.fit(train)
    t1 = time.perf_counter()
    scores = det.score(test)
    t2 = time.perf_counter()
    flags = (scores > det.threshold_).to_numpy()
    p, r, f1 = _prf(labels, flags)
    row: dict[str, Any] = {"precision": p, "recall": r, "f1": f1, "auc_pr": auc_pr(labels, scores.to_numpy())}
    row["recall_abnormal"] = float((det.score(extra) > det.threshold_).mean()) if extra is not None else None
    row["fit_s"], row["score_s"] = t1 - t0, t2 - t1
    return row


def _inputs(name: str, seqs_or_counts: tuple[Any, Any]) -> Any:
    seqs, counts = seqs_or_counts
    return seqs if name == "deeplog" else counts


def run_hdfs(data: Path, names: list[str]) -> dict[str, Any]:
    train = read_sessions(data / "hdfs_train")
    valid, labels = read_labelled(data / "robust_log_valid.csv")
    abnormal = read_sessions(data / "hdfs_test_abnormal")
    sets = {"train": (train, counts_of(train)), "valid": (valid, counts_of(valid)), "abnormal": (abnormal, counts_of(abnormal))}
    out = {}
    for name in names:
        logger.info("eval logs (hdfs): %s", name)
        out[name] = _evaluate(
            name, _inputs(name, sets["train"]), _inputs(name, sets["valid"]), labels, _inputs(name, sets["abnormal"])
        )
    return {"detectors": out, "train": len(train), "test": len(valid), "test_anomalous": int(labels.sum())}


def bgl_windows(data: Path) -> tuple[pd.DataFrame, list[list[int]], np.ndarray]:
    """Parse BGL_2k.log with our parser; (counts, sequences, window labels) for windows of 20 lines."""
    from anomalist.tools import parsing, windows  # the parser of the parsing issue

    path = data / "BGL" / "BGL_2k.log"
    if not path.is_file():
        raise FileNotFoundError(f"loghub_2k layout: {path} not found")
    raw = path.read_text(encoding="utf-8", errors="replace").splitlines()
    alert = np.array([not line.startswith("- ") for line in raw], dtype=bool)
    parsed = parsing.parse_logs(path, fmt="BGL")
    events = parsed.events.sort_values("line_no", kind="stable").reset_index(drop=True)
    base = int(events["line_no"].min()) if len(events) else 1  # line numbers may start at 0 or 1
    line_alert = alert[(events["line_no"].to_numpy(dtype=np.int64) - base).clip(0, len(alert) - 1)]
    win = windows.count_windows(events, size=BGL_WINDOW, step=BGL_WINDOW)
    labels = np.array([bool(line_alert[idx].any()) for idx in win.event_index], dtype=np.int64)
    return win.counts, win.sequences, labels


def run_bgl(data: Path, names: list[str]) -> dict[str, Any]:
    counts, seqs, labels = bgl_windows(data)
    half = len(labels) // 2
    tr = (seqs[:half], counts.iloc[:half])
    te = (seqs[half:], counts.iloc[half:])
    out = {}
    for name in names:
        logger.info("eval logs (bgl2k): %s", name)
        out[name] = _evaluate(name, _inputs(name, tr), _inputs(name, te), labels[half:], None)
    return {"detectors": out, "train": half, "test": len(labels) - half, "test_anomalous": int(labels[half:].sum())}


def run(data: Path, fmt: str, detectors: list[str] | None = None) -> dict[str, Any]:
    """Run the suite (see the module docstring for the protocol and the JSON)."""
    names = detectors or registry.available("log")
    unknown = [n for n in names if n not in registry.available("log")]
    if unknown:
        raise ValueError(f"unknown log detectors {unknown}; available: {registry.available('log')}")
    if fmt == "hdfs-sessions":
        return run_hdfs(Path(data), names)
    if fmt == "bgl2k":
        return run_bgl(Path(data), names)
    raise ValueError(f"format must be 'hdfs-sessions' or 'bgl2k', got {fmt!r}")


def render(result: dict[str, Any]) -> Table:
    """One row per detector."""
    table = Table(title=f"log detectors (train {result['train']}, test {result['test']}, anomalous {result['test_anomalous']})")
    cols = ["precision", "recall", "f1", "auc_pr", "recall_abnormal", "fit_s", "score_s"]
    table.add_column("detector")
    for c in cols:
        table.add_column(c, justify="right")
    for name, row in result["detectors"].items():
        table.add_row(name, *("-" if row.get(c) is None else f"{row[c]:.3f}" for c in cols))
    return table
