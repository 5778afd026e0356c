"""Log detectors on event-count matrices (loglizer style).

Input of every detector here: ``counts``, a DataFrame with one row per window (any index: window ids or start
times) and one column per template id (str or int; compared as strings), holding non-negative event counts, as in
``tools.windows.Windows.counts``. At score time columns may differ from fit: templates unseen in training are new
columns (``new_template`` flags them; the other detectors count their events in an ``<unseen>`` column, so they are
not silently lost) and training templates missing from the window count as 0.
Scores are aligned to ``counts.index``; higher = more anomalous.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from anomalist.detectors._iforest import ArrayForest
from anomalist.detectors.base import Detector, Kind
from anomalist.detectors.thresholds import ThresholdMethod

logger = logging.getLogger(__name__)

UNSEEN = "<unseen>"


class CountDetector(Detector):
    """Base of the count-matrix detectors: validation and alignment of template columns."""

    kind: ClassVar[Kind] = "log"
    templates_: list[str]

    def _validate(self, counts: Any) -> pd.DataFrame:
        if not isinstance(counts, pd.DataFrame):
            raise TypeError(f"{self.name}: counts must be a DataFrame (windows x template ids), got {type(counts).__name__}")
        if len(counts) == 0:
            raise ValueError(f"{self.name}: need at least 1 window, got 0")
        c = counts.set_axis([str(col) for col in counts.columns], axis=1)
        if c.columns.duplicated().any():
            c = c.T.groupby(level=0, sort=False).sum().T  # ids that collide once cast to str are the same template
        bad = [col for col in c.columns if not pd.api.types.is_numeric_dtype(c[col])]
        if bad:
            raise TypeError(f"{self.name}: non-numeric count columns {bad}")
        values = c.to_numpy(dtype=np.float64, na_value=np.nan)
        if not np.isfinite(values).all():
            raise ValueError(f"{self.name}: counts contain NaN or inf ({int((~np.isfinite(values)).sum())} cells)")
        if (values < 0).any():
            raise ValueError(f"{self.name}: counts must be >= 0")
        return c

    def _align(self, c: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(windows x training templates) counts and the per-window count of events of unseen templates."""
        known = [t for t in self.templates_ if t in c.columns]
        X = np.zeros((len(c), len(self.templates_)), dtype=np.float64)
        pos = {t: i for i, t in enumerate(self.templates_)}
        if known:
            X[:, [pos[t] for t in known]] = c[known].to_numpy(dtype=np.float64)
        new = [t for t in c.columns if t not in pos]
        unseen = c[new].to_numpy(dtype=np.float64).sum(axis=1) if new else np.zeros(len(c))
        return X, unseen

    def fit(self, counts: pd.DataFrame, y: None = None) -> CountDetector:
        """Learn from windows of (mostly) normal logs. Returns ``self``."""
        c = self._validate(counts)
        self.templates_ = list(c.columns)
        X, _ = self._align(c)
        self._set_threshold(self._fit(X))
        return self

    def score(self, counts: pd.DataFrame) -> pd.Series:
        """Per-window anomaly scores aligned to ``counts.index`` (float64)."""
        self._check_fitted()
        c = self._validate(counts)
        X, unseen = self._align(c)
        return pd.Series(self._score(X, unseen, c), index=counts.index, name=self.name, dtype="float64")

    def explain(self, counts: pd.DataFrame, span: Any = None) -> pd.Series:
        """Per-template contributions over the windows in ``span`` (labels of ``counts.index``; None = all)."""
        self._check_fitted()
        c = self._validate(counts)
        rows = c.loc[span[0] : span[1]] if isinstance(span, tuple) else (c.loc[span] if span is not None else c)
        X, unseen = self._align(rows)
        contrib = np.append(self._template_contrib(X).sum(axis=0), unseen.sum())
        out = pd.Series(contrib, index=[*self.templates_, UNSEEN], dtype="float64").clip(lower=0)
        total = out.sum()
        return (out / total if total > 0 else out).sort_values(ascending=False, kind="stable")

    def _template_contrib(self, X: np.ndarray) -> np.ndarray:
        return np.abs(X - getattr(self, "mean_", np.zeros(X.shape[1])))

    def _fit(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _score(self, X: np.ndarray, unseen: np.ndarray, c: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError


class NewTemplateDetector(CountDetector):
    """Windows holding templates unseen (or rare) in training.

    Score = sum over the window's events of ``-log10`` of the template's smoothed training frequency
    ``(n_t + 1) / (N + V + 1)`` for templates with fewer than ``rare_count`` training events (unseen templates get
    the smallest frequency); common templates add nothing. So one unseen event outscores any number of common ones.

    Args:
        rare_count: Templates seen fewer times than this in training count as rare.
        threshold / threshold_q: threshold on training scores; the default ``quantile`` at 1.0 - tiny flags anything
            rarer than what training itself contained.
    """

    name = "new_template"

    def __init__(self, rare_count: int = 2, threshold: ThresholdMethod = "quantile", threshold_q: float = 0.999) -> None:
        self.rare_count = rare_count
        self.threshold = threshold
        self.threshold_q = threshold_q

    def _fit(self, X: np.ndarray) -> np.ndarray:
        if self.rare_count < 1:
            raise ValueError(f"rare_count must be >= 1, got {self.rare_count}")
        self.freq_ = X.sum(axis=0)
        total = self.freq_.sum() + len(self.freq_) + 1.0
        surprise = -np.log10((self.freq_ + 1.0) / total)
        self.weight_ = np.where(self.freq_ < self.rare_count, surprise, 0.0)
        self.unseen_weight_ = float(-np.log10(1.0 / total))
        return X @ self.weight_

    def _score(self, X: np.ndarray, unseen: np.ndarray, c: pd.DataFrame) -> np.ndarray:
        return X @ self.weight_ + unseen * self.unseen_weight_

    def _template_contrib(self, X: np.ndarray) -> np.ndarray:
        return X * self.weight_

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"templates": self.templates_, "unseen_weight": self.unseen_weight_}, {"freq": self.freq_, "weight": self.weight_}

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.templates_ = list(meta["templates"])
        self.unseen_weight_ = float(meta["unseen_weight"])
        self.freq_, self.weight_ = arrays["freq"], arrays["weight"]


class TemplateSpikeDetector(CountDetector):
    """Per-template frequency spikes (and drops): robust z-score of each template's count against training windows.

    Score = max over templates of ``|count - median| / (1.4826 * MAD + floor)`` where ``floor`` keeps rare
    templates from dividing by zero; unseen templates count as a spike of their event count over ``floor``.

    Args:
        floor: Added to the robust scale (in events per window).
        drops: Whether a template falling below its normal count also counts (absolute z) or only rises.
    """

    name = "template_spike"

    def __init__(
        self, floor: float = 1.0, drops: bool = True, threshold: ThresholdMethod = "quantile", threshold_q: float = 0.99
    ) -> None:
        self.floor = floor
        self.drops = drops
        self.threshold = threshold
        self.threshold_q = threshold_q

    def _z(self, X: np.ndarray) -> np.ndarray:
        d = (X - self.median_) / self.scale_
        return np.abs(d) if self.drops else np.maximum(d, 0.0)

    def _fit(self, X: np.ndarray) -> np.ndarray:
        if self.floor <= 0:
            raise ValueError(f"floor must be > 0, got {self.floor}")
        self.median_ = np.median(X, axis=0)
        self.scale_ = 1.4826 * np.median(np.abs(X - self.median_), axis=0) + self.floor
        return self._z(X).max(axis=1, initial=0.0)

    def _score(self, X: np.ndarray, unseen: np.ndarray, c: pd.DataFrame) -> np.ndarray:
        return np.maximum(self._z(X).max(axis=1, initial=0.0), unseen / self.floor)

    def _template_contrib(self, X: np.ndarray) -> np.ndarray:
        return self._z(X)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"templates": self.templates_}, {"median": self.median_, "scale": self.scale_}

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.templates_ = list(meta["templates"])
        self.median_, self.scale_ = arrays["median"], arrays["scale"]


