"""Batch triage on Ray: reading, parsing and per-window counting as Ray tasks over shards, merged exactly.

The input is cut into shards (:func:`tools.parsing.plan_shards`: files, and byte ranges of big plain files, each
with the format and container wrapper the one-stream parse would choose). Every shard runs the same per-shard code
as the single-process triage (:func:`tools.parsing.iter_shard` into ``agent.triage.inputs._Accumulator``), except
that messages are *keyed* (:class:`tools.drain_parser.ShapeKeyer`) instead of mined: Drain is order-dependent, so
it cannot run on shards independently. The driver then feeds one Drain parser the first message of every key in
the order the keys first occur in the whole input (shard order, then position), which gives that parser exactly
the state of a one-stream parse; maps each shard's keys to template ids; renames and merges the shards' counts,
facts and samples; and finishes as the single-process path does (final template ids and texts, the first sample
lines of the whole input). So the result is the single-process result: same templates, same ids, same counts, same
findings (while the input has fewer distinct message keys than the parser's cache, 200,000 by default).

Detectors, ranking, root-cause analysis, retrieval and the LLM then run once, on the merged result, in the driver.
"""

from __future__ import annotations

import logging
import resource
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anomalist.tools.errors import InputError

logger = logging.getLogger(__name__)

_INIT_LOCK = threading.Lock()
INSTALL_HINT = "the Ray engine needs Ray: pip install 'anomalist[ray]'"


@dataclass
class ShardResult:
    """What one shard task returns: its keys' first messages, its counting state, its reader stats."""

    index: int
    firsts: list[str]
    acc: Any  # agent.triage.inputs._Accumulator with local (key) ids
    stats: Any  # tools.logread.ReadStats
    seconds: float = 0.0
    peak_rss_mb: float = 0.0


@dataclass
class EngineReport:
    """How a distributed parse went (timings for benchmarks and the report's notes)."""

    engine: str
    shards: int = 0
    workers: int = 0
    shard_seconds: list[float] = field(default_factory=list)
    merge_s: float = 0.0  # all the driver's merging, as shards arrive and at the end
    merge_tail_s: float = 0.0  # the part after the last shard arrived (on the critical path)
    wall_s: float = 0.0
    peak_worker_rss_mb: float = 0.0
    keys: int = 0


def run_shard(shard: Any, window: Any, rca_step: Any, known_services: Sequence[str], max_line_bytes: int,
              service_map: dict[str, str] | None) -> ShardResult:
    """One shard: parse with keys and count (runs in a Ray worker, or in process)."""
    from anomalist.agent.triage.inputs import _Accumulator
    from anomalist.tools.drain_parser import ShapeKeyer
    from anomalist.tools.logread import ReadStats
    from anomalist.tools.parsing import iter_shard

    t0 = time.perf_counter()
    keyer = ShapeKeyer()
    stats = ReadStats()
    acc = _Accumulator(window, rca_step, known_services=known_services)
    for chunk in iter_shard(shard, keyer, stats, max_line_bytes=max_line_bytes, service_map=service_map):
        acc.add(chunk)
    acc.mention_rx = None  # compiled regexes need not travel back
    return ShardResult(index=shard.index, firsts=keyer.firsts, acc=acc, stats=stats,
                       seconds=time.perf_counter() - t0,
                       peak_rss_mb=peak_rss_mb())


