"""Golden templates: a few real Loghub lines per shared preset (via the ``datasets`` fixture), hand-written lines in
the public header formats of the other presets, and format detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from anomalist.tools import logformats
from anomalist.tools.errors import InputError
from anomalist.tools.parsing import parse_logs

# (system, 1-based line number, expected template) from the first 100 lines of <System>_2k.log
GOLDEN = [
    ("HDFS", 1, "PacketResponder <*> for block <*> terminating"),
    ("HDFS", 3, "BLOCK* NameSystem.addStoredBlock: blockMap updated: <*> is added to <*> size <*>"),
    ("Hadoop", 1, "Created MRAppMaster for application <*>"),
    ("Hadoop", 2, "Executing with tokens:"),
    ("Spark", 2, "Changing view acls to: yarn,curi"),
    ("Spark", 3, "Changing modify acls to: yarn,curi"),
    ("Zookeeper", 1, "Notification time out: <*>"),
    ("Zookeeper", 6, "Connection broken for id <*>, my id = <*>, error ="),
    ("BGL", 1, "instruction cache parity error corrected"),
    ("BGL", 5, "<*> double-hummer alignment exceptions"),
    ("HPC", 1, "Component State Change: Component <*> is in the unavailable state (HWID=<*>)"),
    ("Linux", 2, "check pass; user unknown"),
    ("Android", 4, "Skipping AppWindowToken{<*> token=Token{<*> ActivityRecord{<*> u0 <*> t761}}} -- going to hide"),
    ("Apache", 2, "mod_jk child workerEnv in error state <*>"),
    ("Apache", 3, "jk2_init() Found child <*> in scoreboard slot <*>"),
    ("OpenSSH", 1, "reverse mapping checking getaddrinfo for <*> [<*>] failed - POSSIBLE BREAK-IN ATTEMPT!"),
    ("OpenSSH", 6, "Failed password for invalid user <*> from <*> port <*> ssh2"),
]


@pytest.fixture(scope="module")
def first_lines(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out: dict[str, Path] = {}
    tmp = tmp_path_factory.mktemp("loghub-heads")
    for system in sorted({g[0] for g in GOLDEN}):
        raw = (datasets / "loghub_2k" / system / f"{system}_2k.log").read_bytes().split(b"\n")[:100]
        out[system] = tmp / f"{system}.log"
        out[system].write_bytes(b"\n".join(raw) + b"\n")
    return out


@pytest.mark.parametrize(("system", "line", "template"), GOLDEN)
def test_golden_templates_on_real_lines(first_lines: dict[str, Path], system: str, line: int, template: str) -> None:
    parsed = parse_logs(first_lines[system], system)
    assert parsed.stats.unparsed == 0 and parsed.stats.continuation_lines == 0
    ev = parsed.events.set_index("line_no")
    assert ev.loc[line, "template"] == template


def test_real_lines_fields(first_lines: dict[str, Path]) -> None:
    ev = parse_logs(first_lines["HDFS"], "hdfs").events
    assert (ev["level"][0], ev["component"][0], str(ev["timestamp"][0])) == (
        "INFO", "dfs.DataNode$PacketResponder", "2008-11-09 20:36:15")
    assert ev["params"][0] == ["1", "blk_38865049064139660"]
    zk = parse_logs(first_lines["Zookeeper"], "Zookeeper").events
    assert zk["component"][0] == "FastLeaderElection" and zk["level"][0] == "INFO"
    bgl = parse_logs(first_lines["BGL"], "BGL").events
    assert str(bgl["timestamp"][0]) == "2005-06-03 15:42:50.675872" and bgl["label"][0] == "-"


@pytest.mark.parametrize("system", sorted({g[0] for g in GOLDEN}))
def test_detection_picks_an_equivalent_format(first_lines: dict[str, Path], system: str) -> None:
    parsed = parse_logs(first_lines[system])
    assert parsed.format_detected
    # Linux and OpenSSH lines are RFC 3164 syslog, Hadoop lines our generic app format: on a tie the generic
    # preset wins, and it splits these lines the same way
    expected = {"Linux": {"linux", "syslog"}, "OpenSSH": {"openssh", "syslog"}, "Hadoop": {"hadoop", "app"}}.get(
        system, {system.lower()})
    assert parsed.format in expected


# Hand-written lines in the public Loghub header formats of the systems we do not have.
HELD_OUT = {
    "thunderbird": (
        "- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: session closed for user bob",
        "crond(pam_unix)", "2005-11-09 20:01:01", "session closed for user bob"),
    "windows": (
        "2016-09-28 04:30:30, Info                  CBS    Loaded Servicing Stack v6.1.7601.23505 with Core: "
        "C:\\Windows\\winsxs\\amd64_stack\\cbscore.dll", "CBS", "2016-09-28 04:30:30",
        "Loaded Servicing Stack <*> with Core: <*>"),
    "mac": (
        "Jul  1 09:00:55 calvisitor-10-105-160-95 kernel[0]: Thunderbolt HPD packet for route = 0x0 port = 11 unplug = 0",
        "kernel", None, "Thunderbolt HPD packet for route = <*> port = <*> unplug = <*>"),
    "openstack": (
        "nova-api.log.1.2017-05-16_13:53:08 2017-05-16 00:00:00.008 25746 INFO nova.osapi_compute.wsgi.server "
        "[req-38101a0b-2096-447d-96ea-a692162415ae 113d3a99c3 54fadb412c - - -] 10.11.10.1 "
        '"GET /v2/54fadb412c4e40cd/servers/detail HTTP/1.1" status: 200 len: 1893 time: 0.2477829',
        "nova.osapi_compute.wsgi.server", "2017-05-16 00:00:00.008000",
        '<*> "GET <*> HTTP/<*>" status: <*> len: <*> time: <*>'),
    "healthapp": ("20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579", "Step_LSC",
                  "2017-12-23 22:15:29.606000", "onStandStepChanged <*>"),
    "proxifier": ("[10.30 16:49:06] chrome.exe - proxy.cse.cuhk.edu.hk:5070 open through proxy "
                  "proxy.cse.cuhk.edu.hk:5070 HTTPS", "chrome.exe", None, "<*> open through proxy <*> HTTPS"),
    "syslog": ("<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8", "su", None,
               "'su <*>' failed for lonvick on <*>"),
    "syslog5424": ("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
                   '[exampleSDID@32473 iut="3"] An application event log entry', "evntslog",
                   "2003-10-11 22:14:15.003000", "An application event log entry"),
}


@pytest.mark.parametrize("name", sorted(HELD_OUT))
def test_other_presets_parse_and_detect(tmp_path: Path, name: str) -> None:
    line, component, ts, template = HELD_OUT[name]
    path = tmp_path / f"{name}.log"
    path.write_text(line + "\n")
    parsed = parse_logs(path, name, year=2020)
    ev = parsed.events
    assert parsed.stats.parsed == 1
    assert ev["component"][0] == component
    if ts is not None:
        assert str(ev["timestamp"][0]) == ts
    else:
        assert ev["timestamp"][0].year == 2020  # formats without a year take the reference year
    assert ev["template"][0] == template
    fmt, rate = logformats.detect_format([line])
    assert rate == 1.0 and (fmt.name == name or fmt.matches(line))


def test_syslog_priority_becomes_a_level(tmp_path: Path) -> None:
    path = tmp_path / "s.log"
    path.write_text("<34>Oct 11 22:14:15 host su[1]: failed\n<14>Oct 11 22:14:16 host su: ok then\n")
    ev = parse_logs(path, "syslog").events
    assert list(ev["level"]) == ["CRIT", "INFO"]


def test_jsonl_with_configurable_fields(tmp_path: Path) -> None:
    path = tmp_path / "j.log"
    path.write_text(
        '{"ts": "2026-11-02T14:05:01Z", "sev": "error", "logger": "db", "msg": "connection 12 refused"}\n'
        '{"ts": "2026-11-02T14:05:02Z", "sev": "info", "logger": "db", "msg": "connection 13 refused"}\n'
        "not json at all\n")
    parsed = parse_logs(path, "jsonl", json_fields={"message": "msg", "timestamp": "ts", "level": "sev"})
    ev = parsed.events
    assert parsed.stats.parsed == 2 and parsed.stats.unparsed == 1
    assert list(ev["level"][:2]) == ["ERROR", "INFO"] and ev["component"][0] == "db"
    assert str(ev["timestamp"][0]) == "2026-11-02 14:05:01"
    assert ev["template"][0] == "connection <*> refused" and ev["template_id"][0] == ev["template_id"][1]
    detected = parse_logs(path, json_fields={"message": "msg", "timestamp": "ts", "level": "sev"})
    assert detected.format == "jsonl" and detected.format_detected


def test_custom_format_string(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    path.write_text("2026-11-02 14:05:01 [worker-3] WARN queue.consumer - lag is 120 messages\n")
    ev = parse_logs(path, "<Date> <Time> [<Thread>] <Level> <Component> - <Content>").events
    assert (ev["thread"][0], ev["level"][0], ev["component"][0]) == ("worker-3", "WARN", "queue.consumer")
    assert ev["template"][0] == "lag is <*> messages"
    assert str(ev["timestamp"][0]) == "2026-11-02 14:05:01"


def test_app_is_detected_over_lookalike_presets() -> None:
    lines = ["2026-11-02 14:05:01,123 ERROR checkout.db: connection refused",
             "2026-11-02 14:05:02.5 INFO checkout.api: ok",
             "2026-11-02T14:05:03 WARNING payments: retry 2"]
    fmt, rate = logformats.detect_format(lines)
    assert (fmt.name, rate) == ("app", 1.0)


def test_preset_names_are_case_insensitive() -> None:
    assert logformats.get_format("hDfS").name == "hdfs"
    assert len([n for n in logformats.preset_names() if n in {s.lower() for s in logformats.LOGHUB_SYSTEMS}]) == 16
    with pytest.raises(InputError):
        logformats.get_format("hdfs2")


# ---- common application logs without --format ----------------------------------------------------------------
DATA = Path(__file__).parent / "data"


def test_dpkg_log_parses_without_a_format() -> None:
    """Real lines of this machine's /var/log/dpkg.log: a leading timestamp, no level."""
    parsed = parse_logs(DATA / "dpkg.log")
    assert parsed.format_detected and parsed.format == "timestamped"
    ev = parsed.events
    assert parsed.stats.unparsed == 0 and len(ev) == 12
    assert str(ev["timestamp"][0]) == "2025-06-24 14:36:25" and ev["timestamp"].notna().all()
    assert ev["template"].str.startswith("status").any()


