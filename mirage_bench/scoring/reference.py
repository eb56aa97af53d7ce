"""Scoring a subset under a list of degradations: one decode per image for the whole grid and every model.

Each image is decoded once; every degradation is applied to the decoded image at native resolution
(seed = ``image_seed(base_seed, image_id)``), then each distinct evaluation transform of the models scored
together runs once, and models sharing a frozen encoder run it once (``trunks``). Each model sees one batch
per degradation, so the batches (and hence the logits, bit for bit on CPU) do not depend on which other
degradations or models are scored alongside.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from mirage_bench.config import InputSpec
from mirage_bench.detectors.base import Detector
from mirage_bench.engine import distributed, sources
from mirage_bench.scoring.timing import TrunkClock
from mirage_bench.scoring.trunks import Trunk, model_trunks
from mirage_bench.errors import worker_errors
from mirage_bench.preprocess import eval_transform


class _GridImages(Dataset):
    """Item ``i``: image ``i`` under each of the D degradations through each of the S input specs,
    ``item[s][d]`` a ``[3, H, W]`` tensor (sizes may differ for detectors that read native resolution, e.g.
    after a downscale). The image is decoded and degraded once for all specs."""

    def __init__(self, manifest: pd.DataFrame, degradations: Sequence[Any], specs: Sequence[InputSpec], base_seed: int) -> None:
        self.paths = manifest["path"].tolist()
        self.ids = manifest["image_id"].tolist()
        self.degradations = list(degradations)
        self.specs = list(specs)
        self.base_seed = base_seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> list[list[torch.Tensor]]:
        image = sources.open_rgb(self.paths[i])
        seed = sources.image_seed(self.base_seed, self.ids[i])
        degraded = [d.apply(image, seed) for d in self.degradations]
        return [[eval_transform(x, spec, self.paths[i]) for x in degraded] for spec in self.specs]


@contextmanager
def in_eval_mode(detectors: Sequence[Detector]) -> Iterator[None]:
    """The detectors in eval mode for scoring, each back in its own mode afterwards (training validates too)."""
    modes = [detector.training for detector in detectors]
    for detector in detectors:
        detector.eval()
    try:
        yield
    finally:
        for detector, mode in zip(detectors, modes):
            detector.train(mode)


def distinct_specs(detectors: Sequence[Detector]) -> tuple[list[InputSpec], list[int]]:
    """The distinct input specs of ``detectors`` (first appearance order) and each detector's index into them:
    models that read images alike share one transform per image."""
    specs: list[InputSpec] = []
    index = []
    for detector in detectors:
        if detector.input_spec not in specs:
            specs.append(detector.input_spec)
        index.append(specs.index(detector.input_spec))
    return specs, index


def keep_list(items: list) -> list:
    """A DataLoader collate that keeps the items as they are (their sizes may differ)."""
    return items


def map_by_shape(tensors: list[torch.Tensor], fn: Callable[[torch.Tensor], torch.Tensor]) -> list[torch.Tensor]:
    """Apply a batched ``fn`` to each group of equally sized tensors; results back in input order."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for k, t in enumerate(tensors):
        groups.setdefault(tuple(t.shape), []).append(k)
    out: list[torch.Tensor | None] = [None] * len(tensors)
    for indices in groups.values():
        for k, result in zip(indices, fn(torch.stack([tensors[k] for k in indices])).unbind(0)):
            out[k] = result
    return out  # type: ignore[return-value]


def forward_by_size(trunk: Trunk, images: list[torch.Tensor], device: str | torch.device) -> torch.Tensor:
    """Logits ``[M, B]`` on ``device`` of the trunk's M models, in input order, one trunk forward per distinct
    size (one in all for fixed-size specs). The caller moves them to the CPU, once, so no forward waits for a
    device-to-host copy."""
    return torch.stack(map_by_shape(images, lambda x: torch.stack(trunk.logits(x.to(device)), dim=1))).T


@dataclass
class Scores:
    """Logits of one subset: ``logits[d]`` is aligned with ``manifest`` rows for degradation ``d``."""

    manifest: pd.DataFrame
    degradations: list[Any]
    logits: np.ndarray  # [D, N] fp32
    seeds: np.ndarray  # [N] degradation seeds
    forward_seconds: float = 0.0  # this rank's time in the model's forwards (its share of a shared encoder's)


