"""Which degradations run on the GPU, and how: a batched plan for each spec, or None (CPU reference).

Supported on the GPU: ``none``, ``blur`` (bit-exact with scipy), ``downscale`` and ``resize`` with bicubic
or bilinear interpolation (bit-exact with PIL, ``resample``), and chains of those. JPEG, WebP,
noise and crops stay on CPU workers with the reference implementation: a GPU JPEG codec does not
reproduce PIL's bytes; the reference noise is numpy's ziggurat sampler, which draws a data-dependent number of
values from one sequential PCG64 stream per image (2.2% more draws than values, measured), so where each value's
draws start depends on every earlier value's rejections; and crops cost a view.
"""

from __future__ import annotations

from typing import Callable

import torch

from mirage_bench.degradations import Chain, Degradation, Identity
from mirage_bench.degradations.ops import Blur, Downscale, Resize
from mirage_bench.kernels.ops import gaussian_blur_uint8
from mirage_bench.kernels.resample import resize_uint8

BatchOp = Callable[[torch.Tensor], torch.Tensor]  # uint8 [G, 3, H, W] -> uint8 [G, 3, H', W']
_GPU_INTERPOLATIONS = {"bicubic", "bilinear"}


def gpu_plan(degradation: Degradation) -> BatchOp | None:
    """A batched GPU implementation of ``degradation``, or None when only the CPU reference is exact."""
    if isinstance(degradation, Identity):
        return lambda x: x
    if isinstance(degradation, Blur):
        return lambda x: gaussian_blur_uint8(x, degradation.s)
    if isinstance(degradation, (Downscale, Resize)) and degradation.interp in _GPU_INTERPOLATIONS:
        return lambda x: _resize_like(degradation, x)
    if isinstance(degradation, Chain):
        steps = [gpu_plan(step) for step in degradation.steps]
        if any(step is None for step in steps):
            return None

        def chained(x: torch.Tensor) -> torch.Tensor:
            for step in steps:
                x = step(x)
            return x

        return chained
    return None


def blur_inputs(degradation: Degradation, size: tuple[int, int]) -> list[tuple[float, tuple[int, int]]]:
    """``(sigma, (width, height))`` of each blur that ``gpu_plan(degradation)`` runs on an image of ``size``: the
    shapes its blur kernel is launched for (after any resizing earlier in a chain)."""
    found = []
    for step in _steps(degradation):
        if isinstance(step, Blur) and step.s > 0:
            found.append((step.s, size))
        elif isinstance(step, (Downscale, Resize)):
            size = step.target_size(size)
    return found


def resizes(degradation: Degradation) -> bool:
    """Whether ``gpu_plan(degradation)`` resizes on the device (a downscale or resize, alone or in a chain)."""
    return gpu_plan(degradation) is not None and any(isinstance(step, (Downscale, Resize)) for step in _steps(degradation))


def _steps(degradation: Degradation) -> tuple[Degradation, ...]:
    """A chain's steps in order; any other degradation as its own one step."""
    return tuple(degradation.steps) if isinstance(degradation, Chain) else (degradation,)


def _resize_like(d: Downscale | Resize, x: torch.Tensor) -> torch.Tensor:
    """The reference's target size for this image size (``target_size``), then a batched resize."""
    h, w = x.shape[-2:]
    tw, th = d.target_size((w, h))
    return x if (tw, th) == (w, h) else resize_uint8(x, (th, tw), d.interp)
