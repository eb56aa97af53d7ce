"""``mirage-bench predict``: per-image p_fake from a checkpoint, with its calibrated threshold and the label it implies.

Inputs are image files, folders (searched recursively, sorted) or CSV lists with a ``path`` column
(relative paths are read against the CSV's folder, which they may not leave). They are read by the rules a
run's data scan keeps (``mirage_bench.data.walk``, the same functions): hidden files and folders, symlinks
that leave the folder or dangle, folders named like images, files without an image extension and files that
do not decode are skipped and listed with their reasons, or refused with ``strict``; so are images above the
detector's pixel cap (``input.max_pixels``). Scoring goes through the engine's evaluator, so an image is
decoded and preprocessed exactly as in a benchmark run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from mirage_bench.config import InputSpec
from mirage_bench.data.facts_cache import Result
from mirage_bench.data.images import MAX_PIXELS
from mirage_bench.data.manifest import examine_files
from mirage_bench.data.walk import FoundFile, listed_file, path_problem, walk_files
from mirage_bench.errors import CheckpointError, DataError
from mirage_bench.preprocess import check_pixel_cap


@dataclass(frozen=True)
class Inputs:
    """The images to score, in order, and the files skipped with their (kind, reason)."""

    paths: list[str]
    skipped: list[tuple[str, str, str]]  # (path, kind, reason)

    def summary(self) -> list[str]:
        """``scored N of M files; K skipped:`` and one line per skipped file."""
        total = len(self.paths) + len(self.skipped)
        head = f"scored {len(self.paths)} of {total} files" + (f"; {len(self.skipped)} skipped:" if self.skipped else "")
        return [head, *(f"  {path} ({kind}): {reason}" for path, kind, reason in self.skipped)]


@dataclass(frozen=True)
class Predictions:
    frame: pd.DataFrame  # path, p_fake, logit, threshold, label
    inputs: Inputs


def _found(item: Path) -> list[FoundFile]:
    """The files one input names, each with its problem or None."""
    if item.is_dir():
        return walk_files(item)
    if item.suffix.lower() == ".csv" and item.is_file():
        listing = pd.read_csv(item)
        if "path" not in listing.columns:
            raise DataError(f"CSV list {item} has columns {list(listing.columns)}; it needs a 'path' column of image files")
        return [listed_file(item.parent, entry) for entry in listing["path"].astype(str)]
    if item.is_file() or item.is_symlink():  # a dangling link is skipped with its reason
        return [FoundFile(item.name, str(item), path_problem(Path(os.path.realpath(item.parent)), item))]
    raise DataError(f"{item} is neither an image file, a folder nor a CSV list; check the path")


def collect_inputs(inputs: Sequence[str | Path], strict: bool = False, workers: int = 1,
                   spec: InputSpec | None = None) -> Inputs:
    """Every image named by the inputs, in the order given (folders sorted), decoded once to skip the unusable
    ones and, with the detector's ``spec``, those above its pixel cap; ``strict`` refuses instead, naming every
    skipped file. Duplicates are errors."""
    found = [f for item in map(Path, inputs) for f in _found(item)]
    seen = pd.Series([os.path.realpath(f.path) for f in found if f.problem is None], dtype=str)
    if seen.duplicated().any():
        raise DataError(f"images listed more than once: {sorted(set(seen[seen.duplicated()]))[:3]}")
    candidates = [f.path for f in found if f.problem is None]
    results = dict(zip(candidates, examine_files(candidates, MAX_PIXELS, workers, None)))
    paths, skipped = [], []
    for f in found:
        problem = f.problem or _unusable(results[f.path], f.path, spec)
        if problem is None:
            paths.append(f.path)
        else:
            skipped.append((f.path + "/" * f.rel_path.endswith("/"), *problem))  # a skipped folder shows as one
    chosen = Inputs(paths, skipped)
    if strict and skipped:
        raise DataError("\n".join([f"--strict: {len(skipped)} input file(s) cannot be scored:", *chosen.summary()[1:],
                                   "Remove or repair them, or leave out --strict to score the others."]))
    if not paths:
        raise DataError("\n".join(["no usable images among the inputs", *chosen.summary()[1:]]))
    return chosen


def _unusable(result: Result, path: str, spec: InputSpec | None) -> tuple[str, str] | None:
    """Why a decoded file cannot be scored: the decoder's (kind, reason), or the detector's pixel cap."""
    if isinstance(result, tuple):
        return result
    if spec is not None:
        try:
            check_pixel_cap(result["width"], result["height"], spec, path)
        except DataError as exc:
            return ("above-pixel-cap", str(exc))
    return None


def predict(inputs: Sequence[str | Path], checkpoint: str | Path, device: str = "cpu", batch_size: int = 32,
            strict: bool = False) -> Predictions:
    """Columns ``path, p_fake, logit, threshold, label`` (``fake`` when ``p_fake > threshold``), and what was skipped."""
    import torch

    from mirage_bench.detectors.infra.checkpoint import load_checkpoint
    from mirage_bench.distributed import cores_per_rank
    from mirage_bench.scoring import ReferenceScorer
    from mirage_bench.engine.runner import Options
    from mirage_bench.degradations import expand

    detector, meta = load_checkpoint(checkpoint, device)
    if "threshold" not in meta:
        raise CheckpointError(f"checkpoint {checkpoint} carries no calibrated 'threshold' in its metadata (keys: {sorted(meta)}); "
                              "use a checkpoint written by `mirage-bench train`")
    chosen = collect_inputs(inputs, strict, workers=min(16, cores_per_rank()), spec=detector.input_spec)
    manifest = pd.DataFrame({"path": chosen.paths, "image_id": chosen.paths})
    workers = Options(device=device).resolved_workers(device)  # as a run loads: workers feed a GPU, none on a CPU
    scores = ReferenceScorer(device, batch_size=batch_size, workers=workers).score_one(detector, manifest, expand(["none"]))
    logits = scores.logits[0]
    p_fake = detector.p_fake(torch.from_numpy(logits)).numpy()
    threshold = float(meta["threshold"])
    frame = pd.DataFrame({"path": manifest["path"], "p_fake": p_fake.astype(float), "logit": logits.astype(float),
                          "threshold": threshold, "label": ["fake" if p > threshold else "real" for p in p_fake]})
    return Predictions(frame, chosen)
