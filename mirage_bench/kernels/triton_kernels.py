"""The Triton kernel modules, imported on their first CUDA use: Triton is optional (CPU-only installs of torch
lack it), so nothing imports them before a CUDA tensor needs one. Each kernel module imports only ``device``,
``warm`` and ``pil_weights``, never the modules that dispatch to it."""

from __future__ import annotations

from contextlib import contextmanager
from types import ModuleType
from typing import Iterator

from mirage_bench.errors import ConfigError


@contextmanager
def _needs_triton() -> Iterator[None]:
    try:
        yield
    except ImportError as exc:
        if exc.name not in ("triton", "triton.language"):
            raise
        raise ConfigError(
            f"the fast path blurs, resizes and normalises CUDA images with Triton kernels, and Triton cannot be imported ({exc}). "
            "Install it (pip install triton; Linux CUDA builds of torch ship it) or score with --impl reference."
        ) from None


def require() -> None:
    """Import every kernel module: the ConfigError above where Triton is missing, for a scorer to give before any work."""
    blur(), resample(), normalize()


def blur() -> ModuleType:
    with _needs_triton():
        from mirage_bench.kernels import blur_triton
    return blur_triton


def resample() -> ModuleType:
    with _needs_triton():
        from mirage_bench.kernels import resample_triton
    return resample_triton


def normalize() -> ModuleType:
    with _needs_triton():
        from mirage_bench.kernels import normalize_triton
    return normalize_triton
