"""``anomalist eval parsing``: GA, PA, FGA, FTA and speed of Anomalist's parser on Loghub-2k systems.

The preset is chosen by the system's folder name; the parser state is fresh for every system.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from eval import loghub
from eval.parsing_metrics import all_metrics
from tools import logformats
from tools.errors import InputError
from tools.parsing import parse_logs

logger = logging.getLogger(__name__)
METRICS = ("GA", "PA", "FGA", "FTA")


def evaluate_system(system: loghub.LoghubSystem) -> dict[str, Any]:
    """Parse one system's log and score it against its ground truth."""
    gt = system.ground_truth()
    fmt = system.name if system.name.lower() in logformats.PRESETS else None
    t0 = time.perf_counter()
    parsed = parse_logs(system.log_path, fmt)
    elapsed = time.perf_counter() - t0
    ev = parsed.events.sort_values("line_no", kind="stable")
    line_nos = ev["line_no"].to_numpy()
    if "LineId" in gt.columns:
        want = gt["LineId"].to_numpy(dtype=np.int64)
    else:
        want = np.arange(1, len(gt) + 1)
    # a ground-truth line that our reader joined to the previous event takes that event's template
    pos = np.clip(np.searchsorted(line_nos, want, side="right") - 1, 0, len(ev) - 1)
    pred_ids = ev["template_id"].to_numpy()[pos]
    pred_tpl = ev["template"].to_numpy()[pos]
    scores = all_metrics(gt["EventTemplate"], pred_ids, pred_tpl)
    out: dict[str, Any] = {k: round(v, 4) for k, v in scores.items()}
    out.update({
        "lines": int(len(gt)),
        "lines_per_s": round(parsed.stats.lines_read / elapsed, 1) if elapsed > 0 else None,
        "templates": int(len(np.unique(pred_ids))),
        "true_templates": int(gt["EventTemplate"].nunique()),
        "format": parsed.format,
        "format_detected": parsed.format_detected,
    })
    return out


def run(data: Path, systems: list[str] | None = None, ground_truth: str = "corrected") -> dict[str, Any]:
    """Evaluate every requested system (default: all present) and the mean of each metric.

    Raises:
        InputError: no system found, or a requested one is missing.
    """
    gt = "corrected" if ground_truth == "corrected" else "original"
    names = systems or loghub.list_systems(Path(data), gt)  # type: ignore[arg-type]
    if not names:
        raise InputError(f"no Loghub-2k system with {gt} ground truth under {data}")
    result: dict[str, Any] = {"systems": {}, "ground_truth": gt}
    for name in names:
        system = loghub.load_system(Path(data), name, gt)  # type: ignore[arg-type]
        logger.info("evaluating %s", system.name)
        result["systems"][system.name] = evaluate_system(system)
    per = result["systems"].values()
    result["mean"] = {m: round(float(np.mean([s[m] for s in per])), 4) for m in METRICS}
    return result


def render(result: dict[str, Any]) -> Table:
    """A rich table: one row per system and the mean."""
    table = Table(title=f"Log parsing accuracy ({result.get('ground_truth', 'corrected')} ground truth)")
    table.add_column("system")
    for m in METRICS:
        table.add_column(m, justify="right")
    table.add_column("templates (true)", justify="right")
    table.add_column("lines/s", justify="right")
    for name, s in result["systems"].items():
        table.add_row(name, *(f"{s[m]:.3f}" for m in METRICS), f"{s['templates']} ({s['true_templates']})",
                      f"{s['lines_per_s']:,.0f}" if s.get("lines_per_s") else "-")
    mean = result["mean"]
    table.add_row("[bold]mean[/bold]", *(f"[bold]{mean[m]:.3f}[/bold]" for m in METRICS), "", "")
    return table