def peak_rss_mb() -> float:
    """This process's peak resident set in MiB: ``VmHWM`` of its own address space (``ru_maxrss`` survives
    ``exec``, so a child started from a big parent would report the parent's peak)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _ray(address: str | None, num_cpus: int | None) -> Any:
    try:
        import ray
    except ImportError as exc:
        raise InputError(INSTALL_HINT) from exc
    with _INIT_LOCK:  # the service triages on several threads; one of them starts or joins the cluster
        if ray.is_initialized():
            return ray
        kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False, "include_dashboard": False}
        if address:
            kwargs["address"] = address
        elif num_cpus:
            kwargs["num_cpus"] = num_cpus
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address!r}" if address else "a local Ray cluster"
            raise InputError(f"cannot join {where}: {exc}") from exc
    return ray


def load_logs_sharded(
    sources: Sequence[str | Path], settings: Any, tick: Callable[[str, float, str], None], *,
    parser: Any = None, engine: str = "ray", address: str | None = None, num_cpus: int | None = None,
    report: EngineReport | None = None,
) -> Any:
    """``agent.triage.inputs.load_logs`` over shards (``engine="ray"``: as Ray tasks; ``"shards"``: one after the
    other in this process, the same code path without Ray). Returns the same ``LogData``.

    Raises:
        InputError: Ray is not installed, the input is unusable, or no line carries a timestamp.
    """
    from anomalist.agent.triage.inputs import _Accumulator, _pod_services, to_timedelta
    from anomalist.tools import parsing
    from anomalist.tools.drain_parser import LogParser
    from anomalist.tools.logread import ReadStats, expand_sources

    t_start = time.perf_counter()
    rep = report if report is not None else EngineReport(engine=engine)
    lg = settings.logs
    files = expand_sources([str(s) for s in sources])
    shards, plan_stats = parsing.plan_shards(
        files, lg.format, shard_bytes=int(settings.triage.shard_mb * (1 << 20)), max_line_bytes=lg.max_line_bytes,
        json_fields={"message": lg.json_message_field, "timestamp": lg.json_timestamp_field, "level": lg.json_level_field})
    window = to_timedelta(settings.triage.window)
    rca_step = to_timedelta(settings.rca.resolution)
    known = _pod_services(files, settings)
    smap = dict(settings.rca.service_map) or None
    args = (window, rca_step, known, lg.max_line_bytes, smap)
    rep.shards = len(shards)
    tick("parse", 0.0, f"{len(shards)} shards")
    first_fmt = next((sh.fmt for sh in shards), None)
    if parser is None:
        parser = (LogParser.for_format(first_fmt.drain_depth, first_fmt.drain_sim) if first_fmt is not None
                  else LogParser())
    merger = _Merger(parser, _Accumulator(window, rca_step), ReadStats())

    def take(res: ShardResult) -> None:
        t = time.perf_counter()
        merger.add(res, shards[res.index].source)
        rep.merge_s += time.perf_counter() - t
        rep.shard_seconds.append(round(res.seconds, 3))
        rep.peak_worker_rss_mb = max(rep.peak_worker_rss_mb, res.peak_rss_mb)
        tick("parse", min(len(rep.shard_seconds) / max(len(shards), 1), 0.99),
             f"{len(rep.shard_seconds)}/{len(shards)} shards")

    if engine == "ray":
        ray = _ray(address or settings.triage.ray_address, num_cpus)
        rep.workers = int(ray.cluster_resources().get("CPU", 0))
        task = ray.remote(num_cpus=1)(run_shard)
        # All shards are submitted at once, in input order; the driver merges them in that order as they arrive,
        # so the merge overlaps the parsing and only the last shards' merge is left at the end.
        refs = [task.remote(sh, *args) for sh in shards]
        for k in range(len(refs)):
            res = ray.get(refs[k])
            refs[k] = None  # the driver holds at most the shards that arrived out of order
            take(res)
    elif engine == "shards":
        rep.workers = 1
        for sh in shards:
            take(run_shard(sh, *args))
    else:
        raise ValueError(f"engine must be 'ray' or 'shards', got {engine!r}")
    t_tail = time.perf_counter()
    total, stats, table = merger.total, merger.stats, merger.table
    rep.keys = len(table)
    for name in ("format", "format_detected", "format_match_rate", "container_format"):
        setattr(stats, name, getattr(plan_stats, name))
    stats.templates = parser.n_templates
    parsing._check_usable(stats, files)
    stats_d = stats.model_dump()
    if total.n_with_ts == 0:
        raise InputError("no log line carries a timestamp the format can read; time windows need one "
                         f"(format {stats.format!r}, {stats.events:,} events)")
    if total.n_without_ts:
        stats_d["events_without_timestamp"] = total.n_without_ts
    out = total.finish(stats_d, files, settings.triage.max_windows, parser=parser)
    out.parser = parser
    now = time.perf_counter()
    rep.merge_tail_s = now - t_tail
    rep.merge_s += rep.merge_tail_s
    rep.wall_s = now - t_start
    out.stats.setdefault("notes", []).append(
        f"engine {engine}: {rep.shards} shards on {rep.workers} worker(s), {rep.keys:,} message keys; merge "
        f"{rep.merge_s:.2f} s ({rep.merge_tail_s:.2f} s after the last shard) of {rep.wall_s:.2f} s")
    tick("parse", 1.0, f"{stats.events:,} events")
    return out


class _Merger:
    """Takes shard results in input order and merges them into one global template table and one accumulator.

    The parser is fed the first message of every key not seen before, in the order the keys first occur in the
    input (shard order, then position), so it ends in exactly the state of a one-stream parse of the input.
    """

    def __init__(self, parser: Any, total: Any, stats: Any):
        from anomalist.tools.drain_parser import ShapeKeyer

        self.parser = parser
        self.total = total
        self.stats = stats
        self.keyer = ShapeKeyer()
        self.table: dict[str, int] = {}
        self.lines_before: dict[str, int] = {}

    def add(self, res: ShardResult, source: str) -> None:
        local: dict[str, str] = {}
        for i, content in enumerate(res.firsts):
            _, k = self.keyer.key(content)
            cid = self.table.get(k)
            if cid is None:
                cid = self.table[k] = self.parser.add_batch([content])[0][0]
            local[str(i)] = str(cid)
        offset = self.lines_before.get(source, 0)
        res.acc.remap(lambda t, m=local: m.get(t, t), {source: offset})
        self.lines_before[source] = offset + res.stats.lines_read
        self.total.absorb(res.acc)
        _add_stats(self.stats, res.stats)


_SUMMED = ("files_read", "bytes_read", "lines_read", "blank_lines", "events", "parsed", "continuation_lines",
           "unparsed", "truncated", "decode_errors", "container_records", "container_invalid",
           "container_partials_joined")


def _add_stats(total: Any, part: Any) -> None:
    for name in _SUMMED:
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.skipped_files.extend(part.skipped_files)
