"""Per-service, per-time-bin evidence of change against a baseline: logs, metrics, traces.

Every signal is a *surprise* against what the baseline says is normal for that service, computed bin by bin so
that the first bin to change (the onset) is known:

- **Logs** (:func:`log_signals`): for each service and bin, each event's count is tested against the baseline's
  share of that event in the service's lines (exact conditional binomial test of two Poisson rates, so a busier or
  quieter minute changes nothing by itself). Normal-level events that *drop* (a log statement that stops being
  reached: the code took another path), error-level events that *rise* or are *new*, and a service falling
  *silent* for at least two bins while the cluster logs on count. An error event that disappears is a recovery
  and counts for nothing.
  Surprise = ``-log10 p`` minus ``log10`` of the number of tests (Bonferroni), so many quiet events do not add up
  to a false alarm.
- **Metrics** (:func:`metric_signals`): per pod and channel, a *sustained* move beyond what the baseline ever
  sustained: the rolling minimum over ``k`` bins above the baseline's 99th percentile of the same rolling minimum
  (or the rolling maximum below its 1st percentile), in units of that percentile's distance from the median. One
  spike is not sustained; robust percentiles tolerate a baseline with a few incidents in it. Channels whose values
  are identical across pods (node-level metrics copied into each pod's file) describe a host, not the pod, and are
  set aside.
- **Traces** (:func:`trace_signals`): per service and bin, the share of its entry spans slower than the
  baseline's 99th percentile for the same operation (binomial test against 1 %), their error share against the
  baseline's, and a drop in calls.

Nothing here reads labels or knows any system: services, events and channels come from the data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

Modality = Literal["log", "metric", "trace"]
SignalKind = Literal["log_drop", "log_rise", "log_new", "log_silent", "log_named", "metric_up", "metric_down",
                     "latency", "errors", "calls_drop"]

ERROR_LEVELS = frozenset({"FATAL", "CRITICAL", "CRIT", "EMERG", "ALERT", "SEVERE", "ERROR", "ERR", "E", "F",
                          "WARN", "WARNING", "W"})
NORMAL_LEVELS = frozenset({"INFO", "I", "DEBUG", "D", "TRACE", "V", "NOTICE"})
MAX_SURPRISE = 50.0
"""Surprises are capped (p-values below 1e-50 say nothing more)."""


@dataclass
class Signal:
    """One piece of evidence that a service changed in one time bin."""

    service: str
    bin: pd.Timestamp
    modality: Modality
    kind: SignalKind
    score: float  # surprise: -log10 p beyond chance (logs, traces) or sustained excess in baseline spreads (metrics)
    pod: str | None = None
    subject: str = ""  # the event, channel or operation
    observed: float | None = None
    expected: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def _surprise(p: np.ndarray | float) -> np.ndarray:
    return np.minimum(-np.log10(np.maximum(np.asarray(p, dtype="float64"), 1e-300)), MAX_SURPRISE)


# ---- logs ------------------------------------------------------------------------------------------------------
def level_class(level: str | None) -> Literal["error", "normal", "unknown"]:
    lv = (level or "").strip().upper()
    if lv in ERROR_LEVELS:
        return "error"
    if lv in NORMAL_LEVELS:
        return "normal"
    return "unknown"


def inflation(z: np.ndarray) -> float:
    """Genomic-control inflation factor of signed z-scores: ``median(z^2) / 0.455`` (the median of chi-square(1)),
    at least 1. Most cells of a batch do not change; when their statistics are wider than a binomial or Poisson
    model allows (traffic mix, bursty loggers, a short baseline), the factor measures by how much, and every
    statistic is divided by its square root (Devlin and Roeder, 1999)."""
    z = np.asarray(z, dtype="float64")
    z = z[np.isfinite(z)]
    if z.size < 20:
        return 1.0
    return float(max(1.0, np.median(z * z) / stats.chi2.ppf(0.5, 1)))


def _signed_z(o: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Signed z of ``o`` successes in ``n`` trials of probability ``p`` (exact binomial tails mapped to normal)."""
    lo = stats.binom.cdf(o, n, p)
    hi = stats.binom.sf(o - 1, n, p)
    z_lo = stats.norm.isf(np.clip(lo, 1e-300, 1.0))  # large when o is far below n p
    z_hi = stats.norm.isf(np.clip(hi, 1e-300, 1.0))
    return np.where(hi < lo, np.maximum(z_hi, 0.0), -np.maximum(z_lo, 0.0))


