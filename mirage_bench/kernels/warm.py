"""Compile the Triton kernel variants that a scoring call will launch (the blur's, the resize's), in threads, while
its workers decode the first images.

Why: Triton compiles each variant of a kernel on its first launch, on the host, one variant after another, while
the device waits for the batch. The fused blur (``blur_triton``) has a variant per class of image shape. A
2,048-image ``genimage``-grid call on an H100 started its first batch 4.17 s in, against 0.69 s for the same
pipeline later in the process (``benchmarks/RESULTS.md``); cold compiles are the main suspect. The shapes a
call will blur are known before any image is decoded (the manifest's sizes, the grid's blurs), and compiling
runs mostly outside the GIL (LLVM, ptxas), so the variants compile side by side in threads. The resize kernel
(``resample_triton``) has one variant, compiled whenever the call resizes on the device, and the normalisation
(``normalize_triton``) two, always compiled. The threads start
after the workers are forked (a fork in the middle of a compile could leave a pipe or a lock held in a worker),
and the first batch waits for them.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import pandas as pd
import torch

from mirage_bench.config import InputSpec
from mirage_bench.scoring.device_plan import blur_inputs, gpu_plan, resizes
from mirage_bench.kernels.ops import blur_radius, triton_module

T = TypeVar("T")

#: Images in a group of one size whose flat pixel count covers every divisibility by 16 that Triton specialises
#: on: a group of n images is in the class of the largest power of two dividing n, and 16 or more all in one.
GROUP_COUNTS = (1, 2, 4, 8, 16)


def blur_launch_shapes(manifest: pd.DataFrame, degradations: Sequence[Any], batch_size: int) -> set[tuple[tuple[int, int, int, int], int]]:
    """``(shape, radius)`` of blur launches that reach every variant the device's degradations can launch over
    ``manifest``'s image sizes (its ``width`` and ``height`` columns; none without them), for groups of any
    count up to ``batch_size``: one size of each ``size_class``, at each of ``GROUP_COUNTS``."""
    if not {"width", "height"} <= set(manifest.columns):
        return set()
    size_class = triton_module("blur_triton").size_class
    known = manifest[["width", "height"]].dropna()  # a size the manifest does not know compiles on first launch
    known = known[(known["width"] > 0) & (known["height"] > 0)].astype(int)
    sizes = set(zip(known["width"].tolist(), known["height"].tolist()))
    blurring = [d for d in degradations if gpu_plan(d) is not None and blur_inputs(d, (1, 1))]
    chosen: dict[tuple[Any, ...], tuple[int, int, int]] = {}
    for d in blurring:
        for size in sizes:
            for sigma, (w, h) in blur_inputs(d, size):
                radius = blur_radius(sigma)
                chosen.setdefault((radius, *size_class(h, w, radius)), (h, w, radius))
    return {((n, 3, h, w), radius) for h, w, radius in chosen.values() for n in GROUP_COUNTS if n <= batch_size}


def kernel_compiles(manifest: pd.DataFrame, degradations: Sequence[Any], batch_size: int, device: torch.device,
                    specs: Sequence[InputSpec] = ()) -> list[Callable[[], None]]:
    """The compile jobs of the Triton kernel variants that scoring ``manifest`` under ``degradations`` on ``device``
    will launch (CUDA only; none elsewhere): the blur's, the normalisation's, and the resize's if a degradation or
    one of the models' input ``specs`` resizes (an upscale of images smaller than the crop alone compiles on first
    launch).
    QuickGELU's one variant compiles on the first forward, which in a run that trained comes during validation,
    before any scoring."""
    if device.type != "cuda":
        return []
    if device.index is None:  # the jobs' threads would read "current device" as theirs, which starts at 0
        device = torch.device("cuda", torch.cuda.current_device())
    shapes = blur_launch_shapes(manifest, degradations, batch_size)
    jobs = triton_module("blur_triton").variant_compiles(sorted(shapes), device) if shapes else []
    if any(spec.resize_for(training=False) is not None for spec in specs) or any(resizes(d) for d in degradations):
        jobs.append(triton_module("resample_triton").variant_compile(device))
    return jobs + triton_module("normalize_triton").variant_compiles(device)


def compile_and_load(kernel: Any, args: Sequence[Any], constexprs: dict[str, Any], device: torch.device) -> None:
    """Compile ``kernel``'s variant for these arguments and load it on ``device``: what its first launch would do
    (the arguments' values matter only as far as Triton specialises on them)."""
    with torch.cuda.device(device):  # Triton compiles for, and loads on, the calling thread's current device
        compiled = kernel.warmup(*args, **constexprs, grid=(1,))
        compiled._init_handles()  # what a first launch does after compiling: load the binary, build the launcher


@contextmanager
def compiling(jobs: Sequence[Callable[[], None]]) -> Iterator[Callable[[], None]]:
    """Runs ``jobs`` in threads from entry (one each, at most one per core) and yields ``wait``, which returns once
    all have finished and raises the first job's error. Leaving the block waits for the jobs still running."""
    if not jobs:
        yield lambda: None
        return
    with ThreadPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1), thread_name_prefix="mirage-compile") as pool:
        futures = [pool.submit(job) for job in jobs]

        def wait() -> None:
            for future in futures:
                future.result()

        yield wait


def after(wait: Callable[[], None], items: Iterable[T]) -> Iterator[T]:
    """``items``, the first handed on only once ``wait()`` has returned."""
    waited = False
    for item in items:
        if not waited:
            wait()
            waited = True
        yield item
