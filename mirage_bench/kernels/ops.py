"""Batched uint8 image operations that reproduce the reference (PIL / scipy) on any torch device.

- ``gaussian_blur_uint8``: scipy's ``gaussian_filter(img[:, :, c], output=img[:, :, c], sigma=s)`` exactly:
  kernel radius ``int(4 s + 0.5)``, scipy 'reflect' borders (numpy 'symmetric'), two separable passes
  (rows then columns) each truncated to uint8 as scipy writes into the uint8 output between passes, summed
  in float64 in scipy's order: bit-exact. On CUDA the same operations run as one fused Triton kernel per
  pass (``blur_triton``): the torch-op version costs three float64 kernels per tap. Both are tested bit-exact
  against scipy (the Triton one on the CPU through Triton's interpreter, and on CUDA in ``tests/gpu``).
- resizing: ``resample`` (PIL's own integer arithmetic, bit-exact).
- ``normalize``: ``(x / 255 - mean) / std`` in float32 as the reference computes it; on CUDA one Triton kernel
  (``normalize_triton``) from the uint8 crop to the model's channels-last input.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from mirage_bench.kernels import triton_kernels
from mirage_bench.kernels.device import host_to_device


def blur_radius(sigma: float) -> int:
    """scipy's kernel radius for ``sigma`` (truncate=4.0)."""
    return int(4.0 * sigma + 0.5)


def gaussian_kernel(sigma: float) -> np.ndarray:
    radius = blur_radius(sigma)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 / (sigma * sigma) * x**2)
    return weights / weights.sum()


def _symmetric_index(n: int, radius: int) -> np.ndarray:
    """Indices of scipy's 'reflect' padding (d c b a | a b c d | d c b a), repeated for wide kernels."""
    return np.pad(np.arange(n), radius, mode="symmetric")


def _blur_axis(x: torch.Tensor, weights: np.ndarray, axis: int) -> torch.Tensor:
    """One 1-D pass in scipy's summation order (centre, then symmetric pairs from the outside in).

    scipy's ``NI_Correlate1D`` sums a symmetric kernel as ``w0 x0 + sum_j w_j (x_-j + x_j)`` for
    j = radius..1; doing the same in float64 makes the uint8 truncation land on the same side.
    """
    radius = (len(weights) - 1) // 2
    n = x.shape[axis]
    index = host_to_device(torch.from_numpy(_symmetric_index(n, radius)), x.device)
    padded = x.index_select(axis, index)  # [M, H + 2r, W] or [M, H, W + 2r]
    out = padded.narrow(axis, radius, n) * float(weights[radius])
    for j in range(radius, 0, -1):
        out = out + (padded.narrow(axis, radius - j, n) + padded.narrow(axis, radius + j, n)) * float(weights[radius + j])
    return out


def gaussian_blur_uint8(images: torch.Tensor, sigma: float, fused: bool | None = None) -> torch.Tensor:
    """Blur uint8 images ``[N, C, H, W]`` exactly as the field's scipy code does (see module docstring).

    ``fused``: the Triton kernel (default on CUDA) or torch ops (default elsewhere; on CUDA, the benchmark's
    baseline). Both give the same bytes.
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"gaussian_blur_uint8 expects uint8 images, got {images.dtype}")
    if sigma <= 0:
        return images.clone()
    n, c, h, w = images.shape
    weights = gaussian_kernel(sigma)
    if images.is_cuda if fused is None else fused:
        return triton_kernels.blur().gaussian_blur_uint8_triton(images, weights)
    x = images.reshape(n * c, h, w).to(torch.float64)
    x = _blur_axis(x, weights, axis=1).to(torch.uint8).to(torch.float64)  # rows (scipy axis 0), truncated
    x = _blur_axis(x, weights, axis=2).to(torch.uint8)  # columns (scipy axis 1), truncated
    return x.reshape(n, c, h, w)


@lru_cache(maxsize=64)
def _float32_on(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """A spec's mean or std on ``device``, kept: every batch and variant normalises with the same few."""
    return host_to_device(torch.tensor(values, dtype=torch.float32), device)


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 -> float32 ``(x / 255 - mean) / std``, the reference's float32 operations bit for bit: on CUDA one
    Triton kernel that writes the model's channels-last input (``normalize_triton``), elsewhere torch ops."""
    m, s = _float32_on(tuple(mean), images.device), _float32_on(tuple(std), images.device)
    if images.is_cuda:
        return triton_kernels.normalize().normalize_channels_last(images, m, s)
    return (images.to(torch.float32) / 255.0 - m.view(1, -1, 1, 1)) / s.view(1, -1, 1, 1)