def test_nginx_access_log_parses_without_a_format_and_levels_follow_the_status() -> None:
    """Real lines written by nginx 1.22 (default 'combined' format; requests answered 200, 404 and 502)."""
    parsed = parse_logs(DATA / "nginx_access.log")
    assert parsed.format_detected and parsed.format == "access"
    ev = parsed.events
    assert parsed.stats.unparsed == 0 and len(ev) == 7
    assert list(ev["level"]) == ["INFO", "INFO", "WARN", "ERROR", "ERROR", "INFO", "ERROR"]
    assert str(ev["timestamp"][0]) == "2026-12-03 18:46:27"  # +0000: naive UTC
    assert ev["template"][0].startswith('"GET')


def test_python_logging_default_lines_parse_without_a_format(tmp_path: Path) -> None:
    """Lines written by the real logging module with basicConfig's default format ("LEVEL:logger:message")."""
    import subprocess
    import sys

    path = tmp_path / "app.log"
    code = "\n".join([
        "import logging, sys",
        "logging.basicConfig(filename=sys.argv[1], level=logging.DEBUG)",
        "logging.warning('disk usage at 91%')",
        "logging.getLogger('checkout.db').error('connection refused (10.0.0.5:5432)')",
        "logging.getLogger('urllib3.connectionpool').debug('Starting new HTTPS connection (1): api.example.com:443')",
    ])
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
    parsed = parse_logs(path)
    assert parsed.format_detected and parsed.format == "pylogging"
    ev = parsed.events
    assert list(ev["level"]) == ["WARN", "ERROR", "DEBUG"]  # levels are normalised
    assert list(ev["component"]) == ["root", "checkout.db", "urllib3.connectionpool"]
    assert parsed.stats.unparsed == 0


