"""Reading logs: sources, gzip, stdin, multi-line events, and every kind of bad input."""

from __future__ import annotations

import gzip
import io
import os
import sys
from pathlib import Path

import pytest

from anomalist.tools.errors import InputError
from anomalist.tools.logread import ReadStats, expand_sources, iter_blocks
from anomalist.tools.parsing import iter_parsed, parse_logs

APP = (
    "2026-11-02 14:05:01,123 ERROR checkout.db: connection refused to 10.0.0.5:5432\n"
    "2026-11-02 14:05:02,001 INFO checkout.api: order 1001 created for user 42\n"
    "2026-11-02 14:05:03.500 INFO checkout.api: order 1002 created for user 7\n"
    "2026-11-02T14:05:04 WARN checkout.api: slow request took 1200 ms\n"
)


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_expand_sources_dirs_globs_and_missing(tmp_path: Path) -> None:
    write(tmp_path / "a.log", APP)
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "b.log", APP)
    write(tmp_path / ".hidden", APP)
    assert expand_sources(tmp_path) == [str(tmp_path / "a.log"), str(tmp_path / "sub" / "b.log")]
    assert expand_sources(str(tmp_path / "**" / "*.log")) == [str(tmp_path / "a.log"), str(tmp_path / "sub" / "b.log")]
    with pytest.raises(InputError, match="no such file"):
        expand_sources(tmp_path / "nope.log")
    with pytest.raises(InputError, match="no file matches"):
        expand_sources(str(tmp_path / "*.txt"))
    with pytest.raises(InputError):
        expand_sources([])


def test_gzip_is_read_transparently(tmp_path: Path) -> None:
    gz = tmp_path / "app.log.gz"
    gz.write_bytes(gzip.compress(APP.encode()))
    parsed = parse_logs(gz)
    assert parsed.format == "app" and parsed.format_detected
    assert parsed.stats.lines_read == 4 and parsed.stats.events == 4
    assert list(parsed.events["level"]) == ["ERROR", "INFO", "INFO", "WARN"]


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = io.TextIOWrapper(io.BytesIO(APP.encode()))
    monkeypatch.setattr(sys, "stdin", fake)
    parsed = parse_logs("-")
    assert parsed.stats.events == 4 and parsed.format == "app"


def test_app_format_fields_and_timestamps(tmp_path: Path) -> None:
    ev = parse_logs(write(tmp_path / "a.log", APP)).events
    assert list(ev["component"]) == ["checkout.db", "checkout.api", "checkout.api", "checkout.api"]
    assert str(ev["timestamp"][0]) == "2026-11-02 14:05:01.123000"
    assert str(ev["timestamp"][3]) == "2026-11-02 14:05:04"
    assert ev["template"][1] == ev["template"][2] == "order <*> created for user <*>"
    assert ev["template_id"][1] == ev["template_id"][2]
    assert ev["params"][1] == ["1001", "42"]
    assert ev["content"][0] == "connection refused to 10.0.0.5:5432"


def test_multiline_events_and_unparsed_lines(tmp_path: Path) -> None:
    text = (
        "this line comes before any header\n"
        "2026-11-02 14:05:01,123 ERROR checkout.api: request failed\n"
        "Traceback (most recent call last):\n"
        '  File "app.py", line 3, in <module>\n'
        "ValueError: boom\n"
        "\n"
        "2026-11-02 14:05:02,000 INFO checkout.api: request ok\n"
    )
    parsed = parse_logs(write(tmp_path / "m.log", text), "app")
    st = parsed.stats
    assert (st.lines_read, st.events, st.parsed, st.unparsed, st.continuation_lines, st.blank_lines) == (7, 3, 2, 1, 3, 1)
    ev = parsed.events
    assert not ev["parsed"][0] and ev["content"][0] == "this line comes before any header"
    assert ev["n_lines"][1] == 4 and ev["content"][1].endswith("ValueError: boom")
    assert ev["template"][1] == "request failed"  # the template comes from the first line only
    assert ev["template"][2] == "request ok"  # one word apart: another event


def test_lines_are_not_joined_across_files(tmp_path: Path) -> None:
    write(tmp_path / "a.log", APP)
    write(tmp_path / "b.log", "a continuation-looking first line\n" + APP)
    parsed = parse_logs(tmp_path, "app")
    assert parsed.stats.unparsed == 1 and parsed.stats.continuation_lines == 0


