"""An Isolation Forest stored as plain arrays: trained by scikit-learn, scored (before and after save) in numpy.

scikit-learn's estimator can only be persisted with pickle/joblib, which we never use. Its trees are just arrays,
so we copy them out once after ``fit`` and compute the standard isolation score ourselves
(Liu et al. 2008: ``2 ** (-E[h(x)] / c(psi))``, with ``h`` the depth of the leaf reached plus ``c(leaf size)``).
The same arrays serve both the live model and a loaded one, so saved and reloaded scores are identical.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest

from anomalist.detectors._prep import batches


def _c(n: np.ndarray) -> np.ndarray:
    """Average path length of an unsuccessful BST search among ``n`` points (c(n) of the paper)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    out[n == 2] = 1.0
    return out


class ArrayForest:
    """Flat arrays of all trees: node ``feature`` / ``threshold`` / ``left`` / ``right`` (global node ids, -1 at
    leaves), ``leaf_path`` (depth + c(leaf size), only meaningful at leaves), ``roots`` and ``psi`` (sub-sample size).
    """

    ARRAY_NAMES = ("feature", "threshold", "left", "right", "leaf_path", "roots")

    def __init__(self, arrays: dict[str, np.ndarray], psi: int) -> None:
        self.arrays = arrays
        self.psi = psi

    @classmethod
    def train(cls, X: np.ndarray, n_trees: int, max_samples: int, seed: int) -> ArrayForest:
        psi = int(min(max_samples, len(X)))
        forest = IsolationForest(n_estimators=n_trees, max_samples=psi, random_state=seed, n_jobs=1).fit(X)
        feats, thrs, lefts, rights, paths, roots = [], [], [], [], [], []
        offset = 0
        for est, used in zip(forest.estimators_, forest.estimators_features_, strict=True):
            t = est.tree_
            n = t.node_count
            leaf = t.children_left == -1
            depth = np.zeros(n, dtype=np.float64)
            for node in range(n):  # children always have larger ids than their parent in sklearn trees
                if not leaf[node]:
                    depth[t.children_left[node]] = depth[node] + 1
                    depth[t.children_right[node]] = depth[node] + 1
            feats.append(np.where(leaf, 0, np.asarray(used)[np.maximum(t.feature, 0)]))
            thrs.append(t.threshold.astype(np.float64))
            lefts.append(np.where(leaf, -1, t.children_left + offset))
            rights.append(np.where(leaf, -1, t.children_right + offset))
            paths.append(np.where(leaf, depth + _c(t.n_node_samples), 0.0))
            roots.append(offset)
            offset += n
        arrays = {
            "feature": np.concatenate(feats).astype(np.int64),
            "threshold": np.concatenate(thrs),
            "left": np.concatenate(lefts).astype(np.int64),
            "right": np.concatenate(rights).astype(np.int64),
            "leaf_path": np.concatenate(paths),
            "roots": np.asarray(roots, dtype=np.int64),
        }
        return cls(arrays, psi)

    def score(self, X: np.ndarray, batch: int = 4096) -> np.ndarray:
        """Isolation scores in (0, 1], higher = more anomalous. X is (N, D)."""
        a = self.arrays
        out = np.empty(len(X), dtype=np.float64)
        c_psi = float(_c(np.array([self.psi]))[0]) or 1.0
        for sl in batches(len(X), batch):
            xb = X[sl]
            node = np.broadcast_to(a["roots"][:, None], (len(a["roots"]), len(xb))).copy()  # (trees, B)
            rows = np.broadcast_to(np.arange(len(xb))[None, :], node.shape)
            while True:
                inner = a["left"][node] >= 0
                if not inner.any():
                    break
                go_left = xb[rows, a["feature"][node]] <= a["threshold"][node]
                nxt = np.where(go_left, a["left"][node], a["right"][node])
                node = np.where(inner, nxt, node)
            mean_path = a["leaf_path"][node].mean(axis=0)
            out[sl] = 2.0 ** (-mean_path / c_psi)
        return out
