"""LogParser: template ids, merging rules, and the state round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anomalist.tools.drain_parser import LogParser
from anomalist.tools.errors import InputError
from anomalist.tools.parsing import parse_logs

MESSAGES = [
    "Failed password for alice from 10.0.0.1 port 22 ssh2",
    "Failed password for bob from 10.0.0.2 port 2222 ssh2",
    "Link ok",
    "Link error",
    "Accepted publickey for carol from 10.0.0.3 port 22 ssh2",
    "BLOCK* ask 10.0.0.9:50010 to delete blk_1 blk_2 blk_3 blk_4 blk_5 blk_6",
    "BLOCK* ask 10.0.0.8:50010 to delete blk_7 blk_8 blk_9 blk_10 blk_11 blk_12",
]


def test_ids_and_templates() -> None:
    p = LogParser(depth=4, sim_th=0.5)
    ids = [p.add(m) for m in MESSAGES]
    assert ids[5] == ids[6]  # mostly-masked messages still match their own cluster
    assert p.template(ids[5]) == "BLOCK* ask <*> to delete <*> <*> <*> <*> <*> <*>"
    assert ids[2] != ids[3]  # one word apart: two events
    assert p.template(ids[4]) == "Accepted publickey for carol from <*> port <*> ssh2"


def test_word_variants_become_a_variable() -> None:
    p = LogParser(depth=4, sim_th=0.5, word_variants=3)
    ids = [p.add(f"session closed for user {u}") for u in ("cyrus", "news", "test")]
    assert len(set(ids)) == 3
    fourth = p.add("session closed for user games")
    assert {p.resolve(i) for i in ids} == {fourth}
    assert p.template(fourth) == "session closed for user <*>"


def test_state_round_trip_keeps_ids(tmp_path: Path) -> None:
    p = LogParser()
    first = [p.add(m) for m in MESSAGES]
    state = tmp_path / "state.json"
    p.save(state)
    q = LogParser.load(state)
    assert [q.add(m) for m in MESSAGES] == first
    assert q.templates() == p.templates()
    new_id = q.add("a brand new message")
    assert new_id not in first


def test_parse_logs_with_state_path_keeps_ids_across_runs(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("".join(f"2026-11-02 14:05:0{i},000 INFO svc: {m}\n" for i, m in enumerate(MESSAGES)))
    state = tmp_path / "parser.json"
    one = parse_logs(log, state_path=state)
    two = parse_logs(log, state_path=state)
    assert one.events["template_id"].tolist() == two.events["template_id"].tolist()
    assert state.is_file()


def test_load_refuses_foreign_or_corrupt_files(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"py/object": "os.system"}))
    with pytest.raises(InputError, match="not an Anomalist parser state"):
        LogParser.load(bad)
    bad.write_text("{not json")
    with pytest.raises(InputError, match="cannot read"):
        LogParser.load(bad)
    with pytest.raises(InputError, match="not found"):
        LogParser.load(tmp_path / "missing.json")


def test_bad_config_raises() -> None:
    with pytest.raises(ValueError, match="depth"):
        LogParser(depth=2).add("x")
