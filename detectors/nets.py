"""PyTorch modules of the generative window models, one ``nn.Module`` per concept.

Shapes: a batch of windows is ``(B, W, C)`` (batch, window rows, channels); the MLPs see it flattened as
``(B, W*C)`` and give it back as ``(B, W, C)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class NetConfig:
    """Sizes of a window network."""

    window: int
    channels: int
    hidden: int = 128  # two hidden layers of this width: enough for 38 SMD channels x 10 rows, fast on 2 cores
    latent: int = 16  # bottleneck well below W*C so the model cannot copy anomalies through


def mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    """Two hidden layers with GELU."""
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, d_out))


class WindowAE(nn.Module):
    """Deterministic autoencoder: window -> latent code -> window."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.window * cfg.channels
        self.encoder = mlp(d, cfg.hidden, cfg.latent)
        self.decoder = mlp(cfg.latent, cfg.hidden, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        z = self.encoder(x.reshape(b, -1))  # (B, L)
        return self.decoder(z).reshape(x.shape)  # (B, W, C)


class WindowVAE(nn.Module):
    """VAE with a Gaussian encoder q(z|x) and a Gaussian decoder p(x|z) (Donut lineage).

    ``learn_variance``: the decoder also outputs a per-cell log-variance; otherwise the decoder variance is fixed at 1
    (the channels are standardised) and ``decode`` returns a zero log-variance.
    """

    def __init__(self, cfg: NetConfig, learn_variance: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.learn_variance = learn_variance
        d = cfg.window * cfg.channels
        self.encoder = mlp(d, cfg.hidden, 2 * cfg.latent)
        self.decoder = mlp(cfg.latent, cfg.hidden, 2 * d if learn_variance else d)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x.reshape(x.shape[0], -1)).chunk(2, dim=-1)  # (B, L) each
        return mu, logvar.clamp(-10.0, 10.0)

    def decode(self, z: torch.Tensor, shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.learn_variance:
            mu = self.decoder(z).reshape(shape)  # (B, W, C)
            return mu, torch.zeros_like(mu)
        mu, logvar = self.decoder(z).chunk(2, dim=-1)  # (B, W*C) each
        # Floor the decoder variance: without it the likelihood of near-constant cells explodes.
        return mu.reshape(shape), logvar.clamp(-6.0, 6.0).reshape(shape)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        z_mu, z_logvar = self.encode(x)
        z = z_mu + torch.randn_like(z_mu) * (0.5 * z_logvar).exp()
        x_mu, x_logvar = self.decode(z, x.shape)
        return x_mu, x_logvar, z_mu, z_logvar


def gaussian_nll(x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-cell negative log-likelihood of x under N(mu, exp(logvar)), without the constant."""
    return 0.5 * ((x - mu) ** 2 * torch.exp(-logvar) + logvar)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, summed over latent dims. (B,)"""
    return 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(dim=-1)


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of the diffusion step followed by a small MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.proj = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        args = t.float()[:, None] * freqs[None, :]  # (B, dim/2)
        return self.proj(torch.cat([args.sin(), args.cos()], dim=-1))  # (B, dim)


class Denoiser(nn.Module):
    """Denoising network of the DDPM: (noisy window, step) -> predicted clean window (x0), a residual MLP."""

    def __init__(self, cfg: NetConfig, n_blocks: int = 3) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.window * cfg.channels
        self.inp = nn.Linear(d, cfg.hidden)
        self.temb = TimeEmbedding(cfg.hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(cfg.hidden), nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.hidden))
            for _ in range(n_blocks)
        )
        self.out = nn.Sequential(nn.LayerNorm(cfg.hidden), nn.Linear(cfg.hidden, d))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = x_t.shape[0]
        h = self.inp(x_t.reshape(b, -1)) + self.temb(t)  # (B, H)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h).reshape(x_t.shape)  # (B, W, C)


class USADNet(nn.Module):
    """USAD (Audibert et al. 2020): one encoder, two decoders trained adversarially."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.window * cfg.channels
        self.encoder = mlp(d, cfg.hidden, cfg.latent)
        self.decoder1 = mlp(cfg.latent, cfg.hidden, d)
        self.decoder2 = mlp(cfg.latent, cfg.hidden, d)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        z = self.encoder(x.reshape(b, -1))  # (B, L)
        w1 = self.decoder1(z)  # (B, W*C)
        w2 = self.decoder2(z)
        w3 = self.decoder2(self.encoder(w1))
        return w1.reshape(x.shape), w2.reshape(x.shape), w3.reshape(x.shape)
