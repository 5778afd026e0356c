"""Speed benchmark: fit + score of each detector on one SMD machine, side by side with PyOD's VAE and AutoEncoder.

Each detector runs in its own fresh subprocess so that its peak RSS (``ru_maxrss``) is its own. PyOD's models get
the same input as ours: standardised channels cut into flattened windows of 10 rows, window scores averaged back onto
rows; they run with their default settings (PyOD 2/3: torch, ``epoch_num`` 30 for VAE, 10 for AutoEncoder) and the
same torch thread count. AUC-PR is computed on the machine's test labels.

Usage::

    python -m anomalist.eval.bench_detectors --data ../shared/datasets/smd [--machine machine-1-2]
        [--detectors vae,diffusion,auto,ae,pca,iforest,zscore,pyod_vae,pyod_ae] [--device cpu|cuda|auto]
        [--threads 2] [--json]

Note the machine load (``uptime``) next to the figures: the script prints it before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT = "vae,diffusion,auto,ae,pca,iforest,zscore,pyod_vae,pyod_ae"
PYOD_WINDOW = 10


def _load(data: Path, machine: str, rows: int | None = None) -> Any:
    from anomalist.eval import ts_data

    series = next(ts_data.load_smd(data, [machine]))
    if rows:  # smoke tests only: the first ``rows`` rows of train and test
        series.train, series.test, series.labels = series.train.iloc[:rows], series.test.iloc[:rows], series.labels[:rows]
    return series


def _pyod(name: str, series: Any, device: str, threads: int) -> Any:
    import numpy as np
    import torch

    from anomalist.detectors._prep import Scaler, spread_windows, windows

    torch.set_num_threads(threads)
    if name == "pyod_vae":
        from pyod.models.vae import VAE

        model: Any = VAE(device=None if device == "auto" else device, verbose=0, random_state=0)
    else:
        from pyod.models.auto_encoder import AutoEncoder

        model = AutoEncoder(device=None if device == "auto" else device, verbose=0, random_state=0)
    tr, te = series.train.to_numpy(), series.test.to_numpy()
    t0 = time.perf_counter()
    sc = Scaler.fit(tr)
    wt = windows(sc.transform(tr), PYOD_WINDOW)
    model.fit(wt.reshape(len(wt), -1))
    t1 = time.perf_counter()
    we = windows(sc.transform(te), PYOD_WINDOW)
    s = spread_windows(np.asarray(model.decision_function(we.reshape(len(we), -1)), dtype=np.float64), len(te), PYOD_WINDOW)
    t2 = time.perf_counter()
    return s, t1 - t0, t2 - t1


def run_one(name: str, data: Path, machine: str, device: str, threads: int, rows: int | None = None) -> dict[str, Any]:
    """Fit + score one detector (in this process) and measure it."""
    from anomalist import detectors
    from anomalist.eval.ts_metrics import auc_pr

    series = _load(data, machine, rows)
    if name.startswith("pyod_"):
        scores, fit_s, score_s = _pyod(name, series, device, threads)
    else:
        params: dict[str, Any] = {}
        accepted = detectors.detector_class(name)._param_names()
        if "device" in accepted:
            params["device"] = device
        if "torch_threads" in accepted:
            params["torch_threads"] = threads
        det = detectors.get_detector(name, **params)
        t0 = time.perf_counter()
        det.fit(series.train)
        t1 = time.perf_counter()
        scores = det.score(series.test).to_numpy()
        t2 = time.perf_counter()
        fit_s, score_s = t1 - t0, t2 - t1
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_kib = usage.ru_maxrss
    return {
        # CPU seconds of the whole process (data loading included): on a machine shared with other work, wall time
        # is inflated by waiting for a core, CPU time much less so.
        "process_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "detector": name,
        "fit_s": round(fit_s, 2),
        "score_s": round(score_s, 2),
        "total_s": round(fit_s + score_s, 2),
        "auc_pr": round(auc_pr(series.labels, scores), 4),
        "peak_rss_mib": round(rss_kib / 1024, 1),
        "rows": [len(series.train), len(series.test)],
        "channels": series.train.shape[1],
        "device": device,
    }


def _uptime() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()
    except OSError:
        return "?"


def bench(data: Path, machine: str, names: list[str], device: str, threads: int, rows: int | None = None) -> dict[str, Any]:
    """Run each detector in a subprocess; returns {"machine", "load_before", "load_after", "results": [...]}."""
    results = []
    load_before = _uptime()
    for name in names:
        cmd = [sys.executable, "-m", "anomalist.eval.bench_detectors", "--one", name, "--data", str(data), "--machine", machine,
               "--device", device, "--threads", str(threads)] + (["--rows", str(rows)] if rows else [])
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            results.append({"detector": name, "error": proc.stderr.strip().splitlines()[-1:] or ["failed"]})
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["load"] = _uptime()
        results.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return {"machine": machine, "threads": threads, "load_before": load_before, "load_after": _uptime(), "results": results}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="SMD layout directory")
    ap.add_argument("--machine", default="machine-1-2")
    ap.add_argument("--detectors", default=DEFAULT)
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rows", type=int, default=None, help="use only the first N rows (smoke tests)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.data, args.machine, args.device, args.threads, args.rows)))
        return
    names = [n.strip() for n in args.detectors.split(",") if n.strip()]
    out = bench(args.data, args.machine, names, args.device, args.threads, args.rows)
    if args.json:
        print(json.dumps(out))
        return
    print(f"{out['machine']} ({out['threads']} threads), load before {out['load_before']}, after {out['load_after']}")
    print(f"{'detector':<12}{'fit_s':>8}{'score_s':>9}{'total_s':>9}{'cpu_s':>8}{'auc_pr':>8}{'rss_MiB':>9}  load")
    for r in out["results"]:
        if "error" in r:
            print(f"{r['detector']:<12} error: {r['error']}")
        else:
            print(f"{r['detector']:<12}{r['fit_s']:>8}{r['score_s']:>9}{r['total_s']:>9}{r['process_cpu_s']:>8}"
                  f"{r['auc_pr']:>8}{r['peak_rss_mib']:>9}  {r['load']}")


if __name__ == "__main__":
    main()