def _z_surprise(z: np.ndarray) -> np.ndarray:
    return np.minimum(-np.log10(np.maximum(stats.norm.sf(z), 1e-300)), MAX_SURPRISE)


MIN_COVERAGE = 0.9
"""A bin whose lines span less than this share of it was not observed whole (see log_signals)."""
THIN_BIN_SHARE = 0.25
"""A bin with fewer lines than this share of the batch's median bin is thinly observed (see log_signals)."""
MIN_SILENT_BINS = 2
"""Consecutive bins without a line before a service's silence is evidence (see log_signals)."""
LOG_WINDOWS = (1, 2, 3)
"""Consecutive bins a log change is tested over (from each start bin): a change that lasts gathers evidence."""


def statement_key(event: str) -> str:
    """The log statement an event comes from: its logger (``"|<component>"``) when the format names one, else the
    event itself. Drain may split one statement into several templates as its parameters vary; a statement that
    stops being reached is a drop of its logger's lines, whatever templates they had."""
    tid, sep, comp = event.partition("|")
    return f"|{comp}" if sep and comp else event


def _windowed(batch: pd.Series, base_df: pd.DataFrame, services: pd.Index, windows: tuple[int, ...]) -> pd.DataFrame:
    """Observed (o) and baseline (b) counts per (service, event) for each window of ``m`` consecutive bins with
    data, starting at every bin; with the service's window total (tot_o) and the cluster's (cluster_w)."""
    bins = sorted(pd.Timestamp(b) for b in batch.index.get_level_values(0).unique())
    per_bin = {b: batch.xs(b, level=0) for b in bins}
    step = min((b - a for a, b in zip(bins, bins[1:], strict=False)), default=pd.Timedelta(minutes=1))
    tables: list[pd.DataFrame] = []
    for i, w in enumerate(bins):
        for m in windows:
            span = [b for b in bins[i: i + m] if b < w + step * m]  # consecutive in time, not across a gap
            if len(span) < m:
                break
            cur = pd.concat([per_bin[b] for b in span]).groupby(level=[0, 1]).sum() if m > 1 else per_bin[w]
            cluster_w = float(cur.sum())
            if cluster_w <= 0:
                continue
            cur = cur.rename("o").reset_index()
            cur.columns = ["service", "event", "o"]
            j = cur.merge(base_df, on=["service", "event"], how="outer").fillna({"o": 0, "b": 0})
            j = j[j["service"].isin(services)]  # services the baseline never saw have no norm
            if j.empty:
                continue
            j["bin"], j["m"], j["cluster_w"] = w, m, cluster_w
            tables.append(j)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def log_signals(batch: pd.Series, base: pd.Series, levels: dict[str, str], *, top: int = 3,
                windows: tuple[int, ...] = LOG_WINDOWS, coverage: pd.Series | None = None) -> list[Signal]:
    """Log evidence per (service, start bin); see the module docstring.

    Drops are tested per log statement (:func:`statement_key`) over the service's normal-level lines, rises per
    event over its error-level (and unknown-level, when new) lines, each against the service's share in the
    baseline, over windows of 1, 2 and 3 bins from every bin with data. Statistics are calibrated by the batch's
    inflation factor (:func:`inflation`); a service's best drop and best rise are each corrected for the number of
    statements or events and windows tested, and a bin's log score is their sum (a statement that stopped being
    reached and an error that appeared are independent pieces of evidence).

    Args:
        batch: counts with MultiIndex ``(bin, service, event)`` (the batch).
        base: counts with MultiIndex ``(service, event)`` over the whole baseline.
        levels: event -> its most frequent level (batch and baseline).
        top: signals kept per (service, bin), strongest first.
        coverage: bin -> observed share of it (see ``RCAInputs.log_coverage``); default: from line volumes.
    """
    if batch.empty or base.empty:
        return []
    base_tot = base.groupby(level=0).sum()
    cluster_base = float(base_tot.sum())
    cls = {e: level_class(lv) for e, lv in levels.items()}

    def view(series: pd.Series, keep: set[str], key: Any) -> pd.Series:
        ev = series.index.get_level_values(-1)
        mask = np.array([cls.get(str(e), "unknown") in keep for e in ev])
        sub = series[mask]
        if sub.empty:
            return sub
        names = list(sub.index.names)
        lv = [sub.index.get_level_values(i) for i in range(sub.index.nlevels - 1)]
        idx = pd.MultiIndex.from_arrays([*lv, sub.index.get_level_values(-1).map(key)], names=names)
        return pd.Series(sub.to_numpy(), index=idx).groupby(level=list(range(len(names)))).sum()

    def frame(b: pd.Series) -> pd.DataFrame:
        df = b.rename("b").reset_index()
        df.columns = ["service", "event", "b"]
        return df

    # Totals per (service, window) come from all lines, whatever view is tested.
    base_star = pd.Series(base_tot.to_numpy(), index=pd.MultiIndex.from_arrays(
        [base_tot.index, pd.Index(["*"] * len(base_tot))], names=["service", "event"]))
    totals = _windowed(_service_totals(batch), frame(base_star), base_tot.index, windows)
    drops = _windowed(view(batch, {"normal", "unknown"}, statement_key), frame(view(base, {"normal", "unknown"}, statement_key)),
                      base_tot.index, windows)
    rises = _windowed(view(batch, {"error", "unknown"}, lambda e: e), frame(view(base, {"error", "unknown"}, lambda e: e)),
                      base_tot.index, windows)
    if totals.empty:
        return []
    tot = totals.set_index(["service", "bin", "m"])["o"].rename("tot_o")
    out_tables = []
    for name, j in (("drop", drops), ("rise", rises)):
        if j.empty:
            continue
        j = j.join(tot, on=["service", "bin", "m"])
        j["tot_o"] = j["tot_o"].fillna(0.0)
        j["tot_b"] = j["service"].map(base_tot).astype("float64")
        o, b = j["o"].to_numpy(dtype="float64"), j["b"].to_numpy(dtype="float64")
        to, tb = j["tot_o"].to_numpy(dtype="float64"), j["tot_b"].to_numpy(dtype="float64")
        p_share = np.where(to + tb > 0, to / np.maximum(to + tb, 1e-12), 0.0)
        j["z"] = _signed_z(o, o + b, p_share)
        j["test"] = name
        out_tables.append(j)
    # Silence: a service with no line at all in the window, against the cluster's volume.
    t = totals.copy()
    t["tot_b"] = t["service"].map(base_tot).astype("float64")
    cw = t["cluster_w"].to_numpy(dtype="float64")
    t["z"] = _signed_z(t["o"].to_numpy(dtype="float64"), t["o"].to_numpy(dtype="float64") + t["tot_b"].to_numpy(),
                       cw / (cw + cluster_base))
    zs_all = [t["z"].to_numpy()]
    for j in out_tables:
        ok = ((j["o"] + j["b"]) >= 5) & (j["tot_o"] > 0)
        zs_all.append(j.loc[ok, "z"].to_numpy())
    lam = inflation(np.concatenate(zs_all))
    rt = math.sqrt(lam)
    corr_w = math.log10(len(windows))
    best: dict[tuple[str, pd.Timestamp], list[Signal]] = {}
    for j in out_tables:
        name = str(j["test"].iloc[0])
        # A window of several bins is attributed to its first bin only if that bin itself already moved in the
        # same direction (else a change two bins later would be dated two bins early).
        first = j[j["m"] == 1].set_index(["service", "bin", "event"])["z"].rename("z1")
        j = j.join(first, on=["service", "bin", "event"])
        z1 = j["z1"].fillna(0.0).to_numpy()
        lead = (j["m"].to_numpy() == 1) | ((z1 <= -1.0) if name == "drop" else (z1 >= 1.0))
        j = j[lead]
        zz = j["z"].to_numpy() / rt
        if name == "drop":
            sur = np.where(j["tot_o"].to_numpy() > 0, _z_surprise(-zz), 0.0)
            # An unknown-level statement counts as a drop only when its logger is known (a statement to reach).
        else:
            c = np.array([cls.get(str(e), "unknown") for e in j["event"]])
            sur = np.where((c == "error") | (j["b"].to_numpy() == 0), _z_surprise(zz), 0.0)
        n_tests = j.groupby(["service", "bin", "m"])["event"].transform("size").to_numpy(dtype="float64")
        j = j.assign(s=np.maximum(sur - np.log10(np.maximum(n_tests, 1.0)) - corr_w, 0.0))
        j = j[j["s"] > 0].sort_values("s", ascending=False).drop_duplicates(["service", "bin", "event"])
        for r in j.itertuples(index=False):
            key = (str(r.service), pd.Timestamp(r.bin))
            lst = best.setdefault(key, [])
            if sum(1 for x in lst if x.kind in (("log_drop",) if name == "drop" else ("log_rise", "log_new"))) >= top:
                continue
            to, tb = float(r.tot_o), float(r.tot_b)
            kind: SignalKind = "log_drop" if name == "drop" else ("log_new" if r.b == 0 else "log_rise")
            lst.append(Signal(str(r.service), pd.Timestamp(r.bin), "log", kind, float(r.s), subject=str(r.event),
                              observed=float(r.o), expected=float(r.b) * to / tb if tb else None,
                              detail={"baseline": float(r.b), "bins": int(r.m), "level": levels.get(str(r.event)),
                                      "inflation": round(lam, 3)}))
    # Silence is judged only over windows whose every bin was observed whole: a bin that caught a few seconds of
    # logs (the edge of a file or of a collection gap) makes every quiet service look silent.
    vol = batch.groupby(level=0).sum()
    if coverage is not None and len(coverage):
        thin = {b for b in vol.index if float(coverage.get(b, 0.0)) < MIN_COVERAGE}
    else:
        thin = set(vol[vol < THIN_BIN_SHARE * float(vol.median())].index)
    bins_sorted = sorted(vol.index)
    pos = {b: i for i, b in enumerate(bins_sorted)}

    def full(row_bin: pd.Timestamp, m: int) -> bool:
        i = pos.get(row_bin)
        return i is not None and not any(b in thin for b in bins_sorted[i: i + m])

    ok = np.array([full(b, int(m)) for b, m in zip(t["bin"], t["m"], strict=True)], dtype=bool)
    # A crashed or cut-off service stays silent; one quiet bin of a low-volume service is what its callers'
    # traffic mix does by itself. Silence counts from MIN_SILENT_BINS consecutive bins.
    lasting = (t["m"].to_numpy() >= MIN_SILENT_BINS)
    silent = t[(t["o"] == 0).to_numpy() & ok & lasting].copy()
    if len(silent):
        silent["s"] = np.maximum(_z_surprise(-silent["z"].to_numpy() / rt) - corr_w, 0.0)
        for r in silent[silent["s"] > 0].sort_values("s", ascending=False).drop_duplicates(["service", "bin"]).itertuples(index=False):
            best.setdefault((str(r.service), pd.Timestamp(r.bin)), []).append(Signal(
                str(r.service), pd.Timestamp(r.bin), "log", "log_silent", float(r.s), subject="(all lines)", observed=0.0,
                expected=float(r.tot_b) * float(r.cluster_w) / cluster_base,
                detail={"bins": int(r.m), "inflation": round(lam, 3)}))
    out: list[Signal] = []
    for sigs in best.values():
        sigs.sort(key=lambda x: -x.score)
        out.extend(sigs[: 2 * top])
    return out


