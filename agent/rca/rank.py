"""From per-service evidence to ranked root-cause candidates: episodes, onset, propagation, fault kind.

1. Each signal is put on one scale: its surprise divided by its modality's scale (``RCAParams.*_scale``), so 1.0
   means "clearly changed" for logs, metrics and traces alike. Per service and bin, the strongest modality counts
   in full and the second strongest adds ``agree`` of itself (independent views that agree are stronger).
2. A service is *active* in a bin at level >= 1. Its active bins closer than ``episode_gap`` bins form its
   *episodes*; the latest one is its candidate. The incident at hand is the recent one, not an earlier one in the
   same batch: with ``recency="decay"`` a candidate's score halves every ``half_life_min`` minutes (or
   ``half_life_share`` of the batch's span, if longer) between its onset and the end of the batch, and a service's
   candidate is its best episode so weighted; with ``recency="ongoing"`` candidates whose change lasts until (within
   ``episode_gap`` bins of) the end of the data that shows it rank first.
3. A candidate's *onset* is the first active bin of its episode; its score is its peak level there.
4. *Propagation*: callers of a failing service fail too. A candidate that calls (per the trace call graph)
   another active candidate loses up to ``propagation`` of its score, in proportion to how much of it the
   callee's explains; and a candidate whose callee changed first loses ``propagation`` as well. So the deepest
   anomalous callee ranks first.
5. *Common mode*: an error template that rises in n services in the same bin (a registry, network or database
   failing under all of them) counts 1/n for each of them.
6. *Fault kind*: a resource (cpu, memory, disk, network) when the candidate's strongest evidence is a sustained
   move of such a metric; network when it is latency without errors in the logs; else code (log/trace-visible).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

from anomalist.agent.rca.evidence import Signal

FaultKind = Literal["code", "cpu", "memory", "disk", "network"]
RESOURCE_KINDS = ("cpu", "memory", "disk", "network")


@dataclass(frozen=True)
class RCAParams:
    """The ranking's constants (the evidence's statistics have none of their own). Chosen by leave-one-fault-type-
    out evaluation (``anomalist eval rca``); see the README's root-cause section for the figures."""

    log_scale: float = 2.0  # log surprise (decades of p beyond chance) that counts as a clear change
    metric_scale: float = 10.0  # metric tail surprise that counts as a clear change (sustained, multi-channel pods)
    trace_scale: float = 50.0  # trace surprise that counts as a clear change (a one-minute trace baseline is noisy)
    agree: float = 0.5  # weight of the second strongest modality in a bin
    min_level: float = 0.5  # a service is active in a bin at this level (1 = a clear change)
    episode_gap: int = 3  # bins without activity that end an episode
    recency: Literal["ongoing", "decay", "none"] = "decay"
    half_life_min: float = 5.0  # with recency="decay": a change this many minutes older weighs half ...
    half_life_share: float = 0.25  # ... or this share of the batch's span, if longer (a day's batch is not 20 min)
    propagation: float = 0.0  # share of a caller's score that an active callee can explain away (0: off)
    mentions: Literal["named", "emitter", "ignore"] = "emitter"  # errors naming another service count for whom
    common_mode: bool = True  # an error template rising in n services at once counts 1/n for each


@dataclass
class Candidate:
    """A service (and pod when known) that may be the root cause, with its evidence."""

    service: str
    score: float
    onset: pd.Timestamp
    peak: pd.Timestamp
    kind: FaultKind
    pods: list[str]
    signals: list[Signal]
    episode: tuple[pd.Timestamp, pd.Timestamp]
    current: bool = True  # in the latest episode
    explained_by: list[str] = field(default_factory=list)  # active callees that took part of its score
    raw_score: float = 0.0
    modality_scores: dict[str, float] = field(default_factory=dict)


def levels(signals: Sequence[Signal], params: RCAParams) -> pd.DataFrame:
    """Per (bin, service): the combined level (see the module docstring), with one column per modality."""
    if not signals:
        return pd.DataFrame(columns=["bin", "service", "log", "metric", "trace", "level"])
    scale = {"log": params.log_scale, "metric": params.metric_scale, "trace": params.trace_scale}
    df = pd.DataFrame({"bin": [s.bin for s in signals], "service": [s.service for s in signals],
                       "modality": [s.modality for s in signals], "group": [_GROUP.get(s.kind, s.kind) for s in signals],
                       "v": [s.score / scale[s.modality] for s in signals]})
    # Within a modality, the best signal of each independent group adds up (logs: a statement that stopped being
    # reached, and an error that appeared); signals of one group are alternatives (the best counts).
    g = df.groupby(["bin", "service", "modality", "group"], sort=False)["v"].max().reset_index()
    m = g.pivot_table(index=["bin", "service"], columns="modality", values="v", aggfunc="sum", fill_value=0.0)
    for mod in ("log", "metric", "trace"):
        if mod not in m.columns:
            m[mod] = 0.0
    vals = np.sort(m[["log", "metric", "trace"]].to_numpy(), axis=1)
    m["level"] = vals[:, -1] + params.agree * vals[:, -2]
    return m.reset_index()[["bin", "service", "log", "metric", "trace", "level"]]


