"""Triage benchmarks: a 1,000,000-line log batch (no metrics, LLM on the top 5) and ``make demo`` end to end.

Targets (issue 6): the 1M-line triage under 120 s with peak RSS under 2 GiB; ``make demo`` under 60 s.

Usage::

    python -m anomalist.eval.bench_triage                # both
    python -m anomalist.eval.bench_triage --lines 200000 --skip-demo
    python -m anomalist.eval.bench_triage --json

The batch is the example scenario's four hours with normal traffic scaled up (``eval.scenario.write_large``), so
the injected incident is still in it; the triage runs in a fresh child process (so its peak RSS is its own) with
the embedded LLM and the example store. The load average is printed next to every figure: on a shared machine
wall-clock time is inflated by other work.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _child(logs_dir: str, data_dir: str, out: str) -> None:
    """Runs in the child: one triage, its timings as JSON on stdout."""
    from anomalist.agent.render import render
    from anomalist.agent.settings import load_settings
    from anomalist.agent.triage import triage
    from anomalist.eval import scenario

    settings = load_settings(overrides={"data_dir": data_dir, "triage": {"top_k": 5}})
    t0 = time.perf_counter()
    report = triage([logs_dir], None, None, settings=settings)
    wall = time.perf_counter() - t0
    Path(out).write_text(render(report, "json"), encoding="utf-8")
    top = report.findings[0] if report.findings else None
    result = {
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        # CPU seconds of the whole child (imports included): a load-independent figure next to the wall time.
        "cpu_s": round(resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime, 1),
        "lines": report.inputs.lines_read,
        "templates": report.inputs.templates,
        "findings": len(report.findings),
        "judged": sum(1 for f in report.findings if f.verdict is not None),
        "top_is_incident": bool(top and top.start < scenario.INCIDENT_END and top.end > scenario.INCIDENT_START),
        "timings": {t.stage: t.seconds for t in report.timings},
        "degraded": [f"{d.component}:{d.name}: {d.reason}" for d in report.degraded],
    }
    print(json.dumps(result))


def _build_store(data_dir: Path) -> float:
    from anomalist.agent.settings import load_settings
    from anomalist.tools.store import IncidentStore, import_incidents, import_runbooks

    t0 = time.perf_counter()
    store = IncidentStore.from_settings(load_settings(overrides={"data_dir": str(data_dir)}), create=True)
    import_incidents(REPO / "examples" / "incidents.jsonl", store)
    import_runbooks(REPO / "examples" / "runbooks", store)
    store.close()
    return time.perf_counter() - t0


def bench_large(n_lines: int, work: Path) -> dict[str, Any]:
    """Generate the batch, build the example store, triage in a child process."""
    from anomalist.eval import scenario

    t0 = time.perf_counter()
    logs = work / "logs"
    paths = scenario.write_large(logs, n_lines)
    gen_s = time.perf_counter() - t0
    lines = sum(1 for p in paths for _ in p.open("rb"))
    data = work / "data"
    store_s = _build_store(data)
    load_before = _load()
    proc = subprocess.run(
        [sys.executable, "-m", "anomalist.eval.bench_triage", "--child", str(logs), str(data), str(work / "report.json")],
        capture_output=True, text=True, cwd=REPO, timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"triage child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update({"generated_lines": lines, "generate_s": round(gen_s, 1), "store_build_s": round(store_s, 1),
                   "load_before": load_before, "load_after": _load(),
                   "target": {"wall_s": 120, "peak_rss_mb": 2048},
                   "met": result["wall_s"] < 120 and result["peak_rss_mb"] < 2048})
    return result


def bench_demo() -> dict[str, Any]:
    """``make demo`` end to end, twice: the first run builds the example store, the second finds it built."""
    out: dict[str, Any] = {}
    for run in ("first", "warm"):
        if run == "first":
            shutil.rmtree(REPO / ".anomalist" / "demo", ignore_errors=True)
        load = _load()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(["make", "demo"], cwd=REPO, capture_output=True, text=True, timeout=900)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        out[run] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "rc": proc.returncode, "load_before": load,
                    "load_after": _load()}
        if proc.returncode != 0:
            out[run]["stderr_tail"] = proc.stderr[-1500:]
    report = REPO / ".anomalist" / "demo" / "report.json"
    if report.exists():
        from anomalist.eval import scenario

        data = json.loads(report.read_text())
        top = data["findings"][0] if data["findings"] else None
        out["top_is_incident"] = bool(top and top["start"] < scenario.INCIDENT_END.isoformat()
                                      and top["end"] > scenario.INCIDENT_START.isoformat())
        out["runbook"] = (data.get("runbook") or {}).get("runbook_id")
        out["degraded"] = [f"{d['component']}:{d['name']}" for d in data["degraded"]]
    out["target_s"] = 60
    out["met"] = all(out.get(r, {}).get("rc") == 0 and out[r]["wall_s"] < 60 for r in ("first", "warm"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("LOGS", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    results: dict[str, Any] = {"cpus": os.cpu_count()}
    if not args.skip_large:
        with tempfile.TemporaryDirectory(prefix="bench-triage-") as tmp:
            results["large"] = bench_large(args.lines, Path(tmp))
    if not args.skip_demo:
        results["demo"] = bench_demo()
    if args.json:
        print(json.dumps(results))
    else:
        if "large" in results:
            r = results["large"]
            print(f"{r['lines']:,}-line triage: {r['wall_s']} s wall ({r['cpu_s']} CPU s), peak RSS {r['peak_rss_mb']} MB "
                  f"(targets < 120 s, < 2048 MB: {'met' if r['met'] else 'MISSED'}); load {r['load_before']} -> "
                  f"{r['load_after']}; findings {r['findings']}, judged {r['judged']}, top is the incident: "
                  f"{r['top_is_incident']}")
            print("  stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in r["timings"].items()))
            for d in r["degraded"]:
                print(f"  degraded: {d}")
        if "demo" in results:
            d = results["demo"]
            for run in ("first", "warm"):
                x = d[run]
                print(f"make demo ({run}): {x['wall_s']} s wall ({x['cpu_s']} CPU s) rc={x['rc']} (target < 60 s); load {x['load_before']} -> "
                      f"{x['load_after']}")
            print(f"  top is the incident: {d.get('top_is_incident')}; runbook {d.get('runbook')}; "
                  f"degraded {d.get('degraded')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
