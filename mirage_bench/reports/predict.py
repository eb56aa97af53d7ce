"""``mirage-bench predict``: per-image p_fake from a checkpoint, with its calibrated threshold and the label it implies.

Inputs are image files, folders (searched recursively, sorted) or CSV lists with a ``path`` column
(relative paths are read against the CSV's folder). Scoring goes through the engine's evaluator, so an
image is decoded and preprocessed exactly as in a benchmark run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from mirage_bench.data.images import IMAGE_EXTENSIONS
from mirage_bench.errors import CheckpointError, DataError


def collect_paths(inputs: Sequence[str | Path]) -> list[Path]:
    """Every image named by the inputs, in the order given (folders sorted); duplicates are errors."""
    out: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise DataError(f"folder {item} holds no images (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
            out += found
        elif item.suffix.lower() == ".csv":
            listing = pd.read_csv(item)
            if "path" not in listing.columns:
                raise DataError(f"CSV list {item} has columns {list(listing.columns)}; it needs a 'path' column of image files")
            out += [p if p.is_absolute() else item.parent / p for p in map(Path, listing["path"].astype(str))]
        elif item.is_file():
            out.append(item)
        else:
            raise DataError(f"{item} is neither an image file, a folder nor a CSV list; check the path")
    missing = [str(p) for p in out if not p.is_file()]
    if missing:
        raise DataError(f"{len(missing)} listed images do not exist, e.g. {missing[:3]}")
    seen = pd.Series([str(p.resolve()) for p in out])
    if seen.duplicated().any():
        raise DataError(f"images listed more than once: {sorted(set(seen[seen.duplicated()]))[:3]}")
    return out


def predict(inputs: Sequence[str | Path], checkpoint: str | Path, device: str = "cpu", batch_size: int = 32) -> pd.DataFrame:
    """Columns ``path, p_fake, logit, threshold, label`` (``fake`` when ``p_fake > threshold``)."""
    import torch

    from mirage_bench.detectors.checkpoint import load_checkpoint
    from mirage_bench.engine.evaluator import score_subset
    from mirage_bench.engine.runner import Options
    from mirage_bench.engine.sources import expand_degradations

    paths = collect_paths(inputs)
    detector, meta = load_checkpoint(checkpoint, device)
    if "threshold" not in meta:
        raise CheckpointError(f"checkpoint {checkpoint} carries no calibrated 'threshold' in its metadata (keys: {sorted(meta)}); "
                              "use a checkpoint written by `mirage-bench train`")
    manifest = pd.DataFrame({"path": [str(p) for p in paths], "image_id": [str(p) for p in paths]})
    workers = Options(device=device).resolved_workers(device)  # as a run loads: workers feed a GPU, none on a CPU
    scores = score_subset(detector, manifest, expand_degradations(["none"]), batch_size=batch_size, device=device, workers=workers)
    logits = scores.logits[0]
    p_fake = detector.p_fake(torch.from_numpy(logits)).numpy()
    threshold = float(meta["threshold"])
    return pd.DataFrame({"path": manifest["path"], "p_fake": p_fake.astype(float), "logit": logits.astype(float),
                         "threshold": threshold, "label": ["fake" if p > threshold else "real" for p in p_fake]})
