"""Cold start of the fused blur: Triton variants the ``genimage`` grid compiles, and their compile time.

Each distinct compile key of a Triton kernel is compiled on its first launch, in the middle of a run, while the
device waits (cached on disk for later runs on the same machine). This counts the keys that the grid's two blurs
(sigma 3 and 5) make over ``eval_throughput.py``'s folder (512 px PNG, 500x375 JPEG) at every model batch size
of 1 to 256 images, as JIT launches compute them for sm_90, and times compiling each key for sm_90 from an empty
cache: on the CPU, no GPU needed. Baseline, in the same run: the same kernel under Triton's default
specialisation (every integer argument specialised by divisibility by 16). Row (c) compiles our variants side by
side in threads (one per variant, at most one per core), as the fast scorer does while its workers decode the
first images (``mirage_bench.kernels.warm``). With ``--device cuda`` it also times
what a fresh process spends in the grid's first launches on the GPU (one per variant), with an empty Triton cache
(a fresh machine: Triton's own set-up included) and again with the cache that run filled (a later run).

    python benchmarks/blur_compile.py                  # CPU: variants and sm_90 compile time
    python benchmarks/blur_compile.py --device cuda    # also first launches on the GPU, cold and warm cache
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import torch
import triton
from rich.console import Console
from rich.table import Table
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, make_backend
from triton.runtime.jit import JITFunction, create_function_from_signature

from mirage_bench.kernels.blur_triton import _BLOCK, COMPILE_OPTIONS, _blur_pass, blur_launches, variant_compiles
from mirage_bench.kernels.ops import gaussian_kernel
from mirage_bench.kernels.warm import compiling

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
                for args, constexprs in blur_launches(x, torch.from_numpy(gaussian_kernel(sigma)))[1]:
                    kwargs = {**constexprs, **COMPILE_OPTIONS}
                    bound, specialization, options = binder(*args, **kwargs)
                    key = str(specialization)
                    if key not in sources:
                        _, signature, constants, attrs = kernel._pack_args(backend, kwargs, bound, specialization, options)
                        sources[key] = ASTSource(kernel, signature, constants, attrs)
    return sources


def cold_compile_seconds(sources: dict[str, ASTSource], target: GPUTarget, threads: int = 1) -> float:
    """Seconds to compile every source to a cubin from an empty Triton cache, in ``threads`` threads."""
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TRITON_CACHE_DIR"] = cache
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda source: triton.compile(source, target=target, options=COMPILE_OPTIONS), sources.values()))
        return time.perf_counter() - start


DEFAULT, OURS, AHEAD = "(a) Triton's default specialisation", "(b) ours", "(c) ours, compiled ahead in threads"


def kernels() -> dict[str, JITFunction]:
    return {DEFAULT: triton.jit(_blur_pass.fn), OURS: _blur_pass}


def first_launches(name: str) -> float:
    """Seconds this process spends launching the grid's blurs on the GPU once per variant: batches of 1, 2 and 4
    images cover every divisibility class of the folder's sizes. ``AHEAD``: first the scorer's compile jobs
    (``kernels.warm``) for those shapes, side by side in threads, then the same launches."""
    kernel = kernels()[DEFAULT if name == DEFAULT else OURS]
    images = [torch.zeros((n, 3, h, w), dtype=torch.uint8, device="cuda") for n in (1, 2, 4) for h, w in SIZES]
    weights = [torch.from_numpy(gaussian_kernel(sigma)).cuda() for sigma in SIGMAS]
    torch.cuda.synchronize()
    start = time.perf_counter()
    if name == AHEAD:
        shapes = [(tuple(x.shape), (w.numel() - 1) // 2) for x in images for w in weights]
        with compiling(variant_compiles(shapes, torch.device("cuda", torch.cuda.current_device()))) as wait:
            wait()
    for x in images:
        for w in weights:
            for args, constexprs in blur_launches(x, w)[1]:
                kernel[(triton.cdiv(x.numel(), _BLOCK),)](*args, **constexprs, **COMPILE_OPTIONS)
    torch.cuda.synchronize()
    return time.perf_counter() - start


def first_launches_in_fresh_process(name: str, cache: str) -> float:
    done = subprocess.run([sys.executable, __file__, "--first-launches", name], env={**os.environ, "TRITON_CACHE_DIR": cache},
                          capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="cold compiles of each kernel, alternated; the median is shown")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--first-launches", default=None, help=argparse.SUPPRESS)  # the fresh process of a GPU timing
    args = parser.parse_args()
    if args.first_launches:
        print(first_launches(args.first_launches))
        return
    rows = (DEFAULT, OURS, AHEAD)
    on_gpu: dict[str, tuple[float, float]] = {}
    for name in rows if args.device == "cuda" else ():  # first: public Triton API only, unlike the counting below
        with tempfile.TemporaryDirectory() as cache:
            on_gpu[name] = first_launches_in_fresh_process(name, cache), first_launches_in_fresh_process(name, cache)
        print(f"{name}: GPU first launches {on_gpu[name][0]:.2f} s with an empty cache, {on_gpu[name][1]:.2f} s warm", flush=True)
    target = GPUTarget("cuda", 90, 32)
    sources = {name: launch_sources(kernel, target) for name, kernel in kernels().items()}
    sources[AHEAD] = sources[OURS]
    threads = {AHEAD: min(len(sources[OURS]), os.cpu_count() or 1)}
    cold_compile_seconds(sources[OURS], target)  # Triton's one-off set-up, outside the timings
    seconds: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.repeats):
        for name in rows:
            seconds[name].append(cold_compile_seconds(sources[name], target, threads.get(name, 1)))
    where = f"; first launches on {torch.cuda.get_device_name(0)}" if on_gpu else ""
    table = Table(title=f"Blur kernel variants for the genimage grid, compiled for sm_90 on the CPU ({os.cpu_count()} cores){where}")
    columns = ("kernel", "variants", "cold compile s (median)", "vs (a)")
    for column in columns + (("GPU first launches s, cold cache", "warm cache") if on_gpu else ()):
        table.add_column(column)
    base = sorted(seconds[DEFAULT])[args.repeats // 2]
    for name in rows:
        median = sorted(seconds[name])[args.repeats // 2]
        label = f"{name} ({threads[name]})" if name in threads else name
        row = (label, str(len(sources[name])), f"{median:.2f}", f"{median / base:.2f}")
        row += tuple(f"{t:.2f}" for t in on_gpu.get(name, ()))
        print(" | ".join(row), flush=True)
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