def _service_totals(batch: pd.Series) -> pd.Series:
    """Counts per (bin, service, "*"): every line of the service, as one event."""
    tot = batch.groupby(level=[0, 1]).sum()
    idx = pd.MultiIndex.from_arrays([tot.index.get_level_values(0), tot.index.get_level_values(1),
                                     pd.Index(["*"] * len(tot))], names=["bin", "service", "event"])
    return pd.Series(tot.to_numpy(), index=idx)


# ---- metrics ---------------------------------------------------------------------------------------------------
_RESOURCE = (
    ("cpu", re.compile(r"cpu|throttl", re.I)),
    ("memory", re.compile(r"mem|rss|heap|oom|swap", re.I)),
    ("disk", re.compile(r"disk|filesystem|\bfs\b|_fs_|inode|iops|volume|\bio\b|_io_|read_bytes|write_bytes", re.I)),
    ("network", re.compile(r"network|\bnet\b|_net_|receive|transmit|\brx\b|\btx\b|packet|tcp|socket|bandwidth", re.I)),
    ("latency", re.compile(r"latency|duration|response.?time|\brt\b|p50|p9\d|p99", re.I)),
    ("errors", re.compile(r"error|fail|5xx|success|status", re.I)),
    ("workload", re.compile(r"workload|qps|rps|request|ops|throughput|calls|count", re.I)),
)


