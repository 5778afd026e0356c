"""Variable-length variables and adjacent-variable runs: one event keeps one template (tiny exact cases)."""

from __future__ import annotations

import pytest

from anomalist.tools.drain_parser import LogParser, varlen_key
from anomalist.tools.masking import CanonicalRules, canonical

# real-looking lines: an API log whose client field is a comma-separated proxy chain (OpenStack-style), a proxy's
# close line with and without the human-readable size (Proxifier-style), and a namenode's delete list (HDFS)
PROXY_CHAIN = [
    '10.11.10.1,10.11.21.138 "GET /v2/54fadb41/servers/detail HTTP/1.1" status: 200 len: 1893 time: 0.2477829',
    '10.11.10.1 "GET /v2/e9746973/servers/detail HTTP/1.1" status: 200 len: 1583 time: 0.1904030',
    '10.11.10.1,10.11.21.130,10.11.21.131 "GET /v2/54fadb41/servers/detail HTTP/1.1" status: 200 len: 211 time: 0.1',
]
CLOSE = [
    "proxy.cse.cuhk.edu.hk:5070 close, 1190 bytes (1.16 KB) sent, 1671 bytes (1.63 KB) received, lifetime 00:02",
    "proxy.cse.cuhk.edu.hk:5070 close, 0 bytes sent, 0 bytes received, lifetime <1 sec",
    "proxy.cse.cuhk.edu.hk:5070 close, 403 bytes sent, 426 bytes received, lifetime 00:01",
    "proxy.cse.cuhk.edu.hk:5070 close, 2345 bytes (2.29 KB) sent, 30 bytes received, lifetime 01:12",
]
DELETE = [
    "BLOCK* ask 10.250.14.224:50010 to delete  blk_-1201 blk_-2202 blk_3303",
    "BLOCK* ask 10.250.14.38:50010 to delete  blk_-1204",
    "BLOCK* ask 10.251.71.16:50010 to delete  blk_-1205 blk_-2206",
]


def _ids(parser: LogParser, lines: list[str]) -> set[int]:
    return {parser.add(line) for line in lines}


def test_comma_list_of_variables_is_one_variable() -> None:
    assert canonical('<*>,<*>,<*> "GET <*> HTTP/<*>"') == '<*> "GET <*> HTTP/<*>"'
    assert canonical("bnds=[<*>,<*>]") == "bnds=[<*>]"
    assert canonical("<*>, <*>") == "<*>, <*>"  # a list written with spaces is a run of tokens: see varlen_key
    assert canonical("<*>,<*>", CanonicalRules(lists=False)) == "<*>,<*>"
    # host:port lists need both rules, in either order
    assert canonical("<*>:<*>,<*>:<*>") == "<*>"
    assert canonical("<*>:<*>", CanonicalRules(hostport=False)) == "<*>:<*>"


def test_proxy_chain_lines_share_one_template() -> None:
    parser = LogParser(depth=5, sim_th=0.5)
    assert len(_ids(parser, PROXY_CHAIN)) == 1
    tid = parser.add(PROXY_CHAIN[0])
    assert parser.template(tid) == '<*> "GET <*> HTTP/<*>" status: <*> len: <*> time: <*>'
    # without the rule the lists open templates of their own
    assert len(_ids(LogParser(depth=5, sim_th=0.5, lists=False), PROXY_CHAIN)) > 1


def test_varlen_key() -> None:
    assert varlen_key("<*> close, <*> bytes (<*>) sent, <*> bytes received") == "<*> close, <*> sent, <*> received"
    assert varlen_key("ask <*> to delete <*> <*> <*>") == "ask <*> to delete <*>"
    assert varlen_key("pipeline <*>, <*>: bad datanode <*>") == "pipeline <*>: bad datanode <*>"
    assert varlen_key("lifetime <*> sec") == "lifetime <*>"
    # words are never dropped: a different constant is a different key
    assert varlen_key("<*> bytes sent") != varlen_key("<*> bytes received")
    assert varlen_key("no variables (here)") == "no variables (here)"


@pytest.mark.parametrize("lines", [CLOSE, DELETE], ids=["sizes", "lists"])
def test_variable_length_variables_keep_one_template(lines: list[str]) -> None:
    parser = LogParser(depth=4, sim_th=0.5)
    assert len(_ids(parser, lines)) == 1
    assert len(_ids(LogParser(depth=4, sim_th=0.5, varlen=False), lines)) > 1


def test_bytes_sent_with_and_without_the_parenthesised_size() -> None:
    parser = LogParser()
    a = parser.add("120 bytes sent")
    b = parser.add("120 bytes (3 KB) sent")
    assert a == b
    assert parser.template(a) == "<*> bytes sent"
    # but "sent" and "received" stay two events
    assert parser.add("120 bytes (3 KB) received") != a


def test_key_value_pairs_with_different_keys_are_different_events() -> None:
    lines = ["getRecentTasks: num=3,flags=0x1,totalTasks=5", "getRecentTasks: topActivity=ComponentInfo{com.a/.B}"]
    assert len(_ids(LogParser(depth=6, sim_th=0.2), lines)) == 2
    assert len(_ids(LogParser(depth=6, sim_th=0.2, key_events=False), lines)) == 1
    # same key, different value: one event
    same = LogParser(depth=3, sim_th=0.2)  # depth 3: only the first token routes, so Drain compares the two
    assert len(_ids(same, ["wake lock tag=alarm released", "wake lock tag=sync released"])) == 1


def test_new_switches_round_trip_through_the_state() -> None:
    parser = LogParser(hostport=False, lists=False, varlen=False, key_events=False)
    parser.add("120 bytes sent")
    again = LogParser.from_dict(parser.to_dict())
    assert (again.hostport, again.lists, again.varlen, again.key_events) == (False, False, False, False)
    assert again.add("120 bytes sent") == parser.add("120 bytes sent")
    # a state written before these switches existed loads with the defaults
    old = parser.to_dict()
    for k in ("hostport", "lists", "varlen", "key_events"):
        del old["config"][k]
    assert LogParser.from_dict(old).varlen is True
