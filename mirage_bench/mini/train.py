"""Training and sampling of the four generator families, for a fixed number of iterations each.

Every random draw (batches, noise, latents) comes from one explicit ``torch.Generator``, so a seed gives
the same generator weights and the same fakes on the same machine. ``progress(done, total)`` is called
after each iteration. Losses are recorded per iteration; the card keeps the mean of the first and of the
last 5% of iterations. Images are float tensors in ``[-1, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from mirage_bench.mini.models import VAE, Autoencoder, DCGANDiscriminator, DCGANGenerator, UNet

Progress = Callable[[int, int], None]


@dataclass
class TrainLog:
    """Per-iteration values of each named loss."""

    history: dict[str, list[float]] = field(default_factory=dict)

    def add(self, **values: Tensor) -> None:
        for name, value in values.items():
            self.history.setdefault(name, []).append(float(value.detach()))

    def first_last(self) -> dict[str, tuple[float, float]]:
        out = {}
        for name, values in self.history.items():
            window = max(1, len(values) // 20)
            out[name] = (sum(values[:window]) / window, sum(values[-window:]) / window)
        return out


def _batch(data: Tensor, batch: int, gen: torch.Generator) -> Tensor:
    index = torch.randint(0, data.shape[0], (batch,), generator=gen, device="cpu")
    return data[index.to(data.device)]


def _randn(shape: tuple[int, ...], gen: torch.Generator, device: torch.device) -> Tensor:
    return torch.randn(shape, generator=gen, device="cpu").to(device)


def _step(opt: torch.optim.Optimizer, loss: Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _fit(model: torch.nn.Module, data: Tensor, iterations: int, batch: int, lr: float, gen: torch.Generator,
         progress: Progress, losses: Callable[[Tensor], dict[str, Tensor]]) -> TrainLog:
    """Adam on ``model`` for ``iterations`` steps on ``losses(real_batch)["loss"]``; every entry is logged."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    log = TrainLog()
    for step in range(iterations):
        values = losses(_batch(data, batch, gen))
        _step(opt, values["loss"])
        log.add(**values)
        progress(step + 1, iterations)
    model.eval()
    return log


def train_dcgan(netg: DCGANGenerator, data: Tensor, iterations: int, batch: int, width: int, lr: float,
                gen: torch.Generator, progress: Progress) -> TrainLog:
    """Non-saturating GAN loss, Adam(lr, betas 0.5/0.999), one D and one G step per iteration."""
    device, z_dim = data.device, netg.z_dim
    netd = DCGANDiscriminator(data.shape[-1], width).to(device)
    netg.train()
    opt_g = torch.optim.Adam(netg.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(netd.parameters(), lr=lr, betas=(0.5, 0.999))
    log = TrainLog()
    for step in range(iterations):
        real = _batch(data, batch, gen)
        fake = netg(_randn((batch, z_dim), gen, device))
        loss_d = F.softplus(-netd(real)).mean() + F.softplus(netd(fake.detach())).mean()
        _step(opt_d, loss_d)
        loss_g = F.softplus(-netd(fake)).mean()
        _step(opt_g, loss_g)
        log.add(d=loss_d, g=loss_g)
        progress(step + 1, iterations)
    netg.eval()
    return log


@torch.no_grad()
def sample_dcgan(netg: DCGANGenerator, count: int, gen: torch.Generator, device: torch.device) -> Tensor:
    return netg(_randn((count, netg.z_dim), gen, device)).clamp(-1, 1)


def train_vae(model: VAE, data: Tensor, iterations: int, batch: int, kl_weight: float, lr: float,
              gen: torch.Generator, progress: Progress) -> TrainLog:
    """Loss per image: summed squared error + ``kl_weight`` x KL(q(z|x) || N(0, I))."""

    def losses(real: Tensor) -> dict[str, Tensor]:
        mean, logvar = model.encode(real)
        z = mean + (0.5 * logvar).exp() * _randn(tuple(mean.shape), gen, data.device)
        recon = (model.decode(z) - real).pow(2).flatten(1).sum(1).mean()
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
        return {"loss": recon + kl_weight * kl, "recon": recon, "kl": kl}

    return _fit(model, data, iterations, batch, lr, gen, progress, losses)


@torch.no_grad()
def sample_vae(model: VAE, count: int, gen: torch.Generator, device: torch.device) -> Tensor:
    return model.decode(_randn((count, model.latent), gen, device)).clamp(-1, 1)


def train_flow(model: UNet, data: Tensor, iterations: int, batch: int, lr: float, gen: torch.Generator,
               progress: Progress) -> TrainLog:
    """Flow matching (rectified flow): x_t = (1-t) noise + t x, the U-Net regresses x - noise."""

    def losses(real: Tensor) -> dict[str, Tensor]:
        noise = _randn(tuple(real.shape), gen, data.device)
        t = torch.rand((batch,), generator=gen, device="cpu").to(data.device)
        xt = (1 - t)[:, None, None, None] * noise + t[:, None, None, None] * real
        return {"loss": F.mse_loss(model(xt, t), real - noise)}

    return _fit(model, data, iterations, batch, lr, gen, progress, losses)


@torch.no_grad()
def sample_flow(model: UNet, count: int, size: int, steps: int, gen: torch.Generator, device: torch.device) -> Tensor:
    """Euler integration of the learned velocity from noise (t=0) to data (t=1) in ``steps`` steps."""
    x = _randn((count, 3, size, size), gen, device)
    for i in range(steps):
        t = torch.full((count,), i / steps, device=device)
        x = x + model(x, t) / steps
    return x.clamp(-1, 1)


def train_autoencoder(model: Autoencoder, data: Tensor, iterations: int, batch: int, lr: float,
                      gen: torch.Generator, progress: Progress) -> TrainLog:
    """Plain reconstruction autoencoder, L1 loss (the first stage of a latent diffusion model, small)."""
    return _fit(model, data, iterations, batch, lr, gen, progress, lambda real: {"loss": F.l1_loss(model(real), real)})


@torch.no_grad()
def reconstruct(model: Autoencoder, images: Tensor, batch: int = 256) -> Tensor:
    return torch.cat([model(images[i:i + batch]) for i in range(0, images.shape[0], batch)]).clamp(-1, 1)