_GROUP = {"log_drop": "absent", "log_silent": "absent", "log_rise": "errors", "log_new": "errors", "log_named": "errors",
          "metric_up": "metric", "metric_down": "metric", "latency": "trace", "errors": "trace", "calls_drop": "trace"}


def _episodes(active_bins: Sequence[pd.Timestamp], step: pd.Timedelta, gap: int) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    bins = sorted(set(active_bins))
    if not bins:
        return []
    out: list[list[pd.Timestamp]] = [[bins[0], bins[0]]]
    for b in bins[1:]:
        if b - out[-1][1] < step * (gap + 1):  # fewer than `gap` inactive bins in between
            out[-1][1] = b
        else:
            out.append([b, b])
    return [(a, z) for a, z in out]


def rank(signals: Sequence[Signal], step: pd.Timedelta, params: RCAParams, *,
         callees: dict[str, set[str]] | None = None, pods: dict[str, list[str]] | None = None,
         last_bins: dict[str, pd.Timestamp] | None = None, limit: int = 10) -> list[Candidate]:
    """Ranked root-cause candidates from ``signals`` (see the module docstring).

    Args:
        signals: evidence from :mod:`agent.rca.evidence`.
        step: the evidence's time bin.
        callees: service -> services it calls (trace call graph); None or empty = no propagation.
        pods: service -> its pods (from the logs), for candidates without a metric pod.
        last_bins: modality -> the last bin with data of that kind (default: the last bin with a signal).
        limit: candidates returned.
    """
    signals = _attribute(signals, params)
    if params.common_mode:
        signals = _common_mode(signals)
    lv = levels(signals, params)
    if lv.empty:
        return []
    active = lv[lv["level"] >= params.min_level]
    if active.empty:
        return []
    ends = dict(last_bins or {})
    for mod in ("log", "metric", "trace"):
        if mod not in ends:
            have = lv[lv[mod] > 0]["bin"]
            if len(have):
                ends[mod] = pd.Timestamp(have.max())
    by_service: dict[str, list[Signal]] = {}
    for s in signals:
        by_service.setdefault(s.service, []).append(s)
    cands: list[Candidate] = []
    end = max(ends.values()) if ends else pd.Timestamp(active["bin"].max())
    start = pd.Timestamp(lv["bin"].min())
    half_life = max(params.half_life_min, params.half_life_share * (end - start) / pd.Timedelta(minutes=1))
    for svc, g in active.groupby("service", sort=False):
        episodes = _episodes(list(g["bin"]), step, params.episode_gap)
        if params.recency == "none":
            episodes = [(episodes[0][0], episodes[-1][1])]
        best: Candidate | None = None
        for ep in episodes:
            c = _candidate(str(svc), g, ep, by_service, pods, ends, step, params)
            if params.recency == "decay":
                age = max((end - c.onset) / pd.Timedelta(minutes=1), 0.0)
                c.score = c.raw_score * 0.5 ** (age / max(half_life, 1e-6))
            # A service's candidate is its strongest episode once age is counted (without decay: the latest one).
            if best is None or (c.score >= best.score if params.recency == "decay" else True):
                best = c
        if best is not None:
            cands.append(best)
    _propagate(cands, callees or {}, params)
    cands.sort(key=lambda c: (not c.current, -c.score, c.onset, c.service))
    return cands[:limit]


MENTION_SEP = "->"


def _attribute(signals: Sequence[Signal], params: RCAParams) -> list[Signal]:
    """Errors that name another service of the cluster ("No instances available for ts-basic-service"): with
    ``mentions="named"`` they are evidence about the named service (the signal moves there as ``log_named``, citing
    who logged it); with ``"ignore"`` about neither (the named service's own telemetry has to show it); with
    ``"emitter"`` they stay with the service that logged them."""
    if params.mentions == "emitter":
        return list(signals)
    out: list[Signal] = []
    for s in signals:
        if s.modality == "log" and s.kind in ("log_rise", "log_new") and MENTION_SEP in s.subject:
            named = s.subject.rsplit(MENTION_SEP, 1)[1]
            if named and named != s.service:
                if params.mentions == "named":
                    out.append(replace(s, service=named, kind="log_named", pod=None,
                                       detail={**s.detail, "logged_by": s.service}))
                continue  # "ignore": a caller's complaint about a callee is neither's own evidence
        out.append(s)
    return out


