"""Metrics over stored predictions: point estimates (scikit-learn), bootstrap intervals, seed summaries.

Every table is computed here from the prediction store; nothing is computed while scoring. Conventions
(``/work/shared/reference/protocols.md``): label 1 = fake, score = ``p_fake``, an image is called fake when
``p_fake > threshold``. A metric that needs both classes gives NaN with a warning on a single-class subset,
never a number. Oracle accuracy chooses its threshold on the test labels and says so in its name.

Each :class:`Metric` has a point function ``fn(labels, scores, threshold)`` and a ``batch`` function that
evaluates many bootstrap resamples at once (``[R, n]`` arrays -> ``[R]``); the tests hold both equal to
scikit-learn.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import numpy as np
import pandas as pd

from mirage_bench.errors import DataError
from mirage_bench.registry import Registry

ThresholdKind = Literal["fixed", "calibrated", "none"]
PointFn = Callable[[np.ndarray, np.ndarray, float], float]
BatchFn = Callable[[np.ndarray, np.ndarray, float], np.ndarray]

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


def _register(metric: Metric) -> None:
    METRICS.register(metric.name, metric)


# -- point and batch implementations ---------------------------------------------------------------------


def _acc(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(labels, (scores > threshold).astype(int)))


def _acc_batch(labels: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    return ((scores > threshold).astype(int) == labels).mean(axis=1)


def _class_acc(cls: int) -> tuple[PointFn, BatchFn]:
    def point(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
        from sklearn.metrics import recall_score

        return float(recall_score(labels, (scores > threshold).astype(int), pos_label=cls, zero_division=np.nan))

    def batch(labels: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
        mask = labels == cls
        hits = ((scores > threshold).astype(int) == cls) & mask
        with np.errstate(invalid="ignore", divide="ignore"):
            return hits.sum(axis=1) / mask.sum(axis=1)

    return point, batch


def _ap(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(labels, scores))


def _ap_batch(labels: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    # Step-wise AP as scikit-learn computes it: sum over distinct thresholds of delta-recall x precision.
    order = np.argsort(-scores, axis=1, kind="stable")
    s = np.take_along_axis(scores, order, axis=1)
    y = np.take_along_axis(labels, order, axis=1)
    out = np.empty(len(s))
    for r in range(len(s)):
        ends = np.r_[np.flatnonzero(np.diff(s[r])), len(s[r]) - 1]  # last index of each tied group
        tp = np.cumsum(y[r])[ends]
        precision = tp / (ends + 1)
        out[r] = np.sum(np.diff(np.r_[0, tp]) * precision) / tp[-1] if tp[-1] else np.nan
    return out


def _auroc(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def _auroc_batch(labels: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=1)  # average ranks for ties: the Mann-Whitney statistic
    pos = labels.sum(axis=1)
    neg = labels.shape[1] - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * labels).sum(axis=1) - pos * (pos + 1) / 2) / (pos * neg)


def _oracle_acc_batch(labels: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    # Call the k lowest scores real, for every k at a boundary between distinct scores; keep the best k.
    order = np.argsort(scores, axis=1, kind="stable")
    s = np.take_along_axis(scores, order, axis=1)
    y = np.take_along_axis(labels, order, axis=1)
    n = s.shape[1]
    reals_below = np.concatenate([np.zeros((len(s), 1)), np.cumsum(1 - y, axis=1)], axis=1)  # [R, n+1]
    fakes_above = y.sum(axis=1, keepdims=True) - np.concatenate([np.zeros((len(s), 1)), np.cumsum(y, axis=1)], axis=1)
    valid = np.ones((len(s), n + 1), dtype=bool)
    valid[:, 1:n] = s[:, 1:] != s[:, :-1]  # a threshold cannot split tied scores
    correct = np.where(valid, reals_below + fakes_above, -1)
    return correct.max(axis=1) / n


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
    metric = METRICS.get(name)
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    if undefined_on(metric, y):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    index = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), size=(n_boot, int(np.sum(y == c))), replace=True) for c in np.unique(y)],
        axis=1,
    )  # [R, n]
    values = metric.batch(y[index], s[index], threshold_for(metric, threshold))
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
    n_boot: int = 1000, level: float = 0.95,
) -> pd.DataFrame:
    """One row per subset (``by``) and metric: ``value``, ``lo``, ``hi`` (bootstrap), ``n``.

    Works on any predictions frame with the ``by`` columns, ``image_id``, ``label``, ``p_fake`` and (for
    ``acc_cal``) ``threshold``; each group must hold one checkpoint's scores of distinct images.
    """
    missing = sorted({*by, "image_id", "label", "p_fake"} - set(predictions.columns))
    if missing:
        raise DataError(f"the predictions frame lacks the columns {missing} that per-subset metrics group and check by "
                        f"(it has {sorted(predictions.columns)}); pass store rows (mirage_bench.store.PREDICTION_COLUMNS)")
    rows = []
    for key, group in predictions.groupby(list(by), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        where = " on " + ", ".join(f"{k}={v}" for k, v in zip(by, key))
        threshold = _one_scoring(group, where)
        for name in metrics:
            if METRICS.get(name).threshold == "calibrated" and not np.isfinite(threshold):
                value, lo, hi = float("nan"), float("nan"), float("nan")
            else:
                value = compute(name, group["label"], group["p_fake"], threshold, where)
                lo, hi = bootstrap(name, group["label"], group["p_fake"], threshold, n_boot, level) if n_boot else (np.nan, np.nan)
            rows.append({**dict(zip(by, key)), "metric": name, "value": value, "lo": lo, "hi": hi, "n": len(group)})
    return pd.DataFrame(rows)


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
