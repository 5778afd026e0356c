"""``anomalist eval parsing``: GA, PA, FGA, FTA and speed of Anomalist's parser on Loghub-2k systems.

The preset is chosen by the system's folder name; the parser state is fresh for every system. The preset gives
only the header format and the published Drain settings (depth, similarity threshold); every other choice is one
of :data:`CONFIGS`, the same for all systems.

``--cv`` is the tuning protocol: leave one system out. Each configuration parses each system once; for each
system, the configuration with the best mean GA on the *other* systems (ties within :data:`GA_TIE`: best mean PA)
is chosen, and the held-out system is scored with it. The left-out figures are what a choice made on these systems
is worth on a system it was not chosen on; the all-in figures are the default configuration on every system.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict
from rich.console import Group
from rich.table import Table

from anomalist.eval import loghub
from anomalist.eval.parsing_metrics import all_metrics
from anomalist.tools import logformats
from anomalist.tools.drain_parser import LogParser
from anomalist.tools.errors import InputError
from anomalist.tools.parsing import parse_logs

logger = logging.getLogger(__name__)
METRICS = ("GA", "PA", "FGA", "FTA")
GA_TIE = 0.002  # mean-GA differences below this are noise on 2k-line samples: PA decides


class ParserConfig(BaseModel):
    """The generic parser choices under tuning (the :class:`tools.drain_parser.LogParser` switches)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    mask_aware: bool = True
    merge: bool = True
    word_variants: int = 3
    hostport: bool = True
    lists: bool = True
    varlen: bool = True
    key_events: bool = True

    def parser(self, fmt: logformats.LogFormat | None) -> LogParser:
        """A fresh parser with this configuration and the format's published Drain settings."""
        depth, sim = (fmt.drain_depth, fmt.drain_sim) if fmt is not None else (4, 0.5)
        knobs = self.model_dump(exclude={"name"})
        return LogParser(depth=depth, sim_th=sim, **knobs)


DEFAULT_CONFIG = ParserConfig(name="default")


def _configs() -> list[ParserConfig]:
    """The default, each new canonical-form / merging rule switched off alone and together, and the older
    mechanisms switched off one at a time (small on purpose: each one is a full parse of every system)."""
    out = [DEFAULT_CONFIG]
    for hostport in (True, False):
        for lists in (True, False):
            for varlen in (True, False):
                if (hostport, lists, varlen) == (True, True, True):
                    continue
                name = "+".join(k for k, v in (("hostport", hostport), ("lists", lists), ("varlen", varlen)) if v)
                out.append(ParserConfig(name=name or "no-new-rules", hostport=hostport, lists=lists, varlen=varlen))
    out += [
        ParserConfig(name="plain-similarity", mask_aware=False),
        ParserConfig(name="no-word-variants", word_variants=0),
        ParserConfig(name="no-merge", merge=False),
        ParserConfig(name="no-key-events", key_events=False),
    ]
    return out


CONFIGS: list[ParserConfig] = _configs()


def evaluate_system(system: loghub.LoghubSystem, config: ParserConfig = DEFAULT_CONFIG) -> dict[str, Any]:
    """Parse one system's log with ``config`` and score it against its ground truth."""
    gt = system.ground_truth()
    preset = logformats.PRESETS.get(system.name.lower())
    fmt = system.name if preset is not None else None
    t0 = time.perf_counter()
    parsed = parse_logs(system.log_path, fmt, parser=config.parser(preset))
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


def _mean(per: list[dict[str, Any]]) -> dict[str, float]:
    return {m: round(float(np.mean([s[m] for s in per])), 4) for m in METRICS}


def select_config(scores: dict[str, dict[str, dict[str, Any]]], systems: list[str]) -> str:
    """The configuration (a key of ``scores``: config -> system -> metrics) with the best mean GA on ``systems``;
    among those within :data:`GA_TIE` of the best, the best mean PA; then the first in order."""
    if not scores or not systems:
        raise ValueError("select_config needs at least one configuration and one system")
    ga = {c: float(np.mean([per[s]["GA"] for s in systems])) for c, per in scores.items()}
    pa = {c: float(np.mean([per[s]["PA"] for s in systems])) for c, per in scores.items()}
    best = max(ga.values())
    near = [c for c in scores if ga[c] >= best - GA_TIE]
    return max(near, key=lambda c: (pa[c], -list(scores).index(c)))


