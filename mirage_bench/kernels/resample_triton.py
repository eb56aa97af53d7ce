"""One pass of PIL's resize (``resample``) as one Triton kernel launch, for CUDA devices.

Each output pixel sums its input pixels times PIL's fixed-point weights in int32, then shifts and clamps: the
pass reads uint8 and writes uint8, where ``F.interpolate`` on float32 copies moved about ten times the bytes.
Integer arithmetic leaves the compiler nothing to reorder or contract: the kernel gives PIL's bytes on any GPU
(checked against PIL on the CPU through Triton's interpreter, and on CUDA in ``tests/gpu``).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
import triton
import triton.language as tl

from mirage_bench.kernels.device import on_tensor_device
from mirage_bench.kernels.pil_weights import PRECISION_BITS
from mirage_bench.kernels.warm import compile_and_load

_BLOCK = 1024
# a kernel reads module globals only as constexprs
_SHIFT = tl.constexpr(PRECISION_BITS)
_HALF = tl.constexpr(1 << (PRECISION_BITS - 1))

#: No integer argument is specialised: image sizes vary from batch to batch, and each divisibility by 16 of each
#: would compile a variant of its own on first launch while the device waits. The loads are gathers either way.
_NOT_SPECIALISED = ["total", "length", "out_length", "inner", "taps"]


@triton.jit(do_not_specialize=_NOT_SPECIALISED)
def _resample_pass(src, dst, first, weights, total, length, out_length, inner, taps, BLOCK: tl.constexpr):
    """``dst[o, j, i] = clamp((2^21 + sum_t src[o, first[j] + t, i] * weights[j, t]) >> 22, 0, 255)`` over lines of
    ``length`` uint8 pixels ``inner`` apart (output lines of ``out_length``); taps past the last input pixel have
    weight 0 and read the last pixel."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < total
    i = offs % inner
    j = (offs // inner) % out_length
    line = src + (offs // (inner * out_length)) * (length * inner) + i
    start = tl.load(first + j, mask=mask, other=0)
    acc = tl.full([BLOCK], _HALF, tl.int32)
    for t in tl.range(0, taps, loop_unroll_factor=1):
        pixel = tl.load(line + tl.minimum(start + t, length - 1) * inner, mask=mask, other=0)
        acc += pixel.to(tl.int32) * tl.load(weights + j * taps + t, mask=mask, other=0)
    tl.store(dst + offs, tl.minimum(tl.maximum(acc >> _SHIFT, 0), 255).to(tl.uint8), mask=mask)


def resample_pass_triton(lines: torch.Tensor, out: torch.Tensor, first: torch.Tensor, weights: torch.Tensor, length: int,
                         out_length: int, inner: int) -> None:
    """Write the pass over contiguous uint8 ``lines`` (``[outer, length, inner]``) into ``out`` (contiguous, ``outer
    * out_length * inner`` pixels), with ``first`` (int64 ``[out_length]``) and ``weights`` (int32 ``[out_length,
    taps]``) on the same device."""
    total = out.numel()
    grid = (triton.cdiv(total, _BLOCK),)
    with on_tensor_device(lines):
        _resample_pass[grid](lines, out, first, weights, total, length, out_length, inner, weights.shape[1], BLOCK=_BLOCK)


def variant_compile(device: torch.device) -> Callable[[], None]:
    """The job that compiles the kernel's one variant (no integer is specialised; fresh allocations are aligned
    alike) and loads it on ``device`` (``kernels.warm``)."""
    return partial(_compile, device)


def _compile(device: torch.device) -> None:
    pixels = torch.empty(16, dtype=torch.uint8, device=device)
    first, weights = torch.empty(1, dtype=torch.int64, device=device), torch.empty(1, dtype=torch.int32, device=device)
    compile_and_load(_resample_pass, (pixels, pixels, first, weights, 1, 1, 1, 1, 1), {"BLOCK": _BLOCK}, device)
