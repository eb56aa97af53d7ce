"""Cold start of the fused blur: Triton variants the ``genimage`` grid compiles, and their compile time.

Each distinct compile key of a Triton kernel is compiled on its first launch, in the middle of a run, while the
device waits (cached on disk for later runs on the same machine). This counts the keys that the grid's two blurs
(sigma 3 and 5) make over ``eval_throughput.py``'s folder (512 px PNG, 500x375 JPEG) at every model batch size
of 1 to 256 images, as JIT launches compute them for sm_90, and times compiling each key for sm_90 from an empty
cache: on the CPU, no GPU needed. Baseline, in the same run: the same kernel under Triton's default
specialisation (every integer argument specialised by divisibility by 16).

    python benchmarks/blur_compile.py
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
import triton
from rich.console import Console
from rich.table import Table
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, make_backend
from triton.runtime.jit import JITFunction, create_function_from_signature

from mirage_bench.fastpath.blur_triton import COMPILE_OPTIONS, _blur_pass, blur_launches
from mirage_bench.fastpath.ops import _gaussian_kernel

SIZES = ((512, 512), (375, 500))  # eval_throughput.py's folder: PNG fakes, JPEG reals
SIGMAS = (3.0, 5.0)  # the genimage grid's blurs


def launch_sources(kernel: JITFunction, target: GPUTarget) -> dict[str, ASTSource]:
    """Each distinct compile key of the grid's launches, with the source a launch would compile for it."""
    backend = make_backend(target)
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    sources: dict[str, ASTSource] = {}
    for n in range(1, 257):
        for h, w in SIZES:
            for sigma in SIGMAS:
                x = torch.empty((n, 3, h, w), dtype=torch.uint8, device="meta")
                for args, constexprs in blur_launches(x, torch.from_numpy(_gaussian_kernel(sigma)))[1]:
                    kwargs = {**constexprs, **COMPILE_OPTIONS}
                    bound, specialization, options = binder(*args, **kwargs)
                    key = str(specialization)
                    if key not in sources:
                        _, signature, constants, attrs = kernel._pack_args(backend, kwargs, bound, specialization, options)
                        sources[key] = ASTSource(kernel, signature, constants, attrs)
    return sources


def cold_compile_seconds(sources: dict[str, ASTSource], target: GPUTarget) -> float:
    """Seconds to compile every source to a cubin from an empty Triton cache."""
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TRITON_CACHE_DIR"] = cache
        start = time.perf_counter()
        for source in sources.values():
            triton.compile(source, target=target, options=COMPILE_OPTIONS)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="cold compiles of each kernel, alternated; the median is shown")
    args = parser.parse_args()
    target = GPUTarget("cuda", 90, 32)
    kernels = {"(a) Triton's default specialisation": triton.jit(_blur_pass.fn), "(b) ours": _blur_pass}
    sources = {name: launch_sources(kernel, target) for name, kernel in kernels.items()}
    cold_compile_seconds(sources["(b) ours"], target)  # Triton's one-off set-up, outside the timings
    seconds: dict[str, list[float]] = {name: [] for name in kernels}
    for _ in range(args.repeats):
        for name in kernels:
            seconds[name].append(cold_compile_seconds(sources[name], target))
    table = Table(title=f"Blur kernel variants for the genimage grid, compiled for sm_90 on the CPU ({os.cpu_count()} cores)")
    for column in ("kernel", "variants", "cold compile s (median)", "vs (a)"):
        table.add_column(column)
    base = sorted(seconds["(a) Triton's default specialisation"])[args.repeats // 2]
    for name in kernels:
        median = sorted(seconds[name])[args.repeats // 2]
        row = (name, str(len(sources[name])), f"{median:.2f}", f"{median / base:.2f}")
        print(" | ".join(row), flush=True)
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
