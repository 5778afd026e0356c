"""One contract suite parametrized over every registered detector (tiny data, tiny epochs)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from anomalist import detectors
from anomalist.detectors.base import NotFittedError

TS = detectors.available("timeseries")
LOG = detectors.available("log")
TORCH = {"ae", "vae", "diffusion", "usad"}
FAST: dict[str, dict[str, Any]] = {name: {"epochs": 2, "hidden": 16, "latent": 4, "torch_threads": 1} for name in TORCH}
FAST["deeplog"] = {"epochs": 2, "hidden": 8, "embed": 4, "layers": 1, "history": 3, "top_g": 2, "torch_threads": 1}
FAST["diffusion"] = {"epochs": 30, "hidden": 32, "torch_threads": 1, "patience": 30}  # needs some training to denoise
FAST["iforest"] = {"n_trees": 20}


def make(name: str) -> detectors.base.Detector:
    return detectors.get_detector(name, **FAST.get(name, {}))


def frame(n: int = 120, c: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    data = np.column_stack([np.sin(t / 6 + k) + 0.1 * rng.normal(size=n) for k in range(c)])
    return pd.DataFrame(data, columns=[f"ch{k}" for k in range(c)], index=pd.date_range("2024-01-01", periods=n, freq="min"))


@pytest.fixture(scope="module")
def ts_fitted() -> dict[str, detectors.base.Detector]:
    X = frame()
    return {name: make(name).fit(X) for name in TS}


def test_registry_lists_required_names() -> None:
    for name in ("zscore", "iforest", "pca", "ae", "vae", "diffusion", "auto"):
        assert name in TS
    assert LOG == ["new_template", "template_spike", "count_pca", "count_iforest", "deeplog"]
    with pytest.raises(ValueError, match="unknown detector"):
        detectors.get_detector("nope")
    with pytest.raises(TypeError):
        detectors.get_detector("pca", not_a_param=1)


def test_registry_is_lazy() -> None:
    import subprocess
    import sys

    code = "import sys, detectors; detectors.get_detector('pca'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", TS)
def test_ts_shapes_dtypes_and_threshold(name: str, ts_fitted: dict[str, Any]) -> None:
    det = ts_fitted[name]
    Y = frame(seed=1)
    s = det.score(Y)
    assert isinstance(s, pd.Series) and s.index.equals(Y.index) and s.dtype == np.float64
    assert np.isfinite(s.to_numpy()[-10:]).all()
    assert np.isfinite(det.threshold_)
    p = det.predict(Y)
    assert p.dtype == bool and p.index.equals(Y.index)


@pytest.mark.parametrize("name", TS)
def test_ts_fit_returns_self_and_unfitted_raises(name: str) -> None:
    det = make(name)
    with pytest.raises(NotFittedError):
        det.score(frame())
    with pytest.raises(NotFittedError):
        det.save("/nonexistent-never-written")
    assert det.fit(frame()) is det


@pytest.mark.parametrize("name", TS)
def test_ts_save_load_equal_scores(name: str, ts_fitted: dict[str, Any], tmp_path: Any) -> None:
    det = ts_fitted[name]
    Y = frame(seed=2)
    det.save(tmp_path / name)
    assert not list((tmp_path / name).glob("*.pkl"))
    loaded = detectors.load_detector(tmp_path / name)
    assert type(loaded) is type(det)
    np.testing.assert_allclose(loaded.score(Y).to_numpy(), det.score(Y).to_numpy(), rtol=1e-6, equal_nan=True)
    assert loaded.threshold_ == pytest.approx(det.threshold_)


@pytest.mark.parametrize("name", TS)
def test_ts_nan_inf_masked(name: str, ts_fitted: dict[str, Any]) -> None:
    det = ts_fitted[name]
    Y = frame(seed=3)
    Y.iloc[50, 0] = np.nan
    Y.iloc[60, 1] = np.inf
    Y.iloc[70, :] = np.nan
    s = det.score(Y)
    assert det.n_masked_ == 2 + Y.shape[1]
    assert np.isnan(s.iloc[70])  # a row with no finite value has no score
    assert np.isfinite(s.iloc[100:]).all()


@pytest.mark.parametrize("name", TS)
def test_ts_bad_inputs(name: str, ts_fitted: dict[str, Any]) -> None:
    det = ts_fitted[name]
    X = frame()
    with pytest.raises(ValueError, match="at least"):
        make(name).fit(X.iloc[:1])
    with pytest.raises(ValueError, match="at least"):
        make(name).fit(X.iloc[:0])
    with pytest.raises(ValueError, match="columns differ"):
        det.score(X.rename(columns={"ch0": "other"}))
    with pytest.raises(TypeError, match="non-numeric"):
        make(name).fit(X.assign(host="a"))
    with pytest.raises(ValueError, match="sorted"):
        det.score(X.iloc[::-1])
    with pytest.raises(ValueError, match="duplicate"):
        det.score(pd.concat([X.iloc[:5], X.iloc[4:]]))
    with pytest.raises(ValueError, match="no finite value"):
        make(name).fit(X.assign(ch2=np.nan))
    with pytest.raises(TypeError):
        det.score(X.to_numpy())
    # Reordered columns are accepted (matched by name).
    np.testing.assert_allclose(det.score(X[X.columns[::-1]]).to_numpy(), det.score(X).to_numpy(), equal_nan=True)


@pytest.mark.parametrize("name", TS)
def test_ts_constant_channel(name: str) -> None:
    X = frame().assign(flat=1.0)
    det = make(name).fit(X)
    s = det.score(X)
    assert np.isfinite(s.to_numpy()[-10:]).all()
    Y = X.copy()
    Y.iloc[100:104, Y.columns.get_loc("flat")] = 20.0  # a constant channel that moves is anomalous
    if name == "iforest":
        return  # documented limitation: trees never split on a feature that was constant in training
    assert np.nanmax(det.score(Y).to_numpy()[98:108]) > np.nanmax(s.to_numpy()[98:108])


@pytest.mark.parametrize("name", TS)
def test_ts_explain(name: str, ts_fitted: dict[str, Any]) -> None:
    det = ts_fitted[name]
    Y = frame(seed=4)
    Y.iloc[80:84, 2] += 6.0
    contrib = det.explain(Y, (Y.index[80], Y.index[83]))
    assert list(sorted(contrib.index)) == ["ch0", "ch1", "ch2"]
    assert (contrib >= 0).all() and contrib.sum() == pytest.approx(1.0)
    assert contrib.index[0] == "ch2"


def counts(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({1: rng.poisson(5, n), 2: rng.poisson(3, n), 3: rng.poisson(1, n)})


def sequences(n: int = 40) -> list[list[int]]:
    return [[1, 2, 2, 3] if i % 2 else [1, 2, 3, 3] for i in range(n)]


def log_input(name: str, kind: str = "train") -> Any:
    if name == "deeplog":
        return sequences() if kind == "train" else [[1, 2, 2, 3], [1, 9, 9], [3, 1]]
    return counts() if kind == "train" else counts(5, seed=1).assign(**{"99": [0, 0, 4, 0, 0]})


@pytest.fixture(scope="module")
def log_fitted() -> dict[str, detectors.base.Detector]:
    return {name: make(name).fit(log_input(name)) for name in LOG}


@pytest.mark.parametrize("name", LOG)
def test_log_contract(name: str, log_fitted: dict[str, Any], tmp_path: Any) -> None:
    with pytest.raises(NotFittedError):
        make(name).score(log_input(name, "test"))
    det = log_fitted[name]
    test = log_input(name, "test")
    s = det.score(test)
    assert s.dtype == np.float64 and len(s) == len(test) and np.isfinite(s).all()
    det.save(tmp_path / name)
    loaded = detectors.load_detector(tmp_path / name)
    np.testing.assert_allclose(loaded.score(test).to_numpy(), s.to_numpy(), rtol=1e-6)
    # The window with events of a template never seen in training (or the session with unknown keys) stands out.
    assert int(np.argmax(s.to_numpy())) in ((1,) if name == "deeplog" else (2,))
    assert det.predict(test).iloc[1 if name == "deeplog" else 2]


@pytest.mark.parametrize("name", [n for n in LOG if n != "deeplog"])
def test_count_bad_inputs(name: str, log_fitted: dict[str, Any]) -> None:
    det = log_fitted[name]
    with pytest.raises(ValueError, match="at least 1"):
        make(name).fit(counts().iloc[:0])
    with pytest.raises(ValueError, match="NaN"):
        bad = counts().astype(float)
        bad.iloc[0, 0] = np.nan
        det.score(bad)
    with pytest.raises(ValueError, match=">= 0"):
        det.score(counts() * -1)
    with pytest.raises(TypeError):
        det.score(counts().to_numpy())
    # Training templates missing at score time count as zero events.
    assert np.isfinite(det.score(counts()[[1, 2]]).to_numpy()).all()


def test_deeplog_bad_inputs(log_fitted: dict[str, Any]) -> None:
    det = log_fitted["deeplog"]
    with pytest.raises(ValueError, match="at least 1"):
        make("deeplog").fit([])
    with pytest.raises(TypeError):
        det.score("1 2 3")
    with pytest.raises(TypeError):
        det.score([5, 6])
    s = det.score(pd.Series([[1, 2, 2, 3], []], index=["a", "b"]))
    assert list(s.index) == ["a", "b"]
