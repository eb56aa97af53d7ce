"""Triton's compile keys of the fused blur's launches, as a JIT launch computes them for sm_90 (on the CPU)."""

from __future__ import annotations

from typing import Iterable, Sequence

import pytest
import torch


def triton_keys(launches: Iterable[tuple[Sequence[int], int]]) -> list[str]:
    """The key of each ``(shape, radius)`` launch's two passes, in order."""
    pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    from mirage_bench.fastpath.blur_triton import COMPILE_OPTIONS, _blur_pass, blur_launches

    binder = create_function_from_signature(_blur_pass.signature, _blur_pass.params, make_backend(GPUTarget("cuda", 90, 32)))
    keys = []
    for shape, radius in launches:
        x = torch.empty(tuple(shape), dtype=torch.uint8, device="meta")
        for args, constexprs in blur_launches(x, torch.empty(2 * radius + 1, dtype=torch.float64, device="meta"))[1]:
            _, specialization, options = binder(*args, **constexprs, **COMPILE_OPTIONS)
            keys.append(str(specialization) + str(options))
    return keys