_CLIENT_SIDE = re.compile(r"client|outbound|egress", re.I)


def channel_kind(metric: str) -> str:
    """What a metric measures, from its name: cpu, memory, disk, network, latency, errors, workload or other."""
    for kind, rx in _RESOURCE:
        if rx.search(metric):
            return kind
    return "other"


def shared_channels(frame: pd.DataFrame, entity_of: dict[str, str | None], metric_of: dict[str, str]) -> set[str]:
    """Channels whose values are identical (to 6 significant digits) in two or more entities over the batch: a
    host's or cluster's metric repeated in each pod's file, which says nothing about one pod."""
    shared: set[str] = set()
    by_metric: dict[str, list[str]] = {}
    for c in frame.columns:
        if entity_of.get(str(c)):
            by_metric.setdefault(metric_of.get(str(c), str(c)), []).append(str(c))
    for cols in by_metric.values():
        if len(cols) < 2:
            continue
        keys: dict[bytes, list[str]] = {}
        for c in cols:
            v = frame[c].to_numpy(dtype="float64")
            if np.isfinite(v).sum() < 2 or np.nanstd(v) == 0:
                continue
            keys.setdefault(np.round(np.nan_to_num(v, nan=-1.2345e-9), 6).tobytes(), []).append(c)
        for group in keys.values():
            if len(group) >= 2:
                shared.update(group)
    return shared


