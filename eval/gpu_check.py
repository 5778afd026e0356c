"""GPU check: the detector speed benchmark on CUDA and on CPU, same machine, same code; prints the speed-up.

Usage::

    python -m anomalist.eval.gpu_check --data ../shared/datasets/smd [--machine machine-1-2] [--detectors vae,diffusion,ae,usad]
        [--threads 2] [--json] [--cpu-only]

``--cpu-only`` runs the "GPU" leg on the CPU as well (so the script can be tested where there is no GPU; the
speed-up is then ~1). Without it, the script exits with code 2 and a clear message when CUDA is not available.
Each leg runs every detector in a fresh subprocess (see ``eval.bench_detectors``), so peak RSS and timings are its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from anomalist.eval.bench_detectors import bench

DEFAULT = "vae,diffusion,ae,usad"


def compare(
    data: Path, machine: str, names: list[str], threads: int, cpu_only: bool, rows: int | None = None
) -> dict[str, Any]:
    """Run both legs; returns per-detector CPU and GPU seconds, AUC-PR and speed-up."""
    gpu_device = "cpu" if cpu_only else "cuda"
    gpu = bench(data, machine, names, gpu_device, threads, rows)
    cpu = bench(data, machine, names, "cpu", threads, rows)
    table: list[dict[str, Any]] = []
    for g, c in zip(gpu["results"], cpu["results"], strict=True):
        if "error" in g or "error" in c:
            table.append({"detector": g["detector"], "error": g.get("error") or c.get("error")})
            continue
        table.append({
            "detector": g["detector"],
            "cpu_s": c["total_s"],
            "gpu_s": g["total_s"],
            "speedup": round(c["total_s"] / max(g["total_s"], 1e-9), 2),
            "auc_pr_cpu": c["auc_pr"],
            "auc_pr_gpu": g["auc_pr"],
            "gpu_peak_rss_mib": g["peak_rss_mib"],
        })
    return {"machine": machine, "gpu_device": gpu_device, "load_before": cpu["load_before"], "results": table}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--machine", default="machine-1-2")
    ap.add_argument("--detectors", default=DEFAULT)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--cpu-only", action="store_true", help="run the GPU leg on CPU (for testing without a GPU)")
    ap.add_argument("--rows", type=int, default=None, help="use only the first N rows (smoke tests)")
    args = ap.parse_args(argv)
    if not args.cpu_only:
        import torch

        if not torch.cuda.is_available():
            print("error: CUDA is not available on this machine (use --cpu-only to test the script)", file=sys.stderr)
            raise SystemExit(2)
    names = [n.strip() for n in args.detectors.split(",") if n.strip()]
    out = compare(args.data, args.machine, names, args.threads, args.cpu_only, args.rows)
    if args.json:
        print(json.dumps(out))
        return
    print(f"{out['machine']}: GPU leg on {out['gpu_device']}; load before {out['load_before']}")
    print(f"{'detector':<12}{'cpu_s':>8}{'gpu_s':>8}{'speedup':>9}{'auc_cpu':>9}{'auc_gpu':>9}")
    for r in out["results"]:
        if "error" in r:
            print(f"{r['detector']:<12} error: {r['error']}")
        else:
            print(f"{r['detector']:<12}{r['cpu_s']:>8}{r['gpu_s']:>8}{r['speedup']:>9}{r['auc_pr_cpu']:>9}{r['auc_pr_gpu']:>9}")


if __name__ == "__main__":
    main()
