"""scipy's uint8 Gaussian blur as one fused Triton kernel per pass, for CUDA devices.

Why: the eager version (``ops.gaussian_blur_uint8`` on torch ops) must keep scipy's float64 operation order
to stay bit-exact, so every tap costs three full-size float64 kernels (their memory traffic, measured:
``benchmarks/RESULTS.md``). Fused, each pass reads and writes uint8 once.

Exactness: the same float64 operations in the same order as scipy's ``NI_Correlate1D`` (see ``ops``), with
``enable_fp_fusion=False`` so that no multiply and add are contracted into an FMA (a different rounding,
which flips truncations in flat areas). Pair sums of uint8 values are exact in int32, as they are in float64.
Tested on the CPU: bit-exact against scipy through Triton's interpreter, and the kernel compiled for sm_90
has no FMA in its PTX and spills no registers at any radius; on CUDA, bit-exact against scipy (``tests/gpu``).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import triton
import triton.language as tl

from mirage_bench.kernels.device import host_to_device, on_tensor_device
from mirage_bench.kernels.warm import compile_and_load

_BLOCK = 1024
#: Launch options: no multiply-add contraction (``tests/kernels`` compiles the kernel for sm_90 and reads
#: the PTX: separate ``mul.rn.f64`` and ``add.rn.f64``, no ``fma``).
COMPILE_OPTIONS = {"enable_fp_fusion": False}


@triton.jit
def _reflect(p, length, WIDE: tl.constexpr):
    """scipy 'reflect' (d c b a | a b c d | d c b a) of an index at most RADIUS outside [0, length); WIDE:
    the kernel is wider than the axis, so the reflection repeats (periodic in 2 * length)."""
    if WIDE:
        q = (p % (2 * length) + 2 * length) % (2 * length)
    else:
        q = tl.where(p < 0, -p - 1, p)
    return tl.where(q >= length, 2 * length - 1 - q, q)


#: Arguments left out of Triton's specialisation (by default it compiles a variant per divisibility by 16 of
#: each integer, and per value of a constexpr). Neither the axis length nor the radius (a loop bound; the loop
#: is not unrolled) changes how loads and stores compile: the same widths in the PTX. The flat size and the
#: stride stay specialised: divisible by 16, they let the centre load, the store and (rows pass) the tap loads
#: move 8 bytes per instruction. The ``genimage`` grid's two blurs over 512 px PNGs and 500x375 JPEGs at every
#: batch size compile 5 variants (12 with the radius a constexpr and the length specialised), each cold on
#: first use (``benchmarks/blur_compile.py``).
_NOT_SPECIALISED = ["length", "radius"]


@triton.jit(do_not_specialize=_NOT_SPECIALISED)
def _blur_pass(src, dst, weights, total: tl.int64, length: tl.int32, stride: tl.int32, radius: tl.int32, WIDE: tl.constexpr,
               BLOCK: tl.constexpr):
    """One 1-D pass along an axis of ``length`` elements spaced ``stride`` apart in a contiguous uint8 tensor,
    with the ``2 * radius + 1`` float64 ``weights``."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < total
    pos = (offs // stride) % length
    base = offs - pos * stride
    out = tl.load(src + offs, mask=mask, other=0).to(tl.float64) * tl.load(weights + radius)
    # scipy's order: the outermost pair first. A loop, not unrolled: unrolled, the compiler hoists every tap's
    # loads and spills them to local memory (measured: ``benchmarks/RESULTS.md``).
    for j in tl.range(radius, 0, -1, loop_unroll_factor=1):
        left = tl.load(src + base + _reflect(pos - j, length, WIDE) * stride, mask=mask, other=0)
        right = tl.load(src + base + _reflect(pos + j, length, WIDE) * stride, mask=mask, other=0)
        pair = left.to(tl.int32) + right.to(tl.int32)
        out = out + pair.to(tl.float64) * tl.load(weights + radius + j)
    tl.store(dst + offs, out.to(tl.uint8), mask=mask)


Launch = tuple[tuple[Any, ...], dict[str, Any]]  # the kernel's positional arguments and constexprs
Ints = tuple[int, int, int, int]  # a pass's integer arguments: total, length, stride, radius


def pass_arguments(shape: Sequence[int], radius: int) -> list[tuple[Ints, dict[str, Any]]]:
    """The two passes' integer arguments and constexprs for contiguous uint8 images of ``shape`` ``[N, C, H, W]``:
    rows (scipy axis 0), then columns."""
    h, w = shape[-2:]
    return [((math.prod(shape), length, stride, radius), {"WIDE": radius >= length, "BLOCK": _BLOCK})
            for length, stride in ((h, w), (w, 1))]


def blur_launches(x: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, list[Launch]]:
    """The output tensor and the two passes' arguments for contiguous uint8 ``x`` ``[N, C, H, W]``: rows from
    ``x`` into a temporary, then columns from it into the output."""
    rows, out = torch.empty_like(x), torch.empty_like(x)
    passes = pass_arguments(x.shape, (weights.numel() - 1) // 2)
    return out, [((source, target, weights, *ints), constexprs) for (source, target), (ints, constexprs) in zip(((x, rows), (rows, out)), passes)]


def variant_key(ints: Ints, constexprs: dict[str, Any]) -> tuple[Any, ...]:
    """What Triton compiles a separate variant of the kernel for, pointers aside (fresh CUDA allocations are all
    16-byte aligned): each specialised integer's divisibility by 16 and equality to 1, and the constexprs. It
    mirrors Triton's rule; ``tests/kernels`` checks it against the keys Triton computes."""
    total, _, stride, _ = ints
    return total % 16 == 0, total == 1, stride % 16 == 0, stride == 1, tuple(sorted(constexprs.items()))


def size_class(h: int, w: int, radius: int) -> tuple[int, bool, bool, bool, bool]:
    """Images of two sizes of one class launch the same variants at every image count: ``variant_key`` sees the
    flat size ``n * C * h * w`` only through its divisibility by 16 (set by ``h * w`` modulo 16), the width as the
    rows pass's stride, and the radius against each axis (``WIDE``)."""
    return (h * w) % 16, w % 16 == 0, w == 1, radius >= h, radius >= w


def variant_compiles(launches: Iterable[tuple[Sequence[int], int]], device: torch.device) -> list[Callable[[], None]]:
    """One job per distinct kernel variant that blurs of these ``(shape, radius)`` launch: it compiles the
    variant and loads it on ``device``, which the first launch would otherwise do while the device waits. The
    jobs are independent, so they can run in threads ahead of the launches (``kernels.warm``). One caveat:
    Triton makes a kernel's per-device cache on first use without a lock, so if jobs race to make it, a
    variant can drop out of it again; its first launch then loads it from Triton's disk cache, which the job
    filled (milliseconds, not a compile)."""
    variants: dict[tuple[Any, ...], tuple[Ints, dict[str, Any]]] = {}
    for shape, radius in launches:
        for ints, constexprs in pass_arguments(shape, radius):
            variants.setdefault(variant_key(ints, constexprs), (ints, constexprs))
    return [partial(_compile_variant, ints, constexprs, device) for ints, constexprs in variants.values()]


def _compile_variant(ints: Ints, constexprs: dict[str, Any], device: torch.device) -> None:
    pointer = torch.empty(16, dtype=torch.uint8, device=device)  # only the pointers' dtype and alignment count
    weights = torch.empty(1, dtype=torch.float64, device=device)
    compile_and_load(_blur_pass, (pointer, pointer, weights, *ints), {**constexprs, **COMPILE_OPTIONS}, device)


def gaussian_blur_uint8_triton(images: torch.Tensor, weights: np.ndarray) -> torch.Tensor:
    """Blur uint8 ``[N, C, H, W]`` with the symmetric float64 kernel ``weights`` (rows, then columns, each
    pass truncated to uint8 as scipy writes into its uint8 output)."""
    x = images.contiguous()
    out, launches = blur_launches(x, host_to_device(torch.from_numpy(weights), x.device))
    grid = (triton.cdiv(x.numel(), _BLOCK),)
    with on_tensor_device(x):
        for args, constexprs in launches:
            _blur_pass[grid](*args, **constexprs, **COMPILE_OPTIONS)
    return out