def tail_surprise(reference: np.ndarray, values: np.ndarray, *, tail: float = 0.05, trim: float = 0.01,
                  floor: float = 0.0) -> np.ndarray:
    """``-log10`` of the probability, under ``reference``'s upper tail, of a value at least as high as each of
    ``values`` (peaks over threshold: a generalised Pareto tail fitted by moments above the reference's
    ``1 - tail`` quantile, the empirical distribution below it). A heavy-tailed reference (latencies that spike
    now and then) makes a high value less surprising than a light-tailed one (a CPU that never moved) does.

    Args:
        reference: the baseline's values (non-finite ignored; at least 20 needed, else zeros are returned).
        values: the values to judge.
        tail: share of the reference modelled as the tail.
        trim: share of the reference's highest values left out of the tail fit: a "fault-free" baseline may hold a
            few minutes of an incident, which would otherwise make every later incident look ordinary.
        floor: the smallest meaningful excess (the tail's scale is at least this).
    """
    ref = np.sort(np.asarray(reference, dtype="float64"))
    ref = ref[np.isfinite(ref)]
    if trim > 0 and ref.size >= 20:
        ref = ref[: max(20, int(math.floor(ref.size * (1.0 - trim))))]
    x = np.asarray(values, dtype="float64")
    out = np.zeros_like(x)
    if ref.size < 20:
        return out
    n = ref.size
    u = float(np.quantile(ref, 1.0 - tail))
    exc = ref[ref > u] - u
    frac = max(exc.size, 1) / (n + 1)
    m = float(exc.mean()) if exc.size else 0.0
    v = float(exc.var()) if exc.size > 1 else 0.0
    if exc.size >= 5 and v > 0:
        # A trimmed sample has a bounded upper tail by construction; the model keeps it unbounded (shape >= 0).
        gamma = float(np.clip(0.5 * (1.0 - m * m / v), 0.0, 1.0))
        sigma = 0.5 * m * (m * m / v + 1.0)
    else:
        gamma, sigma = 0.0, m
    sigma = max(sigma, floor, 1e-12)
    fin = np.isfinite(x)
    above = fin & (x > u)
    below = fin & ~above
    if below.any():
        ge = n - np.searchsorted(ref, x[below], side="left")
        out[below] = -np.log10((ge + 1.0) / (n + 1.0))
    if above.any():
        z = (x[above] - u) / sigma
        if abs(gamma) < 1e-6:
            logp = math.log(frac) - z
        else:
            logp = math.log(frac) - np.log1p(np.maximum(gamma * z, -0.999999)) / gamma
        out[above] = -logp / math.log(10.0)
    return np.clip(out, 0.0, MAX_SURPRISE)


