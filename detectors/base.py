"""The one detector contract: ``fit`` / ``score`` / ``threshold_`` / ``predict`` / ``save`` / ``load`` / ``explain``.

Scores are oriented one way everywhere: HIGHER = MORE ANOMALOUS. State round-trips as data: a directory with
``config.json`` (constructor parameters and scalar state) and ``arrays.npz`` (numpy arrays, torch weights included,
read with ``allow_pickle=False``). Nothing is ever pickled.
"""

from __future__ import annotations

import inspect
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Hashable
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from anomalist.detectors.thresholds import ThresholdMethod, fit_threshold

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
Kind = Literal["timeseries", "log"]


class NotFittedError(ValueError, AttributeError):
    """A detector was used before ``fit`` (same bases as scikit-learn's)."""


class Detector(ABC):
    """Base of every detector.

    Subclasses implement ``_fit(X) -> train_scores``, ``_score(X) -> np.ndarray`` and ``_get_state`` /
    ``_set_state``. Constructors only store their arguments (all of them are JSON-able parameters).
    """

    name: ClassVar[str] = ""
    kind: ClassVar[Kind] = "timeseries"

    threshold_: float

    # --- parameters ---------------------------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (JSON-able)."""
        return {p: getattr(self, p) for p in self._param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # --- fitted state -------------------------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "threshold_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call fit() first")

    def _set_threshold(self, train_scores: np.ndarray) -> None:
        method: ThresholdMethod = getattr(self, "threshold", "quantile")
        q: float = getattr(self, "threshold_q", 0.99)
        self.threshold_ = fit_threshold(train_scores, method=method, q=q)

    def predict(self, X: Any) -> pd.Series:
        """``score(X) > threshold_`` (NaN scores, e.g. warm-up, are never flagged)."""
        s = self.score(X)
        return (s > self.threshold_).astype(bool).rename(s.name)

    @abstractmethod
    def fit(self, X: Any, y: None = None) -> Detector:
        """Learn from (mostly normal) data; returns ``self``."""

    @abstractmethod
    def score(self, X: Any) -> pd.Series:
        """Per-row anomaly scores, higher = more anomalous."""

    def fit_score(self, X: Any) -> pd.Series:
        """Fit on ``X`` and score ``X`` itself (for data without separate training rows). This default is
        ``fit(X).score(X)``; a detector whose in-sample scores would let a row vouch for itself overrides it
        (``auto``: a window's own neighbourhood is left out)."""
        return self.fit(X).score(X)

    @abstractmethod
    def explain(self, X: Any, span: Any = None) -> pd.Series:
        """Contributions (channels or templates) to the scores of ``span``, non-negative, summing to 1."""

    # --- persistence ----------------------------------------------------------------------------------------------
    @abstractmethod
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able scalars and named numpy arrays that fully describe the fitted model."""

    @abstractmethod
    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Inverse of ``_get_state``."""

    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` + ``arrays.npz`` into directory ``path`` (created). Returns the directory."""
        self._check_fitted()
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        meta, arrays = self._get_state()
        config = {
            "format_version": FORMAT_VERSION,
            "detector": self.name,
            "params": self.get_params(),
            "threshold_": float(self.threshold_),
            "state": meta,
        }
        (out / "config.json").write_text(json.dumps(config, indent=1, default=_json_default), encoding="utf-8")
        np.savez(out / "arrays.npz", **{k: np.ascontiguousarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]
        return out

    @classmethod
    def load(cls, path: str | Path) -> Detector:
        """Read a directory written by ``save`` (any registered detector when called on ``Detector``)."""
        src = Path(path)
        cfg_path = src / "config.json"
        if not cfg_path.is_file():
            raise FileNotFoundError(f"no config.json in {src}: not a saved detector")
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported detector format {config.get('format_version')!r} in {src}")
        target: type[Detector] = cls
        if cls.name != config["detector"]:
            from anomalist.detectors import detector_class

            target = detector_class(config["detector"])
        det = target(**config["params"])
        with np.load(src / "arrays.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        det._set_state(config["state"], arrays)
        det.threshold_ = float(config["threshold_"])
        return det


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-able: {value!r}")


# ---------------------------------------------------------------------------------------------------------------------
# Time series
# ---------------------------------------------------------------------------------------------------------------------
class TimeSeriesDetector(Detector):
    """Detectors on a multivariate DataFrame (index: DatetimeIndex or any increasing index; columns: channels).

    Input handling, the same for every time-series detector:
      * Columns must be numeric (``TypeError`` naming the others); at score time the columns must be the fit
        columns (any order; ``ValueError`` naming missing/extra ones).
      * The index must be strictly increasing (``ValueError`` on unsorted or duplicate timestamps;
        ``tools.metrics_io.read_metrics`` sorts and de-duplicates with a report).
      * ``inf`` counts as missing. Missing cells are masked: they carry no evidence (they are set to the
        channel's training centre inside the model) and a row whose channels are all missing scores NaN. The number
        of masked cells of the last call is kept in ``n_masked_``.
      * A channel that is entirely missing in the training data raises ``ValueError``. A constant training channel
        is kept with unit scale, so any later change of it counts as a deviation.
      * Fewer rows than ``min_rows`` raises ``ValueError`` naming the minimum.
    """

    kind: ClassVar[Kind] = "timeseries"
    columns_: list[str]
    n_masked_: int = 0

    @property
    def min_rows(self) -> int:
        """Fewest rows ``fit`` and ``score`` accept."""
        return 2

    def _validate(self, X: Any, fitting: bool) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"{self.name}: X must be a pandas DataFrame (rows = time, columns = channels), got {type(X).__name__}")
        if X.shape[1] == 0:
            raise ValueError(f"{self.name}: X has no columns")
        bad = [str(c) for c in X.columns if not (pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c]))]
        if bad:
            raise TypeError(f"{self.name}: non-numeric columns {bad}; drop or convert them first")
        if X.columns.duplicated().any():
            raise ValueError(f"{self.name}: duplicate column names {sorted({str(c) for c in X.columns[X.columns.duplicated()]})}")
        if len(X) < self.min_rows:
            raise ValueError(f"{self.name}: need at least {self.min_rows} rows, got {len(X)}")
        if not X.index.is_monotonic_increasing:
            raise ValueError(f"{self.name}: index (timestamps) is not sorted increasingly; sort it first")
        if not X.index.is_unique:
            raise ValueError(f"{self.name}: index has duplicate timestamps; aggregate or drop them first")
        cols = [str(c) for c in X.columns]
        if fitting:
            return X.set_axis(cols, axis=1)
        missing = [c for c in self.columns_ if c not in cols]
        extra = [c for c in cols if c not in self.columns_]
        if missing or extra:
            raise ValueError(f"{self.name}: columns differ from fit: missing {missing}, unexpected {extra}")
        return X.set_axis(cols, axis=1)[self.columns_]

    @staticmethod
    def _as_array(X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """float64 values with non-finite cells as NaN, and the boolean mask of masked cells."""
        a = X.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        mask = ~np.isfinite(a)
        a[mask] = np.nan
        return a, mask

    def fit(self, X: pd.DataFrame, y: None = None) -> TimeSeriesDetector:
        """Learn the model from (mostly normal) rows of ``X``. Returns ``self``."""
        Xv = self._validate(X, fitting=True)
        a, mask = self._as_array(Xv)
        empty_cols = np.asarray(mask.all(axis=0), dtype=bool)
        all_nan = [str(c) for c, m in zip(Xv.columns, empty_cols.tolist(), strict=True) if m]
        if all_nan:
            raise ValueError(f"{self.name}: channels with no finite value in the training data: {all_nan}")
        self.n_masked_ = int(mask.sum())
        if self.n_masked_:
            logger.warning("%s.fit: %d non-finite cells masked", self.name, self.n_masked_)
        self.columns_ = list(Xv.columns)
        train_scores = self._fit(a, Xv.index)
        finite = train_scores[np.isfinite(train_scores)]
        if finite.size == 0:
            raise ValueError(f"{self.name}: no finite training score (too few rows for the window?)")
        self._set_threshold(finite)
        return self

    def score(self, X: pd.DataFrame) -> pd.Series:
        """Scores aligned to ``X.index`` (float64; NaN during warm-up and on rows with no finite value)."""
        self._check_fitted()
        Xv = self._validate(X, fitting=False)
        a, mask = self._as_array(Xv)
        self.n_masked_ = int(mask.sum())
        if self.n_masked_:
            logger.warning("%s.score: %d non-finite cells masked", self.name, self.n_masked_)
        s = np.asarray(self._score(a, Xv.index), dtype=np.float64)
        s[mask.all(axis=1)] = np.nan
        return pd.Series(s, index=X.index, name=self.name, dtype="float64")

    def explain(self, X: pd.DataFrame, span: tuple[Hashable, Hashable] | slice | None = None) -> pd.Series:
        """Per-channel contributions over ``span`` (inclusive start/end labels of ``X.index``; None = all rows).

        Returns a Series indexed by channel, non-negative, summing to 1 (largest first), or all zeros when there is
        no evidence. The default uses per-channel deviation from the training centre; reconstruction models override
        it with their per-channel reconstruction errors.
        """
        self._check_fitted()
        Xv = self._validate(X, fitting=False)
        a, _ = self._as_array(Xv)
        contrib = self._channel_scores(a, Xv.index)  # (T, C)
        rows = _span_rows(Xv.index, span)
        total = np.nansum(contrib[rows], axis=0)
        return _normalise_contrib(total, self.columns_)

    def _channel_scores(self, a: np.ndarray, index: pd.Index) -> np.ndarray:
        raise NotImplementedError(f"{self.name} does not implement per-channel contributions")

    @abstractmethod
    def _fit(self, a: np.ndarray, index: pd.Index) -> np.ndarray:
        """Fit on a (T, C) float64 array (NaN = masked). Return the training scores used for the threshold."""

    @abstractmethod
    def _score(self, a: np.ndarray, index: pd.Index) -> np.ndarray:
        """Score a (T, C) float64 array (NaN = masked) -> (T,)."""


def _span_rows(index: pd.Index, span: tuple[Hashable, Hashable] | slice | None) -> np.ndarray:
    if span is None:
        return np.ones(len(index), dtype=bool)
    if isinstance(span, slice):
        start, end = span.start, span.stop
    else:
        start, end = span
    pos = np.arange(len(index))
    lo = 0 if start is None else int(index.searchsorted(start, side="left"))
    hi = len(index) if end is None else int(index.searchsorted(end, side="right"))
    if hi <= lo:
        raise ValueError(f"span {span!r} selects no rows")
    return (pos >= lo) & (pos < hi)


def _normalise_contrib(total: np.ndarray, columns: list[str]) -> pd.Series:
    total = np.where(np.isfinite(total) & (total > 0), total, 0.0)
    s = total.sum()
    vals = total / s if s > 0 else total
    out = pd.Series(vals, index=columns, name="contribution", dtype="float64")
    return out.sort_values(ascending=False, kind="stable")
