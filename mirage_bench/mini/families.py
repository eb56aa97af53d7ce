"""The four generator families of the mini benchmark: their knobs, how each is trained and how it makes fakes.

Each family turns a trained network into fakes its own way: ``dcgan``, ``vae`` and ``ddpm`` sample from
noise; ``aerecon`` reconstructs real crops (the latent-diffusion "decode a real image" fake: same content,
only the generator's trace differs), so it is given the crops it should reconstruct.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from pydantic import Field
from torch import Tensor, nn

from mirage_bench.config import StrictModel
from mirage_bench.mini import train as T
from mirage_bench.mini.models import VAE, Autoencoder, DCGANGenerator, UNet


class Knobs(StrictModel):
    """Training knobs shared by every family; a fixed iteration budget, never a time limit."""

    iterations: int = Field(ge=1)
    batch: int = Field(32, ge=2)
    width: int = Field(16, ge=8, description="base channel count (a multiple of 8)")
    lr: float = Field(gt=0)


class DCGANKnobs(Knobs):
    z_dim: int = Field(64, ge=1)


class VAEKnobs(Knobs):
    latent: int = Field(64, ge=1)
    kl_weight: float = Field(0.1, gt=0, description="weight of the KL term against the summed squared error (in [-1, 1])")


class FlowKnobs(Knobs):
    sample_steps: int = Field(16, ge=1, description="Euler steps when sampling")


@dataclass(frozen=True)
class Family:
    key: str
    family: str
    description: str
    knobs: type[Knobs]
    build: Callable[[int, Knobs], nn.Module]
    train: Callable[[nn.Module, Tensor, Knobs, torch.Generator, T.Progress], T.TrainLog]
    #: (model, count, size, knobs, generator, device) -> fakes; None for reconstruction families
    sample: Callable[[nn.Module, int, int, Knobs, torch.Generator, torch.device], Tensor] | None
    #: the training loss shown first; the GAN's adversarial losses need not fall (see ``checks.loss_fell``)
    objective: str


FAMILIES: dict[str, Family] = {
    "dcgan": Family(
        "dcgan", "gan", "DCGAN: transposed-convolution generator, conv discriminator, non-saturating loss",
        DCGANKnobs,
        lambda size, k: DCGANGenerator(size, k.z_dim, k.width),
        lambda m, data, k, g, p: T.train_dcgan(m, data, k.iterations, k.batch, k.width, k.lr, g, p),
        lambda m, n, size, k, g, device: T.sample_dcgan(m, n, g, device),
        "d",
    ),
    "vae": Family(
        "vae", "vae", "VAE: vector latent, PixelShuffle (sub-pixel convolution) decoder, samples from N(0, I)",
        VAEKnobs,
        lambda size, k: VAE(size, k.latent, k.width),
        lambda m, data, k, g, p: T.train_vae(m, data, k.iterations, k.batch, k.kl_weight, k.lr, g, p),
        lambda m, n, size, k, g, device: T.sample_vae(m, n, g, device),
        "loss",
    ),
    "ddpm": Family(
        "ddpm", "diffusion", "Small U-Net trained by flow matching (rectified flow), sampled with a few Euler steps",
        FlowKnobs,
        lambda size, k: UNet(k.width),
        lambda m, data, k, g, p: T.train_flow(m, data, k.iterations, k.batch, k.lr, g, p),
        lambda m, n, size, k, g, device: T.sample_flow(m, n, size, k.sample_steps, g, device),
        "loss",
    ),
    "aerecon": Family(
        "aerecon", "autoencoder", "Reconstructions of real crops by a spatial-latent autoencoder (f=4, 4 channels, nearest upsampling)",
        Knobs,
        lambda size, k: Autoencoder(k.width),
        lambda m, data, k, g, p: T.train_autoencoder(m, data, k.iterations, k.batch, k.lr, g, p),
        None,
        "loss",
    ),
}
GENERATORS: tuple[str, ...] = tuple(FAMILIES)


def default_knobs() -> dict[str, Knobs]:
    """The shipped set's budgets: about 10 minutes on one CPU thread at 32 px (the card records the measured time)."""
    return {
        "dcgan": DCGANKnobs(iterations=3000, lr=2e-4),
        "vae": VAEKnobs(iterations=2000, lr=1e-3),
        "ddpm": FlowKnobs(iterations=2000, lr=1e-3),
        "aerecon": Knobs(iterations=1000, lr=1e-3),
    }
