"""The reference scoring strategy: CPU workers decode each image once, apply every degradation to it at native
resolution (seed = ``image_seed(base_seed, image_id)``) and run each distinct evaluation transform of the models
scored together once (``preprocess``); models sharing a frozen encoder run it once (``trunks``). Each model sees
one batch per degradation, so the batches (and hence the logits, bit for bit on CPU) do not depend on which other
degradations or models are scored alongside.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from mirage_bench.config import InputSpec
from mirage_bench.data.images import open_rgb
from mirage_bench.degradations import Degradation, image_seed
from mirage_bench.detectors.base import Detector
from mirage_bench.errors import worker_errors
from mirage_bench.preprocess import eval_transform
from mirage_bench.scoring.scorer import OnBatch, Scorer, distinct_specs, in_eval_mode
from mirage_bench.scoring.scores import Scores, gathered_scores, rank_shard
from mirage_bench.scoring.timing import TrunkClock
from mirage_bench.scoring.trunks import Trunk, model_trunks


class _GridImages(Dataset):
    """Item ``i``: image ``i`` under each of the D degradations through each of the S input specs,
    ``item[s][d]`` a ``[3, H, W]`` tensor (sizes may differ for detectors that read native resolution, e.g.
    after a downscale). The image is decoded and degraded once for all specs."""

    def __init__(self, manifest: pd.DataFrame, degradations: Sequence[Degradation], specs: Sequence[InputSpec], base_seed: int) -> None:
        self.paths = manifest["path"].tolist()
        self.ids = manifest["image_id"].tolist()
        self.degradations = list(degradations)
        self.specs = list(specs)
        self.base_seed = base_seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> list[list[torch.Tensor]]:
        image = open_rgb(self.paths[i])
        seed = image_seed(self.base_seed, self.ids[i])
        degraded = [d.apply(image, seed) for d in self.degradations]
        return [[eval_transform(x, spec, self.paths[i]) for x in degraded] for spec in self.specs]


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


class ReferenceScorer(Scorer):
    """PIL, scipy and each model's own forward; ``workers`` DataLoader processes decode, degrade and preprocess."""

    impl = "reference"

    def __init__(self, device: str | torch.device = "cpu", *, batch_size: int = 64, workers: int = 0) -> None:
        self.device, self.batch_size, self.workers = device, batch_size, workers

    @torch.no_grad()
    def score(self, detectors: Sequence[Detector], manifest: pd.DataFrame, degradations: Sequence[Degradation], *,
              base_seed: int = 0, on_batch: OnBatch | None = None) -> list[Scores]:
        manifest, shard = rank_shard(manifest)
        specs, spec_of = distinct_specs(detectors)
        dataset = _GridImages(manifest.iloc[shard], degradations, specs, base_seed)
        loader = DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.workers, collate_fn=keep_list)
        trunks = model_trunks(detectors, spec_of)
        clock = TrunkClock(trunks, self.device)
        chunks: list[list[torch.Tensor]] = [[] for _ in detectors]
        with in_eval_mode(detectors):
            for grid in worker_errors(loader):  # B items, each S lists of D tensors
                for t, trunk in enumerate(trunks):
                    with clock.timing(t):
                        logits = torch.stack([forward_by_size(trunk, [item[trunk.spec][d] for item in grid], self.device)
                                              for d in range(len(degradations))]).cpu()  # [D, M, B]
                    for m, (k, _) in enumerate(trunk.heads):
                        chunks[k].append(logits[:, m])
                if on_batch:
                    on_batch(len(grid) * len(degradations) * len(detectors))
        impls = [self.impl] * len(degradations)
        return [gathered_scores(manifest, degradations, shard, _joined(out, len(degradations)), base_seed, impls, seconds)
                for out, seconds in zip(chunks, clock.model_seconds(len(detectors)))]


def _joined(chunks: list[torch.Tensor], degradations: int) -> np.ndarray:
    return torch.cat(chunks, dim=1).numpy() if chunks else np.zeros((degradations, 0), np.float32)
