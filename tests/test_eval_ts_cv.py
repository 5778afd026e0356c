"""``eval timeseries --cv``: the leave-one-group-out selection never sees the held-out group; a tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anomalist.eval import timeseries
from anomalist.eval.timeseries import cross_validate, select_config
from tests.test_eval_ts import _smd


def test_select_config_ignores_the_held_out_group() -> None:
    # "b" is best on the held-out group g3 by far (so best over all groups), "a" is best on g1 and g2.
    auc = {"a": {"g1": 0.6, "g2": 0.6, "g3": 0.1}, "b": {"g1": 0.5, "g2": 0.5, "g3": 0.99}}
    assert select_config(auc, ["a", "b"], ["g1", "g2", "g3"]) == "b"  # all-in would pick b
    assert select_config(auc, ["a", "b"], ["g1", "g2"]) == "a"  # left-out picks a
    hr = {c: {g: 0.5 for g in v} for c, v in auc.items()}
    auc["z"] = {"g1": 0.2, "g2": 0.2, "g3": 0.3}
    hr["z"] = {"g1": 0.0, "g2": 0.0, "g3": 0.0}
    out = cross_validate(auc, hr, ["a", "b"], ["z"])
    assert out["groups"]["g3"]["auto_config"] == "a" and out["groups"]["g3"]["auto_auc_pr"] == 0.1
    # g1 held out: b is chosen (mean over g2, g3 = 0.745 > 0.35)
    assert out["groups"]["g1"]["auto_config"] == "b" and out["groups"]["g1"]["auto_auc_pr"] == 0.5
    pooled = out["pooled"]
    assert np.isclose(pooled["auto_auc_pr"], (0.5 + 0.5 + 0.1) / 3)
    assert np.isclose(pooled["ratio"], pooled["auto_auc_pr"] / pooled["baseline_auc_pr"])


def test_select_config_ties_and_missing_figures() -> None:
    auc = {"d": {"g1": 0.5, "g2": np.nan}, "e": {"g1": 0.5, "g2": np.nan}, "f": {"g1": np.nan, "g2": np.nan}}
    assert select_config(auc, ["d", "e", "f"], ["g1", "g2"]) == "d"  # tie: the earlier (the default)
    assert select_config(auc, ["f"], ["g1"]) == "f"  # nothing scored: the first
    # a group without any figure (no anomaly) is not held out
    out = cross_validate(auc, {c: {"g1": 1.0, "g2": 1.0} for c in auc}, ["d", "e"], ["f"])
    assert list(out["groups"]) == ["g1"]


def test_timeseries_cv_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = {"knn-w40-k5": timeseries.AUTO_CONFIGS["knn-w40-k5"], "knn-w20-k5": timeseries.AUTO_CONFIGS["knn-w20-k5"],
             "multiscale-w20-40": (timeseries._knn(window=20), timeseries._knn())}
    monkeypatch.setattr(timeseries, "AUTO_CONFIGS", small)
    monkeypatch.setattr(timeseries, "DEFAULT_CONFIG", "knn-w40-k5")
    result = timeseries.run(_smd(tmp_path / "smd"), fmt="smd", detectors=["auto", "zscore"], cv=True)
    assert set(result["detectors"]) == {"auto", "zscore"} and result["series"] == 2
    cv = result["cv"]
    assert set(cv["groups"]) == {"machine-9-1", "machine-9-2"}
    for h in cv["groups"].values():
        assert h["auto_config"] in small and h["baseline"] in ("zscore", "iforest", "pca")
        assert 0 <= h["auto_auc_pr"] <= 1 and h["auto_hitrate@150"] is not None
    assert {"auto_auc_pr", "auto_hitrate@150", "baseline_auc_pr", "ratio"} <= set(cv["pooled"])
    assert [c["name"] for c in cv["configs"]] == list(small)
    assert result["all_in"]["auto_config"] == "knn-w40-k5"
    assert result["all_in"]["auto_auc_pr"] == result["detectors"]["auto"]["auc_pr"]  # the default is the same auto
    assert set(result["all_in"]["configs"]) == {*small, "zscore", "iforest", "pca"}
    json.dumps(result, allow_nan=False)
    assert timeseries.render(result) is not None


def test_configured_default_is_the_shipped_auto(tmp_path: Path) -> None:
    from anomalist.detectors import get_detector

    s = next(iter(timeseries.ts_data.load_smd(_smd(tmp_path / "smd"))))
    a = get_detector("auto").fit(s.train).score(s.test).to_numpy()
    b = timeseries.ConfiguredAuto(knn=timeseries.AUTO_CONFIGS[timeseries.DEFAULT_CONFIG][0]).fit(s.train)
    assert np.allclose(a, b.score(s.test).to_numpy(), equal_nan=True)
