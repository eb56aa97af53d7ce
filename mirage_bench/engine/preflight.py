"""Checks a run makes before any work, each writing nothing: the detectors build (weights files included) and
the output folder can be written.

Why: without them a wrong-shape ``--pretrained`` file failed when its detector was built, after the data
scan and after the detectors listed before it had trained, and an unwritable ``--out`` failed at the first
write, after decoding. :func:`mirage_bench.engine.runner.preflight` runs these with the option checks.
"""

from __future__ import annotations

import errno
import os
import warnings
from pathlib import Path
from typing import Sequence

import torch

from mirage_bench.config import RecipeCard
from mirage_bench.detectors.infra.build import build_detector
from mirage_bench.detectors.infra.timm_backbone import is_weights_path
from mirage_bench.errors import ConfigError, storage_error


def check_recipes(recipes: Sequence[RecipeCard]) -> None:
    """Build every recipe's detector on the meta device (no memory, no training): its parameters validate, its
    backbone architecture exists, and a local weights file loads and fits that architecture (shapes and keys,
    as the real build checks them). A pretrained tag is not fetched here (``pretrained: none`` stands in: the
    architecture is checked, the download is the build's)."""
    for recipe in recipes:
        checked = recipe
        if recipe.backbone is not None and not _is_file(recipe.backbone.pretrained):
            checked = recipe.model_copy(deep=True)
            checked.backbone.pretrained = "none"
        # fork_rng: the caller's random state is untouched, so a run's training draws stay as they were.
        with torch.random.fork_rng(devices=[]), torch.device("meta"), warnings.catch_warnings():
            # A file's tensors copied into meta parameters are dropped, as wanted: only their shapes are compared.
            warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter")
            build_detector(checked)


def _is_file(pretrained: str) -> bool:
    return is_weights_path(pretrained)


def check_writable(out: str | Path) -> None:
    """Refuse an output folder this process cannot write, naming it and the fix (a
    :class:`~mirage_bench.errors.StorageError`, as a failed write would be), and create nothing: where ``out``
    does not exist yet, the nearest folder that does is the one that must be writable."""
    out = Path(out).absolute()
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"--out {out}: {existing} is a file, not a folder; give --out a folder (it is created if missing)")
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        code = errno.EROFS
    elif not os.access(existing, os.W_OK | os.X_OK):
        code = errno.EACCES
    else:
        return
    made = "" if existing == out else f"; --out {out} does not exist yet and would be created there"
    raise storage_error(existing, code, f"checked before any work, nothing was written{made}")
