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
import re
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from anomalist.tools.errors import InputError

logger = logging.getLogger(__name__)

TIME_NAMES = ("timestamp", "time", "ts", "date", "datetime", "@timestamp", "time_unix", "timeunixnano", "epoch")


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


_GO_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) ([+-]\d{4})(?: [A-Z]{2,5})?(?: m=[+-][\d.]+)?$")


def parse_times(values: pd.Series) -> pd.Series:
    """Time values as naive UTC datetimes (NaT where unparseable).

    Accepts ISO 8601 / RFC 3339 and other pandas-readable text, Go's ``time.Time.String()`` form
    (``2023-01-29 08:41:09.858 +0000 UTC m=+0.93``), and epoch numbers (seconds, milli-, micro- or nanoseconds,
    told apart by magnitude).
    """
    text = values.astype(str).str.strip()
    num = pd.to_numeric(text, errors="coerce")
    if len(text) and num.notna().mean() >= 0.9:
        mag = float(num.abs().median()) if num.notna().any() else 0.0
        unit = "s" if mag < 1e11 else "ms" if mag < 1e14 else "us" if mag < 1e17 else "ns"
        if mag < 1e8:  # small numbers are counters or row numbers, not times after 1973
            return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
        return pd.to_datetime(num, unit=unit, errors="coerce").astype("datetime64[ns]")
    go = text.str.extract(_GO_TIME)
    if len(text) and go[0].notna().mean() >= 0.9:
        text = go[0] + go[1]
    ts = pd.to_datetime(text, errors="coerce", format="mixed", utc=True)
    return ts.dt.tz_convert(None).astype("datetime64[ns]")


def _find_time_column(df: pd.DataFrame, time_column: str | None) -> tuple[str | None, pd.Series | None]:
    """The time column (and its parsed values): ``time_column``, else the best-parsing column named like a time,
    else the first column when at least 90 % of it parses."""
    if time_column is not None:
        if time_column not in df.columns:
            raise InputError(f"time column {time_column!r} not found; columns: {list(df.columns)}")
        return time_column, parse_times(df[time_column])
    best: tuple[float, str, pd.Series] | None = None
    for col in df.columns:
        if str(col).strip().lower() in TIME_NAMES:
            ts = parse_times(df[col])
            share = float(ts.notna().mean()) if len(ts) else 0.0
            if best is None or share > best[0]:
                best = (share, str(col), ts)
    if best is not None and best[0] > 0:
        return best[1], best[2]
    if best is not None:  # named like a time but nothing parses: report it as the time column (rows dropped)
        return best[1], best[2]
    first = df.columns[0]
    if len(df):
        ts = parse_times(df[first])
        if ts.notna().mean() >= 0.9:
            return str(first), ts
    return None, None


