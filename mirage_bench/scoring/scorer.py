"""The one scoring interface: each detector's logits of every image of a manifest under every degradation, from
one decode per image shared by the whole grid and every model. Two strategies implement it: ``reference`` (PIL,
scipy and the models' own forwards on the CPU workers' tensors) and ``fast`` (the device degrades, preprocesses and
scores; the reference's pixels bit for bit). Both shard rows ``rank::world`` across ranks and gather the shards in
manifest order on every rank, and both return ``Scores``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import pandas as pd

from mirage_bench.config import InputSpec
from mirage_bench.degradations import Degradation
from mirage_bench.detectors.base import Detector
from mirage_bench.scoring.scores import Scores

OnBatch = Callable[[int], None]  # advanced by the scored (image, degradation, model) triples


class Scorer(ABC):
    """A scoring strategy, configured for one device (``make_scorer``)."""

    def check(self, degradations: Sequence[Degradation]) -> list[str]:
        """Refuse (ConfigError), before any work, what this strategy cannot run here; return notes on what it runs
        otherwise than asked (for the run to print and record)."""
        return []

    @abstractmethod
    def score(self, detectors: Sequence[Detector], manifest: pd.DataFrame, degradations: Sequence[Degradation], *,
              base_seed: int = 0, on_batch: OnBatch | None = None) -> list[Scores]:
        """Each detector's scores, in the order given; degradation seeds are ``image_seed(base_seed, image_id)``."""

    def score_one(self, detector: Detector, manifest: pd.DataFrame, degradations: Sequence[Degradation], *,
                  base_seed: int = 0, on_batch: OnBatch | None = None) -> Scores:
        """``score`` for one detector."""
        return self.score([detector], manifest, degradations, base_seed=base_seed, on_batch=on_batch)[0]


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
