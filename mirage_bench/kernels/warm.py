"""Compile Triton kernel variants ahead of their first launch, in threads, while the scorer's workers decode the
first images.

Why: Triton compiles each variant of a kernel on its first launch, on the host, one after another, while the
device waits for the batch (measured cold starts: ``benchmarks/RESULTS.md``). Compiling runs mostly outside the
GIL (LLVM, ptxas), so the variants compile side by side in threads. Which variants a scoring call launches is the
scorer's knowledge (``scoring.warmup``); this module only compiles, loads and waits.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import torch

T = TypeVar("T")


def compile_and_load(kernel: Any, args: Sequence[Any], constexprs: dict[str, Any], device: torch.device) -> None:
    """Compile ``kernel``'s variant for these arguments and load it on ``device``: what its first launch would do
    (the arguments' values matter only as far as Triton specialises on them)."""
    with torch.cuda.device(device):  # Triton compiles for, and loads on, the calling thread's current device
        compiled = kernel.warmup(*args, **constexprs, grid=(1,))
        # Loading the binary ahead is a private step of Triton's first launch (``_init_handles``); where a release
        # lacks it, the first launch loads the compiled binary itself (milliseconds: the compile is what warm-up saves).
        load = getattr(compiled, "_init_handles", None)
        if callable(load):
            load()


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
