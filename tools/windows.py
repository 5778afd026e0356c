"""Windowing of parsed events for the log detectors: fixed, sliding, count and session windows.

Every function takes the events DataFrame of :mod:`tools.parsing` (``template_id``, and ``timestamp`` for the time
windows, ``params``/``content`` for sessions) and returns a :class:`Windows`: an event-count matrix (windows x
template ids) and the template-id sequence of each window, in event order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Windows:
    """Windows over a stream of events.

    Attributes:
        counts: Windows x template ids (int64); row ``i`` is window ``i``; columns sorted template ids.
        sequences: The template ids of each window's events, in order.
        start / end: Per-window bounds (timestamps for time windows; first/last event timestamp otherwise,
            NaT where unknown). For time windows the interval is ``[start, end)``.
        keys: Session keys (session windows only), else None.
        event_index: Row positions (into the events DataFrame) of each window's events.
    """

    counts: pd.DataFrame
    sequences: list[list[int]]
    start: pd.Series
    end: pd.Series
    keys: list[str] | None
    event_index: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.sequences)


def _require(events: pd.DataFrame, *cols: str) -> None:
    if not isinstance(events, pd.DataFrame):
        raise TypeError(f"events must be a DataFrame, got {type(events).__name__}")
    missing = [c for c in cols if c not in events.columns]
    if missing:
        raise ValueError(f"events lack column(s) {missing}")


def _build(events: pd.DataFrame, groups: list[np.ndarray], start: list[object], end: list[object],
           keys: list[str] | None) -> Windows:
    tids = events["template_id"].to_numpy(dtype=np.int64)
    columns = np.unique(tids)
    col_of = {int(t): k for k, t in enumerate(columns)}
    mat = np.zeros((len(groups), len(columns)), dtype=np.int64)
    sequences: list[list[int]] = []
    for r, idx in enumerate(groups):
        seq = tids[idx]
        sequences.append([int(t) for t in seq])
        if len(seq):
            u, c = np.unique(seq, return_counts=True)
            mat[r, [col_of[int(t)] for t in u]] = c
    counts = pd.DataFrame(mat, columns=pd.Index(columns, name="template_id"))
    counts.index.name = "window"
    return Windows(counts=counts, sequences=sequences, start=pd.Series(pd.to_datetime(start), dtype="datetime64[ns]"),
                   end=pd.Series(pd.to_datetime(end), dtype="datetime64[ns]"), keys=keys, event_index=groups)


def _timed(events: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    _require(events, "template_id", "timestamp")
    ts = pd.to_datetime(events["timestamp"])
    ok = ts.notna().to_numpy()
    if not ok.any():
        raise ValueError("time windows need timestamps, but every event's timestamp is NaT")
    pos = np.flatnonzero(ok)
    return events, pos


def fixed_windows(events: pd.DataFrame, freq: str | pd.Timedelta) -> Windows:
    """Tumbling time windows of length ``freq`` (e.g. ``"5min"``), aligned to multiples of ``freq``.

    Empty windows between the first and last event are kept (all-zero rows). Events without a timestamp are
    left out.
    """
    return sliding_windows(events, freq, freq)


def sliding_windows(events: pd.DataFrame, size: str | pd.Timedelta, step: str | pd.Timedelta) -> Windows:
    """Time windows ``[start, start + size)`` every ``step`` (both > 0), starts aligned to multiples of ``step``."""
    size_td, step_td = pd.Timedelta(size), pd.Timedelta(step)
    if size_td <= pd.Timedelta(0) or step_td <= pd.Timedelta(0):
        raise ValueError(f"size and step must be > 0, got {size_td} and {step_td}")
    events, pos = _timed(events)
    ts = pd.to_datetime(events["timestamp"]).to_numpy()[pos]
    order = np.argsort(ts, kind="stable")
    pos, ts = pos[order], ts[order]
    t0, t1 = pd.Timestamp(ts[0]), pd.Timestamp(ts[-1])
    starts = pd.date_range((t0 - size_td).floor(step_td), t1, freq=step_td)
    starts = starts[starts + size_td > t0]  # only windows that can hold an event
    s_np = starts.to_numpy()
    lo = np.searchsorted(ts, s_np, side="left")
    hi = np.searchsorted(ts, (starts + size_td).to_numpy(), side="left")
    groups = [pos[a:b] for a, b in zip(lo, hi, strict=True)]
    return _build(events, groups, list(starts), list(starts + size_td), None)


def count_windows(events: pd.DataFrame, size: int, step: int | None = None) -> Windows:
    """Windows of ``size`` consecutive events every ``step`` events (default: ``step = size``).

    A final partial window is kept when it holds events not covered by an earlier window.
    """
    step = size if step is None else step
    if size < 1 or step < 1:
        raise ValueError(f"size and step must be >= 1, got {size} and {step}")
    _require(events, "template_id")
    n = len(events)
    groups: list[np.ndarray] = []
    covered = 0
    for a in range(0, max(n, 1), step):
        if a >= n:
            break
        b = min(a + size, n)
        if b <= covered:
            break
        groups.append(np.arange(a, b))
        covered = b
    ts = pd.to_datetime(events["timestamp"]) if "timestamp" in events.columns else pd.Series(pd.NaT, index=events.index)
    tsv = ts.to_numpy()
    start = [tsv[g[0]] for g in groups]
    end = [tsv[g[-1]] for g in groups]
    return _build(events, groups, start, end, None)


def session_windows(events: pd.DataFrame, key_pattern: str = r"blk_-?\d+") -> Windows:
    """One window per session key found in each event's content (e.g. HDFS block ids).

    An event that mentions several keys belongs to each of their sessions; events without a key are left out.
    Sessions are ordered by their first event.
    """
    _require(events, "template_id", "content")
    try:
        rx = re.compile(key_pattern)
    except re.error as exc:
        raise ValueError(f"bad key_pattern {key_pattern!r}: {exc}") from exc
    members: dict[str, list[int]] = {}
    for i, text in enumerate(events["content"].tolist()):
        if not isinstance(text, str):
            continue
        for key in dict.fromkeys(rx.findall(text)):
            k = key if isinstance(key, str) else "".join(key)
            members.setdefault(k, []).append(i)
    keys = list(members)
    groups = [np.asarray(members[k], dtype=np.int64) for k in keys]
    if "timestamp" in events.columns:
        tsv = pd.to_datetime(events["timestamp"]).to_numpy()
        start = [tsv[g].min() if len(g) else pd.NaT for g in groups]
        end = [tsv[g].max() if len(g) else pd.NaT for g in groups]
    else:
        start = [pd.NaT] * len(groups)
        end = [pd.NaT] * len(groups)
    return _build(events, groups, start, end, keys)
