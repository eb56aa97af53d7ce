"""The results table of a run, computed from the prediction store (never from in-memory scores)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from mirage_bench import metrics as M

ROW_KEYS = ["detector", "train_generators", "degradation"]


def long_table(predictions: pd.DataFrame, metrics: Sequence[str] = M.DEFAULT_METRICS, n_boot: int = 1000) -> pd.DataFrame:
    """Per subset and seed: value and bootstrap interval; plus the unweighted mean over subsets and per family."""
    per_subset = M.subset_metrics(predictions, metrics, n_boot=n_boot)
    with_mean = M.mean_over(per_subset, "generator", "mean")
    families = M.family_means(per_subset, predictions[["generator", "family"]]).rename(columns={"family": "generator"})
    families["generator"] = "family:" + families["generator"]
    families["lo"] = families["hi"] = np.nan
    return pd.concat([with_mean, families[with_mean.columns]], ignore_index=True)


def wide_table(long: pd.DataFrame, metrics: Sequence[str] = ("acc", "ap")) -> pd.DataFrame:
    """Rows = detector / training set / degradation; columns = subsets, mean, families; cells 'acc / ap'.

    Values are means over seeds, with '±std' when there is more than one seed; numbers in percent.
    """
    seeds = M.over_seeds(long[long["metric"].isin(metrics)])

    def cell(group: pd.DataFrame) -> str:
        parts = []
        for name in metrics:
            row = group[group["metric"] == name]
            if row.empty or np.isnan(row["mean"].item()):
                parts.append("nan")
                continue
            text = f"{100 * row['mean'].item():.1f}"
            if row["seeds"].item() > 1:
                text += f"±{100 * row['std'].item():.1f}"
            parts.append(text)
        return " / ".join(parts)

    cells = seeds.groupby([*ROW_KEYS, "generator"], sort=False).apply(cell, include_groups=False).rename("value").reset_index()
    wide = cells.pivot(index=ROW_KEYS, columns="generator", values="value")
    order = [c for c in wide.columns if c != "mean" and not c.startswith("family:")]
    order = sorted(order) + ["mean"] + sorted(c for c in wide.columns if c.startswith("family:"))
    return wide[order].reset_index()


def run_tables(store, record: dict, n_boot: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long and wide tables of one run, read from the store; the long table is saved beside the run record."""
    from mirage_bench.engine.runner import run_predictions
    from mirage_bench.store import atomic_write

    long = long_table(run_predictions(store, record), n_boot=n_boot)
    atomic_write(store.run_dir(record["run_id"]) / "metrics.csv", lambda tmp: long.to_csv(tmp, index=False))
    return long, wide_table(long)
