"""Hand-computed cases for the time-series metrics."""

from __future__ import annotations

import numpy as np
import pytest

from anomalist.eval import ts_metrics as m

Y = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0])
S = np.array([0.1, 0.2, 0.9, 0.3, 0.1, 0.8, 0.1, 0.7, 0.1, 0.1])


def test_auc_pr_by_hand() -> None:
    # Ranked: .9 (pos), .8 (neg), .7 (pos), .3 (pos): AP = (1 + 2/3 + 3/4) / 3
    assert m.auc_pr(Y, S) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)


def test_auc_roc_by_hand() -> None:
    # Positive-negative pairs ranked right: .9 beats 7, .7 beats 6 (not .8), .3 beats 5 of 7 negatives (ties none).
    assert m.auc_roc(Y, S) == pytest.approx((7 + 6 + 6) / 21)


def test_f1_variants_by_hand() -> None:
    # Best plain F1 at threshold .3: 4 flagged, 3 true -> P = .75, R = 1.
    assert m.f1_best(Y, S) == pytest.approx(2 * 0.75 / 1.75)
    # Event-level (composite): events [2,3] and [7]; at .3 both detected, point precision 3/4.
    assert m.f1_event(Y, S) == pytest.approx(2 * 0.75 / 1.75)
    # Flagging everything does not pay in event F1 (point precision 3/10).
    assert m._event_f1_at(Y.astype(bool), m.segments(Y), np.ones(10, bool)) == pytest.approx(2 * 0.3 / 1.3)


def test_point_adjustment_inflates() -> None:
    y = np.array([0, 1, 1, 1, 1, 0, 0, 0])
    s = np.array([0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    # Plain: flagging one row gives F1 0.4, flagging all 8 gives P = .5, R = 1 -> 2/3 (the best).
    assert m.f1_best(y, s) == pytest.approx(2 / 3)
    assert m.f1_point_adjusted(y, s) == pytest.approx(1.0)  # the whole event counts once one row is hit


def test_vus_pr_buffer_zero_is_auc_pr_and_rewards_near_misses() -> None:
    assert m.vus_pr(Y, S, max_buffer=0, n_levels=1) == pytest.approx(m.auc_pr(Y, S))
    y = np.zeros(50, int)
    y[20:25] = 1
    near = np.zeros(50)
    near[26] = 1.0  # just after the event
    assert m.auc_pr(y, near) < m.vus_pr(y, near, max_buffer=10)


def test_nan_scores_never_flag_and_single_class_is_nan() -> None:
    s = S.copy()
    s[:2] = np.nan
    assert np.isfinite(m.auc_pr(Y, s))
    assert np.isnan(m.auc_pr(np.zeros(5), np.arange(5.0)))
    with pytest.raises(ValueError, match="length"):
        m.auc_pr(Y, S[:5])


def test_segments_and_hit_rate() -> None:
    assert m.segments(np.array([1, 1, 0, 1, 0, 0, 1])) == [(0, 1), (3, 3), (6, 6)]
    assert m.hit_rate(["a", "b", "c", "d"], ["a", "c", "e"], 1.5) == pytest.approx(2 / 3)  # top 4 hold a, c
    assert m.hit_rate(["a", "b", "c"], ["a", "c"], 1.0) == pytest.approx(0.5)  # top 2 hold a
    assert np.isnan(m.hit_rate(["a"], [], 1.0))
