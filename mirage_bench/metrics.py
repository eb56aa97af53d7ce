"""Metrics over stored predictions: point estimates (scikit-learn), bootstrap intervals, seed summaries.

Every table is computed here from the prediction store; nothing is computed while scoring. Conventions
(the field's): label 1 = fake, score = ``p_fake``, an image is called fake when
``p_fake > threshold``. A metric that needs both classes gives NaN with a warning on a single-class subset,
never a number. Oracle accuracy chooses its threshold on the test labels and says so in its name.

Each :class:`Metric` has a point function ``fn(labels, scores, threshold)`` and a ``batch`` function that
evaluates many bootstrap resamples at once (:class:`Resampled` -> ``[R]``); the tests hold both equal to
scikit-learn, and the batch of any resample equal to the point function on that resample.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

import numpy as np
import pandas as pd

from mirage_bench.errors import DataError
from mirage_bench.machine import usable_cores
from mirage_bench.progress import Progress, no_progress
from mirage_bench.registry import Registry

ThresholdKind = Literal["fixed", "calibrated", "none"]
PointFn = Callable[[np.ndarray, np.ndarray, float], float]
BatchFn = Callable[["Resampled", float], np.ndarray]

#: Columns that name one evaluated subset in a predictions frame (one cell of a results table). The recipe hash and
#: the evaluation implementation are part of it: two recipes of one card (``--set``), or the reference and the fast
#: path, are different results and are never pooled into one number.
SUBSET_KEYS = ["detector", "recipe_hash", "impl", "train_generators", "seed", "degradation", "generator"]


@dataclass(frozen=True)
class Metric:
    """One metric: what it is called, which way is better, which threshold it reads, how to compute it."""

    name: str
    title: str
    higher_is_better: bool
    threshold: ThresholdKind
    needs_both_classes: bool
    fn: PointFn
    batch: BatchFn
    oracle: bool = False


METRICS: Registry[Metric] = Registry("metric")

#: Resample x distinct-score cells counted at once (bounds the memory of a bootstrap on a large subset).
CHUNK_CELLS = 1 << 22


@dataclass(frozen=True)
class Resampled:
    """Bootstrap resamples of one subset as counts of reals and fakes per distinct score.

    Why: a resample only repeats the subset's own scores, so the scores are sorted once and each resample is
    a row of counts; ranking metrics become cumulative sums instead of one sort per resample. A GenImage-sized
    subset (12,000 images, 1,000 resamples, seven metrics) took 8.5 s per table cell sorting, 0.6 s counting
    (``benchmarks/metrics_throughput.py``).
    """

    values: np.ndarray  # [G] the distinct scores, ascending
    reals: np.ndarray  # [R, G] how many resampled reals have each score
    fakes: np.ndarray  # [R, G]

    @classmethod
    def of(cls, labels: np.ndarray, scores: np.ndarray, index: np.ndarray) -> "Resampled":
        """``index`` ``[R, n]``: the image indices each resample draws."""
        return cls.counted(labels, *np.unique(scores, return_inverse=True), index)

    @classmethod
    def counted(cls, labels: np.ndarray, values: np.ndarray, group: np.ndarray, index: np.ndarray) -> "Resampled":
        """:meth:`of` with the scores already split into distinct ``values`` and each image's ``group`` in them."""
        rows, width = len(index), len(values)
        cell = np.arange(rows)[:, None] * width + group.reshape(-1)[index]  # [R, n]
        fake = np.asarray(labels)[index] == 1

        def count(mask: np.ndarray) -> np.ndarray:
            return np.bincount(cell[mask], minlength=rows * width).reshape(rows, width)

        return cls(values, count(~fake), count(fake))

    def above(self, threshold: float) -> np.ndarray:
        """``[G]``: which distinct scores are called fake (``p_fake > threshold``)."""
        return self.values > threshold