def score_subset(detector: Detector, manifest: pd.DataFrame, degradations: Sequence[Any], **kwargs: Any) -> Scores:
    """Logits of every image of ``manifest`` under every degradation (``score_models`` for one detector)."""
    return score_models([detector], manifest, degradations, **kwargs)[0]


@torch.no_grad()
def score_models(
    detectors: Sequence[Detector],
    manifest: pd.DataFrame,
    degradations: Sequence[Any],
    *,
    base_seed: int = 0,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    workers: int = 0,
    on_batch: Callable[[int], None] | None = None,
) -> list[Scores]:
    """Each detector's logits of every image of ``manifest`` under every degradation, from one decode per image;
    sharded across ranks when distributed.

    Each rank scores rows ``rank::world`` (no padding, so no duplicates); the shards are gathered and put
    back in manifest order on every rank. ``on_batch`` counts scored (image, degradation, model) triples.
    """
    manifest, shard = rank_shard(manifest)
    specs, spec_of = distinct_specs(detectors)
    dataset = _GridImages(manifest.iloc[shard], degradations, specs, base_seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=keep_list)
    trunks = model_trunks(detectors, spec_of)
    clock = TrunkClock(trunks, device)
    chunks: list[list[torch.Tensor]] = [[] for _ in detectors]
    with in_eval_mode(detectors):
        for grid in worker_errors(loader):  # B items, each S lists of D tensors
            for t, trunk in enumerate(trunks):
                with clock.timing(t):
                    logits = torch.stack([forward_by_size(trunk, [item[trunk.spec][d] for item in grid], device)
                                          for d in range(len(degradations))]).cpu()  # [D, M, B]
                for m, (k, _) in enumerate(trunk.heads):
                    chunks[k].append(logits[:, m])
            if on_batch:
                on_batch(len(grid) * len(degradations) * len(detectors))
    forward = clock.model_seconds(len(detectors))
    return [replace(gathered_scores(manifest, degradations, shard, _joined(out, len(degradations)), base_seed), forward_seconds=f)
            for out, f in zip(chunks, forward)]


def _joined(chunks: list[torch.Tensor], degradations: int) -> np.ndarray:
    return torch.cat(chunks, dim=1).numpy() if chunks else np.zeros((degradations, 0), np.float32)


def rank_shard(manifest: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """``manifest`` re-indexed, and the positions this rank scores: rows ``rank::world`` (no padding, so no
    duplicates). Both scorers shard this way, so their gathered scores line up."""
    manifest = manifest.reset_index(drop=True)
    rank, world = distributed.rank_and_world()
    return manifest, np.arange(len(manifest))[rank::world]


def gathered_scores(manifest: pd.DataFrame, degradations: Sequence[Any], shard: np.ndarray, local: np.ndarray,
                    base_seed: int) -> Scores:
    """Every rank's ``[D, len(shard)]`` logits put back in manifest order on every rank, with each image's
    degradation seed, after checking that every image was scored exactly once."""
    logits = distributed.gather_shards(shard, local, len(manifest))
    seeds = np.array([sources.image_seed(base_seed, i) for i in manifest["image_id"]], dtype=np.int64)
    assert_exactly_once(manifest, logits)
    return Scores(manifest, list(degradations), logits, seeds)


def refuse_repeated_ids(manifest: pd.DataFrame, name: str = "the subset") -> None:
    """Each image is listed once: its id keys its predictions and its degradation seed."""
    from mirage_bench.errors import DataError

    repeated = manifest["image_id"].duplicated()
    if repeated.any():
        raise DataError(f"{name} lists image ids more than once ({manifest.loc[repeated, 'image_id'].tolist()[:5]}...); rebuild the manifest")


def assert_exactly_once(manifest: pd.DataFrame, logits: np.ndarray) -> None:
    from mirage_bench.errors import DataError

    refuse_repeated_ids(manifest)
    if logits.shape[1] != len(manifest):
        raise DataError(f"scored {logits.shape[1]} images for a subset of {len(manifest)}; every image must be scored exactly once")
