"""Incident store benchmark: import N incidents generated from the shared postmortems; query latency embedded
and against a local ``chroma run`` server.

    python -m anomalist.eval.bench_store --data ../shared/datasets/postmortems [--n 10000] [--queries 300] [--json]

Generation: incident i varies postmortem ``i % 127``: a service, region and duration go into its title and
summary, the sentences of the summary are rotated, 0-2 alert names from kube-prometheus-like names are added as
symptoms, severity and start time vary. Every generated text is distinct, so nothing is served from a cache.
Import time is measured from the JSONL file to the last upsert, with the model already loaded (its one-off load
time, and the one-off build of the int8 ONNX file when it is not cached yet, are reported apart). Queries: free text made from a random incident's words (a 12-word window of its
summary plus its service), a third of them with a service or severity filter, after 10 warm-up queries. Quality
check beside latency: how often the source incident is among the 5 hits, and how often the first hit varies the
same postmortem.
The server figure reuses the embedded store's vectors (copied record by record through the chromadb API), so
it measures query latency over HTTP, not a second import.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SERVICES = ["checkout", "payments", "search", "auth", "cart", "inventory", "shipping", "api-gateway", "billing",
            "notifications", "recommendations", "catalog", "orders", "identity", "storage", "kafka", "postgres",
            "redis", "elasticsearch", "ingress", "dns", "cdn", "scheduler", "metrics", "logging", "mail", "video",
            "uploads", "reports", "admin"]
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-south-1", "ap-northeast-1", "sa-east-1"]
ALERTS = ["KubePodCrashLooping", "KubePodNotReady", "KubeDeploymentReplicasMismatch", "NodeFilesystemAlmostOutOfSpace",
          "KubeNodeNotReady", "TargetDown", "PrometheusRemoteStorageFailures", "KubePersistentVolumeFillingUp",
          "etcdMembersDown", "KubeAPIErrorBudgetBurn", "CPUThrottlingHigh", "KubeHpaMaxedOut", "NodeClockSkewDetected",
          "AlertmanagerFailedToSendAlerts", "KubeletDown", "KubeJobFailed", "NodeNetworkReceiveErrs"]
SEVERITIES = ["critical", "high", "warning", "low", "info"]


def generate(postmortems: Path, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` incident dicts (our schema) varying the postmortems (see the module docstring)."""
    base = [json.loads(line) for line in postmortems.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        pm = base[i % len(base)]
        service, region = rng.choice(SERVICES), rng.choice(REGIONS)
        minutes = rng.randint(3, 600)
        sentences = re.split(r"(?<=[.!?])\s+", pm["summary"].strip())
        k = rng.randrange(len(sentences))
        summary = " ".join(sentences[k:] + sentences[:k])
        summary = f"{service} in {region} was affected for {minutes} minutes. {summary}"
        first = re.split(r"(?<=[.!?])\s", pm["summary"], maxsplit=1)[0][:150]
        started = t0 + timedelta(minutes=rng.randint(0, 2 * 365 * 24 * 60))
        out.append({
            "id": f"bench-{i:06d}", "title": f"[{service}/{region}] {first}", "summary": summary,
            "services": [service], "severity": rng.choice(SEVERITIES), "started_at": started.isoformat(),
            "resolved_at": (started + timedelta(minutes=minutes)).isoformat(),
            "symptoms": {"alerts": rng.sample(ALERTS, rng.randint(0, 2))},
            "tags": [pm.get("category", "").lower()], "links": [pm["link"]] if pm.get("link") else [],
            "source": "bench",
        })
    return out


Query = tuple[str, "dict[str, Any] | None", str]


def make_queries(incidents: list[dict[str, Any]], n: int, seed: int = 1) -> list[Query]:
    """(text, filters, id of the incident the text was taken from)."""
    rng = random.Random(seed)
    queries = []
    for j in range(n):
        inc = rng.choice(incidents)
        words = inc["summary"].split()
        s = rng.randrange(max(1, len(words) - 12))
        text = " ".join(words[s : s + 12]) + " " + inc["services"][0]
        filters: dict[str, Any] | None = None
        if j % 3 == 1:
            filters = {"services": [inc["services"][0]]}
        elif j % 3 == 2:
            filters = {"min_severity": "high"}
        queries.append((text, filters, inc["id"]))
    return queries


def _family(incident_id: str, n_base: int) -> int:
    return int(incident_id.rsplit("-", 1)[1]) % n_base


def _latency(store: Any, queries: list[Query], n_base: int, k: int = 5) -> dict[str, float]:
    """Query latency, and a sanity check of retrieval quality: how often the incident a query's words came from
    is among the ``k`` hits, and how often the first hit varies the same postmortem (its words are shared by about
    n / n_base incidents, so the source itself is often not first)."""
    for text, filters, _ in queries[:10]:
        store.similar_incidents(text, k=k, filters=filters)
    times = []
    found = same_family = 0
    cpu0 = time.process_time()
    for text, filters, source in queries[10:]:
        t = time.perf_counter()
        hits = store.similar_incidents(text, k=k, filters=filters)
        times.append((time.perf_counter() - t) * 1000)
        found += any(h.incident.id == source for h in hits)
        same_family += bool(hits) and _family(hits[0].incident.id, n_base) == _family(source, n_base)
    cpu_ms = (time.process_time() - cpu0) / max(len(times), 1) * 1000
    n = max(len(times), 1)
    times.sort()
    return {"query_cpu_ms_mean": round(cpu_ms, 2), "query_p50_ms": round(statistics.median(times), 2),
            "query_p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
            "query_max_ms": round(times[-1], 2), "n_queries": len(times),
            f"source_in_top{k}": round(found / n, 3), "top1_same_postmortem": round(same_family / n, 3)}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(data: Path, n: int = 10_000, n_queries: int = 300, server: bool = True,
        import_threads: int | None = None, backend: str = "onnx-int8") -> dict[str, Any]:
    """Run the benchmark; returns a JSON-able dict of figures (with the load average at each step)."""
    from anomalist.tools.embeddings import get_embedder
    from anomalist.tools.store import IncidentStore, import_incidents
    from anomalist.tools.store.store import INCIDENTS

    postmortems = data / "postmortems.jsonl" if data.is_dir() else data
    result: dict[str, Any] = {"n": n, "cpu_count": os.cpu_count(), "import_threads": import_threads,
                              "embedding_backend": backend}
    with tempfile.TemporaryDirectory(prefix="anomalist-bench-") as tmp:
        root = Path(tmp)
        incidents = generate(postmortems, n)
        n_base = sum(1 for line in postmortems.read_text(encoding="utf-8").splitlines() if line.strip())
        src = root / "incidents.jsonl"
        src.write_text("".join(json.dumps(i) + "\n" for i in incidents), encoding="utf-8")
        t = time.perf_counter()
        embedder = get_embedder(backend=backend)
        embedder.encode(["warm up"])  # loads the model (and builds the int8 ONNX file if it is not cached)
        result["model_load_s"] = round(time.perf_counter() - t, 2)
        result["embedding_space"] = embedder.space
        store = IncidentStore.open("embedded", path=root / "db", create=True, embedder=embedder,
                                   import_threads=import_threads)
        load_before = _load()
        cpu0 = time.process_time()
        summary = import_incidents(src, store)
        cpu_import = time.process_time() - cpu0
        result["embedded"] = {"import_s": summary.seconds, "import_cpu_s": round(cpu_import, 1),
                              "imported": summary.added,
                              "rejected": len(summary.rejected), "per_s": round(summary.added / summary.seconds, 1),
                              "load_during_import": f"{load_before} -> {_load()}"}
        t = time.perf_counter()
        store.warm_up()
        result["embedded"]["keyword_index_build_s"] = round(time.perf_counter() - t, 2)
        queries = make_queries(incidents, n_queries)
        result["embedded"].update(_latency(store, queries, n_base))
        result["embedded"]["load"] = _load()
        if server:
            result["server"] = _server_part(root, store, queries, embedder, INCIDENTS, n_base)
        store.close()
    return result


def _server_part(root: Path, store: Any, queries: list[Query], embedder: Any, name: str, n_base: int) -> dict[str, Any]:
    import httpx

    from anomalist.tools.store import IncidentStore

    exe = Path(sys.executable).with_name("chroma")
    port = _free_port()
    log = (root / "chroma.log").open("wb")
    proc = subprocess.Popen([str(exe) if exe.exists() else "chroma", "run", "--path", str(root / "srv"),
                             "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        srv = IncidentStore.open("server", host="127.0.0.1", port=port, embedder=embedder)
        src, dst = store._col(name), srv._col(name)
        t = time.perf_counter()
        offset = 0
        while True:
            got = src.get(include=["embeddings", "metadatas"], limit=2000, offset=offset)
            if not got["ids"]:
                break
            dst.upsert(ids=got["ids"], embeddings=got["embeddings"], metadatas=got["metadatas"])
            offset += len(got["ids"])
        srv._bump(name)
        out: dict[str, Any] = {"copy_s": round(time.perf_counter() - t, 2), "count": srv.count()}
        t = time.perf_counter()
        srv.warm_up()
        out["keyword_index_build_s"] = round(time.perf_counter() - t, 2)
        out.update(_latency(srv, queries, n_base))
        out["load"] = _load()
        srv.close()
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="The postmortems dataset dir or its JSONL file.")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--no-server", action="store_true")
    p.add_argument("--import-threads", type=int, default=None, help="threads for import embedding")
    p.add_argument("--backend", choices=["onnx-int8", "torch"], default="onnx-int8",
                   help="embedding backend (the store's default is onnx-int8)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    res = run(args.data, n=args.n, n_queries=args.queries, server=not args.no_server,
              import_threads=args.import_threads, backend=args.backend)
    print(json.dumps(res, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