def read_metrics(
    path: str | Path, time_column: str | None = None, require_time: bool = False
) -> tuple[pd.DataFrame, MetricsReport]:
    """Read a metrics CSV (plain or .gz) into (DataFrame of float channels, report). See the module docstring."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"metrics file not found: {p}")
    try:
        raw = pd.read_csv(p, dtype=str, keep_default_na=False, compression="infer", skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"metrics file is empty: {p}") from exc
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read {p} as CSV: {exc}") from exc
    return frame_from_table(raw, str(p), time_column=time_column, require_time=require_time)


def frame_from_table(raw: pd.DataFrame, name: str, *, time_column: str | None = None, require_time: bool = False
                     ) -> tuple[pd.DataFrame, MetricsReport]:
    """:func:`read_metrics` on a table already read as text (all cells ``str``); ``name`` labels the report."""
    p = name
    report = MetricsReport(path=name)
    raw = raw.copy()
    raw.columns = [str(c).strip() for c in raw.columns]
    report.rows_read = len(raw)
    if raw.empty or raw.shape[1] == 0:
        raise InputError(f"metrics file has no data rows: {p}")

    tcol, ts = _find_time_column(raw, time_column)
    if tcol is None and require_time:
        raise InputError(f"no time column found in {p} (looked for {', '.join(TIME_NAMES)} or a first datetime column)")
    report.time_column = tcol
    if tcol is not None and ts is not None:
        bad = ts.isna().to_numpy()
        if bad.all() and require_time:
            raise InputError(f"the time column {tcol!r} of {p} holds no readable time")
        if bad.any():
            report.dropped_rows["unparseable timestamp"] = int(bad.sum())
        # Other time-like columns (e.g. epoch seconds beside the text time) are not channels.
        others = [c for c in raw.columns if c != tcol and str(c).strip().lower() in TIME_NAMES]
        for c in others:
            report.dropped_columns[c] = f"another time column (the index is {tcol!r})"
        raw = raw.loc[~bad].drop(columns=[tcol, *others])
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
        logger.info("read_metrics %s: %s", Path(p).name, line)
    return df, report


# ---- many entities: a directory of per-entity files, or one long / per-entity-row file ----------------------------
ENTITY_NAMES = ("entity", "pod", "podname", "pod_name", "instance", "service", "servicename", "service_name",
                "host", "hostname", "node", "container", "job")
METRIC_NAMES = ("metric", "metric_name", "__name__", "name", "series")
VALUE_NAMES = ("value", "val", "metric_value")
_FILE_SUFFIX = re.compile(r"([_.-]metrics?)?(\.csv|\.tsv)?(\.gz)?$", re.IGNORECASE)
CHANNEL_SEP = "/"
"""Channels of a many-entity set are named ``<entity>/<metric>``."""


class MetricSet(BaseModel):
    """Metrics of many entities (pods, services, hosts) on one time axis, with what was read and skipped.

    ``frame`` is the detectors' input: a DatetimeIndex (aligned to ``step``) x channels named
    ``<entity>/<metric>`` (just ``<metric>`` for a single unnamed entity); ``entity_of`` / ``metric_of`` map each
    channel back. ``skipped`` holds each file that was not used, with the reason.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    source: str
    frame: pd.DataFrame
    entity_of: dict[str, str | None] = Field(default_factory=dict)
    metric_of: dict[str, str] = Field(default_factory=dict)
    reports: list[MetricsReport] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict, description="file -> reason it was not used")
    step: str | None = Field(None, description="Time step the entities were aligned to (e.g. '60s')")
    layout: str = Field("wide", description="wide | per-entity files | long | per-entity rows")

    @property
    def entities(self) -> list[str]:
        return sorted({e for e in self.entity_of.values() if e})

    def channels_of(self, entity: str) -> list[str]:
        return [c for c, e in self.entity_of.items() if e == entity]

    def lines(self) -> list[str]:
        n_ent = len(self.entities)
        out = [f"{self.layout}: {n_ent or 1} entit{'ies' if n_ent != 1 else 'y'}, {self.frame.shape[1]} channels, "
               f"{len(self.frame)} rows" + (f" (aligned to {self.step})" if self.step else "")]
        for path, reason in self.skipped.items():
            out.append(f"skipped {path}: {reason}")
        for rep in self.reports:
            for line in rep.lines()[1:]:
                out.append(f"{Path(rep.path).name}: {line}")
        return out


def read_metric_set(path: str | Path, *, time_column: str | None = None) -> MetricSet:
    """Read metrics of one or many entities from a file or a directory (see :class:`MetricSet`).

    - A directory: every ``*.csv`` / ``*.csv.gz`` in it (not recursive) is one entity's metrics; the entity is the
      value of its entity column (``pod``, ``PodName``, ``service``, ``instance``, ...) when that holds one value,
      else the file name without ``_metric(s)`` and extensions. A file without a usable time column, or with no
      numeric channel, is skipped with the reason.
    - A long file (a time column, an entity column, a metric-name column and a value column): pivoted.
    - A wide file with an entity column holding several values: one row per (time, entity), pivoted.
    - Any other file: today's single wide CSV (channels are its columns).

    Entities are aligned on one time axis: times are floored to the median sampling step of the inputs.

    Raises:
        InputError: the path does not exist, or nothing in it is usable.
    """
    p = Path(path)
    if p.is_dir():
        return _read_dir(p, time_column)
    if not p.is_file():
        raise InputError(f"metrics file or directory not found: {p}")
    head = _head(p)
    cols = {str(c).strip().lower(): str(c).strip() for c in head.columns}
    ent = next((cols[n] for n in ENTITY_NAMES if n in cols), None)
    met = next((cols[n] for n in METRIC_NAMES if n in cols), None)
    val = next((cols[n] for n in VALUE_NAMES if n in cols), None)
    if ent is not None and met is not None and val is not None:
        return _read_long(p, ent, met, val, time_column)
    if ent is not None and head[ent].nunique(dropna=True) > 1:
        return _read_entity_rows(p, ent, time_column)
    df, rep = read_metrics(p, time_column=time_column)
    entity = _entity_value(p, ent)
    return _assemble_set(str(p), {entity: df} if entity else {"": df}, [rep], {}, "wide")


