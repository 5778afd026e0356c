"""Tiny inline-SVG line charts (no external assets, no JavaScript) for the HTML report."""

from __future__ import annotations

import math
from datetime import datetime
from html import escape

from agent.report import Series, Span

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
