"""Kubernetes container logs: runtime wrappers, node layouts, pod -> service, and parsing them (real excerpts of the
Nezha TrainTicket pod logs in tests/data/k8s)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anomalist.tools import logformats
from anomalist.tools.containers import ServiceMapper, detect_wrapper, pod_of_path, service_of_pod, unwrap
from anomalist.tools.parsing import parse_logs

DATA = Path(__file__).parent / "data" / "k8s"
DOCKER = DATA / "docker"
CRI = DATA / "cri"
POD = "ts-contacts-service-866bd68c97-xcqfx"


@pytest.mark.parametrize(("pod", "service"), [
    ("ts-contacts-service-866bd68c97-xcqfx", "ts-contacts-service"),  # Deployment: <name>-<rs hash>-<pod id>
    ("ts-station-food-service-dc4d75dd-fw6ft", "ts-station-food-service"),
    ("redis-cart-0", "redis-cart"),  # StatefulSet ordinal
    ("fluentd-x7k2p", "fluentd"),  # DaemonSet pod id
    ("checkout", "checkout"),  # a name without a controller suffix is its own service
    ("ts-ui-dashboard", "ts-ui-dashboard"),  # "dashboard" has vowels: not a generated suffix
])
def test_pod_names_map_to_their_service(pod: str, service: str) -> None:
    assert service_of_pod(pod) == service


def test_service_map_overrides_come_first_and_may_use_groups() -> None:
    m = ServiceMapper({r"ts-(.+)-service-.*": r"\1", r"legacy-.*": "monolith"})
    assert m("ts-contacts-service-866bd68c97-xcqfx") == "contacts"
    assert m("legacy-7d9f8-abcde") == "monolith"
    assert m("redis-cart-0") == "redis-cart"  # no override matches: the default rule
    with pytest.raises(ValueError, match="does not compile"):
        ServiceMapper({"(": "x"})


def test_pod_and_service_come_from_both_node_layouts() -> None:
    uid = "3bf09d90-458c-54ae-87e4-e48b989320e7"
    ref = pod_of_path(f"/var/log/pods/train_{POD}_{uid}/server/0.log")
    assert ref is not None and (ref.pod, ref.namespace, ref.container, ref.service) == (
        POD, "train", "server", "ts-contacts-service")
    rotated = pod_of_path(f"/copy/of/node/pods/train_{POD}_{uid}/server/3.log.20230129-084222.gz")
    assert rotated is not None and rotated.pod == POD  # recognised wherever the folders were copied to
    link = pod_of_path(f"/var/log/containers/{POD}_train_server-{'ab' * 32}.log")
    assert link is not None and (link.pod, link.namespace, link.container) == (POD, "train", "server")
    assert pod_of_path("/var/log/syslog") is None
    assert pod_of_path("/var/log/pods/not-a-pod-dir/server/0.log") is None


def test_docker_records_unwrap_with_partials_joined_and_broken_lines_kept() -> None:
    lines = next(DOCKER.rglob("0.log")).read_text(encoding="utf-8").splitlines()
    assert detect_wrapper(lines) == "docker"
    u = unwrap(lines, "docker")
    assert u.joined == 1  # the record split without its newline (dockerd does that past 16 KiB) is one line again
    assert len(u.texts) == len(lines) - 1
    assert len(u.broken) == 1
    broken = u.texts[next(iter(u.broken))]
    assert broken.startswith('{"log":"18:06:03.361 INFO') and u.times[next(iter(u.broken))] is None
    first = json.loads(lines[0])
    assert u.texts[0] == first["log"].rstrip("\n") and u.streams[0] == "stdout"
    assert u.times[0] is not None and u.times[0].isoformat().startswith(first["time"][:26])


def test_cri_records_unwrap_with_partial_tags() -> None:
    lines = next(CRI.rglob("*.log")).read_text(encoding="utf-8").splitlines()
    assert detect_wrapper(lines) == "cri"
    u = unwrap(lines, "cri")
    assert u.joined == 1 and len(u.broken) == 1
    assert u.texts[next(iter(u.broken))] == "not a CRI record at all"
    assert all(t.split(" ", 1)[0].count(":") == 2 for i, t in enumerate(u.texts) if i not in u.broken)
    assert detect_wrapper(["2026-11-02 14:05:01,123 ERROR checkout.db: plain line"]) is None


@pytest.mark.parametrize("root", [DOCKER, CRI])
def test_pod_logs_parse_without_a_format(root: Path) -> None:
    parsed = parse_logs(root)
    st, ev = parsed.stats, parsed.events
    assert st.format == "timestamped" and st.format_detected  # the Java line inside: time of day, level, logger
    assert st.container_format in ("docker", "cri") and st.container_invalid == 1
    # Every line is accounted for: the broken record is an unparsed event, kept and counted, never dropped.
    assert st.events == st.container_records - st.container_partials_joined + st.container_invalid
    assert st.unparsed == 1 and not ev["parsed"].all()
    assert set(ev["service"]) == {"ts-contacts-service"} and set(ev["pod"]) == {POD}
    ok = ev[ev["parsed"]]
    # The runtime's UTC clock is the timestamp (the application's own clock says 16:43, UTC+8, without a date).
    assert ok["timestamp"].notna().all() and (ok["timestamp"].dt.hour == 8).all()
    assert set(ok["level"]) <= {"INFO", "ERROR", "WARN"} and ok["component"].str.contains("#").all()
    assert ev["timestamp"].isna().sum() == 1  # the broken record has no readable time


@pytest.mark.parametrize(("line", "level", "component", "content"), [
    # Logback's default pattern (time of day, [thread], level, logger - message)
    ("16:42:22.382 [http-nio-8080-exec-1] INFO  com.example.checkout.Api - order 42 accepted", "INFO",
     "com.example.checkout.Api", "order 42 accepted"),
    # Debian's dpkg.log: a leading timestamp and no level
    ("2025-06-24 14:36:25 status installed libc-bin:amd64 2.36", None, None, "status installed libc-bin:amd64 2.36"),
    # Go's log package with a level word
    ("2023/01/29 08:42:22 [error] 12#12: *1 open() failed", "error", None, "12#12: *1 open() failed"),
])
def test_generic_timestamped_lines_parse_without_a_format(line: str, level: str | None, component: str | None,
                                                          content: str) -> None:
    fmt, rate = logformats.detect_format([line])
    assert fmt.name == "timestamped" and rate == 1.0
    m = fmt.regex.match(line)
    assert m is not None
    assert (m.group("Level"), m.group("Component"), m.group("Content")) == (level, component, content)


def test_specific_presets_still_win_over_the_generic_format() -> None:
    fmt, _ = logformats.detect_format(["2026-11-02 14:05:01,123 ERROR checkout.db: connection refused"])
    assert fmt.name == "app"
    fmt, _ = logformats.detect_format(["I0129 08:42:22.383150       1 controller.go:123] synced pods"])
    assert fmt.name == "klog"
