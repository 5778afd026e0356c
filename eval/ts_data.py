"""Loaders for the time-series benchmarks in the layouts of ``../shared/datasets/nab`` and ``../shared/datasets/smd``.

Gzipped files are read transparently (``name.txt`` or ``name.txt.gz``). Nothing is downloaded.

* NAB: ``data/<group>/<name>.csv`` (``timestamp,value``) and ``labels/combined_windows.json``. NAB has no training
  split: the first 15 % of each series (NAB's probationary period) is the training part, the rest is scored.
  A row is anomalous when its timestamp lies inside one of the file's anomaly windows (inclusive).
* SMD: ``train/<m>.txt[.gz]``, ``test/<m>.txt[.gz]``, ``test_label/<m>.txt[.gz]``,
  ``interpretation_label/<m>.txt[.gz]``. Channels are named ``dim_1`` .. ``dim_38`` (1-based, as in the
  interpretation labels); rows get a synthetic 1-minute DatetimeIndex (train first, test right after).
"""

from __future__ import annotations

import gzip
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

NAB_PROBATION = 0.15


@dataclass
class Series:
    """One benchmark series: fit on ``train``, score ``test`` against ``labels`` (0/1 per test row)."""

    name: str
    train: pd.DataFrame
    test: pd.DataFrame
    labels: np.ndarray
    # (start row, end row inclusive, responsible channels) per labelled test segment (SMD only).
    interpretation: list[tuple[int, int, list[str]]] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)


def _open_text(path: Path) -> str:
    """Text of ``path`` or of ``path.gz`` (whichever exists)."""
    for p in (path, path.with_name(path.name + ".gz")):
        if p.is_file():
            raw = p.read_bytes()
            if p.suffix == ".gz":
                raw = gzip.decompress(raw)
            return raw.decode("utf-8")
    raise FileNotFoundError(f"missing {path} (or {path.name}.gz)")


def _strip_gz(name: str) -> str:
    return name[:-3] if name.endswith(".gz") else name


# ----------------------------------------------------------------------------------------------------------------
# NAB
# ----------------------------------------------------------------------------------------------------------------
def load_nab(root: Path) -> Iterator[Series]:
    """Every series under ``root/data`` that has an entry in ``root/labels/combined_windows.json``."""
    root = Path(root)
    windows_path = root / "labels" / "combined_windows.json"
    if not windows_path.is_file():
        raise FileNotFoundError(f"NAB layout: {windows_path} not found")
    windows: dict[str, list[list[str]]] = json.loads(windows_path.read_text(encoding="utf-8"))
    files = sorted(p for p in (root / "data").rglob("*") if p.is_file() and _strip_gz(p.name).endswith(".csv"))
    if not files:
        raise FileNotFoundError(f"NAB layout: no CSV files under {root / 'data'}")
    for path in files:
        key = f"{path.parent.name}/{_strip_gz(path.name)}"
        if key not in windows:
            logger.warning("NAB: %s has no label entry; skipped", key)
            continue
        yield _nab_series(path, key, windows[key])


def _nab_series(path: Path, key: str, wins: list[list[str]]) -> Series:
    df = pd.read_csv(io.StringIO(_open_text(path.with_name(_strip_gz(path.name)))))
    if "timestamp" not in df.columns or "value" not in df.columns:
        raise ValueError(f"NAB: {key} lacks timestamp/value columns: {list(df.columns)}")
    ts = pd.to_datetime(df["timestamp"], errors="coerce")
    value = pd.to_numeric(df["value"], errors="coerce")
    notes = {"rows": len(df), "bad_timestamp": int(ts.isna().sum()), "non_numeric": int(value.isna().sum())}
    frame = pd.DataFrame({"value": value.to_numpy(dtype=np.float64)}, index=pd.DatetimeIndex(ts, name="timestamp"))
    frame = frame[frame.index.notna()]
    frame = frame.sort_index(kind="stable")
    dup = frame.index.duplicated(keep="first")
    notes["duplicate_timestamp"] = int(dup.sum())
    frame = frame[~dup]
    labels = np.zeros(len(frame), dtype=np.int8)
    for start, end in wins:
        labels[(frame.index >= pd.Timestamp(start)) & (frame.index <= pd.Timestamp(end))] = 1
    cut = int(np.floor(len(frame) * NAB_PROBATION))
    return Series(key, frame.iloc[:cut], frame.iloc[cut:], labels[cut:], notes=notes)


# ----------------------------------------------------------------------------------------------------------------
# SMD
# ----------------------------------------------------------------------------------------------------------------
def smd_machines(root: Path) -> list[str]:
    """Machine names that have train, test and test_label files."""
    root = Path(root)
    names = sorted({_strip_gz(p.name)[:-4] for p in (root / "test").glob("*.txt*")})
    return [m for m in names if _exists(root / "train" / f"{m}.txt") and _exists(root / "test_label" / f"{m}.txt")]


def _exists(path: Path) -> bool:
    return path.is_file() or path.with_name(path.name + ".gz").is_file()


def _matrix(path: Path) -> np.ndarray:
    a = np.loadtxt(io.StringIO(_open_text(path)), delimiter=",", dtype=np.float64, ndmin=2)
    return a


def load_smd(root: Path, machines: list[str] | None = None) -> Iterator[Series]:
    """SMD machines (all by default): train/test frames, test labels and interpretation segments."""
    root = Path(root)
    names = machines or smd_machines(root)
    if not names:
        raise FileNotFoundError(f"SMD layout: no machine with train/, test/ and test_label/ files under {root}")
    for m in names:
        train = _matrix(root / "train" / f"{m}.txt")
        test = _matrix(root / "test" / f"{m}.txt")
        labels = np.loadtxt(io.StringIO(_open_text(root / "test_label" / f"{m}.txt")), dtype=np.int64).ravel()
        if len(labels) != len(test):
            raise ValueError(f"SMD {m}: {len(labels)} labels for {len(test)} test rows")
        cols = [f"dim_{i + 1}" for i in range(train.shape[1])]
        idx = pd.date_range("2000-01-01", periods=len(train) + len(test), freq="min", name="timestamp")
        interp: list[tuple[int, int, list[str]]] = []
        ipath = root / "interpretation_label" / f"{m}.txt"
        if _exists(ipath):
            for line in _open_text(ipath).splitlines():
                line = line.strip()
                if not line:
                    continue
                rng, dims = line.split(":")
                a, b = (int(v) for v in rng.split("-"))
                interp.append((a, min(b, len(test) - 1), [f"dim_{int(d)}" for d in dims.split(",") if d.strip()]))
        yield Series(
            m,
            pd.DataFrame(train, index=idx[: len(train)], columns=cols),
            pd.DataFrame(test, index=idx[len(train) :], columns=cols),
            labels.astype(np.int8),
            interp,
            {"train_rows": len(train), "test_rows": len(test)},
        )
