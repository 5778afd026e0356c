"""Loader of the Nezha fault-injection CSV export (``../shared/datasets/nezha_trainticket`` and any folder laid out
the same way): the labelled faults, and each case's telemetry written out as a cluster writes it.

Layout (found by name, not by system): ``*fault_list.json`` (faults grouped by hour: ``inject_time``,
``inject_pod``, ``inject_type``), ``log/HH_MM_log.csv[.gz]`` (pod log records; ``Log`` is the container runtime's
JSON line), ``metric/<pod>_metric.csv[.gz]`` (one per pod), ``trace/HH_MM_trace.csv[.gz]`` (spans), and
``normal/`` with the same sub-folders for the fault-free phase. ``inject_timestamp`` is not read (the dataset's
README: it is off by 8 hours in most cases); ``inject_time`` is on the logs' UTC clock.

Nothing here judges anything: :meth:`NezhaData.write_case` writes the records of a time range as
``var/log/pods/<namespace>_<pod>_<uid>/<container>/0.log`` (Docker json-file lines, as the node had them), the
per-pod metric files cut to the range, and the spans of the range, so that ``triage()`` reads them exactly as a
user's files. Every file that is missing, unreadable or not of the expected kind is skipped with a note.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from anomalist.tools.containers import service_of_pod

logger = logging.getLogger(__name__)

FAULT_KINDS = {"return": "code", "exception": "code", "cpu_contention": "cpu", "cpu_consumed": "cpu",
               "network_delay": "network", "network_loss": "network", "memory": "memory", "mem_stress": "memory",
               "disk": "disk", "io": "disk"}
"""Injected fault type -> the report's fault kind (code-level faults show in logs and traces)."""

NAMESPACE = "default"  # the export does not name the namespace
_MINUTE_FILE = re.compile(r"^(\d\d)_(\d\d)_(log|trace)\.csv(\.gz)?$")
_LOG_COLUMNS = ("Timestamp", "TimeUnixNano", "Node", "PodName", "Container", "TraceID", "SpanID", "Log")
csv.field_size_limit(1 << 27)


@dataclass(frozen=True)
class Case:
    """One injected fault (the label; nothing in the triage reads it)."""

    id: str
    inject_time: pd.Timestamp
    pod: str
    service: str
    fault_type: str

    @property
    def kind(self) -> str:
        return FAULT_KINDS.get(self.fault_type, self.fault_type)


