"""Reading a metrics CSV into the detectors' input (DataFrame: increasing index × numeric channels), with a report.

Documented handling of bad input (nothing is dropped silently; every count is in the ``MetricsReport``):

* Time column: ``time_column`` if given, else the first column named like ``timestamp``/``time``/``ts``/``date``/
  ``datetime``, else the first column if at least 90 % of its values parse as datetimes. Without one, rows are
  indexed 0..n-1 in file order (``time_column`` is None in the report), unless ``require_time=True``
  (``InputError``). Rows whose timestamp does not parse are dropped and counted.
* Unsorted timestamps are sorted (stable) and the out-of-order rows counted; duplicate timestamps are merged into
  one row holding the mean of each channel, and counted.
* Columns that are not numeric: a column is a channel when at least half of its non-empty cells parse as numbers;
  its other cells become missing (counted as ``non_numeric``). Columns below that are dropped with the reason.
* ``inf``/``-inf`` and empty cells are missing values: kept as NaN (masked by the detectors), counted per channel.
* All-missing channels are dropped (reason given); constant channels are kept and listed.
* An empty file, a file without any numeric channel, or one with no usable row raises ``InputError``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tools.errors import InputError

logger = logging.getLogger(__name__)

TIME_NAMES = ("timestamp", "time", "ts", "date", "datetime", "@timestamp")


class MetricsReport(BaseModel):
    """What ``read_metrics`` read, kept, masked and dropped, and why."""

    model_config = ConfigDict(extra="forbid")

    path: str
    rows_read: int = 0
    rows_kept: int = 0
    time_column: str | None = None
    channels: list[str] = Field(default_factory=list)
    dropped_rows: dict[str, int] = Field(default_factory=dict, description="reason -> rows")
    dropped_columns: dict[str, str] = Field(default_factory=dict, description="column -> reason")
    masked_cells: dict[str, dict[str, int]] = Field(default_factory=dict, description="channel -> {reason: cells}")
    constant_channels: list[str] = Field(default_factory=list)
    reordered_rows: int = 0
    merged_duplicate_rows: int = 0

    def lines(self) -> list[str]:
        """Human-readable summary lines (for the CLI)."""
        out = [f"{self.rows_read} rows read, {self.rows_kept} kept; {len(self.channels)} channels; "
               f"time column: {self.time_column or '(none: row order)'}"]
        for reason, n in self.dropped_rows.items():
            out.append(f"dropped {n} rows: {reason}")
        for col, reason in self.dropped_columns.items():
            out.append(f"dropped column {col!r}: {reason}")
        for col, reasons in self.masked_cells.items():
            out.append(f"masked in {col!r}: " + ", ".join(f"{n} {r}" for r, n in reasons.items()))
        if self.reordered_rows:
            out.append(f"{self.reordered_rows} rows were out of time order (sorted)")
        if self.merged_duplicate_rows:
            out.append(f"{self.merged_duplicate_rows} rows with a duplicate timestamp merged (mean)")
        if self.constant_channels:
            out.append(f"constant channels (kept): {', '.join(self.constant_channels)}")
        return out


def _find_time_column(df: pd.DataFrame, time_column: str | None) -> str | None:
    if time_column is not None:
        if time_column not in df.columns:
            raise InputError(f"time column {time_column!r} not found; columns: {list(df.columns)}")
        return time_column
    for col in df.columns:
        if str(col).strip().lower() in TIME_NAMES:
            return str(col)
    first = df.columns[0]
    if not pd.api.types.is_numeric_dtype(df[first]):
        parsed = pd.to_datetime(df[first], errors="coerce", format="mixed")
        if len(df) and parsed.notna().mean() >= 0.9:
            return str(first)
    return None


def read_metrics(
    path: str | Path, time_column: str | None = None, require_time: bool = False
) -> tuple[pd.DataFrame, MetricsReport]:
    """Read a metrics CSV (plain or .gz) into (DataFrame of float channels, report). See the module docstring."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"metrics file not found: {p}")
    report = MetricsReport(path=str(p))
    try:
        raw = pd.read_csv(p, dtype=str, keep_default_na=False, compression="infer", skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"metrics file is empty: {p}") from exc
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read {p} as CSV: {exc}") from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    report.rows_read = len(raw)
    if raw.empty or raw.shape[1] == 0:
        raise InputError(f"metrics file has no data rows: {p}")

    tcol = _find_time_column(raw, time_column)
    if tcol is None and require_time:
        raise InputError(f"no time column found in {p} (looked for {', '.join(TIME_NAMES)} or a first datetime column)")
    report.time_column = tcol
    if tcol is not None:
        ts = pd.to_datetime(raw[tcol].str.strip(), errors="coerce", format="mixed")
        bad = ts.isna().to_numpy()
        if bad.any():
            report.dropped_rows["unparseable timestamp"] = int(bad.sum())
        raw = raw.loc[~bad].drop(columns=[tcol])
        index: pd.Index = pd.DatetimeIndex(ts[~bad], name="timestamp")
    else:
        index = pd.RangeIndex(len(raw), name="row")

    data: dict[str, np.ndarray] = {}
    for col in raw.columns:
        text = raw[col].str.strip()
        empty = (text == "") | text.str.lower().isin(["nan", "na", "null", "none"])
        num = pd.to_numeric(text.where(~empty), errors="coerce").to_numpy(dtype=np.float64, copy=True)
        non_numeric = ~empty.to_numpy() & np.isnan(num)
        non_empty = int((~empty).sum())
        if non_empty == 0:
            report.dropped_columns[col] = "no value at all"
            continue
        if non_numeric.sum() > non_empty / 2:
            report.dropped_columns[col] = f"not numeric ({int(non_numeric.sum())} of {non_empty} cells)"
            continue
        masks = {"missing": int(empty.sum()), "non_numeric": int(non_numeric.sum()), "inf": int(np.isinf(num).sum())}
        num[~np.isfinite(num)] = np.nan
        if np.isnan(num).all():
            report.dropped_columns[col] = "no finite value"
            continue
        masks = {k: v for k, v in masks.items() if v}
        if masks:
            report.masked_cells[col] = masks
        data[col] = num
    if not data:
        raise InputError(f"no numeric channel in {p}; columns: {list(raw.columns)}")
    df = pd.DataFrame(data, index=index)

    if tcol is not None:
        order = np.argsort(df.index.to_numpy(), kind="stable")
        report.reordered_rows = int((order != np.arange(len(order))).sum())
        if report.reordered_rows:
            df = df.iloc[order]
        dup = df.index.duplicated(keep=False)
        if dup.any():
            before = len(df)
            df = df.groupby(level=0, sort=True).mean()
            report.merged_duplicate_rows = before - len(df)
    if df.empty:
        raise InputError(f"no usable row in {p}")
    report.constant_channels = [c for c in df.columns if df[c].nunique(dropna=True) <= 1]
    report.channels = list(df.columns)
    report.rows_kept = len(df)
    for line in report.lines():
        logger.info("read_metrics %s: %s", p.name, line)
    return df, report
