"""Small device helpers the kernels share: host-to-device copies that never stall the stream, and launching on a
tensor's own CUDA device."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch


def host_to_device(values: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """A small host tensor on ``device`` without waiting for the device's queue: a copy from pageable memory
    synchronises the CUDA stream, which would stall the scoring loop's host side once per call."""
    if torch.device(device).type == "cuda":
        values = values.pin_memory()
    return values.to(device, non_blocking=True)


def on_tensor_device(tensor: torch.Tensor) -> AbstractContextManager:
    """A block in which ``tensor``'s CUDA device is the current one (nothing elsewhere): Triton launches a kernel on
    the current device, not on its arguments', so a launch on ``cuda:1`` tensors would run on device 0."""
    return torch.cuda.device(tensor.device) if tensor.is_cuda else nullcontext()
