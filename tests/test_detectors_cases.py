"""Tiny hand-built cases with exact expectations: an 8-point series, thresholds, windows, log detectors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from anomalist import detectors
from anomalist.detectors._prep import spread_windows, windows
from anomalist.detectors.thresholds import Spot, pot_threshold, quantile_threshold, robust_threshold

IDX8 = pd.date_range("2024-01-01", periods=8, freq="h")


def test_eight_point_series_known_outliers() -> None:
    # Two channels that move together; rows 3 and 6 break the relation (outliers), the rest follow it.
    train = pd.DataFrame({"a": np.linspace(0, 10, 50), "b": np.linspace(0, 20, 50)},
                         index=pd.date_range("2023-12-01", periods=50, freq="h"))
    a = np.array([1.0, 2, 3, 4, 5, 6, 7, 8])
    b = 2 * a
    b[3] += 6
    b[6] -= 6
    X = pd.DataFrame({"a": a, "b": b}, index=IDX8)
    s = detectors.get_detector("pca", window=1, variance=0.5).fit(train).score(X)
    assert set(np.argsort(-s.to_numpy())[:2]) == {3, 6}
    assert s.drop(s.index[[3, 6]]).max() < 1e-6  # the others lie on the learned line exactly


def test_zscore_eight_points_exact() -> None:
    # Rolling window 3: row t compares x_t with the median/MAD of rows t-2..t; the spike at row 5 stands out.
    X = pd.DataFrame({"v": [1.0, 2.0, 1.0, 2.0, 1.0, 50.0, 1.0, 2.0]}, index=IDX8)
    det = detectors.get_detector("zscore", window=3, mad_floor=0.01).fit(X)
    s = det.score(X)
    assert s.iloc[:2].isna().all()  # warm-up
    # Row 5: window [2, 1, 50], median 2, MAD 1.4826 * 1 -> |50 - 2| / 1.4826
    assert s.iloc[5] == pytest.approx(48 / 1.4826)
    assert int(np.nanargmax(s.to_numpy())) == 5


def test_windows_and_spread() -> None:
    z = np.arange(12, dtype=float).reshape(6, 2)
    w = windows(z, 3)
    assert w.shape == (4, 3, 2) and (w[1, 0] == z[1]).all()
    spread = spread_windows(np.array([1.0, 2.0, 3.0, 4.0]), 6, 3)
    np.testing.assert_allclose(spread, [1, 1.5, 2, 3, 3.5, 4])
    with pytest.raises(ValueError, match="at least 3"):
        windows(z[:2], 3)


def test_thresholds() -> None:
    rng = np.random.default_rng(0)
    x = rng.exponential(1.0, 200_000)
    assert quantile_threshold(np.arange(101.0), 0.9) == pytest.approx(90.0)
    # POT on exponential data: the 1e-4 tail quantile is -ln(1e-4) = 9.21.
    assert pot_threshold(x, risk=1e-4) == pytest.approx(-np.log(1e-4), rel=0.05)
    contaminated = np.r_[rng.normal(0, 1, 1000), np.full(150, 50.0)]  # 13 % anomalies at 50
    assert 3 < robust_threshold(contaminated) < 10 < quantile_threshold(contaminated, 0.99)
    with pytest.raises(ValueError, match="q must be"):
        quantile_threshold(x, 1.5)
    with pytest.raises(ValueError, match="no finite"):
        quantile_threshold(np.array([np.nan]), 0.5)
    spot = Spot(risk=1e-3).fit(x[:5000])
    alarms, thr = spot.update(np.array([0.5, 30.0, np.nan, 1.0]))
    assert alarms.tolist() == [False, True, False, False]
    assert np.all(thr > 5)


def test_pot_threshold_method_on_detector() -> None:
    X = pd.DataFrame({"v": np.sin(np.arange(300) / 5)}, index=pd.date_range("2024", periods=300, freq="min"))
    q = detectors.get_detector("pca", threshold="quantile").fit(X)
    p = detectors.get_detector("pca", threshold="pot", threshold_q=0.999).fit(X)
    assert np.isfinite(p.threshold_) and p.threshold_ >= np.quantile(p.score(X).dropna(), 0.98) - 1e-12
    assert q.threshold_ != p.threshold_
    with pytest.raises(ValueError, match="threshold method"):
        detectors.get_detector("pca", threshold="median").fit(X)


def test_new_template_and_spike_exact() -> None:
    train = pd.DataFrame({"A": [5, 5, 5, 5], "B": [1, 1, 1, 1], "R": [0, 0, 1, 0]})
    det = detectors.get_detector("new_template").fit(train)
    test = pd.DataFrame({"A": [5, 5, 5], "B": [1, 1, 1], "R": [0, 1, 0], "NEW": [0, 0, 2]})
    s = det.score(test).to_numpy()
    assert s[0] == 0.0  # common templates add nothing
    assert 0 < s[1] < s[2]  # rare < two unseen events
    contrib = det.explain(test, (2, 2))
    assert contrib.index[0] == "<unseen>"
    spike = detectors.get_detector("template_spike", drops=False).fit(train)
    z = spike.score(pd.DataFrame({"A": [5, 25], "B": [1, 1], "R": [0, 0]})).to_numpy()
    assert z[0] == 0.0 and z[1] == pytest.approx(20.0)  # MAD 0 + floor 1: (25 - 5) / 1


def test_deeplog_learns_a_grammar() -> None:
    normal = [["1", "2", "3", "4"]] * 30 + [["5", "2", "2", "3", "4"]] * 30
    # The first key of a session is 1 or 5 (50/50), so top_g = 2; inside a session the grammar is deterministic.
    det = detectors.get_detector("deeplog", history=3, top_g=2, epochs=60, hidden=16, embed=8, layers=1,
                                 patience=60, lr=1e-2, torch_threads=1).fit(normal)
    s = det.score([["1", "2", "3", "4"], ["5", "2", "2", "3", "4"], ["1", "3", "2", "4"], ["1", "2", "3"]])
    flags = (s > det.threshold_).tolist()
    assert flags == [False, False, True, True]  # out of order; truncated (missing end)


def test_torch_row_score_is_the_mean_of_covering_window_totals() -> None:
    """Torch detectors score a row by the mean total cell score of the windows covering it (not per-row cells)."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(120, 3)), columns=["a", "b", "c"])
    det = detectors.get_detector("ae", window=6, epochs=2, hidden=8, latent=2, device="cpu").fit(X)
    a = X.to_numpy(np.float64)
    cells = det._window_cells(a, totals_only=False)  # (N, W, C)
    expected = spread_windows(cells.reshape(len(cells), -1).sum(axis=1), len(a), 6)
    np.testing.assert_allclose(det.score(X).to_numpy(), expected, rtol=1e-5)
    # ... which differs from summing the per-row spread cells (the old rule) on anything but constant errors.
    assert not np.allclose(expected, spread_windows(cells, len(a), 6).sum(axis=1))