def cross_validate(scores: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Leave-one-system-out figures from per-configuration scores (config -> system -> metrics).

    For each system the configuration is selected on the other systems only (:func:`select_config`); with one
    system there is nothing to select on and the first configuration (the default) is used.
    """
    names = list(next(iter(scores.values())))
    held: dict[str, dict[str, Any]] = {}
    for name in names:
        rest = [n for n in names if n != name]
        chosen = select_config(scores, rest) if rest else next(iter(scores))
        held[name] = {**{m: scores[chosen][name][m] for m in METRICS}, "config": chosen}
    per = list(held.values())
    return {"systems": held, "mean": _mean(per), "min_GA": round(min(s["GA"] for s in per), 4),
            "chosen_all_in": select_config(scores, names)}


def run(data: Path, systems: list[str] | None = None, ground_truth: str = "corrected", cv: bool = False
        ) -> dict[str, Any]:
    """Evaluate every requested system (default: all present) and the mean of each metric.

    With ``cv``, also every configuration of :data:`CONFIGS` on every system and the leave-one-system-out
    figures (keys ``cv``, ``all_in``, ``configs`` and ``by_config``, beside the default configuration's
    ``systems`` and ``mean``).

    Raises:
        InputError: no system found, or a requested one is missing.
    """
    gt = "corrected" if ground_truth == "corrected" else "original"
    names = systems or loghub.list_systems(Path(data), gt)  # type: ignore[arg-type]
    if not names:
        raise InputError(f"no Loghub-2k system with {gt} ground truth under {data}")
    loaded = [loghub.load_system(Path(data), name, gt) for name in names]  # type: ignore[arg-type]
    result: dict[str, Any] = {"systems": {}, "ground_truth": gt, "config": DEFAULT_CONFIG.name}
    for system in loaded:
        logger.info("evaluating %s", system.name)
        result["systems"][system.name] = evaluate_system(system)
    result["mean"] = _mean(list(result["systems"].values()))
    if cv:
        scores: dict[str, dict[str, dict[str, Any]]] = {DEFAULT_CONFIG.name: result["systems"]}
        for config in CONFIGS:
            if config.name in scores:
                continue
            logger.info("configuration %s", config.name)
            scores[config.name] = {s.name: evaluate_system(s, config) for s in loaded}
        result["cv"] = cross_validate(scores)
        result["all_in"] = {"config": DEFAULT_CONFIG.name, "mean": result["mean"], "min_GA": round(
            min(s["GA"] for s in result["systems"].values()), 4)}
        result["configs"] = [c.model_dump() for c in CONFIGS]
        result["by_config"] = {c: {"mean": _mean(list(per.values())),
                                   "GA": {n: s["GA"] for n, s in per.items()}} for c, per in scores.items()}
    return result


def render(result: dict[str, Any]) -> Table | Group:
    """A rich table: one row per system and the mean; with ``--cv``, a second one with the left-out figures."""
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
    if "cv" not in result:
        return table
    cv = result["cv"]
    loso = Table(title="Leave one system out: configuration chosen on the other systems")
    for col in ("held-out system", "config", "GA", "PA", "GA all-in", "PA all-in"):
        loso.add_column(col, justify="left" if col in ("held-out system", "config") else "right")
    for name, s in cv["systems"].items():
        a = result["systems"][name]
        loso.add_row(name, s["config"], f"{s['GA']:.3f}", f"{s['PA']:.3f}", f"{a['GA']:.3f}", f"{a['PA']:.3f}")
    loso.add_row("[bold]mean[/bold]", "", f"[bold]{cv['mean']['GA']:.3f}[/bold]", f"[bold]{cv['mean']['PA']:.3f}[/bold]",
                 f"{mean['GA']:.3f}", f"{mean['PA']:.3f}")
    loso.add_row("min GA", "", f"{cv['min_GA']:.3f}", "", f"{result['all_in']['min_GA']:.3f}", "")
    return Group(table, loso)