def _candidate(svc: str, g: pd.DataFrame, ep: tuple[pd.Timestamp, pd.Timestamp], by_service: dict[str, list[Signal]],
               pods: dict[str, list[str]] | None, ends: dict[str, pd.Timestamp], step: pd.Timedelta,
               params: RCAParams) -> Candidate:
    inside = g[(g["bin"] >= ep[0]) & (g["bin"] <= ep[1])]
    peak_row = inside.loc[inside["level"].idxmax()]
    onset = pd.Timestamp(inside["bin"].min())
    sigs = [s for s in by_service.get(svc, []) if ep[0] <= s.bin <= ep[1]]
    sigs.sort(key=lambda s: -s.score / _scale(s, params))
    mods = {m: float(inside[m].max()) for m in ("log", "metric", "trace")}
    # Ongoing: the change lasts until (about) the end of the data that shows it.
    shown = [m for m in ("log", "metric", "trace") if mods[m] >= 0.5 and m in ends] or [
        m for m in ("log", "metric", "trace") if m in ends]
    horizon = max(ends[m] for m in shown) if shown else ep[1]
    ongoing = params.recency != "ongoing" or ep[1] >= horizon - step * params.episode_gap
    return Candidate(
        service=svc, score=float(peak_row["level"]), raw_score=float(peak_row["level"]), onset=onset,
        peak=pd.Timestamp(peak_row["bin"]), kind=_kind(sigs, mods, params), pods=_pods(sigs, (pods or {}).get(svc)),
        signals=sigs, episode=ep, current=ongoing, modality_scores=mods,
    )


def _common_mode(signals: Sequence[Signal]) -> list[Signal]:
    """An error template that rises in several services in the same bin (a shared registry, network or database
    failing under all of them) is weak evidence against any one of them: each gets 1/n of it."""
    def template(s: Signal) -> str:
        return s.subject.split(MENTION_SEP, 1)[0].split("|", 1)[0]

    spread: dict[tuple[pd.Timestamp, str], set[str]] = {}
    for s in signals:
        if s.modality == "log" and s.kind in ("log_rise", "log_new", "log_named"):
            spread.setdefault((s.bin, template(s)), set()).add(s.service)
    out = []
    for s in signals:
        if s.modality == "log" and s.kind in ("log_rise", "log_new", "log_named"):
            n = len(spread[(s.bin, template(s))])
            if n > 1:
                s = replace(s, score=s.score / n, detail={**s.detail, "shared_by": n})
        out.append(s)
    return out


def _scale(s: Signal, params: RCAParams) -> float:
    return {"log": params.log_scale, "metric": params.metric_scale, "trace": params.trace_scale}[s.modality]


def _propagate(cands: list[Candidate], callees: dict[str, set[str]], params: RCAParams) -> None:
    if not callees or params.propagation <= 0:
        return
    by_ep: dict[bool, dict[str, Candidate]] = {}
    for c in cands:
        by_ep.setdefault(c.current, {})[c.service] = c
    for group in by_ep.values():
        raw = {s: c.raw_score for s, c in group.items()}
        for s, c in group.items():
            below = [d for d in callees.get(s, set()) if d in group and d != s]
            if not below:
                continue
            share = max(min(1.0, raw[d] / max(raw[s], 1e-9)) for d in below)
            earlier = any(group[d].onset < c.onset for d in below)
            loss = params.propagation * max(share, 1.0 if earlier else 0.0)
            c.score = raw[s] * (1.0 - min(loss, 0.95))
            c.explained_by = sorted(below, key=lambda d: -raw[d])


def _kind(sigs: Sequence[Signal], mods: dict[str, float], params: RCAParams) -> FaultKind:
    if not sigs:
        return "code"
    top = sigs[0]
    if top.modality == "metric":
        k = str(top.detail.get("kind", "other"))
        if k in RESOURCE_KINDS:
            return k  # type: ignore[return-value]
        if k == "latency" and mods.get("log", 0.0) < 1.0:
            return "network"
        # An application metric (errors, workload) that moved: look for a resource metric that moved as well.
        res = [s for s in sigs if s.modality == "metric" and s.detail.get("kind") in RESOURCE_KINDS
               and s.score / params.metric_scale >= 1.0]
        if res and mods.get("log", 0.0) < 1.0:
            return str(res[0].detail["kind"])  # type: ignore[return-value]
        return "code"
    if top.modality == "trace" and top.kind == "latency" and mods.get("log", 0.0) < 1.0:
        return "network"
    return "code"


def _pods(sigs: Sequence[Signal], known: Sequence[str] | None) -> list[str]:
    pods: dict[str, None] = {}
    for s in sigs:
        if s.pod:
            pods.setdefault(s.pod, None)
    for p in known or []:
        pods.setdefault(p, None)
    return list(pods)