def test_vae_decoder_and_score_variance_modes() -> None:
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(150, 2)), columns=["a", "b"])
    small = dict(window=5, epochs=2, hidden=8, latent=2, device="cpu")
    fixed = detectors.get_detector("vae", decoder_variance="fixed", **small).fit(X)
    learned = detectors.get_detector("vae", **small).fit(X)  # default: learned variance, unit-variance scoring
    assert learned.get_params()["decoder_variance"] == "learned" and learned.get_params()["score_variance"] == "unit"
    assert fixed.net_.decoder[-1].out_features == 10 and learned.net_.decoder[-1].out_features == 20
    assert (fixed.score(X).dropna() >= 0).all() and (learned.score(X).dropna() >= 0).all()
    # Same trained model, scored under its decoder's variance instead: a different score.
    by_decoder = detectors.get_detector("vae", score_variance="decoder", **small).fit(X)
    assert not np.allclose(by_decoder.score(X).dropna(), learned.score(X).dropna())
    with pytest.raises(ValueError, match="decoder_variance"):
        detectors.get_detector("vae", decoder_variance="other").fit(X)
    with pytest.raises(ValueError, match="score_variance"):
        detectors.get_detector("vae", score_variance="other").fit(X)


def test_auto_explain_counts_excess_over_the_context() -> None:
    """A channel that mismatches training all along (drift) does not take credit for a span where another changed."""
    rng = np.random.default_rng(2)
    t = np.arange(400)
    train = pd.DataFrame({"drift": np.sin(t / 9) + 0.05 * rng.normal(size=400),
                          "b": np.cos(t / 7) + 0.05 * rng.normal(size=400)})
    test = train.copy()
    test["drift"] += 3.0  # shifted for the whole test series: large, constant evidence
    test.loc[300:319, "b"] += 1.5  # the actual anomaly
    det = detectors.get_detector("auto").fit(train)
    with_context = det.explain(test, (300, 319))
    assert with_context.index[0] == "b"
    no_context = det.explain(test.iloc[300:], (300, 319))  # no rows before the span: the plain sum, drift dominates
    assert no_context.index[0] == "drift"


def test_auto_knn_distance_is_robust_to_one_far_drifting_channel() -> None:
    """One channel far from anything in training (a drift on a normal stretch) must not outrank moderate evidence on
    several channels at once; the plain Euclidean distance (``robust=False``) ranks them the other way round."""
    from anomalist.detectors.auto import WindowKNN

    rng = np.random.default_rng(5)
    t = np.arange(3000)
    cols = {f"c{i}": np.sin(t / (7 + 3 * i)) + 0.1 * rng.normal(size=len(t)) for i in range(6)}
    train = pd.DataFrame(cols)
    test = train.iloc[:1200].copy().reset_index(drop=True)
    test.loc[200:399, "c0"] += 40.0  # one channel 50+ training SDs away, for 200 rows
    test.loc[800:839, ["c1", "c2", "c3", "c4"]] += 2.5  # four channels a few SDs away, together
    spans = {"drift": slice(260, 340), "anomaly": slice(805, 835)}
    for robust, first in ((True, "anomaly"), (False, "drift")):
        det = WindowKNN(window=20, robust=robust).fit(train)
        s = det.score(test).to_numpy()
        means = {k: float(np.mean(s[v])) for k, v in spans.items()}
        assert max(means, key=lambda k: means[k]) == first, (robust, means)
        assert means["anomaly"] > 2 * float(np.median(s[np.isfinite(s)]))  # both stand out from normal rows
    # The channel scales are part of the saved state (same scores after save/load).
    det = detectors.get_detector("auto").fit(train)
    assert det.members_[0][1].channel_scale_ is not None