def metric_signals(
    batch: pd.DataFrame, base: pd.DataFrame, entity_of: dict[str, str | None], metric_of: dict[str, str],
    service_of_entity: dict[str, str], *, sustain: int = 2, min_baseline: int = 30, top: int = 3,
) -> list[Signal]:
    """Metric evidence per (service, bin): sustained moves beyond the baseline (see the module docstring).

    For each channel, the rolling minimum over ``sustain`` bins (for a rise; the rolling maximum for a fall) is
    judged by :func:`tail_surprise` against the same rolling statistic of the baseline; a pod's best channel is
    corrected for the number of its channels. Channels repeated identically across pods (a node's metric in each
    pod's file) and channels the baseline holds at two values or fewer are left out.

    Args:
        batch: the batch's metrics (DatetimeIndex on the evidence bins x channels).
        base: the baseline's metrics, same channels (rows inside the batch's range already removed).
        entity_of / metric_of: channel -> entity (pod) / metric name.
        service_of_entity: entity (or entity-less channel) -> service.
        sustain: bins a move must last (rolling window).
    """
    out: list[Signal] = []
    if batch.empty or base.empty:
        return out
    shared = shared_channels(batch, entity_of, metric_of)
    k = max(1, int(sustain))
    per_entity: dict[str, int] = {}
    usable: list[str] = []
    for c in batch.columns:
        c = str(c)
        if c in shared or c not in base.columns:
            continue
        b = base[c].to_numpy(dtype="float64")
        fb = b[np.isfinite(b)]
        if fb.size < min_baseline or np.unique(fb).size <= 2:
            continue
        if _CLIENT_SIDE.search(metric_of.get(c, c)):
            continue  # the latency or errors of calls the pod makes describe its callees, not the pod
        usable.append(c)
        key = entity_of.get(c) or c
        per_entity[key] = per_entity.get(key, 0) + 1
    for c in usable:
        ent = entity_of.get(c)
        bs = base[c].astype("float64").reset_index(drop=True)
        b = bs.to_numpy()
        med = float(np.nanmedian(b))
        q75, q25 = np.nanquantile(b, 0.75), np.nanquantile(b, 0.25)
        uniq = np.unique(b[np.isfinite(b)])
        resolution = float(np.median(np.diff(uniq))) if uniq.size > 1 else 0.0
        # The smallest move that means anything: the spread of the middle half, a step of a coarse-grained counter
        # (0, 0.067, 0.133 ops/s), or 5 % of the typical level.
        floor = max(float(q75 - q25), 2.0 * resolution, 0.05 * abs(med), 1e-9)
        x = batch[c].astype("float64")
        corr = math.log10(max(per_entity.get(ent or c, 1), 1))
        svc = service_of_entity.get(ent, ent) if ent else service_of_entity.get(c, c)
        metric = metric_of.get(c, c)
        for kind, ref, cur, sign in (
            ("metric_up", bs.rolling(k, min_periods=k).min(), x.rolling(k, min_periods=k).min(), 1.0),
            ("metric_down", bs.rolling(k, min_periods=k).max(), x.rolling(k, min_periods=k).max(), -1.0),
        ):
            sur = tail_surprise(sign * ref.to_numpy(), sign * cur.to_numpy(), floor=floor) - corr
            for i in np.flatnonzero(sur > 0):
                start = max(0, int(i) - k + 1)  # the rolling window ending at i began k - 1 bins earlier
                out.append(Signal(svc, pd.Timestamp(x.index[start]), "metric", kind, float(sur[i]), pod=ent,  # type: ignore[arg-type]
                                  subject=metric, observed=float(x.iloc[start: i + 1].mean()), expected=med,
                                  detail={"channel": c, "kind": channel_kind(metric), "sustained_bins": k,
                                          "bound": float(np.nanquantile(ref.to_numpy(), 0.99 if sign > 0 else 0.01))
                                          if np.isfinite(ref.to_numpy()).any() else None}))
    return _top_per_bin(out, top)