# one real-looking line per leading-timestamp form the generic fallback must take without --format (level optional)
FALLBACK_LINES = [
    ("2024-03-05T14:22:01Z INFO worker started job 17", "INFO"),  # ISO 8601
    ("2024-03-05T14:22:01.123456+01:00 WARN cache miss for key 42", "WARN"),  # RFC 3339
    ("Mar  5 14:22:01 web01 nginx: upstream timed out (110: Connection timed out)", None),  # syslog
    ("2024-03-05 14:22:01,123 ERROR [main] com.acme.Db - connection refused", "ERROR"),  # YYYY-MM-DD HH:MM:SS,fff
    ("2024-03-05 14:22:01.123 DEBUG polling queue orders", "DEBUG"),  # YYYY-MM-DD HH:MM:SS.fff
    ("2024-03-05 14:22:01 backup finished in 31 s", None),  # no level
    ("1709648521 INFO request served in 12 ms", "INFO"),  # epoch seconds
    ("1709648521123 ERROR disk full on /dev/sda1", "ERROR"),  # epoch milliseconds
]


@pytest.mark.parametrize(("line", "level"), FALLBACK_LINES)
def test_leading_timestamp_lines_parse_without_a_format(tmp_path: Path, line: str, level: str | None) -> None:
    path = tmp_path / "app.log"
    path.write_text(line + "\n" + line + "\n", encoding="utf-8")
    parsed = parse_logs(path)
    assert parsed.format_detected and parsed.format in ("timestamped", "syslog")
    ev = parsed.events
    assert parsed.stats.unparsed == 0 and ev["timestamp"].notna().all()
    assert str(ev["timestamp"][0]).startswith(("2024-03-05", f"{ev['timestamp'][0].year}-03-05"))
    assert (ev["level"][0] if isinstance(ev["level"][0], str) else None) == level
