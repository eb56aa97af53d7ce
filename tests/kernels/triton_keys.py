"""Triton on the CPU for an H100 (sm_90), no GPU needed: the compile keys of kernel launches as a JIT launch computes
them (the fused blur's, in order), and a kernel's PTX."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable, Sequence

import pytest
import torch


def triton_keys(launches: Iterable[tuple[Sequence[int], int]]) -> list[str]:
    """The key of each ``(shape, radius)`` launch's two passes, in order."""
    pytest.importorskip("triton")
    from mirage_bench.kernels.blur_triton import COMPILE_OPTIONS, _blur_pass, blur_launches

    keys = []
    for shape, radius in launches:
        x = torch.empty(tuple(shape), dtype=torch.uint8, device="meta")
        for args, constexprs in blur_launches(x, torch.empty(2 * radius + 1, dtype=torch.float64, device="meta"))[1]:
            keys.append(hopper_key(_blur_pass, *args, **constexprs, **COMPILE_OPTIONS))
    return keys


def hopper_key(kernel: Any, *args: Any, **kwargs: Any) -> str:
    """The compile key of launching ``kernel`` with these arguments on sm_90 (meta tensors stand for device ones)."""
    _, specialization, options = _binder(kernel)(*args, **kwargs)
    return str(specialization) + str(options)


@lru_cache(maxsize=None)
def _binder(kernel: Any) -> Any:
    pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    return create_function_from_signature(kernel.signature, kernel.params, make_backend(GPUTarget("cuda", 90, 32)))


def hopper_ptx(kernel: Any, signature: dict[str, str], constexprs: dict[str, Any], options: dict[str, Any] | None = None) -> str:
    """``kernel`` compiled for sm_90 with this signature (``constexpr`` entries take ``constexprs``' values)."""
    triton = pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    source = ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
    return triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options or {}).asm["ptx"]
