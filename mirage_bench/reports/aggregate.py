"""One pass over the cells: every subset's metrics with bootstrap intervals, the means over generators and
per family with theirs, and the score histograms the figures draw; each cell is read once.

The interval of a mean over subsets (``mean``, ``family:X`` rows) comes from the resamples the subsets' own
rows used: resample r of the mean is the mean over the subsets of each subset's resample r (every subset draws
its reals and fakes apart, from ``default_rng(0)``, as its own row's interval does), so the pass keeps one
running sum per mean, never the subsets' rows. Subsets are computed in threads, each reading its own cells, so
memory holds a few cells at a time; sums are added in subset order, so the table does not depend on threads.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mirage_bench import metrics as M
from mirage_bench.machine import usable_cores
from mirage_bench.progress import Progress, no_progress
from mirage_bench.reports.cells import Cells

MEAN = "mean"
FAMILY = "family:"  # prefix of the per-family mean rows
#: What a subset's metrics read from its cells.
METRIC_COLUMNS = ["image_id", "label", "p_fake", "threshold", "checkpoint_sha256", "run_id"]
#: Histogram of p_fake per class on clean images, as the figures draw it (``numpy.histogram`` bins).
BINS, RANGE = 20, (0.0, 1.0)


@dataclass
class MetricPass:
    long: pd.DataFrame  # per subset, metric and seed; plus the mean over generators and per family, with intervals
    histograms: pd.DataFrame  # clean cells: detector, generator, label, counts (BINS per row)


def _subset(cells: Cells, key: dict[str, Any], index: Sequence[int], metrics: Sequence[str], n_boot: int,
            level: float) -> tuple[list[dict[str, Any]], np.ndarray, list[dict[str, Any]]]:
    frame = cells.rows(index, METRIC_COLUMNS)
    rows, resampled = M.subset_rows(key, frame, metrics, n_boot, level)
    histograms = []
    if key["degradation"] == "none":
        for label, part in frame.groupby("label", sort=True):
            counts, _ = np.histogram(part["p_fake"].to_numpy(float), bins=BINS, range=RANGE)
            histograms.append({"detector": key["detector"], "generator": key["generator"], "label": int(label), "counts": counts})
    return rows, resampled, histograms


class _Means:
    """Running sums of subsets' resampled values per mean (its key without the generator), in arrival order."""

    def __init__(self) -> None:
        self.sums: dict[tuple, list] = {}

    def add(self, key: tuple, resampled: np.ndarray) -> None:
        total = self.sums.setdefault(key, [np.zeros_like(resampled), 0])
        total[0] += resampled  # NaN where any subset's metric is undefined: the mean is undefined too
        total[1] += 1

    def intervals(self, names: Sequence[str], metrics: Sequence[str], level: float) -> pd.DataFrame:
        rows = []
        for key, (total, count) in self.sums.items():
            for metric, values in zip(metrics, total / count):
                lo, hi = M.percentile_interval(values, level)
                rows.append({**dict(zip(names, key)), "metric": metric, "lo": lo, "hi": hi})
        return pd.DataFrame(rows, columns=[*names, "metric", "lo", "hi"])


def _with_intervals(table: pd.DataFrame, intervals: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    merged = table.drop(columns=["lo", "hi"]).merge(intervals, on=[*keys, "metric"], how="left", validate="one_to_one")
    return merged[table.columns]


def metric_pass(cells: Cells, metrics: Sequence[str] = M.DEFAULT_METRICS, n_boot: int = 1000, level: float = 0.95,
                workers: int | None = None, progress: Progress = no_progress) -> MetricPass:
    """The long table of ``cells`` (per subset and seed: value and bootstrap interval; the unweighted mean over subsets
    and the family means, with intervals) and their clean score histograms; ``progress`` counts the subsets done."""
    metrics = list(metrics)
    catalogue = cells.catalogue
    keys = list(M.SUBSET_KEYS)
    mean_keys = [k for k in keys if k != "generator"]
    groups = [(key, part.index) for key, part in catalogue.groupby(keys, sort=True, dropna=False)]
    family = dict(zip(catalogue["generator"], catalogue["family"]))

    def one(item: tuple[Any, pd.Index]) -> tuple[list[dict[str, Any]], np.ndarray, list[dict[str, Any]]]:
        key, index = item
        return _subset(cells, dict(zip(keys, key)), list(index), metrics, n_boot, level)

    per_subset, histograms, means, families = [], [], _Means(), _Means()
    workers = workers or min(16, usable_cores())
    advance = progress(f"metrics of {len(groups):,} subsets, {n_boot} bootstrap resamples each", len(groups))
    with ThreadPoolExecutor(max(1, min(workers, len(groups)))) as pool:
        for (key, _), (rows, resampled, hist) in zip(groups, pool.map(one, groups)):
            advance(1)
            per_subset += rows
            histograms += hist
            named = dict(zip(keys, key))
            means.add(tuple(named[k] for k in mean_keys), resampled)
            families.add((*(named[k] for k in mean_keys), family[named["generator"]]), resampled)
    per_subset = pd.DataFrame(per_subset, columns=[*keys, "metric", "value", "lo", "hi", "n"])
    with_mean = M.mean_over(per_subset, "generator", MEAN)
    is_mean = with_mean["generator"] == MEAN
    mean_rows = _with_intervals(with_mean[is_mean], means.intervals(mean_keys, metrics, level), mean_keys)
    by_family = M.family_means(per_subset, catalogue[["generator", "family"]])
    by_family = by_family.assign(lo=np.nan, hi=np.nan)
    by_family = _with_intervals(by_family, families.intervals([*mean_keys, "family"], metrics, level), [*mean_keys, "family"])
    by_family = by_family.rename(columns={"family": "generator"})
    by_family["generator"] = FAMILY + by_family["generator"].astype(str)
    long = pd.concat([with_mean[~is_mean], mean_rows, by_family[with_mean.columns]], ignore_index=True)
    return MetricPass(long, pd.DataFrame(histograms, columns=["detector", "generator", "label", "counts"]))
