"""Scoring a subset under a list of degradations: one decode per image for the whole grid.

Each image is decoded once; every degradation is applied to the decoded image at native resolution
(seed = ``image_seed(base_seed, image_id)``), then the recipe's evaluation transform runs. The model sees
one batch per degradation, so the batches (and hence the logits, bit for bit on CPU) do not depend on
which other degradations are scored alongside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from mirage_bench.config import InputSpec
from mirage_bench.detectors.base import Detector
from mirage_bench.engine import distributed, sources
from mirage_bench.preprocess import eval_transform


class _GridImages(Dataset):
    """Item ``i``: ``[D, 3, H, W]``, image ``i`` under each of the D degradations."""

    def __init__(self, manifest: pd.DataFrame, degradations: Sequence[Any], spec: InputSpec, base_seed: int) -> None:
        self.paths = manifest["path"].tolist()
        self.ids = manifest["image_id"].tolist()
        self.degradations = list(degradations)
        self.spec = spec
        self.base_seed = base_seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        image = sources.open_rgb(self.paths[i])
        seed = sources.image_seed(self.base_seed, self.ids[i])
        return torch.stack([eval_transform(d.apply(image, seed), self.spec, self.paths[i]) for d in self.degradations])


@dataclass
class Scores:
    """Logits of one subset: ``logits[d]`` is aligned with ``manifest`` rows for degradation ``d``."""

    manifest: pd.DataFrame
    degradations: list[Any]
    logits: np.ndarray  # [D, N] fp32
    seeds: np.ndarray  # [N] degradation seeds


@torch.no_grad()
def score_subset(
    detector: Detector,
    manifest: pd.DataFrame,
    degradations: Sequence[Any],
    *,
    base_seed: int = 0,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    workers: int = 0,
    on_batch: Callable[[int], None] | None = None,
) -> Scores:
    """Logits of every image of ``manifest`` under every degradation; sharded across ranks when distributed.

    Each rank scores rows ``rank::world`` (no padding, so no duplicates); the shards are gathered and put
    back in manifest order on every rank.
    """
    manifest = manifest.reset_index(drop=True)
    rank, world = distributed.rank_and_world()
    shard = np.arange(len(manifest))[rank::world]
    dataset = _GridImages(manifest.iloc[shard], degradations, detector.input_spec, base_seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    was_training = detector.training
    detector.eval()
    chunks = []
    for grid in loader:  # [B, D, 3, H, W]
        grid = grid.to(device)
        chunks.append(torch.stack([detector(grid[:, d]).float().cpu() for d in range(grid.shape[1])]))  # [D, B]
        if on_batch:
            on_batch(grid.shape[0] * grid.shape[1])
    detector.train(was_training)
    local = torch.cat(chunks, dim=1).numpy() if chunks else np.zeros((len(degradations), 0), np.float32)
    logits = distributed.gather_shards(shard, local, len(manifest))
    seeds = np.array([sources.image_seed(base_seed, i) for i in manifest["image_id"]], dtype=np.int64)
    assert_exactly_once(manifest, logits)
    return Scores(manifest, list(degradations), logits, seeds)


def assert_exactly_once(manifest: pd.DataFrame, logits: np.ndarray) -> None:
    from mirage_bench.errors import DataError

    if manifest["image_id"].duplicated().any():
        dup = manifest.loc[manifest["image_id"].duplicated(), "image_id"].tolist()[:5]
        raise DataError(f"the subset lists image ids more than once ({dup}...); rebuild the manifest")
    if logits.shape[1] != len(manifest):
        raise DataError(f"scored {logits.shape[1]} images for a subset of {len(manifest)}; every image must be scored exactly once")
