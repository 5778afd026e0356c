"""``anomalist detect METRICS.csv``: run one time-series detector on a metrics CSV and print the anomalous spans."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer
from rich.table import Table

from agent.cli.common import console, err_console, fail, get_settings

TOP_CHANNELS = 3
IN_SAMPLE_K = 3.0


def anomalous_spans(scores: pd.Series, threshold: float, max_gap: int = 1) -> list[tuple[int, int]]:
    """Runs of rows with ``score > threshold`` as (first, last) row positions; runs separated by at most
    ``max_gap`` unflagged rows are merged."""
    flags = (scores.to_numpy() > threshold) & np.isfinite(scores.to_numpy())
    spans: list[tuple[int, int]] = []
    for pos in np.flatnonzero(flags):
        if spans and pos - spans[-1][1] <= max_gap + 1:
            spans[-1] = (spans[-1][0], int(pos))
        else:
            spans.append((int(pos), int(pos)))
    return spans


def _params(name: str, settings: Any, in_sample: bool) -> dict[str, Any]:
    # Fitted on the data it judges, the training scores contain the anomalies: a quantile would sit inside them.
    return settings.detectors.params_for(name, threshold="robust" if in_sample else None,
                                         torch_threads=settings.detectors.torch_threads)


def register(app: typer.Typer) -> None:
    """Add ``detect`` to ``app``."""

    @app.command("detect")
    def detect(
        ctx: typer.Context,
        metrics: Path = typer.Argument(..., help="Metrics CSV (.csv or .csv.gz): a time column (or none) + numeric channels."),
        detector: str = typer.Option(None, "--detector", "-d", help="Registered time-series detector; default from settings (auto)."),
        train: Path = typer.Option(None, "--train", help="Fit on this CSV (same channels) instead of on METRICS itself."),
        out: Path = typer.Option(None, "--out", help="Write per-row scores and flags to this CSV."),
        top: int = typer.Option(20, "--top", min=1, help="Show at most this many spans (strongest first)."),
    ) -> None:
        """Score every row of METRICS (higher = more anomalous) and list the anomalous spans with their top channels.

        Without --train the detector is fitted on METRICS itself (unsupervised: the spans are what stands out of the
        file as a whole) and uses a robust threshold (median + 6 robust SDs of its scores; for ``auto``, whose
        in-sample scores never let a window vouch for itself, median + 3), which anomalies in the file cannot drag up. Bad cells are masked and reported, never silently filled.
        """
        import detectors as registry
        from detectors.thresholds import robust_threshold
        from tools.metrics_io import read_metrics

        settings = get_settings(ctx)
        name = detector or settings.detectors.metric_detector
        if name not in registry.available("timeseries"):
            raise fail(f"unknown time-series detector {name!r}; available: {', '.join(registry.available('timeseries'))}")
        frame, report = read_metrics(metrics)
        for line in report.lines():
            err_console.print(f"[dim]{metrics.name}: {line}[/dim]")
        fit_frame = frame
        if train is not None:
            fit_frame, train_report = read_metrics(train)
            for line in train_report.lines():
                err_console.print(f"[dim]{train.name}: {line}[/dim]")
        det = registry.get_detector(name, **_params(name, settings, in_sample=train is None))
        try:
            if train is None and hasattr(det, "fit_score"):
                scores = det.fit_score(frame)  # in-sample scoring that keeps a window from vouching for itself
                # Window scores vary smoothly, so their robust spread is wide: 3 robust SDs, not 6, in this mode.
                det.threshold_ = robust_threshold(scores.to_numpy(), k=IN_SAMPLE_K)
            else:
                det.fit(fit_frame)
                scores = det.score(frame)
        except (ValueError, TypeError) as exc:
            raise fail(str(exc)) from exc
        spans = anomalous_spans(scores, det.threshold_)
        if out is not None:
            pd.DataFrame({"score": scores, "anomalous": scores > det.threshold_}).to_csv(out, index_label=frame.index.name or "row")
            err_console.print(f"scores written to {out}")
        rows = []
        for a, b in spans:
            peak = float(np.nanmax(scores.iloc[a : b + 1].to_numpy()))
            rows.append((peak, a, b))
        rows.sort(reverse=True)
        table = Table(title=f"{name}: {len(spans)} anomalous span(s) in {len(frame)} rows (threshold {det.threshold_:.4g})")
        for col in ("start", "end", "rows", "peak score", "top channels"):
            table.add_column(col, justify="right" if col in ("rows", "peak score") else "left")
        for peak, a, b in rows[:top]:
            try:
                contrib = det.explain(frame, (frame.index[a], frame.index[b]))
                chans = ", ".join(f"{c} ({v:.0%})" for c, v in contrib.head(TOP_CHANNELS).items() if v > 0)
            except (ValueError, NotImplementedError) as exc:
                chans = f"(no explanation: {exc})"
            table.add_row(str(frame.index[a]), str(frame.index[b]), str(b - a + 1), f"{peak:.4g}", chans or "-")
        console.print(table)
        if len(rows) > top:
            console.print(f"... {len(rows) - top} weaker span(s) not shown (use --top or --out)")
