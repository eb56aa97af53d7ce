"""The models' input normalisation, ``(x / 255 - mean) / std``, as one Triton kernel on CUDA: uint8 crop in, float32
channels-last out.

Why: as torch ops, each of the grid's seven variants of an image went through four full-size float kernels (to
float, divide, subtract, divide) and a fifth copy into channels-last for the model: 37 bytes moved per output
value (the device stage's traffic: ``benchmarks/device_traffic.py``, ``benchmarks/RESULTS.md``). One pass reads the uint8
crop (a strided view, so the crop costs nothing) and writes the model's input in the layout it reads: 5 bytes.

Exactness: the reference divides in float32 (numpy's ``/ 255.0``, then torch's ``(t - mean) / std`` on the CPU).
torch on CUDA multiplies by the reciprocal of a scalar divisor, a rounding apart; here both divisions are
``div_rn``, IEEE's correctly rounded division, so the values equal the CPU reference's bit for bit (tested
through Triton's interpreter, the PTX for sm_90, and on CUDA in ``tests/gpu``).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
import triton
import triton.language as tl

from mirage_bench.kernels.device import on_tensor_device
from mirage_bench.kernels.warm import compile_and_load

_BLOCK = 1024
#: No integer is specialised: the sizes and a crop's strides vary; the source pointer's alignment does (a crop of a
#: 341 px wide image starts off 16 bytes), which makes two variants, both compiled ahead (``kernels.warm``).
_NOT_SPECIALISED = ["total", "channels", "height", "width", "stride_n", "stride_c", "stride_h", "stride_w"]


@triton.jit(do_not_specialize=_NOT_SPECIALISED)
def _normalize(src, dst, mean, std, total, channels, height, width, stride_n, stride_c, stride_h, stride_w, BLOCK: tl.constexpr):
    """``dst`` (contiguous channels-last ``[N, C, H, W]``) from the uint8 view ``src`` with its strides."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < total
    c = offs % channels
    pixel = offs // channels
    x = pixel % width
    y = (pixel // width) % height
    n = pixel // (width * height)
    value = tl.load(src + n * stride_n + c * stride_c + y * stride_h + x * stride_w, mask=mask, other=0).to(tl.float32)
    shifted = tl.math.div_rn(value, 255.0) - tl.load(mean + c, mask=mask, other=0.0)
    tl.store(dst + offs, tl.math.div_rn(shifted, tl.load(std + c, mask=mask, other=1.0)), mask=mask)


def normalize_channels_last(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` (any strides) -> float32 ``(x / 255 - mean) / std``, channels-last; ``mean`` and
    ``std`` float32 ``[C]`` on the same device."""
    out = torch.empty(images.shape, dtype=torch.float32, device=images.device, memory_format=torch.channels_last)
    if out.numel():
        grid = (triton.cdiv(out.numel(), _BLOCK),)
        with on_tensor_device(images):
            _normalize[grid](images, out, mean, std, out.numel(), images.shape[1], images.shape[2], images.shape[3], *images.stride(),
                             BLOCK=_BLOCK)
    return out


def variant_compiles(device: torch.device) -> list[Callable[[], None]]:
    """Jobs that compile the kernel's two variants (the source crop 16-byte aligned or not) and load them on
    ``device`` (``kernels.warm``)."""
    return [partial(_compile, device, offset) for offset in (0, 1)]


def _compile(device: torch.device, offset: int) -> None:
    pixels = torch.empty(32, dtype=torch.uint8, device=device)
    out, table = torch.empty(16, dtype=torch.float32, device=device), torch.empty(3, dtype=torch.float32, device=device)
    compile_and_load(_normalize, (pixels[offset:], out, table, table, 1, 1, 1, 1, 1, 1, 1, 1), {"BLOCK": _BLOCK}, device)
