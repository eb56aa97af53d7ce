"""The four small generator networks, one per family, each upsampling its own way so each leaves its own trace.

- ``dcgan``: transposed-convolution upsampling (DCGAN, Radford et al. 2016) with a conv discriminator.
- ``vae``: a vector-latent VAE whose decoder upsamples by sub-pixel convolution (PixelShuffle).
- ``ddpm``: a small U-Net (nearest-neighbour upsampling, average-pool downsampling, time embedding)
  trained by flow matching and sampled with a few Euler steps.
- ``aerecon``: a spatial-latent autoencoder (downsampling factor 4, 4 latent channels, like a latent
  diffusion model's first stage) with nearest-neighbour upsampling; its fakes are reconstructions of real crops.

Images are ``[B, 3, S, S]`` in ``[-1, 1]``; ``S`` is a power of two, at least 8.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
import torch.nn.functional as F


def _levels(size: int, smallest: int = 4) -> int:
    levels = int(math.log2(size // smallest))
    if size < 8 or 2 ** levels * smallest != size:
        raise ValueError(f"image size must be a power of two >= 8, got {size}")
    return levels


class DCGANGenerator(nn.Module):
    def __init__(self, size: int, z_dim: int, width: int) -> None:
        super().__init__()
        self.z_dim = z_dim
        levels = _levels(size)
        channels = width * 2 ** (levels - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, channels, 4, 1, 0, bias=False), nn.BatchNorm2d(channels), nn.ReLU(True)]
        for level in range(levels):
            last = level == levels - 1
            out = 3 if last else channels // 2
            layers.append(nn.ConvTranspose2d(channels, out, 4, 2, 1, bias=last))
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(out), nn.ReLU(True)]
            channels = out
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.view(z.shape[0], self.z_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    def __init__(self, size: int, width: int) -> None:
        super().__init__()
        levels = _levels(size)
        layers: list[nn.Module] = []
        channels_in, channels = 3, width
        for level in range(levels):
            layers.append(nn.Conv2d(channels_in, channels, 4, 2, 1, bias=False))
            if level:
                layers.append(nn.BatchNorm2d(channels))
            layers.append(nn.LeakyReLU(0.2, True))
            channels_in, channels = channels, channels * 2
        layers.append(nn.Conv2d(channels_in, 1, 4, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images).flatten()


def _down_convs(levels: int, width: int) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    channels_in, channels = 3, width
    for _ in range(levels):
        layers += [nn.Conv2d(channels_in, channels, 4, 2, 1), nn.SiLU()]
        channels_in, channels = channels, min(channels * 2, width * 4)
    return nn.Sequential(*layers), channels_in


class VAE(nn.Module):
    """Conv encoder to a ``latent``-d Gaussian; decoder from a 4x4 map up by PixelShuffle."""

    def __init__(self, size: int, latent: int, width: int) -> None:
        super().__init__()
        self.latent = latent
        levels = _levels(size)
        self.encoder, channels = _down_convs(levels, width)
        self.to_stats = nn.Linear(channels * 16, 2 * latent)
        self.base = channels
        self.from_latent = nn.Linear(latent, channels * 16)
        layers: list[nn.Module] = []
        for _ in range(levels):
            out = max(channels // 2, width)
            layers += [nn.Conv2d(channels, out * 4, 3, padding=1), nn.PixelShuffle(2), nn.SiLU()]
            channels = out
        layers += [nn.Conv2d(channels, 3, 3, padding=1), nn.Tanh()]
        self.decoder = nn.Sequential(*layers)

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        mean, logvar = self.to_stats(self.encoder(images).flatten(1)).chunk(2, dim=1)
        return mean, logvar.clamp(-10, 10)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(self.from_latent(z).view(z.shape[0], self.base, 4, 4))


class _Res(nn.Module):
    def __init__(self, channels: int, out: int, emb: int = 0) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, channels)
        self.conv1 = nn.Conv2d(channels, out, 3, padding=1)
        self.norm2 = nn.GroupNorm(8, out)
        self.conv2 = nn.Conv2d(out, out, 3, padding=1)
        self.emb = nn.Linear(emb, out) if emb else None
        self.skip = nn.Conv2d(channels, out, 1) if channels != out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.emb is not None and emb is not None:
            h = h + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class Autoencoder(nn.Module):
    """Spatial latent at 1/4 resolution with 4 channels; decoder upsamples by nearest neighbour + conv."""

    def __init__(self, width: int, latent_channels: int = 4) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.SiLU(), nn.Conv2d(width, width, 4, 2, 1),
            _ResSeq(width, 2 * width), nn.Conv2d(2 * width, 2 * width, 4, 2, 1), _ResSeq(2 * width, 2 * width),
            nn.GroupNorm(8, 2 * width), nn.SiLU(), nn.Conv2d(2 * width, latent_channels, 3, padding=1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, 2 * width, 3, padding=1), _ResSeq(2 * width, 2 * width),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * width, 2 * width, 3, padding=1), _ResSeq(2 * width, width),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, width, 3, padding=1),
            nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, 3, 3, padding=1), nn.Tanh(),
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.decoder(self.encoder(images))


class _ResSeq(_Res):
    """A residual block without time embedding, usable inside ``nn.Sequential``."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x)


def _time_embedding(t: Tensor, dim: int) -> Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class UNet(nn.Module):
    """Two resolution levels below the input, one residual block per level, skip connections."""

    def __init__(self, width: int, emb: int = 128) -> None:
        super().__init__()
        self.emb_dim = emb
        self.time = nn.Sequential(nn.Linear(emb, emb), nn.SiLU(), nn.Linear(emb, emb))
        c1, c2, c3 = width, 2 * width, 2 * width
        self.stem = nn.Conv2d(3, c1, 3, padding=1)
        self.down1 = _Res(c1, c1, emb)
        self.down2 = _Res(c1, c2, emb)
        self.mid = _Res(c2, c3, emb)
        self.up2 = _Res(c3 + c2, c2, emb)
        self.up1 = _Res(c2 + c1, c1, emb)
        self.out = nn.Sequential(nn.GroupNorm(8, c1), nn.SiLU(), nn.Conv2d(c1, 3, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        emb = self.time(_time_embedding(t, self.emb_dim))
        h1 = self.down1(self.stem(x), emb)  # S
        h2 = self.down2(F.avg_pool2d(h1, 2), emb)  # S/2
        h = self.mid(F.avg_pool2d(h2, 2), emb)  # S/4
        h = self.up2(torch.cat([F.interpolate(h, scale_factor=2, mode="nearest"), h2], 1), emb)
        h = self.up1(torch.cat([F.interpolate(h, scale_factor=2, mode="nearest"), h1], 1), emb)
        return self.out(h)