def _tfidf_fit(X: np.ndarray) -> np.ndarray:
    """Inverse document frequency weights of templates (loglizer's ``tf-idf`` option)."""
    df = (X > 0).sum(axis=0)
    return np.log((len(X) + 1.0) / (df + 1.0)) + 1.0


class CountPCADetector(CountDetector):
    """PCA on (idf-weighted, centred) count vectors; score = squared prediction error (Xu et al. SOSP'09).

    Events of unseen templates enter the residual directly (they lie outside the training subspace).

    Args:
        variance: Fraction of variance kept in the normal subspace.
    """

    name = "count_pca"

    def __init__(self, variance: float = 0.95, threshold: ThresholdMethod = "quantile", threshold_q: float = 0.995) -> None:
        self.variance = variance
        self.threshold = threshold
        self.threshold_q = threshold_q

    def _prep(self, X: np.ndarray) -> np.ndarray:
        return X * self.idf_ - self.mean_

    def _fit(self, X: np.ndarray) -> np.ndarray:
        if not 0.0 < self.variance < 1.0:
            raise ValueError(f"variance must be in (0, 1), got {self.variance}")
        self.idf_ = _tfidf_fit(X)
        self.mean_ = (X * self.idf_).mean(axis=0)
        Z = X * self.idf_ - self.mean_
        _, sv, vt = np.linalg.svd(Z, full_matrices=False)
        var = sv**2
        if var.sum() <= 0:
            self.components_ = np.zeros((0, X.shape[1]))
        else:
            k = int(np.searchsorted(np.cumsum(var) / var.sum(), self.variance) + 1)
            self.components_ = vt[:k]
        return self._spe(X)

    def _spe(self, X: np.ndarray) -> np.ndarray:
        Z = self._prep(X)
        R = Z - (Z @ self.components_.T) @ self.components_
        return (R**2).sum(axis=1)

    def _score(self, X: np.ndarray, unseen: np.ndarray, c: pd.DataFrame) -> np.ndarray:
        return self._spe(X) + (unseen * (np.log(len(self.idf_) + 1.0) + 1.0)) ** 2

    def _template_contrib(self, X: np.ndarray) -> np.ndarray:
        Z = self._prep(X)
        return (Z - (Z @ self.components_.T) @ self.components_) ** 2

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"templates": self.templates_}, {"idf": self.idf_, "mean": self.mean_, "components": self.components_}

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.templates_ = list(meta["templates"])
        self.idf_, self.mean_, self.components_ = arrays["idf"], arrays["mean"], arrays["components"]