def _head(p: Path, n: int = 200) -> pd.DataFrame:
    try:
        return pd.read_csv(p, dtype=str, keep_default_na=False, compression="infer", nrows=n, skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"metrics file is empty: {p}") from exc
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read {p} as CSV: {exc}") from exc


def _entity_value(p: Path, ent_col: str | None) -> str | None:
    """The single entity a file holds: its entity column's one value, else None."""
    if ent_col is None:
        return None
    vals = _head(p, 50)[ent_col].str.strip()
    vals = vals[vals != ""]
    return str(vals.iloc[0]) if len(vals) and vals.nunique() == 1 else None


def entity_from_filename(p: Path) -> str:
    """``ts-contacts-service-866bd68c97-xcqfx_metric.csv.gz`` -> ``ts-contacts-service-866bd68c97-xcqfx``."""
    return _FILE_SUFFIX.sub("", p.name) or p.name


def _read_dir(d: Path, time_column: str | None) -> MetricSet:
    files = sorted(f for f in d.iterdir() if f.is_file() and re.search(r"\.csv(\.gz)?$", f.name, re.IGNORECASE))
    skipped = {str(f): "not a CSV file" for f in sorted(d.iterdir()) if f.is_file() and f not in files
               and not f.name.startswith(".")}
    frames: dict[str, pd.DataFrame] = {}
    reports: list[MetricsReport] = []
    for f in files:
        try:
            head = _head(f)
            cols = {str(c).strip().lower(): str(c).strip() for c in head.columns}
            ent_col = next((cols[n] for n in ENTITY_NAMES if n in cols), None)
            df, rep = read_metrics(f, time_column=time_column, require_time=True)
        except InputError as exc:
            skipped[str(f)] = str(exc)
            continue
        entity = _entity_value(f, ent_col) or entity_from_filename(f)
        if entity in frames:
            skipped[str(f)] = f"entity {entity!r} already read from another file"
            continue
        frames[entity] = df
        reports.append(rep)
    if not frames:
        why = "; ".join(f"{Path(k).name}: {v}" for k, v in list(skipped.items())[:3])
        raise InputError(f"no usable metrics file in {d}" + (f" ({why})" if why else ""))
    return _assemble_set(str(d), frames, reports, skipped, "per-entity files")


def _read_long(p: Path, ent: str, met: str, val: str, time_column: str | None) -> MetricSet:
    raw = pd.read_csv(p, dtype=str, keep_default_na=False, compression="infer", skipinitialspace=True)
    raw.columns = [str(c).strip() for c in raw.columns]
    rep = MetricsReport(path=str(p), rows_read=len(raw))
    tcol, ts = _find_time_column(raw.drop(columns=[ent, met, val]), time_column)
    if tcol is None or ts is None or not ts.notna().any():
        raise InputError(f"no usable time column in {p} (looked for {', '.join(TIME_NAMES)})")
    rep.time_column = tcol
    value = pd.to_numeric(raw[val].str.strip(), errors="coerce")
    bad_t, bad_v = ts.isna(), value.isna() | ~np.isfinite(value.fillna(0.0))
    if bad_t.any():
        rep.dropped_rows["unparseable timestamp"] = int(bad_t.sum())
    if (bad_v & ~bad_t).any():
        rep.dropped_rows["value not a finite number"] = int((bad_v & ~bad_t).sum())
    keep = ~(bad_t | bad_v)
    long = pd.DataFrame({"t": ts[keep].to_numpy(), "e": raw.loc[keep, ent].str.strip().to_numpy(),
                         "m": raw.loc[keep, met].str.strip().to_numpy(), "v": value[keep].to_numpy()})
    if long.empty:
        raise InputError(f"no usable row in {p}")
    dup = long.duplicated(["t", "e", "m"]).sum()
    if dup:
        rep.merged_duplicate_rows = int(dup)
    frames = {str(e): g.pivot_table(index="t", columns="m", values="v", aggfunc="mean").rename_axis(index="timestamp", columns=None)
              for e, g in long.groupby("e", sort=True)}
    rep.rows_kept = int(keep.sum())
    return _assemble_set(str(p), frames, [rep], {}, "long")


