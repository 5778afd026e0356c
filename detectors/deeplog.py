"""DeepLog (Du et al., CCS 2017): an LSTM predicts the next log key; a session is anomalous when an actual key is
not among the ``top_g`` most likely predictions.

Input: template-id sequences, one per session/window (``tools.windows.Windows.sequences``): a list of sequences or a
pandas Series of sequences (its index is kept), each a list/tuple/array of template ids (str or int, compared as
strings). Each sequence is padded at the start and gets an end-of-session key, so truncated sessions and unknown first
keys are judged too. Keys never seen in training map to an ``<unk>`` id, which the model never predicts.

Score of a sequence = the worst (largest) rank of an actual key among the model's predictions over its positions
(0 = the most likely key), plus ``1 - p(key)`` as a tie-breaker inside a rank, so scores are continuous. With the
default ``threshold="topg"``, ``threshold_ = top_g - 1`` (flag a session when some key is outside the top g);
``quantile``/``pot`` set it from training scores instead.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from anomalist.detectors._prep import batches, train_val_split
from anomalist.detectors._torch import resolve_device, set_threads
from anomalist.detectors.base import Detector, Kind
from anomalist.detectors.thresholds import fit_threshold

logger = logging.getLogger(__name__)

PAD, UNK, EOS = 0, 1, 2
N_SPECIAL = 3


class NextKeyLSTM(nn.Module):
    """Embedding -> LSTM -> linear over the key vocabulary (the last step's output predicts the next key)."""

    def __init__(self, n_keys: int, embed: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_keys, embed, padding_idx=PAD)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, n_keys)

    def forward(self, hist: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.embed(hist))  # (B, H_len, hidden)
        return self.head(h[:, -1])  # (B, n_keys) logits


