"""Which degradations the fast scorer runs batched on the device, and how: each kind declares its batched steps
beside itself (``Degradation.device_steps``); here they meet the kernels that give the reference's bytes.

On the device: ``none``, ``blur`` (bit-exact with scipy, ``kernels.ops``), ``downscale`` and ``resize`` with
bicubic or bilinear interpolation (bit-exact with PIL, ``kernels.resample``), and chains of those. JPEG, WebP,
noise and crops stay on CPU workers with the reference implementation: a GPU JPEG codec does not reproduce PIL's
bytes; the reference noise is numpy's ziggurat sampler, which draws a data-dependent number of values from one
sequential PCG64 stream per image, so where each value's draws start depends on every earlier value's
rejections; and crops cost a view. Resizes also stay on the workers under a Pillow release whose pass order has
not been measured (``kernels.resample.pass_order_known``).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import torch

from mirage_bench.degradations import Degradation
from mirage_bench.degradations.base import DeviceStep
from mirage_bench.kernels.ops import gaussian_blur_uint8
from mirage_bench.kernels.pil_weights import FILTERS
from mirage_bench.kernels.resample import pass_order_known, resize_uint8


def _blur(step: DeviceStep, x: torch.Tensor) -> torch.Tensor:
    return gaussian_blur_uint8(x, step.sigma)


def _resize(step: DeviceStep, x: torch.Tensor) -> torch.Tensor:
    """The reference's target size for this image size, then a batched resize (none when the size stays)."""
    h, w = x.shape[-2:]
    tw, th = step.target_size((w, h))
    return x if (tw, th) == (w, h) else resize_uint8(x, (th, tw), step.interp)


_KERNELS: dict[str, Callable[[DeviceStep, torch.Tensor], torch.Tensor]] = {"blur": _blur, "resize": _resize}


class DevicePlan(NamedTuple):
    """A degradation's batched steps: called on uint8 ``[G, 3, H, W]`` (one size), it returns the degraded batch."""

    steps: tuple[DeviceStep, ...]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            x = _KERNELS[step.op](step, x)
        return x

    def blur_inputs(self, size: tuple[int, int]) -> list[tuple[float, tuple[int, int]]]:
        """``(sigma, (width, height))`` of each blur the plan runs on an image of ``size``: the shapes its blur kernel
        is launched for (after any resizing earlier in a chain)."""
        found = []
        for step in self.steps:
            if step.op == "blur" and step.sigma > 0:
                found.append((step.sigma, size))
            elif step.op == "resize":
                size = step.target_size(size)
        return found

    @property
    def resizes(self) -> bool:
        return any(step.op == "resize" for step in self.steps)


def _exact(step: DeviceStep) -> bool:
    return step.op != "resize" or (step.interp in FILTERS and pass_order_known())


def device_plan(degradation: Degradation) -> DevicePlan | None:
    """The batched plan of ``degradation``, or None when only its CPU reference is exact here."""
    steps = degradation.device_steps()
    return DevicePlan(steps) if steps is not None and all(_exact(step) for step in steps) else None


def device_plans(degradations: Sequence[Degradation]) -> list[DevicePlan | None]:
    """``device_plan`` of each degradation, computed once per scoring call."""
    return [device_plan(d) for d in degradations]
