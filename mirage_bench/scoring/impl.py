"""Which scoring strategy a run uses: ``Impl`` as a run configuration names it, resolved for the device, and the
scorer that implements it."""

from __future__ import annotations

import difflib
from typing import Literal, get_args

import torch

from mirage_bench.errors import ConfigError
from mirage_bench.scoring.fast import FastScorer
from mirage_bench.scoring.reference import ReferenceScorer
from mirage_bench.scoring.scorer import Scorer

#: ``reference``: PIL/scipy on CPU workers, exact. ``fast``: GPU degradations and preprocessing: the reference's
#: pixels bit for bit, floats rounded in other batches. ``fast-nvjpeg``: ``fast`` with JPEG files decoded on the GPU
#: (not PIL's pixels). ``auto``: fast on CUDA, reference elsewhere.
Impl = Literal["auto", "reference", "fast", "fast-nvjpeg"]
IMPLEMENTATIONS: tuple[str, ...] = get_args(Impl)


def check_impl(impl: str) -> None:
    """Refuse an unknown scoring path, with the closest name (a ConfigError)."""
    if impl not in IMPLEMENTATIONS:
        close = difflib.get_close_matches(impl, IMPLEMENTATIONS, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"--impl {impl!r} is not one of {', '.join(IMPLEMENTATIONS)}{hint}")


def resolve_impl(impl: str, device: str | torch.device) -> str:
    """``impl`` checked (``check_impl``) and ``auto`` made concrete for ``device``."""
    check_impl(impl)
    if impl == "auto":
        return "fast" if torch.device(device).type == "cuda" else "reference"
    return impl


def make_scorer(impl: str, device: str | torch.device, *, batch_size: int = 64, workers: int = 0, compile: bool = False) -> Scorer:
    """The scorer of ``impl`` (resolved for ``device``); each detector's bf16 autocast comes from its recipe."""
    impl = resolve_impl(impl, device)
    if impl == "reference":
        return ReferenceScorer(device, batch_size=batch_size, workers=workers)
    return FastScorer(device, batch_size=batch_size, workers=workers, nvjpeg=impl == "fast-nvjpeg", compile=compile)
