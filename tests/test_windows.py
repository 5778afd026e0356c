"""Windowing on a small hand-built log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomalist.tools.parsing import parse_logs
from anomalist.tools.windows import count_windows, fixed_windows, session_windows, sliding_windows

LOG = """\
081109 100000 1 INFO dfs.DataNode: Receiving block blk_1 src: /10.0.0.1:5000 dest: /10.0.0.2:50010
081109 100010 1 INFO dfs.DataNode: Receiving block blk_2 src: /10.0.0.1:5000 dest: /10.0.0.2:50010
081109 100130 2 INFO dfs.DataNode: PacketResponder 0 for block blk_1 terminating
081109 100200 2 INFO dfs.DataNode: PacketResponder 1 for block blk_-3 terminating
081109 100359 3 WARN dfs.DataNode: Exception in receiveBlock for block blk_2 java.io.IOException
081109 100400 3 INFO dfs.DataNode: Receiving block blk_-3 src: /10.0.0.1:5000 dest: /10.0.0.2:50010
"""


@pytest.fixture()
def events(tmp_path: Path) -> pd.DataFrame:
    p = tmp_path / "h.log"
    p.write_text(LOG)
    ev = parse_logs(p, "hdfs").events
    assert ev["template_id"].nunique() == 3
    return ev


def _ids(ev: pd.DataFrame) -> tuple[int, int, int]:
    recv, resp, exc = ev["template_id"][0], ev["template_id"][2], ev["template_id"][4]
    return int(recv), int(resp), int(exc)


def test_fixed_windows(events: pd.DataFrame) -> None:
    w = fixed_windows(events, "2min")
    recv, resp, exc = _ids(events)
    assert [str(s) for s in w.start] == ["2008-11-09 10:00:00", "2008-11-09 10:02:00", "2008-11-09 10:04:00"]
    assert w.sequences == [[recv, recv, resp], [resp, exc], [recv]]
    assert w.counts.loc[0, recv] == 2 and w.counts.loc[1, exc] == 1 and w.counts.to_numpy().sum() == 6
    assert w.counts.dtypes.map(lambda d: d == np.int64).all()


def test_sliding_windows(events: pd.DataFrame) -> None:
    w = sliding_windows(events, "2min", "1min")
    # windows that can hold an event: 09:59 .. 10:04
    assert len(w) == 6 and str(w.start[0]) == "2008-11-09 09:59:00"
    assert [len(s) for s in w.sequences] == [2, 3, 2, 2, 2, 1]
    with pytest.raises(ValueError):
        sliding_windows(events, "0s", "1min")


def test_count_windows(events: pd.DataFrame) -> None:
    w = count_windows(events, 4, 2)
    assert [len(s) for s in w.sequences] == [4, 4]
    assert w.event_index[1].tolist() == [2, 3, 4, 5]
    assert len(count_windows(events, 4)) == 2
    with pytest.raises(ValueError):
        count_windows(events, 0)


def test_session_windows(events: pd.DataFrame) -> None:
    w = session_windows(events)
    recv, resp, exc = _ids(events)
    assert w.keys == ["blk_1", "blk_2", "blk_-3"]
    assert w.sequences == [[recv, resp], [recv, exc], [resp, recv]]
    assert w.counts.shape == (3, 3)
    assert str(w.start[2]) == "2008-11-09 10:02:00" and str(w.end[2]) == "2008-11-09 10:04:00"


def test_time_windows_need_timestamps(events: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="NaT"):
        fixed_windows(events.assign(timestamp=pd.NaT), "1min")
