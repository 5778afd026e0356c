"""Generative reconstruction detectors on windows: autoencoder (``ae``), VAE (``vae``) and USAD (``usad``).

All share ``TorchWindowDetector``: channels are scaled with training statistics, cut into sliding windows of
``window`` rows, trained with early stopping on a chronological validation split (the last ``val_fraction`` of the
training windows), and scored in batches of windows (bounded memory). Window cell scores are averaged back onto rows.
"""

from __future__ import annotations

import torch
from torch import nn

from anomalist.detectors._torch import TorchWindowDetector
from anomalist.detectors.nets import NetConfig, USADNet, WindowAE, WindowVAE, gaussian_nll, kl_standard_normal
from anomalist.detectors.thresholds import ThresholdMethod


class AEDetector(TorchWindowDetector):
    """Autoencoder on windows, scored by squared reconstruction error.

    Args:
        window: Rows per window. hidden / latent: layer widths. epochs: maximum epochs (early stopping on
        validation loss with ``patience``). batch_size, lr: Adam training. val_fraction: chronological validation
        share. seed: determinism. device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``. torch_threads: None =
        min(cores, 2). threshold / threshold_q: training-score threshold (``quantile`` or ``pot``).
    """

    name = "ae"

    def __init__(
        self,
        window: int = 10,
        hidden: int = 128,
        latent: int = 16,
        epochs: int = 20,
        batch_size: int = 128,
        lr: float = 1e-3,
        patience: int = 3,
        val_fraction: float = 0.2,
        seed: int = 0,
        device: str = "auto",
        torch_threads: int | None = None,
        threshold: ThresholdMethod = "quantile",
        threshold_q: float = 0.99,
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

    def _build(self, n_channels: int) -> nn.Module:
        return WindowAE(NetConfig(self.window, n_channels, self.hidden, self.latent))

    def _loss(self, net: nn.Module, xb: torch.Tensor) -> torch.Tensor:
        return ((net(xb) - xb) ** 2).mean()

    def _cell_scores(self, net: nn.Module, xb: torch.Tensor) -> torch.Tensor:
        return (net(xb) - xb) ** 2  # (B, W, C)


class VAEDetector(AEDetector):
    """VAE on windows scored by reconstruction probability (Donut / OmniAnomaly lineage).

    The cell score is the Monte-Carlo estimate, over ``n_samples`` draws of z ~ q(z|x), of the negative
    log-likelihood of the cell under a Gaussian around the decoder's mean, shifted so it is non-negative. Training
    maximises the ELBO with the KL term weighted by ``beta``.

    Args:
        decoder_variance: ``learned`` (default): the decoder also outputs a per-cell variance (floored), used in
            training. ``fixed``: unit decoder variance (the channels are standardised) in training too.
        score_variance: the variance of the scoring likelihood. ``unit`` (default): ``0.5 * (x - mu(z))^2``, i.e.
            the learned variance shapes training (the mean fits the predictable cells closely) but is not trusted
            when scoring: a variance head is reliable only on data like its training data, so on a channel that was
            near-constant in training its tiny variance inflates any later change, and on a noisy one it hides real
            shifts. ``decoder``: the decoder's own variance, ``0.5 * ((x - mu)^2 / var + log var - log var_min)``.
            On the 6 shared SMD machines (window-level row scores, beta 1), mean AUC-PR: learned + unit 0.349,
            learned + decoder 0.311, fixed 0.317 (fixed with beta 0.1: 0.332); decided there, once, for all data.
        n_samples: Monte-Carlo draws of z per window when scoring.
        Other arguments as for ``AEDetector``.
    """

    name = "vae"

    def __init__(
        self,
        window: int = 10,
        hidden: int = 128,
        latent: int = 16,
        epochs: int = 20,
        batch_size: int = 128,
        lr: float = 1e-3,
        patience: int = 3,
        val_fraction: float = 0.2,
        seed: int = 0,
        device: str = "auto",
        torch_threads: int | None = None,
        threshold: ThresholdMethod = "quantile",
        threshold_q: float = 0.99,
        beta: float = 1.0,
        n_samples: int = 4,
        decoder_variance: str = "learned",
        score_variance: str = "unit",
    ) -> None:
        super().__init__(
            window, hidden, latent, epochs, batch_size, lr, patience, val_fraction, seed, device, torch_threads,
            threshold, threshold_q,
        )
        self.beta = beta
        self.n_samples = n_samples
        self.decoder_variance = decoder_variance
        self.score_variance = score_variance

    def _check_params(self) -> None:
        super()._check_params()
        if self.decoder_variance not in ("fixed", "learned"):
            raise ValueError(f"decoder_variance must be 'fixed' or 'learned', got {self.decoder_variance!r}")
        if self.score_variance not in ("decoder", "unit"):
            raise ValueError(f"score_variance must be 'decoder' or 'unit', got {self.score_variance!r}")

    def _build(self, n_channels: int) -> nn.Module:
        cfg = NetConfig(self.window, n_channels, self.hidden, self.latent)
        return WindowVAE(cfg, learn_variance=self.decoder_variance == "learned")

    def _loss(self, net: nn.Module, xb: torch.Tensor) -> torch.Tensor:
        x_mu, x_logvar, z_mu, z_logvar = net(xb)
        nll = gaussian_nll(xb, x_mu, x_logvar).flatten(1).sum(dim=1)  # (B,)
        return (nll + self.beta * kl_standard_normal(z_mu, z_logvar)).mean() / xb[0].numel()

    def _cell_scores(self, net: nn.Module, xb: torch.Tensor) -> torch.Tensor:
        assert isinstance(net, WindowVAE)
        z_mu, z_logvar = net.encode(xb)
        # The NLL's floor: 0 with a fixed unit variance; -3 = 0.5 * (-6), the floor of a learned log variance.
        unit = self.score_variance == "unit" or not net.learn_variance
        shift = 0.0 if unit else 3.0
        total = torch.zeros_like(xb)
        for _ in range(max(1, self.n_samples)):
            z = z_mu + torch.randn_like(z_mu) * (0.5 * z_logvar).exp()
            x_mu, x_logvar = net.decode(z, xb.shape)
            total += gaussian_nll(xb, x_mu, torch.zeros_like(x_mu) if unit else x_logvar) + shift
        return total / max(1, self.n_samples)  # (B, W, C), >= 0


class USADDetector(AEDetector):
    """USAD (Audibert et al., KDD 2020): two decoders trained adversarially; score ``alpha*|x-w1|^2 + b*|x-w3|^2``.

    Other arguments as for ``AEDetector``; ``alpha`` + ``beta_usad`` weight the two reconstruction errors.
    """

    name = "usad"

    def __init__(
        self,
        window: int = 10,
        hidden: int = 128,
        latent: int = 16,
        epochs: int = 20,
        batch_size: int = 128,
        lr: float = 1e-3,
        patience: int = 3,
        val_fraction: float = 0.2,
        seed: int = 0,
        device: str = "auto",
        torch_threads: int | None = None,
        threshold: ThresholdMethod = "quantile",
        threshold_q: float = 0.99,
        alpha: float = 0.5,
        beta_usad: float = 0.5,
    ) -> None:
        super().__init__(
            window, hidden, latent, epochs, batch_size, lr, patience, val_fraction, seed, device, torch_threads,
            threshold, threshold_q,
        )
        self.alpha = alpha
        self.beta_usad = beta_usad

    def _build(self, n_channels: int) -> nn.Module:
        return USADNet(NetConfig(self.window, n_channels, self.hidden, self.latent))

    def _make_optimizer(self, net: nn.Module) -> torch.optim.Optimizer:
        assert isinstance(net, USADNet)
        # One optimiser per autoencoder (shared encoder), as in the paper.
        self._opt2 = torch.optim.Adam([*net.encoder.parameters(), *net.decoder2.parameters()], lr=self.lr)
        return torch.optim.Adam([*net.encoder.parameters(), *net.decoder1.parameters()], lr=self.lr)

    def _usad_losses(self, net: nn.Module, xb: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        w1, w2, w3 = net(xb)
        e1, e2, e3 = ((xb - w1) ** 2).mean(), ((xb - w2) ** 2).mean(), ((xb - w3) ** 2).mean()
        loss1 = e1 / n + (1 - 1 / n) * e3
        loss2 = e2 / n - (1 - 1 / n) * e3
        return loss1, loss2

    def _train_step(self, net: nn.Module, opt: torch.optim.Optimizer, xb: torch.Tensor, epoch: int) -> float:
        n = epoch + 1
        loss1, _ = self._usad_losses(net, xb, n)
        opt.zero_grad(set_to_none=True)
        loss1.backward()
        opt.step()
        _, loss2 = self._usad_losses(net, xb, n)
        self._opt2.zero_grad(set_to_none=True)
        loss2.backward()
        self._opt2.step()
        return float(loss1.detach())

    def _loss(self, net: nn.Module, xb: torch.Tensor) -> torch.Tensor:
        # Validation criterion: the reconstruction error of the first autoencoder (stable, unlike the adversarial terms).
        w1, _, _ = net(xb)
        return ((xb - w1) ** 2).mean()

    def _cell_scores(self, net: nn.Module, xb: torch.Tensor) -> torch.Tensor:
        w1, _, w3 = net(xb)
        return self.alpha * (xb - w1) ** 2 + self.beta_usad * (xb - w3) ** 2