@dataclass
class Written:
    """The files of one time range, as a cluster writes them."""

    logs: Path | None
    metrics: Path | None
    traces: Path | None
    log_records: int = 0
    pods_with_logs: int = 0
    metric_files: int = 0
    spans: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class NezhaData:
    """One export folder: its cases and where each kind of telemetry lies."""

    root: Path
    cases: list[Case]
    day: pd.Timestamp
    notes: list[str] = field(default_factory=list)
    _records: dict[Path, list[list[str]]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, root: str | Path) -> NezhaData:
        """Find the fault list and the telemetry folders under ``root``.

        Raises:
            FileNotFoundError: no ``*fault_list.json``, or it holds no usable case.
        """
        root = Path(root)
        lists = sorted(root.glob("*fault_list.json"))
        if not lists:
            raise FileNotFoundError(f"no *fault_list.json in {root}")
        notes: list[str] = []
        cases: list[Case] = []
        for path in lists:
            doc = json.loads(path.read_text(encoding="utf-8"))
            groups = doc.values() if isinstance(doc, dict) else [doc]
            for group in groups:
                for item in group if isinstance(group, list) else []:
                    try:
                        t = pd.Timestamp(item["inject_time"])
                        pod = str(item["inject_pod"])
                        ftype = str(item["inject_type"])
                    except (KeyError, TypeError, ValueError) as exc:
                        notes.append(f"{path.name}: skipped a fault without inject_time/pod/type ({exc})")
                        continue
                    cases.append(Case(id=f"{t:%Y%m%d-%H%M%S}", inject_time=t, pod=pod, service=service_of_pod(pod),
                                      fault_type=ftype))
        if not cases:
            raise FileNotFoundError(f"no usable case in {', '.join(str(p) for p in lists)}")
        cases.sort(key=lambda c: c.inject_time)
        for sub in ("log", "metric", "trace", "normal"):
            if not (root / sub).is_dir():
                notes.append(f"no {sub}/ folder: that telemetry is left out")
        return cls(root=root, cases=cases, day=cases[0].inject_time.normalize(), notes=notes)

    # ---- reading the export -------------------------------------------------------------------------------------
    def _minute_files(self, folder: Path, kind: str) -> dict[pd.Timestamp, Path]:
        out: dict[pd.Timestamp, Path] = {}
        if not folder.is_dir():
            return out
        for f in sorted(folder.iterdir()):
            m = _MINUTE_FILE.match(f.name)
            if m is None or m.group(3) != kind:
                continue
            out[self.day + pd.Timedelta(hours=int(m.group(1)), minutes=int(m.group(2)))] = f
        return out

    def _rows(self, path: Path) -> list[list[str]]:
        """A CSV export's data rows as text (cached). A row with too many fields (an unquoted comma in the last
        column) has its tail joined back into the last column, so nothing is lost; the reader downstream decides
        whether the result is valid."""
        if path not in self._records:
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:  # type: ignore[operator]
                reader = csv.reader(fh)
                header = next(reader, [])
                width = len(header)
                rows = []
                for r in reader:
                    if len(r) > width > 0:
                        r = r[: width - 1] + [",".join(r[width - 1:])]
                    rows.append(r)
            self._records[path] = [header, *rows]
        return self._records[path]

    def write(self, t0: pd.Timestamp, t1: pd.Timestamp, out: Path, *, base: Path | None = None) -> Written:
        """Write the telemetry of ``[t0, t1)`` under ``out`` (``logs/``, ``metrics/``, ``traces/``).

        ``base``: the folder to read (default: the export root; ``normal/`` for the fault-free phase).
        """
        base = base or self.root
        w = Written(logs=None, metrics=None, traces=None)
        # Minutes exported for one kind but not the other are skipped for the missing kind, with a note.
        win = (t0 - pd.Timedelta(minutes=5), t1 + pd.Timedelta(minutes=5))
        lm = {m for m in self._minute_files(base / "log", "log") if win[0] <= m <= win[1]}
        tm = {m for m in self._minute_files(base / "trace", "trace") if win[0] <= m <= win[1]}
        if lm and tm:
            for m in sorted(lm - tm):
                w.notes.append(f"trace minute {m:%H:%M} missing (its log minute is there): skipped")
            for m in sorted(tm - lm):
                w.notes.append(f"log minute {m:%H:%M} missing (its trace minute is there): skipped")
        w.logs, w.log_records, w.pods_with_logs = self._write_logs(base / "log", t0, t1, out / "logs", w.notes)
        w.metrics, w.metric_files = self._write_metrics(base / "metric", t0, t1, out / "metrics", w.notes)
        w.traces, w.spans = self._write_traces(base / "trace", t0, t1, out / "traces", w.notes)
        return w

    def write_case(self, case: Case, out: Path, before: pd.Timedelta = pd.Timedelta(minutes=15),
                   after: pd.Timedelta = pd.Timedelta(minutes=5)) -> Written:
        """The telemetry of all pods from ``before`` the case's ``inject_time`` to ``after`` it."""
        return self.write(case.inject_time - before, case.inject_time + after, out)

    def write_normal(self, out: Path) -> Written:
        """The fault-free phase (``normal/``), whole."""
        return self.write(pd.Timestamp("1970-01-02"), pd.Timestamp("2200-01-01"), out, base=self.root / "normal")

    def _write_logs(self, folder: Path, t0: pd.Timestamp, t1: pd.Timestamp, out: Path, notes: list[str]
                    ) -> tuple[Path | None, int, int]:
        files = self._minute_files(folder, "log")
        if not files:
            notes.append(f"no log minute files in {folder}")
            return None, 0, 0
        # A file's name is the minute it was cut at; records may reach a few minutes back.
        chosen = [f for m, f in files.items() if t0 - pd.Timedelta(minutes=5) <= m <= t1 + pd.Timedelta(minutes=5)]
        lo, hi = _ns(t0), _ns(t1)
        seen: set[tuple[str, str, str, str]] = set()
        by_pod: dict[tuple[str, str], list[tuple[int, str]]] = {}
        dupes = 0
        for f in chosen:
            rows = self._rows(f)
            idx = {name: i for i, name in enumerate(rows[0])}
            if not all(c in idx for c in ("TimeUnixNano", "PodName", "Log")):
                notes.append(f"skipped {f.name}: not a pod log export (columns {rows[0][:8]})")
                continue
            for r in rows[1:]:
                try:
                    ns = int(r[idx["TimeUnixNano"]])
                except (ValueError, IndexError):
                    notes.append(f"{f.name}: a record without a readable TimeUnixNano was skipped")
                    continue
                if not lo <= ns < hi:
                    continue
                pod, cont = r[idx["PodName"]], r[idx["Container"]] if "Container" in idx else "app"
                key = (str(ns), pod, cont, r[idx["Log"]])
                if key in seen:
                    dupes += 1
                    continue
                seen.add(key)
                by_pod.setdefault((pod, cont or "app"), []).append((ns, r[idx["Log"]]))
        if dupes:
            notes.append(f"{dupes:,} log records appeared in two minute files (kept once)")
        if not by_pod:
            notes.append("no log record in the range")
            return None, 0, 0
        root = out / "var" / "log" / "pods"
        n = 0
        for (pod, cont), items in sorted(by_pod.items()):
            items.sort(key=lambda x: x[0])
            d = root / f"{NAMESPACE}_{pod}_{uuid.uuid5(uuid.NAMESPACE_DNS, pod)}" / cont
            d.mkdir(parents=True, exist_ok=True)
            with open(d / "0.log", "w", encoding="utf-8", newline="\n") as fh:
                for _, line in items:
                    fh.write(line.replace("\n", "\\n") + "\n")
            n += len(items)
        return out, n, len({p for p, _ in by_pod})

    def _write_metrics(self, folder: Path, t0: pd.Timestamp, t1: pd.Timestamp, out: Path, notes: list[str]
                       ) -> tuple[Path | None, int]:
        if not folder.is_dir():
            notes.append(f"no metric folder {folder}")
            return None, 0
        out.mkdir(parents=True, exist_ok=True)
        n = 0
        for f in sorted(folder.iterdir()):
            if not re.search(r"_metric\.csv(\.gz)?$", f.name):
                if f.is_file():
                    notes.append(f"skipped {f.name}: not a per-pod metric file")
                continue
            try:
                df = pd.read_csv(f, dtype=str, keep_default_na=False)
            except (OSError, ValueError) as exc:
                notes.append(f"skipped {f.name}: {exc}")
                continue
            if "TimeStamp" not in df.columns:
                notes.append(f"skipped {f.name}: no TimeStamp column")
                continue
            ts = pd.to_datetime(pd.to_numeric(df["TimeStamp"], errors="coerce"), unit="s")
            keep = (ts >= t0) & (ts < t1)
            if not keep.any():
                continue
            df.loc[keep].to_csv(out / f.name.removesuffix(".gz"), index=False)
            n += 1
        if n == 0:
            notes.append("no metric row in the range")
            return None, 0
        return out, n

    def _write_traces(self, folder: Path, t0: pd.Timestamp, t1: pd.Timestamp, out: Path, notes: list[str]
                      ) -> tuple[Path | None, int]:
        files = self._minute_files(folder, "trace")
        if not files:
            notes.append(f"no trace minute files in {folder}")
            return None, 0
        chosen = [f for m, f in files.items() if t0 - pd.Timedelta(minutes=5) <= m <= t1 + pd.Timedelta(minutes=5)]
        lo, hi = _ns(t0), _ns(t1)
        header: list[str] | None = None
        rows: dict[tuple[str, str], list[str]] = {}
        for f in chosen:
            data = self._rows(f)
            idx = {name: i for i, name in enumerate(data[0])}
            if "StartTimeUnixNano" not in idx or "SpanID" not in idx:
                notes.append(f"skipped {f.name}: not a span export")
                continue
            header = header or data[0]
            for r in data[1:]:
                try:
                    ns = int(r[idx["StartTimeUnixNano"]])
                except (ValueError, IndexError):
                    continue
                if lo <= ns < hi:
                    rows.setdefault((r[idx["TraceID"]], r[idx["SpanID"]]), r)
        if header is None or not rows:
            notes.append("no span in the range")
            return None, 0
        out.mkdir(parents=True, exist_ok=True)
        path = out / "spans.csv"
        with open(path, "w", encoding="utf-8", newline="") as fh:
            wr = csv.writer(fh)
            wr.writerow(header)
            wr.writerows(rows.values())
        return path, len(rows)


def _ns(t: pd.Timestamp) -> int:
    return int(t.value)
