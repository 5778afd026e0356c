"""Batch triage over shards: keyed parsing merged exactly (in process, and on a real local Ray cluster)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import require

from anomalist.agent.render import render
from anomalist.agent.scale import EngineReport, load_logs_sharded, ray_available
from anomalist.agent.settings import Settings
from anomalist.agent.triage import triage
from anomalist.agent.triage.inputs import load_logs
from anomalist.tools.drain_parser import LogParser, ShapeKeyer

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
K8S = Path(__file__).parent / "data" / "k8s"


def test_keyed_first_messages_rebuild_the_one_stream_parser() -> None:
    rng = random.Random(0)
    lines = ([f"user {i % 7} logged in from 10.0.{i % 3}.{i % 250} after {i % 13} ms" for i in range(3000)]
             + [f"disk /dev/sd{chr(97 + i % 4)} {i}% full" for i in range(500)]
             + [f"job {i % 5} of batch 1234 done in {i} s" for i in range(300)] + ["shutdown requested by admin"] * 5)
    rng.shuffle(lines)
    one = LogParser()
    ids, _ = one.add_batch(lines)
    keyer = ShapeKeyer()
    local, _ = keyer.add_batch(lines)
    assert len(keyer.firsts) < len(lines)
    fed = LogParser()
    cid = {i: fed.add_batch([c])[0][0] for i, c in enumerate(keyer.firsts)}
    assert [one.resolve(t) for t in ids] == [fed.resolve(cid[i]) for i in local]
    assert one.templates() == fed.templates()


def _same(a: Any, b: Any) -> None:
    assert a.counts.equals(b.counts)
    assert a.templates == b.templates and a.levels == b.levels and a.components == b.components
    assert a.first_seen == b.first_seen and a.last_seen == b.last_seen and a.totals == b.totals
    assert a.samples == b.samples
    assert a.services is not None and b.services is not None
    assert a.services.cells.sort_index().equals(b.services.cells.sort_index())
    assert {k: v for k, v in a.stats.items() if k != "notes"} == {k: v for k, v in b.stats.items() if k != "notes"}


@pytest.mark.parametrize("shard_mb", [0.004, 0.05])
@pytest.mark.parametrize("source", [EXAMPLES / "logs", K8S / "case_contacts_return" / "logs", K8S / "docker", K8S / "cri"])
def test_shards_in_process_equal_the_one_stream_parse(source: Path, shard_mb: float) -> None:
    s = Settings(triage={"shard_mb": shard_mb})
    one = load_logs([source], s, lambda *_: None)
    rep = EngineReport(engine="shards")
    many = load_logs_sharded([source], s, lambda *_: None, engine="shards", report=rep)
    _same(one, many)
    if source == EXAMPLES / "logs":
        assert rep.shards > 4  # the files were cut into byte ranges (events kept whole across the cuts)


def _core(report: Any) -> dict[str, Any]:
    d = json.loads(render(report, "json"))
    for k in ("id", "created_at", "timings"):
        d.pop(k)
    d["inputs"]["notes"] = [n for n in d["inputs"]["notes"] if not n.startswith("engine ")]
    return d


@pytest.fixture(scope="module")
def ray_cluster() -> Any:
    require(ray_available(), "Ray is not installed (pip install 'anomalist[ray]'; .ci/run installs it)")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_triage_equals_the_local_one(ray_cluster: Any, tmp_path: Path) -> None:
    base = {"data_dir": str(tmp_path), "llm": {"backend": "none"}}
    local = triage([EXAMPLES / "logs"], EXAMPLES / "metrics.csv", settings=Settings(**base))
    on_ray = triage([EXAMPLES / "logs"], EXAMPLES / "metrics.csv", engine="ray",
                    settings=Settings(**base, triage={"shard_mb": 0.05}))
    note = next(n for n in on_ray.inputs.notes if n.startswith("engine ray"))
    assert "2 worker(s)" in note and int(note.split(": ")[1].split(" ")[0]) > 4
    assert _core(local) == _core(on_ray)  # same findings, templates, root causes, evidence, everything
    assert local.findings and local.root_causes


@pytest.mark.parametrize("command", [["triage", str(EXAMPLES / "logs"), "--no-llm", "--quiet"], ["serve", "--port", "1"]])
def test_engine_ray_without_ray_exits_2_with_the_install_hint(tmp_path: Path, command: list[str]) -> None:
    code = ("import sys; sys.modules['ray'] = None; from anomalist.agent.cli.main import main; "
            f"sys.argv = ['anomalist', '--data-dir', {str(tmp_path)!r}, *{command!r}, '--engine', 'ray']; main()")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 2 and "pip install 'anomalist[ray]'" in p.stderr


def test_triage_api_checks_the_engine(tmp_path: Path) -> None:
    s = Settings(data_dir=str(tmp_path), llm={"backend": "none"})
    with pytest.raises(ValueError, match="engine must be"):
        triage([EXAMPLES / "logs"], None, settings=s, engine="spark")
    code = ("import sys; sys.modules['ray'] = None; from anomalist.agent.settings import Settings; from anomalist.agent.triage import triage\n"
            "from anomalist.tools.errors import InputError\n"
            f"try:\n    triage([{str(EXAMPLES / 'logs')!r}], None, engine='ray', settings=Settings(data_dir={str(tmp_path)!r}))\n"
            "except InputError as e:\n    print(e); sys.exit(2)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 2 and "pip install 'anomalist[ray]'" in p.stdout
