"""``anomalist detect METRICS.csv``: run one time-series detector on a metrics CSV and print the anomalous spans."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.table import Table

from anomalist.agent.cli.common import console, err_console, fail, get_settings

TOP_CHANNELS = 3


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
        file as a whole) and its scores are judged by the same rule as the triage's: median +
        ``triage.metric_robust_k`` (5) robust SDs of them, which anomalies in the file cannot drag up. With --train
        it is fitted on TRAIN and uses its own threshold. Bad cells are masked and reported, never silently filled.
        """
        from anomalist import detectors as registry
        from anomalist.tools.metric_anomalies import detect_metric_anomalies
        from anomalist.tools.metrics_io import read_metrics

        settings = get_settings(ctx)
        name = detector or settings.detectors.metric_detector
        if name not in registry.available("timeseries"):
            raise fail(f"unknown time-series detector {name!r}; available: {', '.join(registry.available('timeseries'))}")
        frame, report = read_metrics(metrics)
        for line in report.lines():
            err_console.print(f"[dim]{metrics.name}: {line}[/dim]")
        fit_frame = None
        if train is not None:
            fit_frame, train_report = read_metrics(train)
            for line in train_report.lines():
                err_console.print(f"[dim]{train.name}: {line}[/dim]")
        params = settings.detectors.params_for(name, torch_threads=settings.detectors.torch_threads)
        try:
            found = detect_metric_anomalies(frame, name, params, robust_k=settings.triage.metric_robust_k,
                                            train=fit_frame, max_channels=TOP_CHANNELS, max_flagged_share=1.0)
        except (ValueError, TypeError) as exc:
            raise fail(str(exc)) from exc
        scores, threshold = found.scores, found.threshold
        if out is not None:
            pd.DataFrame({"score": scores, "anomalous": scores > threshold}).to_csv(out, index_label=frame.index.name or "row")
            err_console.print(f"scores written to {out}")
        rows = sorted(found.spans, key=lambda sp: -sp.peak)
        table = Table(title=f"{name}: {len(rows)} anomalous span(s) in {len(frame)} rows (threshold {threshold:.4g})")
        for col in ("start", "end", "rows", "peak score", "top channels"):
            table.add_column(col, justify="right" if col in ("rows", "peak score") else "left")
        for sp in rows[:top]:
            if sp.explain_error:
                chans = f"(no explanation: {sp.explain_error})"
            else:
                chans = ", ".join(f"{c} ({v:.0%})" for c, v in sp.contributions.items())
            table.add_row(str(frame.index[sp.first]), str(frame.index[sp.last]), str(sp.rows), f"{sp.peak:.4g}",
                          chans or "-")
        console.print(table)
        if len(rows) > top:
            console.print(f"... {len(rows) - top} weaker span(s) not shown (use --top or --out)")
