"""Diffusion (DDPM) detector on windows, scored by denoising error at chosen noise levels.

DiffusionAD / ImDiffusion lineage: a denoiser is trained on normal windows with the DDPM forward process
(Ho et al. 2020), ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``, in the x0-parameterisation: the network
predicts the clean window ``x0_theta(x_t, t)`` (Ho et al. discuss it as the alternative to predicting ``eps``).
To score a window, noise it to a few moderate levels ``t`` (fixed, seeded noise), denoise it in one step and take
the squared error ``(x0 - x0_theta(x_t, t))^2`` per cell, averaged over levels and noise draws. Normal windows come
back onto the learned data manifold almost exactly; anomalous cells do not.

Why x0 and not eps: with eps-prediction the one-step reconstruction is ``(x_t - sqrt(1 - abar) eps_theta) /
sqrt(abar)``; a network that cannot extrapolate ``eps_theta`` to an out-of-range value returns the noisy input
itself, so a large anomaly reconstructs perfectly and scores like noise. Predicting x0 keeps the output on the
normal manifold, so the anomaly shows.
"""

from __future__ import annotations

import torch
from torch import nn

from anomalist.detectors._torch import TorchWindowDetector
from anomalist.detectors.nets import Denoiser, NetConfig
from anomalist.detectors.thresholds import ThresholdMethod


def linear_betas(n_steps: int, beta_1: float = 1e-4, beta_T: float = 0.02) -> torch.Tensor:
    """The DDPM linear noise schedule, rescaled so that the total noise matches Ho et al.'s 1000 steps."""
    scale = 1000.0 / n_steps
    return torch.linspace(beta_1 * scale, beta_T * scale, n_steps, dtype=torch.float64)


class DiffusionDetector(TorchWindowDetector):
    """DDPM on windows; anomaly score = one-step denoising reconstruction error at ``score_levels``.

    Args:
        n_steps: Diffusion steps of the schedule.
        score_levels: Noise levels used for scoring, as fractions of ``n_steps`` (moderate levels: enough noise to
            wash out an anomaly, little enough to keep the window's normal structure).
        n_draws: Noise draws per level when scoring.
        Other arguments as for ``detectors.deep.AEDetector`` (``latent`` is unused: the denoiser has no bottleneck).
    """

    name = "diffusion"

    def __init__(
        self,
        window: int = 10,
        hidden: int = 128,
        latent: int = 16,
        epochs: int = 40,
        batch_size: int = 128,
        lr: float = 1e-3,
        patience: int = 5,
        val_fraction: float = 0.2,
        seed: int = 0,
        device: str = "auto",
        torch_threads: int | None = None,
        threshold: ThresholdMethod = "quantile",
        threshold_q: float = 0.99,
        n_steps: int = 100,
        score_levels: tuple[float, ...] | list[float] = (0.1, 0.2, 0.3),
        n_draws: int = 2,
    ) -> None:
        self.window = window
        self.hidden = hidden
        self.latent = latent
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
        self.n_steps = n_steps
        self.score_levels = list(score_levels)
        self.n_draws = n_draws

    def _check_params(self) -> None:
        super()._check_params()
        if not isinstance(self.n_steps, int) or self.n_steps < 2:
            raise ValueError(f"n_steps must be an int >= 2, got {self.n_steps!r}")
        if not self.score_levels or not all(0.0 < float(s) < 1.0 for s in self.score_levels):
            raise ValueError(f"score_levels must be fractions in (0, 1), got {self.score_levels!r}")

    def _abar(self, dev: torch.device) -> torch.Tensor:
        betas = linear_betas(self.n_steps)
        return torch.cumprod(1.0 - betas, dim=0).float().to(dev)  # (n_steps,)

    def _build(self, n_channels: int) -> nn.Module:
        return Denoiser(NetConfig(self.window, n_channels, self.hidden, self.latent))

    def _loss(self, net: nn.Module, xb: torch.Tensor) -> torch.Tensor:
        abar = self._abar(xb.device)
        t = torch.randint(0, self.n_steps, (xb.shape[0],), device=xb.device)  # (B,)
        eps = torch.randn_like(xb)
        a = abar[t].view(-1, 1, 1)  # (B, 1, 1)
        x_t = a.sqrt() * xb + (1.0 - a).sqrt() * eps
        return ((net(x_t, t) - xb) ** 2).mean()

    def _cell_scores(self, net: nn.Module, xb: torch.Tensor) -> torch.Tensor:
        abar = self._abar(xb.device)
        total = torch.zeros_like(xb)
        n = 0
        for level in self.score_levels:
            step = min(self.n_steps - 1, max(0, int(round(float(level) * self.n_steps))))
            t = torch.full((xb.shape[0],), step, device=xb.device, dtype=torch.long)
            a = abar[step]
            for _ in range(max(1, self.n_draws)):
                eps = torch.randn_like(xb)
                x_t = a.sqrt() * xb + (1.0 - a).sqrt() * eps
                total += (xb - net(x_t, t)) ** 2
                n += 1
        return total / n  # (B, W, C)

