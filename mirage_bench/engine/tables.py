"""The results table of a run, computed from the prediction store (never from in-memory scores)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from mirage_bench import metrics as M


def long_table(predictions: pd.DataFrame, metrics: Sequence[str] = M.DEFAULT_METRICS, n_boot: int = 1000) -> pd.DataFrame:
    """Per subset and seed: value and bootstrap interval; plus the unweighted mean over subsets and per family."""
    per_subset = M.subset_metrics(predictions, metrics, n_boot=n_boot)
    with_mean = M.mean_over(per_subset, "generator", "mean")
    families = M.family_means(per_subset, predictions[["generator", "family"]]).rename(columns={"family": "generator"})
    families["generator"] = "family:" + families["generator"]
    families["lo"] = families["hi"] = np.nan
    return pd.concat([with_mean, families[with_mean.columns]], ignore_index=True)


def save_metrics(store, run_id: str, long: pd.DataFrame) -> None:
    """The run's long metrics table, written once beside its run record."""
    from mirage_bench.store import atomic_write

    atomic_write(store.run_dir(run_id) / "metrics.csv", lambda tmp: long.to_csv(tmp, index=False))