def _top_per_bin(signals: Iterable[Signal], top: int) -> list[Signal]:
    best: dict[tuple[str, pd.Timestamp], list[Signal]] = {}
    for s in signals:
        best.setdefault((s.service, s.bin), []).append(s)
    out: list[Signal] = []
    for sigs in best.values():
        seen: set[tuple[str | None, str]] = set()
        for s in sorted(sigs, key=lambda x: -x.score):
            key = (s.pod, s.subject)
            if key in seen:
                continue
            seen.add(key)
            out.append(s)
            if len(seen) >= top:
                break
    return out


# ---- traces ----------------------------------------------------------------------------------------------------
def trace_signals(batch_entry: pd.DataFrame, base_entry: pd.DataFrame, step: pd.Timedelta, *,
                  min_baseline: int = 20, top: int = 3) -> list[Signal]:
    """Trace evidence per (service, bin) from entry spans (see :func:`tools.traces.entry_spans`).

    Per (service, bin): the count of entry spans slower than the baseline's 99th percentile of their operation
    (binomial against 1 %), the error count against the baseline's error share, and the calls that arrived
    against the cluster's volume. All three are calibrated by the batch's inflation factor (:func:`inflation`)
    and corrected for the number of services tested.
    """
    out: list[Signal] = []
    if batch_entry.empty or base_entry.empty:
        return out

    def p99(v: pd.Series) -> float:
        return float(np.nanquantile(v, 0.99))

    p99_op = base_entry.groupby(["service", "operation"])["duration_ms"].agg(["size", p99])
    p99_op.columns = ["n", "p99"]
    p99_svc = base_entry.groupby("service")["duration_ms"].agg(["size", p99])
    p99_svc.columns = ["n", "p99"]
    err_base = base_entry.assign(e=pd.to_numeric(base_entry["error"], errors="coerce")).groupby("service")["e"].agg(["sum", "count"])
    e = batch_entry.copy()
    e["bin"] = e["start"].dt.floor(step)
    key = pd.MultiIndex.from_frame(e[["service", "operation"]])
    op_ok = p99_op[p99_op["n"] >= min_baseline]["p99"]
    bound = pd.Series(op_ok.reindex(key).to_numpy(), index=e.index)
    svc_ok = p99_svc[p99_svc["n"] >= min_baseline]["p99"]
    bound = bound.fillna(e["service"].map(svc_ok))
    e["slow"] = (e["duration_ms"] > bound).astype("float64").where(bound.notna())
    e["err"] = pd.to_numeric(e["error"], errors="coerce")
    g = e.groupby(["service", "bin"], sort=False).agg(slow=("slow", "sum"), timed=("slow", "count"),
                                                       errs=("err", "sum"), known=("err", "count"),
                                                       p50=("duration_ms", "median"))
    g = g.reset_index()
    rate = ((err_base["sum"] + 0.5) / (err_base["count"] + 1.0)).where(err_base["count"] > 0)
    g["err_rate"] = g["service"].map(rate)
    z_slow = _signed_z(g["slow"].to_numpy(), g["timed"].to_numpy(), np.full(len(g), 0.01))
    z_slow = np.where(g["timed"].to_numpy() > 0, z_slow, np.nan)
    has_err = g["err_rate"].notna().to_numpy() & (g["known"].to_numpy() > 0)
    z_err = np.where(has_err, _signed_z(g["errs"].to_numpy(), g["known"].to_numpy(),
                                        np.nan_to_num(g["err_rate"].to_numpy(), nan=0.5)), np.nan)
    # Calls that arrived, against the cluster's span volume in the bin.
    base_calls = base_entry.groupby("service").size()
    base_total = float(len(base_entry))
    vol = e.groupby("bin").size()
    arrived = e.groupby(["bin", "service"]).size()
    rows = []
    for w, total in vol.items():
        for svc, nb in base_calls.items():
            if nb >= min_baseline:
                rows.append((svc, w, float(arrived.get((w, svc), 0)), float(nb), float(total)))
    calls = pd.DataFrame(rows, columns=["service", "bin", "o", "nb", "total"])
    z_calls = (_signed_z(calls["o"].to_numpy(), (calls["o"] + calls["nb"]).to_numpy(),
                         (calls["total"] / (calls["total"] + base_total)).to_numpy()) if len(calls) else np.array([]))
    lam = inflation(np.concatenate([z_slow[np.isfinite(z_slow)], z_err[np.isfinite(z_err)], z_calls]))
    rt = math.sqrt(lam)
    corr = math.log10(max(g["service"].nunique(), 1))
    s_slow = np.where(np.isfinite(z_slow), _z_surprise(np.nan_to_num(z_slow) / rt), 0.0) - corr
    s_err = np.where(np.isfinite(z_err), _z_surprise(np.nan_to_num(z_err) / rt), 0.0) - corr
    for i, r in enumerate(g.itertuples(index=False)):
        if s_slow[i] > 0:
            out.append(Signal(str(r.service), pd.Timestamp(r.bin), "trace", "latency", float(s_slow[i]), subject="entry spans",
                              observed=float(r.slow) / max(float(r.timed), 1.0), expected=0.01,
                              detail={"slow": int(r.slow), "spans": int(r.timed), "p50_ms": float(r.p50),
                                      "inflation": round(lam, 3)}))
        if s_err[i] > 0:
            out.append(Signal(str(r.service), pd.Timestamp(r.bin), "trace", "errors", float(s_err[i]), subject="entry spans",
                              observed=float(r.errs) / max(float(r.known), 1.0), expected=float(r.err_rate),
                              detail={"errors": int(r.errs), "spans": int(r.known), "inflation": round(lam, 3)}))
    if len(calls):
        s_calls = _z_surprise(-z_calls / rt) - corr
        for i, r in enumerate(calls.itertuples(index=False)):
            if s_calls[i] > 0:
                out.append(Signal(str(r.service), pd.Timestamp(r.bin), "trace", "calls_drop", float(s_calls[i]),
                                  subject="entry spans", observed=float(r.o), expected=float(r.nb) * float(r.total) / base_total,
                                  detail={"inflation": round(lam, 3)}))
    return _top_per_bin(out, top)
