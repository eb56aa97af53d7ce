"""Bootstrap intervals for means over subsets, paired across detectors scored on the same images.

:func:`mirage_bench.metrics.bootstrap` gives the interval of one metric on one subset. Leaderboards and
ablations need the interval of a *mean over subsets* (generators, seeds), and ablations need it for the
*difference* between two detectors on the same images: each resample draws one set of image indices per
subset (reals and fakes separately, as ``metrics.bootstrap`` does) and applies it to every arm, so the
arms stay paired image by image. Metric values come from each metric's own ``batch`` function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mirage_bench import metrics as M
from mirage_bench.metrics import (
    threshold_for,  # the metric's threshold rule, written once in metrics
)


@dataclass
class Subset:
    """One subset's labels and, per arm, its scores (aligned image by image) and calibrated threshold."""

    labels: np.ndarray  # [n]
    scores: list[np.ndarray]  # arms x [n]
    thresholds: list[float]


def point_means(name: str, subsets: Sequence[Subset]) -> np.ndarray:
    """Per arm: the unweighted mean over subsets of the metric (``metrics.compute``)."""
    return np.array([np.mean([M.compute(name, s.labels, s.scores[a], s.thresholds[a]) for s in subsets])
                     for a in range(len(subsets[0].scores))])


def resampled_means(name: str, subsets: Sequence[Subset], n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """``[arms, R]``: the mean over subsets in each paired resample (NaN where the metric is undefined on a subset)."""
    metric = M.METRICS.get(name)
    rng = np.random.default_rng(seed)
    arms = len(subsets[0].scores)
    total = np.zeros((arms, n_boot))
    for s in subsets:
        index = M.resample_index(s.labels, n_boot, rng)
        if M.undefined_on(metric, s.labels):  # NaN in every resample of every arm, as metrics.compute's point value
            total += np.nan
            continue
        for a in range(arms):
            total[a] += M.resampled_values([metric], s.labels, s.scores[a], index, [threshold_for(metric, s.thresholds[a])])[0]
    return total / len(subsets)


#: Percentile interval of finite values (NaN when a resample left a metric undefined everywhere).
interval = M.percentile_interval
