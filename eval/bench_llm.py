"""Throughput of local label-likelihood judgments: ``python -m anomalist.eval.bench_llm --data ../shared/datasets/loghub_2k``.

Judges the same templates under a few configurations (workers = engine copies, reason generation on/off, prior on/off)
with a fresh cache-less service each, and prints one JSON object: wall judgments/s, CPU seconds per judgment and the
1-minute load average next to each figure (the machine may be shared: compare CPU figures when the load is high).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


def _bench(templates: list[dict[str, Any]], workers: int, reason_for: str, use_prior: bool) -> dict[str, Any]:
    from anomalist.agent.llm import LLMService
    from anomalist.agent.llm.schemas import LogFindingInput
    from anomalist.agent.settings import LLMSettings

    svc = LLMService(LLMSettings(local_instances=workers, reason_for=reason_for, use_prior=use_prior), cache_dir=None)
    warm = [LogFindingInput(id=f"W{i}", templates=[{"id": f"W{i}.T1", "template": f"service {i} started"}])
            for i in range(2 * workers)]
    with ThreadPoolExecutor(max_workers=workers) as pool:  # concurrent warm-ups load and calibrate every copy
        list(pool.map(svc.judge_log, warm))
    findings = [LogFindingInput(id=f"T{i}", templates=[{"id": f"T{i}.T1", **t}]) for i, t in enumerate(templates)]
    t0, c0 = time.perf_counter(), time.process_time()
    if use_prior:
        svc.prime_prior([f.templates[0].template for f in findings])
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(svc.judge_log, findings))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"workers": workers, "reason_for": reason_for, "prior": use_prior, "n": len(findings),
            "judgments_per_s": round(len(findings) / wall, 2), "cpu_s_per_judgment": round(cpu / len(findings), 3),
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, required=True, help="Loghub-2k layout")
    ap.add_argument("--system", default="BGL")
    ap.add_argument("--n", type=int, default=60, help="templates per configuration")
    args = ap.parse_args()
    from anomalist.eval.llm import load_templates

    df = load_templates(args.data, args.system).head(args.n)
    templates = [{"template": r.template, "level": r.level, "component": r.component, "count": int(r.count)}
                 for r in df.itertuples()]
    runs = [_bench(templates, w, reason, prior) for w, reason, prior in
            ((1, "none", False), (2, "none", False), (2, "anomalous", True))]
    print(json.dumps({"system": args.system, "cpu_count": os.cpu_count(), "runs": runs}))


if __name__ == "__main__":
    main()