class DeepLogDetector(Detector):
    """DeepLog next-key LSTM on template-id sequences (see the module docstring for input and score).

    Args:
        history: Keys of history per prediction (DeepLog's h).
        top_g: A key outside the ``top_g`` predictions is an anomaly (DeepLog's g).
        embed, hidden, layers: Network sizes.
        epochs, batch_size, lr, patience, val_fraction: training with early stopping on held-out sequences.
        seed, device, torch_threads: as for the time-series torch detectors.
        threshold: ``topg`` (default), ``quantile`` or ``pot``; threshold_q for the latter two.
    """

    name = "deeplog"
    kind: ClassVar[Kind] = "log"

    def __init__(
        self,
        history: int = 10,
        top_g: int = 9,
        embed: int = 32,
        hidden: int = 64,
        layers: int = 2,
        epochs: int = 30,
        batch_size: int = 512,
        lr: float = 2e-3,
        patience: int = 3,
        val_fraction: float = 0.1,
        seed: int = 0,
        device: str = "auto",
        torch_threads: int | None = None,
        threshold: Literal["topg", "quantile", "pot"] = "topg",
        threshold_q: float = 0.99,
    ) -> None:
        self.history = history
        self.top_g = top_g
        self.embed = embed
        self.hidden = hidden
        self.layers = layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.patience = patience
        self.val_fraction = val_fraction
        self.seed = seed
        self.device = device
        self.torch_threads = torch_threads
        self.threshold = threshold
        self.threshold_q = threshold_q

    # --- input ---------------------------------------------------------------------------------------------------------
    def _validate(self, sequences: Any) -> tuple[list[list[str]], pd.Index]:
        if isinstance(sequences, (str, bytes)) or not isinstance(sequences, (Sequence, pd.Series, np.ndarray)):
            raise TypeError(f"deeplog: sequences must be a list or Series of key sequences, got {type(sequences).__name__}")
        index = sequences.index if isinstance(sequences, pd.Series) else pd.RangeIndex(len(sequences))
        out: list[list[str]] = []
        for i, seq in enumerate(sequences):
            if isinstance(seq, (str, bytes)) or not hasattr(seq, "__iter__"):
                raise TypeError(f"deeplog: sequence {i} must be a list of template ids, got {type(seq).__name__}")
            out.append([str(k) for k in seq])
        if not out:
            raise ValueError("deeplog: need at least 1 sequence, got 0")
        return out, index

    def _encode(self, seq: list[str]) -> list[int]:
        return [self.vocab_.get(k, UNK) for k in seq] + [EOS]

    def _samples(self, seqs: list[list[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(history windows (S, h), next keys (S,), sequence id of each sample (S,))."""
        hist, nxt, owner = [], [], []
        h = self.history
        for sid, seq in enumerate(seqs):
            ids = [PAD] * h + self._encode(seq)
            for pos in range(h, len(ids)):
                hist.append(ids[pos - h : pos])
                nxt.append(ids[pos])
                owner.append(sid)
        return np.asarray(hist, dtype=np.int64).reshape(-1, h), np.asarray(nxt, dtype=np.int64), np.asarray(owner, dtype=np.int64)

    # --- fit / score -----------------------------------------------------------------------------------------------------
    def fit(self, sequences: Any, y: None = None) -> DeepLogDetector:
        """Train on sequences of normal sessions. Returns ``self``."""
        seqs, _ = self._validate(sequences)
        for name in ("history", "top_g", "embed", "hidden", "layers", "epochs", "batch_size", "patience"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        set_threads(self.torch_threads)
        dev = resolve_device(self.device)
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        keys = sorted({k for s in seqs for k in s})
        self.vocab_ = {k: i + N_SPECIAL for i, k in enumerate(keys)}
        # Hold out whole sequences (shuffled) for early stopping.
        order = np.random.default_rng(self.seed).permutation(len(seqs))
        tr, va = train_val_split(len(seqs), self.val_fraction) if len(seqs) >= 2 else (slice(0, 1), slice(0, 0))
        Xt, yt, _ = self._samples([seqs[i] for i in order[tr]])
        Xv, yv, _ = self._samples([seqs[i] for i in order[va]])
        Xt_t, yt_t = torch.from_numpy(Xt), torch.from_numpy(yt)
        net = NextKeyLSTM(len(self.vocab_) + N_SPECIAL, self.embed, self.hidden, self.layers).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        loss_fn = nn.CrossEntropyLoss()
        best, best_state, bad = float("inf"), copy.deepcopy(net.state_dict()), 0
        self.n_epochs_ = 0
        bs = int(min(self.batch_size, max(16, len(Xt_t) // 8)))  # small sets still get several steps per epoch
        for _epoch in range(self.epochs):
            net.train()
            perm = torch.randperm(len(Xt_t), generator=gen)
            total = 0.0
            for sl in batches(len(perm), bs):
                idx = perm[sl]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(net(Xt_t[idx].to(dev)), yt_t[idx].to(dev))
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            val = self._val_loss(net, Xv, yv, dev) if len(yv) else total / max(len(perm), 1)
            self.n_epochs_ += 1
            if not np.isfinite(best) or val < best - 1e-4 * abs(best):
                best, best_state, bad = val, copy.deepcopy(net.state_dict()), 0
            else:
                bad += 1
                if bad >= self.patience:
                    break
        net.load_state_dict(best_state)
        net.eval()
        self.net_ = net
        train_scores = self._score_seqs(seqs)
        if self.threshold == "topg":
            # score = rank + (1 - p) with rank an integer: score > top_g - eps  <=>  rank >= top_g.
            self.threshold_ = float(self.top_g) - 1e-9
        else:
            self.threshold_ = fit_threshold(train_scores, method=self.threshold, q=self.threshold_q)
        return self

    @torch.no_grad()
    def _val_loss(self, net: nn.Module, X: np.ndarray, y: np.ndarray, dev: torch.device) -> float:
        net.eval()
        total = 0.0
        for sl in batches(len(y), 4096):
            logits = net(torch.from_numpy(X[sl]).to(dev))
            total += float(nn.functional.cross_entropy(logits, torch.from_numpy(y[sl]).to(dev), reduction="sum"))
        return total / len(y)

    @torch.no_grad()
    def _score_seqs(self, seqs: list[list[str]]) -> np.ndarray:
        set_threads(self.torch_threads)
        uniq: dict[tuple[str, ...], int] = {}
        inverse = np.array([uniq.setdefault(tuple(s), len(uniq)) for s in seqs], dtype=np.int64)
        X, y, owner = self._samples([list(k) for k in uniq])
        dev = next(self.net_.parameters()).device
        sample_scores = np.empty(len(y), dtype=np.float64)
        for sl in batches(len(y), 4096):
            probs = torch.softmax(self.net_(torch.from_numpy(X[sl]).to(dev)), dim=-1)  # (B, n_keys)
            yb = torch.from_numpy(y[sl]).to(dev)
            p_true = probs.gather(1, yb[:, None])  # (B, 1)
            rank = (probs > p_true).sum(dim=1).double()  # keys strictly more likely than the actual one
            rank = torch.where(yb == UNK, torch.full_like(rank, float(probs.shape[1])), rank)
            sample_scores[sl] = (rank + (1.0 - p_true[:, 0].double())).cpu().numpy()
        per_uniq = np.zeros(len(uniq), dtype=np.float64)
        np.maximum.at(per_uniq, owner, sample_scores)
        return per_uniq[inverse]

    def score(self, sequences: Any) -> pd.Series:
        """Per-sequence scores (worst key rank + tie-breaker), aligned to the Series index or 0..n-1."""
        self._check_fitted()
        seqs, index = self._validate(sequences)
        return pd.Series(self._score_seqs(seqs), index=index, name=self.name, dtype="float64")

    def explain(self, sequences: Any, span: Any = None) -> pd.Series:
        """Keys of the given sequences that fell outside the top-g predictions, with how often (normalised)."""
        self._check_fitted()
        seqs, _ = self._validate(sequences)
        X, y, _ = self._samples(seqs)
        inv = {v: k for k, v in self.vocab_.items()} | {UNK: "<unk>", EOS: "<end>"}
        dev = next(self.net_.parameters()).device
        counts: dict[str, float] = {}
        with torch.no_grad():
            for sl in batches(len(y), 4096):
                logits = self.net_(torch.from_numpy(X[sl]).to(dev))
                top = logits.topk(min(self.top_g, logits.shape[1]), dim=1).indices.cpu().numpy()
                for row, key in zip(top, y[sl], strict=True):
                    if key not in row:
                        counts[inv.get(int(key), str(key))] = counts.get(inv.get(int(key), str(key)), 0.0) + 1.0
        out = pd.Series(counts, dtype="float64")
        return (out / out.sum()).sort_values(ascending=False) if len(out) else out

    # --- state -------------------------------------------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}
        return {"vocab": self.vocab_, "n_epochs": self.n_epochs_}, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.vocab_ = {str(k): int(v) for k, v in meta["vocab"].items()}
        self.n_epochs_ = int(meta["n_epochs"])
        net = NextKeyLSTM(len(self.vocab_) + N_SPECIAL, self.embed, self.hidden, self.layers)
        net.load_state_dict({k[4:]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("net.")})
        self.net_ = net.to(resolve_device(self.device)).eval()