def _read_entity_rows(p: Path, ent: str, time_column: str | None) -> MetricSet:
    raw = pd.read_csv(p, dtype=str, keep_default_na=False, compression="infer", skipinitialspace=True)
    raw.columns = [str(c).strip() for c in raw.columns]
    frames: dict[str, pd.DataFrame] = {}
    reports: list[MetricsReport] = []
    skipped: dict[str, str] = {}
    for e, g in raw.groupby(raw[ent].str.strip(), sort=True):
        name = f"{p}#{e}"
        try:
            df, rep = frame_from_table(g.drop(columns=[ent]).reset_index(drop=True), name, time_column=time_column,
                                       require_time=True)
        except InputError as exc:
            skipped[name] = str(exc)
            continue
        frames[str(e)] = df
        reports.append(rep)
    if not frames:
        raise InputError(f"no usable rows in {p}")
    return _assemble_set(str(p), frames, reports, skipped, "per-entity rows")


def _assemble_set(source: str, frames: dict[str, pd.DataFrame], reports: list[MetricsReport],
                  skipped: dict[str, str], layout: str) -> MetricSet:
    timed = {e: f for e, f in frames.items() if isinstance(f.index, pd.DatetimeIndex)}
    step: pd.Timedelta | None = None
    if len(timed) > 1:
        steps = [pd.Timedelta(int(np.median(np.diff(f.index.asi8))), unit="ns") for f in timed.values() if len(f) > 1]
        if steps:
            step = max(pd.Timedelta(seconds=1), pd.Timedelta(np.median([s.value for s in steps]), unit="ns").round("1s"))
    parts: list[pd.DataFrame] = []
    entity_of: dict[str, str | None] = {}
    metric_of: dict[str, str] = {}
    for e, f in frames.items():
        g = f
        if step is not None and isinstance(g.index, pd.DatetimeIndex):
            g = g.groupby(g.index.floor(step)).mean()
            g.index.name = "timestamp"
        names = {c: (f"{e}{CHANNEL_SEP}{c}" if e else str(c)) for c in g.columns}
        for c, n in names.items():
            entity_of[n] = e or None
            metric_of[n] = str(c)
        parts.append(g.rename(columns=names))
    if len(parts) == 1:
        frame = parts[0]
    else:
        if not all(isinstance(x.index, pd.DatetimeIndex) for x in parts):
            raise InputError(f"{source}: entities without a time column cannot be put on one time axis")
        frame = pd.concat(parts, axis=1, sort=True)
    frame = frame.astype("float64")
    return MetricSet(source=source, frame=frame, entity_of=entity_of, metric_of=metric_of, reports=reports,
                     skipped=skipped, step=None if step is None else f"{int(step.total_seconds())}s", layout=layout)


def load_metric_set(metrics: str | Path | pd.DataFrame | MetricSet) -> tuple[MetricSet, str, list[str]]:
    """Metrics as the triage and the chat tools judge them: a :class:`MetricSet` (from one file, a directory of
    per-entity files, a long file, or a DataFrame) with its times as naive UTC (log formats rarely carry a zone,
    so times are compared as naive UTC throughout), its name, and reader notes."""
    if isinstance(metrics, MetricSet):
        return metrics.model_copy(update={"frame": _naive_utc(metrics.frame)}), metrics.source, []
    if isinstance(metrics, pd.DataFrame):
        df = _naive_utc(metrics)
        return (MetricSet(source="<DataFrame>", frame=df, entity_of={str(c): None for c in df.columns},
                          metric_of={str(c): str(c) for c in df.columns}), "<DataFrame>", [])
    ms = read_metric_set(Path(metrics))
    ms = ms.model_copy(update={"frame": _naive_utc(ms.frame)})
    return ms, str(metrics), [f"metrics: {line}" for line in ms.lines()]


def _naive_utc(df: pd.DataFrame) -> pd.DataFrame:
    if isinstance(df.index, pd.DatetimeIndex) and df.index.tz is not None:
        df = df.copy()
        df.index = df.index.tz_convert("UTC").tz_localize(None)
    return df
