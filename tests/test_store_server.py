"""The store against a real ``chroma run`` server (started on a free loopback port, stopped after)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_store_helpers import SAMPLE_INCIDENTS, chroma_server

from anomalist.tools.memory_tools import make_memory_tools
from anomalist.tools.store import Incident, IncidentStore, StoreUnavailable

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.server


@pytest.fixture(scope="session")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    root = tmp_path_factory.mktemp("chroma-server")
    with chroma_server(root / "data") as (host, port, _proc):
        yield host, port


def test_server_roundtrip_and_second_client_sees_writes(chroma: tuple[str, int]) -> None:
    host, port = chroma
    a = IncidentStore.open("server", host=host, port=port)
    b = IncidentStore.open("server", host=host, port=port)
    res = a.upsert_incidents([Incident.model_validate(i) for i in SAMPLE_INCIDENTS])
    assert res.added == len(SAMPLE_INCIDENTS)
    assert b.similar_incidents("TLS certificate expired", k=1)[0].incident.id == "inc-00005"
    # b's keyword index is fresh after a's later write (revision stamp), and a re-upsert is a no-op.
    a.upsert_incidents([Incident(id="srv-new", title="Zookeeper session expirations", summary="ZK quorum lost.")])
    hit = b.similar_incidents("zookeeper session expirations", k=1)[0]
    assert hit.incident.id == "srv-new" and "keyword" in hit.why
    assert a.upsert_incidents([Incident.model_validate(SAMPLE_INCIDENTS[0])]).unchanged == 1
    a.close()
    b.close()


_WRITER = """
import sys
from anomalist.tools.store import IncidentStore, Incident
w, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = IncidentStore.open("server", host=host, port=port, import_threads=1)
for start in range(0, 500, 25):  # 20 upsert calls per process, interleaved with the other writers
    s.upsert_incidents([Incident(id=f"w{w}-{i:03d}", title=f"writer {w} incident {i}",
                                 summary=f"Synthetic incident {i} from writer {w}.", services=[f"svc{w}"])
                        for i in range(start, start + 25)])
print("done", s.count())
"""


@pytest.mark.slow
def test_concurrent_writers_lose_nothing(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("chroma-concurrent")
    with chroma_server(root / "data") as (host, port, _proc):
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(w), host, str(port)], cwd=REPO, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(4)]
        outs = [p.communicate(timeout=600) for p in procs]
        for p, (_out, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err[-2000:]
        s = IncidentStore.open("server", host=host, port=port)
        assert s.count() == 2000
        assert len(s.list_incidents({"services": ["svc2"]}, limit=1000)) == 500
        assert s.similar_incidents("writer 3 incident 417", k=1)[0].incident.id == "w3-417"
        s.close()


def test_server_going_away_is_a_clear_error_and_tools_degrade(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("chroma-dies")
    with chroma_server(root / "data") as (host, port, proc):
        s = IncidentStore.open("server", host=host, port=port)
        s.upsert_incidents([Incident.model_validate(SAMPLE_INCIDENTS[0])])
        tools = {t.name: t for t in make_memory_tools(s)}
        proc.terminate()
        proc.wait(timeout=15)
        t0 = time.perf_counter()
        with pytest.raises(StoreUnavailable, match=f"{host}:{port}"):
            s.similar_incidents("connection pool", k=1)
        out = tools["similar_incidents"].invoke({"query": "connection pool"})
        assert out["status"] == "error" and out["degraded"] is True and "unavailable" in out["message"]
        assert time.perf_counter() - t0 < 10.0