def resample_index(labels: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``[R, n]`` image indices of ``n_boot`` resamples that draw reals and fakes separately (class counts fixed)."""
    return np.concatenate([rng.choice(np.flatnonzero(labels == c), size=(n_boot, int(np.sum(labels == c))), replace=True)
                           for c in np.unique(labels)], axis=1)


def resampled_values(metrics: Sequence[Metric], labels: np.ndarray, scores: np.ndarray, index: np.ndarray,
                     thresholds: Sequence[float]) -> np.ndarray:
    """``[metrics, R]``: each metric (at its threshold) on each resample of ``index`` (``[R, n]``); the resamples
    are counted once for all metrics, a bounded number at a time."""
    values, group = np.unique(scores, return_inverse=True)  # sorted once for every chunk
    widest = max(1, index.shape[1], len(values))  # a chunk holds [rows, n] indices and [rows, G] counts
    rows = max(1, CHUNK_CELLS // widest)
    parts = [np.empty((len(metrics), 0))]  # no resamples: no values
    for start in range(0, len(index), rows):
        resampled = Resampled.counted(labels, values, group, index[start:start + rows])
        parts.append(np.stack([m.batch(resampled, t) for m, t in zip(metrics, thresholds)]))
    return np.concatenate(parts, axis=1)


def _register(metric: Metric) -> None:
    METRICS.register(metric.name, metric)


# -- point and batch implementations ---------------------------------------------------------------------


def _acc(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(labels, (scores > threshold).astype(int)))


def _acc_batch(r: Resampled, threshold: float) -> np.ndarray:
    above = r.above(threshold)
    return (r.fakes[:, above].sum(axis=1) + r.reals[:, ~above].sum(axis=1)) / (r.fakes.sum(axis=1) + r.reals.sum(axis=1))


def _class_acc(cls: int) -> tuple[PointFn, BatchFn]:
    def point(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
        from sklearn.metrics import recall_score

        return float(recall_score(labels, (scores > threshold).astype(int), pos_label=cls, zero_division=np.nan))

    def batch(r: Resampled, threshold: float) -> np.ndarray:
        counts, called = (r.fakes, r.above(threshold)) if cls == 1 else (r.reals, ~r.above(threshold))
        with np.errstate(invalid="ignore", divide="ignore"):
            return counts[:, called].sum(axis=1) / counts.sum(axis=1)

    return point, batch


def _ap(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(labels, scores))


def _ap_batch(r: Resampled, threshold: float) -> np.ndarray:
    # Step-wise AP as scikit-learn computes it: over distinct scores from the top, delta-recall x precision.
    fakes, both = r.fakes[:, ::-1], (r.fakes + r.reals)[:, ::-1]
    tp, called = np.cumsum(fakes, axis=1), np.cumsum(both, axis=1)
    precision = np.divide(tp, called, out=np.zeros(tp.shape), where=called > 0)  # 0 only where no fake adds recall
    pos = tp[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pos > 0, (fakes * precision).sum(axis=1) / pos, np.nan)


def _auroc(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def _auroc_batch(r: Resampled, threshold: float) -> np.ndarray:
    # Mann-Whitney: each fake beats the reals below its score and ties with half of those at it.
    reals_below = np.cumsum(r.reals, axis=1) - r.reals
    pos, neg = r.fakes.sum(axis=1), r.reals.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (r.fakes * (reals_below + 0.5 * r.reals)).sum(axis=1) / (pos * neg)


def _oracle_acc_batch(r: Resampled, threshold: float) -> np.ndarray:
    # Call every score up to a boundary between distinct scores real (or none); keep the best boundary.
    zeros = np.zeros((len(r.reals), 1), dtype=r.reals.dtype)
    reals_below = np.concatenate([zeros, np.cumsum(r.reals, axis=1)], axis=1)  # [R, G+1]
    fakes_above = r.fakes.sum(axis=1, keepdims=True) - np.concatenate([zeros, np.cumsum(r.fakes, axis=1)], axis=1)
    return (reals_below + fakes_above).max(axis=1) / (r.reals.sum(axis=1) + r.fakes.sum(axis=1))


def _oracle_acc(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    from sklearn.metrics import roc_curve

    # Every ROC point is a threshold; accuracy = (TP + TN) / n at each, maximised.
    fpr, tpr, _ = roc_curve(labels, scores)
    pos, neg = labels.sum(), len(labels) - labels.sum()
    return float(np.max((tpr * pos + (1 - fpr) * neg) / len(labels)))


_real_point, _real_batch = _class_acc(0)
_fake_point, _fake_batch = _class_acc(1)
for _m in (
    Metric("acc", "Acc", True, "fixed", False, _acc, _acc_batch),
    Metric("real_acc", "Real acc", True, "fixed", False, _real_point, _real_batch),
    Metric("fake_acc", "Fake acc", True, "fixed", False, _fake_point, _fake_batch),
    Metric("acc_cal", "Acc@cal", True, "calibrated", False, _acc, _acc_batch),
    Metric("ap", "AP", True, "none", True, _ap, _ap_batch),
    Metric("auroc", "AUROC", True, "none", True, _auroc, _auroc_batch),
    Metric("oracle_acc", "Oracle acc (test labels)", True, "none", True, _oracle_acc, _oracle_acc_batch, oracle=True),
):
    _register(_m)

DEFAULT_METRICS = ("acc", "real_acc", "fake_acc", "acc_cal", "ap", "auroc", "oracle_acc")


# -- computing ----------------------------------------------------------------------------------------------


def threshold_for(metric: Metric, threshold: float | None) -> float:
    if metric.threshold == "fixed":
        return 0.5
    if metric.threshold == "calibrated":
        if threshold is None or not np.isfinite(threshold):
            raise ValueError(f"metric {metric.name!r} needs the calibrated threshold; got {threshold!r}")
        return float(threshold)
    return float("nan")


def undefined_on(metric: Metric, labels: np.ndarray) -> bool:
    """Whether ``metric`` is undefined (NaN) on a subset with these labels: one class for a ranking metric.

    The batch functions would give a number there (AP 1.0 on fakes only), so every caller asks this first.
    """
    return metric.needs_both_classes and len(np.unique(labels)) < 2


def compute(name: str, labels: Sequence[int], scores: Sequence[float], threshold: float | None = None, where: str = "") -> float:
    """One metric on one subset. Single-class subsets give NaN (with a warning) for ranking metrics."""
    metric = METRICS.get(name)
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    if len(y) == 0:
        raise ValueError(f"metric {name!r}{where}: no predictions to score")
    if undefined_on(metric, y):
        warnings.warn(f"metric {name!r}{where}: only one class present ({int(y[0])}); reporting NaN", stacklevel=2)
        return float("nan")
    return metric.fn(y, s, threshold_for(metric, threshold))


def bootstrap(
    name: str, labels: Sequence[int], scores: Sequence[float], threshold: float | None = None,
    n_boot: int = 1000, level: float = 0.95, seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval, resampling reals and fakes separately (class counts stay fixed)."""
    return bootstrap_intervals([name], labels, scores, threshold, n_boot, level, seed)[name]


def bootstrap_intervals(
    names: Sequence[str], labels: Sequence[int], scores: Sequence[float], threshold: float | None = None,
    n_boot: int = 1000, level: float = 0.95, seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """:func:`bootstrap` of several metrics over the same resamples, drawn and counted once."""
    values = bootstrap_values(names, labels, scores, threshold, n_boot, seed)
    return {name: percentile_interval(row, level) for name, row in zip(names, values)}


def bootstrap_values(
    names: Sequence[str], labels: Sequence[int], scores: Sequence[float], threshold: float | None = None,
    n_boot: int = 1000, seed: int = 0,
) -> np.ndarray:
    """``[metrics, R]``: each metric on each of ``n_boot`` resamples of one subset (reals and fakes drawn apart,
    from ``default_rng(seed)``); a row of NaN where the metric is undefined on the subset.

    Why the values and not only the interval: the interval of a mean over subsets (generators, a family) is the
    percentile interval of the mean of these rows, resample by resample, so each subset keeps the draws its own
    interval used.
    """
    metrics = [METRICS.get(name) for name in names]
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    out = np.full((len(metrics), n_boot), np.nan)
    todo = [i for i, m in enumerate(metrics) if not undefined_on(m, y)]
    if not todo or not n_boot:
        return out
    index = resample_index(y, n_boot, np.random.default_rng(seed))
    out[todo] = resampled_values([metrics[i] for i in todo], y, s, index, [threshold_for(metrics[i], threshold) for i in todo])
    return out


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the finite values (NaN, NaN when there are none)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def _runs(group: pd.DataFrame) -> str:
    return ", ".join(sorted(set(group["run_id"].astype(str)))) if "run_id" in group else "(no run ids)"


def _one_scoring(group: pd.DataFrame, where: str) -> float:
    """The subset's calibrated threshold, after checking that it holds one checkpoint's scores of distinct images.

    Why: a subset's metric counts every image once; predictions of two checkpoints (or the same image twice)
    in one group would be pooled into one number that describes neither.
    """
    if "checkpoint_sha256" in group and group["checkpoint_sha256"].nunique(dropna=False) > 1:
        shas = sorted(set(group["checkpoint_sha256"].astype(str)))
        raise DataError(f"{where}: the predictions come from {len(shas)} checkpoints ({', '.join(s[:12] for s in shas)}) "
                        f"in runs {_runs(group)}; one recipe, training set and seed must name one checkpoint. "
                        "Report these runs separately (pass the run ids of one of them)")
    repeated = group["image_id"][group["image_id"].duplicated()]
    if len(repeated):
        raise DataError(f"{where}: {repeated.nunique()} images are scored more than once (e.g. image_id {repeated.iloc[0]}; "
                        f"{len(group)} predictions of {group['image_id'].nunique()} images, runs {_runs(group)}); a metric "
                        "counts every image once. Report these runs separately (pass one run id) or re-run into a new --out folder")
    thresholds = group["threshold"].unique() if "threshold" in group else np.array([np.nan])
    if len(thresholds) != 1:
        raise DataError(f"{where}: the predictions carry {len(thresholds)} different thresholds ({sorted(thresholds)}) in runs "
                        f"{_runs(group)}; one checkpoint has one calibrated threshold. Report these runs separately")
    return float(thresholds[0])


def subset_metrics(
    predictions: pd.DataFrame, metrics: Sequence[str] = DEFAULT_METRICS, by: Sequence[str] = SUBSET_KEYS,
    n_boot: int = 1000, level: float = 0.95, workers: int | None = None, progress: Progress = no_progress,
) -> pd.DataFrame:
    """One row per subset (``by``) and metric: ``value``, ``lo``, ``hi`` (bootstrap), ``n``.

    Works on any predictions frame with the ``by`` columns, ``image_id``, ``label``, ``p_fake`` and (for
    ``acc_cal``) ``threshold``; each group must hold one checkpoint's scores of distinct images. Subsets are
    computed in ``workers`` threads (default: every core, at most 16; numpy releases the GIL in the bootstrap's
    array work), each with its own seeded resamples, so the table does not depend on the thread count. ``progress``
    counts the subsets done (:mod:`mirage_bench.progress`).
    """
    missing = sorted({*by, "image_id", "label", "p_fake"} - set(predictions.columns))
    if missing:
        raise DataError(f"the predictions frame lacks the columns {missing} that per-subset metrics group and check by "
                        f"(it has {sorted(predictions.columns)}); pass store rows (mirage_bench.store.PREDICTION_COLUMNS)")
    groups = list(predictions.groupby(list(by), sort=True, dropna=False))
    workers = workers or min(16, usable_cores())

    def one(item: tuple[Any, pd.DataFrame]) -> list[dict[str, Any]]:
        key, group = item
        return subset_rows(dict(zip(by, key if isinstance(key, tuple) else (key,))), group, metrics, n_boot, level)[0]

    advance = progress(f"metrics of {len(groups):,} subsets, {n_boot} bootstrap resamples each", len(groups))
    rows: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max(1, min(workers, len(groups)))) as pool:
        for subset in pool.map(one, groups):
            rows += subset
            advance(1)
    return pd.DataFrame(rows)


def subset_rows(key: dict[str, Any], group: pd.DataFrame, metrics: Sequence[str], n_boot: int,
                level: float) -> tuple[list[dict[str, Any]], np.ndarray]:
    """One subset's rows (``key``, ``metric``, ``value``, ``lo``, ``hi``, ``n``) and its resampled values
    ``[metrics, n_boot]`` (:func:`bootstrap_values`), which intervals of means over subsets average."""
    where = " on " + ", ".join(f"{k}={v}" for k, v in key.items())
    threshold = _one_scoring(group, where)
    # acc_cal needs the calibrated threshold: NaN where the predictions carry none
    defined = [n for n in metrics if METRICS.get(n).threshold != "calibrated" or np.isfinite(threshold)]
    resampled = np.full((len(metrics), n_boot), np.nan)
    if n_boot and defined:
        rows = [list(metrics).index(n) for n in defined]
        resampled[rows] = bootstrap_values(defined, group["label"], group["p_fake"], threshold, n_boot)
    out = []
    for name, values in zip(metrics, resampled):
        value = compute(name, group["label"], group["p_fake"], threshold, where) if name in defined else float("nan")
        lo, hi = percentile_interval(values, level)
        out.append({**key, "metric": name, "value": value, "lo": lo, "hi": hi, "n": len(group)})
    return out, resampled


def _strict_mean(values: pd.Series) -> float:
    return float(values.mean(skipna=False))


def _strict_std(values: pd.Series) -> float:
    return float(values.std(skipna=False))


def _warn_undefined(table: pd.DataFrame, keys: Sequence[str], over: str) -> None:
    """Warn for each mean whose inputs are partly NaN: it is reported as NaN, not as the mean of the rest."""
    if not table["value"].isna().any():
        return
    for key, group in table.groupby(list(keys), sort=True, dropna=False):
        undefined = group["value"].isna()
        if undefined.any() and not undefined.all():
            key = key if isinstance(key, tuple) else (key,)
            where = ", ".join(f"{k}={v}" for k, v in zip(keys, key))
            warnings.warn(f"mean over {over} on {where} is undefined: no value (NaN) for {over} "
                          f"{sorted(map(str, group.loc[undefined, over]))}; reporting NaN, not the mean of the other "
                          f"{int((~undefined).sum())}", stacklevel=3)


def _means(table: pd.DataFrame, keys: Sequence[str], over: str) -> pd.DataFrame:
    _warn_undefined(table, keys, over)
    return table.groupby(list(keys), sort=True, dropna=False).agg(value=("value", _strict_mean), n=("n", "sum")).reset_index()


def mean_over(table: pd.DataFrame, over: str, label: str = "mean") -> pd.DataFrame:
    """Unweighted mean of ``value`` over the values of column ``over`` (e.g. generators), as extra rows.

    A mean over a set holding NaN (e.g. AP of a one-class subset) is NaN, with a warning naming the subsets:
    a "mean over 8 generators" is never the mean of 7.
    """
    keys = [c for c in table.columns if c not in {over, "value", "lo", "hi", "n"}]
    means = _means(table, keys, over)
    means[over] = label
    means["lo"] = means["hi"] = np.nan
    return pd.concat([table, means[table.columns]], ignore_index=True)


def family_means(table: pd.DataFrame, families: pd.DataFrame) -> pd.DataFrame:
    """Mean of ``value`` per generator family (NaN if any member is); ``families`` maps ``generator`` -> ``family``."""
    merged = table.merge(families.drop_duplicates(), on="generator", how="left")
    keys = [c for c in table.columns if c not in {"generator", "value", "lo", "hi", "n"}]
    return _means(merged, [*keys, "family"], "generator")


def over_seeds(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (ddof=1; NaN for one seed) of ``value`` over the ``seed`` column, NaN if any seed is."""
    keys = [c for c in table.columns if c not in {"seed", "value", "lo", "hi", "n"}]
    _warn_undefined(table, keys, "seed")
    return (
        table.groupby(keys, sort=True, dropna=False)
        .agg(mean=("value", _strict_mean), std=("value", _strict_std), seeds=("seed", "nunique"))
        .reset_index()
    )
