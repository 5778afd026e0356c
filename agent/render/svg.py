"""Tiny inline-SVG line charts (no external assets, no JavaScript) for the HTML report."""

from __future__ import annotations

import math
from datetime import datetime
from html import escape

from anomalist.agent.report import Series, ServiceGraph, Span

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
SPAN_FILL = "#f4a3a3"


def _nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    first = math.ceil(lo / step) * step
    ticks: list[float] = []
    v = first
    while v <= hi + 1e-9 * abs(hi) and len(ticks) < 12:
        ticks.append(v)
        v += step
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e3:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


def line_chart(
    series: list[Series],
    spans: list[Span],
    *,
    title: str,
    t0: datetime,
    t1: datetime,
    width: int = 880,
    height: int = 180,
    legend: bool = True,
) -> str:
    """An SVG chart of ``series`` over [t0, t1] with the findings' ``spans`` shaded.

    Missing values (None) break the line. Returns the ``<svg>`` element as a string.
    """
    left, right, top, bottom = 56, 24, 22, 26
    pw, ph = width - left - right, height - top - bottom
    span_s = max((t1 - t0).total_seconds(), 1.0)
    finite = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if hi == lo:
        lo, hi = lo - 1.0, hi + 1.0
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad

    def x(t: datetime) -> float:
        return left + pw * min(max((t - t0).total_seconds() / span_s, 0.0), 1.0)

    def y(v: float) -> float:
        return top + ph * (1.0 - (v - lo) / (hi - lo))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="14" class="ct">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for sp in spans:
        if sp.end < t0 or sp.start > t1:
            continue
        xa, xb = x(sp.start), x(sp.end)
        parts.append(
            f'<rect class="span" x="{xa:.1f}" y="{top}" width="{max(xb - xa, 2.0):.1f}" height="{ph}" '
            f'fill="{SPAN_FILL}" fill-opacity="0.45"><title>{escape(sp.finding_id)}</title></rect>'
        )
        parts.append(f'<text x="{xa + 2:.1f}" y="{top + 11}" class="sl">{escape(sp.finding_id)}</text>')
    for tv in _nice_ticks(lo, hi):
        yy = y(tv)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e4e4e4"/>')
        parts.append(f'<text x="{left - 4}" y="{yy + 3:.1f}" class="yl">{_fmt(tv)}</text>')
    for k in range(5):
        t = t0 + (t1 - t0) * (k / 4)
        xx = x(t)
        parts.append(f'<text x="{xx:.1f}" y="{height - 8}" class="xl">{t.strftime("%H:%M")}</text>')
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        segments: list[list[str]] = [[]]
        for t, v in zip(s.timestamps, s.values, strict=False):
            if v is None or not math.isfinite(v):
                if segments[-1]:
                    segments.append([])
                continue
            segments[-1].append(f"{x(t):.1f},{y(v):.1f}")
        for seg in segments:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="1.5" fill="{color}"/>')
            elif seg:
                parts.append(
                    f'<polyline class="series" fill="none" stroke="{color}" stroke-width="1.4" points="{" ".join(seg)}">'
                    f"<title>{escape(s.name)}</title></polyline>"
                )
    if legend and len(series) > 1:
        lx = left + 6
        for i, s in enumerate(series):
            color = PALETTE[i % len(PALETTE)]
            ly = top + 12 + 12 * i
            parts.append(f'<rect x="{lx}" y="{ly - 7}" width="8" height="8" fill="{color}"/>')
            parts.append(f'<text x="{lx + 11}" y="{ly}" class="lg">{escape(s.name[:90])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def service_graph(graph: ServiceGraph, *, max_nodes: int = 60, width: int = 900) -> str:
    """The service call graph as SVG: callers left of callees (layers by call depth), root-cause candidates
    coloured (the first in red, the others in orange, by their change level), edges labelled by p90 latency.

    Graphs with more than ``max_nodes`` services keep the candidates and their neighbours.
    """
    edges = [(e.caller, e.callee, e) for e in graph.edges if e.caller != e.callee]
    cand = {n.service: n for n in graph.nodes if n.candidate_id}
    names = [n.service for n in graph.nodes]
    if len(names) > max_nodes:
        keep = set(cand)
        for a, b, _ in edges:
            if a in cand or b in cand:
                keep.update((a, b))
        names = [n for n in names if n in keep][:max_nodes]
    nodes = set(names)
    edges = [(a, b, e) for a, b, e in edges if a in nodes and b in nodes]
    callers: dict[str, set[str]] = {n: set() for n in nodes}
    for a, b, _ in edges:
        callers[b].add(a)
    depth: dict[str, int] = {}
    frontier = sorted(n for n in nodes if not callers[n]) or sorted(nodes)[:1]
    for n in frontier:
        depth[n] = 0
    for _ in range(len(nodes)):  # longest-path layering, bounded (cycles stop growing at len(nodes))
        changed = False
        for a, b, _ in edges:
            if a in depth and depth.get(b, -1) < depth[a] + 1 and depth[a] + 1 < len(nodes):
                depth[b] = depth[a] + 1
                changed = True
        if not changed:
            break
    for n in nodes:
        depth.setdefault(n, 0)
    layers: dict[int, list[str]] = {}
    for n in sorted(nodes):
        layers.setdefault(depth[n], []).append(n)
    cols = max(layers) + 1 if layers else 1
    rows = max((len(v) for v in layers.values()), default=1)
    row_h, top = 26, 24
    height = top + rows * row_h + 16
    col_w = max(140, (width - 40) // max(cols, 1))
    pos: dict[str, tuple[float, float]] = {}
    for d, ns in layers.items():
        off = (rows - len(ns)) * row_h / 2
        for i, n in enumerate(ns):
            pos[n] = (20 + d * col_w + 6, top + off + i * row_h + row_h / 2)
    first = next((n.service for n in graph.nodes if n.candidate_id == "C1"), None)
    parts = [f'<svg class="chart graph" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="service call graph">',
             '<defs><marker id="arr" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="6" markerHeight="6" '
             'orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" fill="#999"/></marker></defs>',
             f'<text class="ct" x="20" y="14">service call graph (traces): {len(nodes)} services, {len(edges)} edges</text>']
    box_w = col_w - 24
    for a, b, e in edges:
        (x1, y1), (x2, y2) = pos[a], pos[b]
        hot = a == first or b == first
        colour = "#d0302f" if hot else "#bbb"
        parts.append(f'<line x1="{x1 + box_w:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
                     f'stroke-width="{1.6 if hot else 0.8}" marker-end="url(#arr)">'
                     f'<title>{escape(a)} → {escape(b)}: {e.calls} calls, p90 {e.p90_ms or 0:.1f} ms'
                     + (f" (baseline {e.baseline_p90_ms:.1f} ms)" if e.baseline_p90_ms is not None else "")
                     + "</title></line>")
    for n in names:
        x0, y0 = pos[n]
        c = cand.get(n)
        fill = "#d0302f" if n == first else "#e69b00" if c is not None else "#f3f3f3"
        fg = "#fff" if c is not None else "#222"
        label = n if len(n) <= 26 else n[:25] + "…"
        tip = f"{n}" + (f": candidate {c.candidate_id}, level {c.level:.2f}" if c is not None else "")
        parts.append(f'<g><title>{escape(tip)}</title><rect x="{x0:.1f}" y="{y0 - 9:.1f}" width="{box_w}" height="18" '
                     f'rx="4" fill="{fill}" stroke="#999" stroke-width="0.6"/>'
                     f'<text class="lg" x="{x0 + 4:.1f}" y="{y0 + 4:.1f}" fill="{fg}">{escape(label)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)
