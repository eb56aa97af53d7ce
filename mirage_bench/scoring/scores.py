"""What a scorer returns, and the sharding both strategies use so that their gathered scores line up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from mirage_bench import distributed
from mirage_bench.degradations import Degradation, image_seed
from mirage_bench.errors import DataError


@dataclass
class Scores:
    """Logits of one subset: ``logits[d]`` is aligned with ``manifest`` rows for degradation ``d``, and ``impls[d]``
    names the implementation that produced them (``reference``, or the fast path's decoder and devices)."""

    manifest: pd.DataFrame
    degradations: list[Degradation]
    logits: np.ndarray  # [D, N] fp32
    seeds: np.ndarray  # [N] degradation seeds
    impls: list[str] = field(default_factory=list)
    forward_seconds: float = 0.0  # this rank's time in the model's forwards (its share of a shared encoder's)


def rank_shard(manifest: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """``manifest`` re-indexed, and the positions this rank scores: rows ``rank::world`` (no padding, so no
    duplicates)."""
    manifest = manifest.reset_index(drop=True)
    rank, world = distributed.rank_and_world()
    return manifest, np.arange(len(manifest))[rank::world]


def gathered_scores(manifest: pd.DataFrame, degradations: Sequence[Degradation], shard: np.ndarray, local: np.ndarray,
                    base_seed: int, impls: Sequence[str], forward_seconds: float) -> Scores:
    """Every rank's ``[D, len(shard)]`` logits put back in manifest order on every rank, with each image's
    degradation seed, after checking that every image was scored exactly once."""
    logits = distributed.gather_shards(shard, local, len(manifest))
    seeds = np.array([image_seed(base_seed, i) for i in manifest["image_id"]], dtype=np.int64)
    refuse_repeated_ids(manifest)
    if logits.shape[1] != len(manifest):
        raise DataError(f"scored {logits.shape[1]} images for a subset of {len(manifest)}; every image must be scored exactly once")
    return Scores(manifest, list(degradations), logits, seeds, list(impls), forward_seconds)


def refuse_repeated_ids(manifest: pd.DataFrame, name: str = "the subset") -> None:
    """Each image is listed once: its id keys its predictions and its degradation seed."""
    repeated = manifest["image_id"].duplicated()
    if repeated.any():
        raise DataError(f"{name} lists image ids more than once ({manifest.loc[repeated, 'image_id'].tolist()[:5]}...); rebuild the manifest")