class CountIForestDetector(CountDetector):
    """IsolationForest on count vectors plus an ``<unseen>`` column (the count of events of unseen templates).

    Args:
        n_trees, max_samples, seed: forest settings (deterministic given the seed).
    """

    name = "count_iforest"

    def __init__(
        self,
        n_trees: int = 100,
        max_samples: int = 256,
        seed: int = 0,
        threshold: ThresholdMethod = "quantile",
        threshold_q: float = 0.99,
    ) -> None:
        self.n_trees = n_trees
        self.max_samples = max_samples
        self.seed = seed
        self.threshold = threshold
        self.threshold_q = threshold_q

    def _fit(self, X: np.ndarray) -> np.ndarray:
        Xu = np.column_stack([X, np.zeros(len(X))])
        self.mean_ = X.mean(axis=0)
        self.forest_ = ArrayForest.train(Xu, self.n_trees, self.max_samples, self.seed)
        return self.forest_.score(Xu)

    def _score(self, X: np.ndarray, unseen: np.ndarray, c: pd.DataFrame) -> np.ndarray:
        s = self.forest_.score(np.column_stack([X, unseen]))
        # A forest trained without unseen events never splits on them: add them explicitly so they always count.
        return s + (unseen > 0)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {f"forest_{k}": v for k, v in self.forest_.arrays.items()}
        arrays["mean"] = self.mean_
        return {"templates": self.templates_, "psi": self.forest_.psi}, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.templates_ = list(meta["templates"])
        self.mean_ = arrays["mean"]
        self.forest_ = ArrayForest({k: arrays[f"forest_{k}"] for k in ArrayForest.ARRAY_NAMES}, int(meta["psi"]))
