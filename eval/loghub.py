"""Loader for the Loghub-2k layout: ``<System>/<System>_2k.log`` (+ ``_structured.csv``) and ``corrected/``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from anomalist.tools.errors import InputError

GroundTruth = Literal["corrected", "original"]


@dataclass(frozen=True)
class LoghubSystem:
    """One system's raw log and ground truth."""

    name: str
    log_path: Path
    structured_path: Path

    def ground_truth(self) -> pd.DataFrame:
        """The structured CSV (``LineId, ..., Content, EventId, EventTemplate``), in line order."""
        df = pd.read_csv(self.structured_path, dtype=str, keep_default_na=False)
        for col in ("Content", "EventTemplate"):
            if col not in df.columns:
                raise InputError(f"{self.structured_path} has no {col} column")
        if "LineId" in df.columns:
            df = df.assign(LineId=pd.to_numeric(df["LineId"])).sort_values("LineId", ignore_index=True)
        return df


def _candidates(data: Path, system: str, gt: GroundTruth) -> tuple[Path, Path] | None:
    if gt == "corrected":
        base = data / "corrected" / system
        pairs = [(base / f"{system}_2k.log", base / f"{system}_2k.log_structured_corrected.csv"),
                 (base / f"{system}_2k.log", base / f"{system}_2k.log_structured.csv")]
    else:
        base = data / system
        pairs = [(base / f"{system}_2k.log", base / f"{system}_2k.log_structured.csv")]
    for log, csv in pairs:
        if log.is_file() and csv.is_file():
            return log, csv
    return None


def list_systems(data: Path, gt: GroundTruth = "corrected") -> list[str]:
    """Systems present in ``data`` for that ground truth, sorted by name."""
    root = data / "corrected" if gt == "corrected" else data
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and _candidates(data, p.name, gt))


def load_system(data: Path, system: str, gt: GroundTruth = "corrected") -> LoghubSystem:
    """Locate one system (folder names are matched case-insensitively)."""
    names = {n.lower(): n for n in list_systems(data, gt)}
    real = names.get(system.lower())
    found = _candidates(data, real, gt) if real else None
    if real is None or found is None:
        raise InputError(f"system {system!r} with {gt} ground truth not found under {data} "
                         f"(present: {', '.join(sorted(names.values())) or 'none'})")
    return LoghubSystem(name=real, log_path=found[0], structured_path=found[1])