def test_empty_input_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty input"):
        parse_logs(write(tmp_path / "empty.log", ""))
    with pytest.raises(InputError, match="blank"):
        parse_logs(write(tmp_path / "blank.log", "\n  \n\n"), "app")


def test_binary_file_is_skipped_with_reason(tmp_path: Path) -> None:
    write(tmp_path / "a.log", APP)
    write(tmp_path / "core.bin", bytes(range(256)) * 64)
    parsed = parse_logs(tmp_path)
    assert parsed.stats.events == 4
    assert [(Path(s.path).name, s.reason) for s in parsed.stats.skipped_files] == [("core.bin", "binary file (not text)")]
    with pytest.raises(InputError, match="binary"):
        parse_logs(tmp_path / "core.bin")


def test_invalid_utf8_is_replaced_and_counted(tmp_path: Path) -> None:
    raw = APP.encode().replace(b"refused", b"ref\xff\xfesed")
    parsed = parse_logs(write(tmp_path / "bad.log", raw))
    assert parsed.stats.decode_errors == 1 and parsed.stats.events == 4
    assert "\ufffd" in parsed.events["content"][0]


def test_ten_megabyte_line_is_truncated_and_counted(tmp_path: Path) -> None:
    big = "2026-11-02 14:05:01,123 INFO x.y: " + "A" * (10 * 1024 * 1024)
    parsed = parse_logs(write(tmp_path / "big.log", APP + big + "\n" + APP), max_line_bytes=65536)
    st = parsed.stats
    assert st.truncated == 1 and st.events == 9 and st.lines_read == 9
    ev = parsed.events
    row = ev[ev["truncated"]].iloc[0]
    assert row["line_no"] == 5 and len(row["content"]) < 65536
    assert ev["line_no"].tolist()[-1] == 9  # line numbers after the long line are still right


def test_file_vanishing_while_read_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "v.log", APP * 200_000)  # several blocks
    stats = ReadStats()
    blocks = iter_blocks(str(path), stats)
    first = next(blocks)
    os.remove(path)
    fh_closed_read = list(blocks)  # POSIX keeps the open file readable: all of it still arrives
    assert first.lines and sum(len(b.lines) for b in [first, *fh_closed_read]) == 800_000
    # a file that is gone before it is opened is a counted skip, not a crash
    stats2 = ReadStats()
    assert list(iter_blocks(str(path), stats2)) == []
    assert stats2.skipped_files[0].reason == "vanished before it could be read"


def test_file_vanishing_between_listing_and_reading(tmp_path: Path) -> None:
    write(tmp_path / "a.log", APP)
    gone = write(tmp_path / "b.log", APP)
    stream = iter_parsed(tmp_path, "app")
    os.remove(gone)
    frames = list(stream)
    assert sum(len(f) for f in frames) == 4


def test_unknown_format_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown log format 'nosuch'"):
        parse_logs(write(tmp_path / "a.log", APP), "nosuch")
    with pytest.raises(InputError, match="no <Content>"):
        parse_logs(tmp_path / "a.log", "<Date> <Time>")


def test_undetectable_format_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot detect"):
        parse_logs(write(tmp_path / "p.log", "just prose\nwithout any header\n"))


def test_chunks_have_the_same_columns_and_keep_order(tmp_path: Path) -> None:
    write(tmp_path / "a.log", APP * 50)
    chunks = list(iter_parsed(tmp_path / "a.log", chunk_size=30))
    assert all(len(c) <= 30 for c in chunks) and sum(len(c) for c in chunks) == 200
    assert len({tuple(c.columns) for c in chunks}) == 1
    line_nos = [n for c in chunks for n in c["line_no"]]
    assert line_nos == list(range(1, 201))


def test_directory_mixing_formats_is_detected_per_file(tmp_path: Path) -> None:
    write(tmp_path / "a_app.log", APP)
    write(tmp_path / "b_hdfs.log", "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for "
                                   "block blk_38865049064139660 terminating\n")
    write(tmp_path / "c_prose.log", "no header here\nnor here\n")
    parsed = parse_logs(tmp_path)
    st = parsed.stats
    assert parsed.format == "app,hdfs" and parsed.format_detected
    assert (st.events, st.parsed, st.unparsed, st.continuation_lines) == (7, 5, 2, 0)
    ev = parsed.events
    assert ev.loc[4, "template"] == "PacketResponder <*> for block <*> terminating"
    assert ev.loc[4, "level"] == "INFO" and str(ev.loc[4, "timestamp"]) == "2008-11-09 20:36:15"
