"""``mirage-bench ablate``: the full model and each of its variants on the same data and seeds, compared.

Variants are the recipe cards whose ``variant_of`` names the full model (found by that field, never by
name). ``mirage_bench.api.ablate`` runs them through the engine (finished cells are reused); :func:`ablation_table`
reports each variant's change against the full model, per test generator and as the mean over generators,
with paired bootstrap 95% intervals over the same images. The predictions are read one training set and
degradation at a time (every arm's cells of it together, once), never all at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mirage_bench.cards import list_recipes, load_recipe
from mirage_bench.errors import ConfigError, DataError
from mirage_bench.protocol import HEADLINE_METRICS
from mirage_bench.reports.aggregate import METRIC_COLUMNS
from mirage_bench.reports.cells import Cells, as_cells
from mirage_bench.reports.resample import Subset, interval, point_means, resampled_means
from mirage_bench.reports.tables import MEAN, ROW_FLAGS

PAIR_KEYS = ["train_generators", "seed", "degradation", "generator"]


def find_variants(full: str, recipe_dirs: Sequence[str | Path] = ()) -> list[str]:
    """Names of the cards with ``variant_of: <full>``, sorted."""
    load_recipe(full, (), recipe_dirs)  # an unknown full model is an error with "did you mean"
    variants = [card.name for card in list_recipes(recipe_dirs) if card.variant_of == full]
    if not variants:
        raise ConfigError(f"no recipe card has 'variant_of: {full}'; add ablation cards (base: {full}, variant_of: {full}) "
                          "or pass a folder of them with --recipes DIR")
    return variants


def _subset(full: pd.DataFrame, variant: pd.DataFrame, where: str) -> Subset:
    a, b = full.sort_values("image_id"), variant.sort_values("image_id")
    if list(a["image_id"]) != list(b["image_id"]):
        raise DataError(f"{where}: the full model and the variant were scored on different images "
                        f"({len(a)} vs {len(b)}); re-run them on the same protocol data with `mirage-bench ablate`")
    return Subset(a["label"].to_numpy(int), [a["p_fake"].to_numpy(float), b["p_fake"].to_numpy(float)],
                  [float(a["threshold"].iloc[0]), float(b["threshold"].iloc[0])])


def ablation_table(predictions: pd.DataFrame | Cells, full: str, metrics: Sequence[str] = HEADLINE_METRICS, n_boot: int = 1000,
                   level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """One row per variant, training set, degradation, generator (and ``mean``) and metric, in percent.

    ``delta`` = variant - full, averaged over seeds (and generators for ``mean``); ``lo``/``hi`` is its paired
    bootstrap interval over the same images.
    """
    cells = as_cells(predictions)
    catalogue = cells.catalogue
    detectors = set(catalogue["detector"])
    if full not in detectors:
        raise DataError(f"no predictions of the full model {full!r}; detectors present: {sorted(detectors)}")
    variants = sorted(detectors - {full})
    keys = {d: set(map(tuple, part[PAIR_KEYS].to_numpy().tolist())) for d, part in catalogue.groupby("detector")}
    for variant in variants:
        missing = sorted(keys[full] ^ keys[variant])
        if missing:
            raise DataError(f"variant {variant!r} and {full!r} were not run on the same cells (e.g. {missing[0]}); "
                            "run both with the same protocol and seeds")
    flags = {v: {flag: bool(catalogue.loc[catalogue["detector"] == v, flag].any()) for flag in ROW_FLAGS} for v in variants}
    blocks = []
    for (train, degradation), part in catalogue.groupby(["train_generators", "degradation"], sort=True):
        rows = cells.rows(part.index, ["detector", *PAIR_KEYS, *METRIC_COLUMNS])
        arms = {d: dict(iter(group.groupby(PAIR_KEYS, sort=True))) for d, group in rows.groupby("detector")}
        for variant in variants:
            groups: dict[str, list[Subset]] = {}
            for key in sorted(arms[full]):
                subset = _subset(arms[full][key], arms[variant][key], f"{variant} vs {full} on {key}")
                groups.setdefault(key[3], []).append(subset)
                groups.setdefault(MEAN, []).append(subset)
            for generator, subsets in groups.items():
                blocks.append(((variant, train, degradation, generator),
                               _rows(subsets, metrics, n_boot, level, seed)))
    rows = [{"variant": v, "train_generators": t, "degradation": d, "generator": g, **row, **flags[v]}
            for (v, t, d, g), block in sorted(blocks, key=lambda b: b[0]) for row in block]
    return pd.DataFrame(rows)


def _rows(subsets: list[Subset], metrics: Sequence[str], n_boot: int, level: float, seed: int) -> list[dict[str, Any]]:
    """Per metric: both arms' mean over ``subsets`` and the paired interval of their difference."""
    out = []
    for name in metrics:
        full_value, variant_value = point_means(name, subsets)
        lo, hi = np.nan, np.nan
        if n_boot:
            resampled = resampled_means(name, subsets, n_boot, seed)
            lo, hi = interval(resampled[1] - resampled[0], level)
        out.append({"metric": name, "full": 100 * full_value, "value": 100 * variant_value,
                    "delta": 100 * (variant_value - full_value), "lo": 100 * lo, "hi": 100 * hi,
                    "images": sum(len(s.labels) for s in subsets)})
    return out


def ablation_summary(table: pd.DataFrame, degradation: str = "none") -> pd.DataFrame:
    """The readable view: per variant and metric, the mean-over-generators change with its interval."""
    rows = table[(table["generator"] == MEAN) & (table["degradation"] == degradation)]
    return pd.DataFrame({
        "variant": rows["variant"], "train": rows["train_generators"], "metric": rows["metric"],
        "full": rows["full"].round(2), "variant value": rows["value"].round(2),
        "change (points)": [f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]" for d, lo, hi in zip(rows["delta"], rows["lo"], rows["hi"])],
    }).reset_index(drop=True)
