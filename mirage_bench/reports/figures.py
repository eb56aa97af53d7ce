"""Figures of a report, as PNG bytes (matplotlib, Agg backend): heatmap, robustness curves, score histograms.

Numbers plotted come from the metric table (``metrics`` functions over the store); histograms plot the
counts of stored ``p_fake`` of reals and fakes per bin, counted cell by cell in the metric pass
(:mod:`mirage_bench.reports.aggregate`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from mirage_bench import metrics as M
from mirage_bench.degradations.spec import read
from mirage_bench.reports.aggregate import BINS, RANGE
from mirage_bench.reports.tables import FAMILY, MEAN, ordered_columns

#: Degradation kind -> (parameter, axis label) for robustness curves.
CURVE_AXES = {"jpeg": ("q", "JPEG quality"), "webp": ("q", "WebP quality"), "blur": ("s", "blur sigma"),
              "downscale": ("size", "shorter side (px)"), "noise": ("std", "noise std (grey levels)")}


@dataclass
class Figure:
    name: str
    title: str
    png: bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def _seed_means(long: pd.DataFrame, metric: str) -> pd.DataFrame:
    return M.over_seeds(long[long["metric"] == metric])


def heatmaps(long: pd.DataFrame, labels: dict[str, str], generators: Sequence[str] = (), metric: str = "acc") -> list[Figure]:
    """Per detector: training set (rows) x test generator (columns) accuracy on clean images."""
    plt = _pyplot()
    table = _seed_means(long[long["degradation"] == "none"], metric)
    out = []
    for detector, part in table.groupby("detector", sort=True):
        columns = [c for c in ordered_columns(set(part["generator"]), generators) if not c.startswith(FAMILY)]
        grid = part.pivot(index="train_generators", columns="generator", values="mean").reindex(columns=columns) * 100
        fig, ax = plt.subplots(figsize=(1 + 0.7 * len(columns), 1 + 0.5 * len(grid)))
        image = ax.imshow(grid.to_numpy(dtype=float), vmin=0, vmax=100, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
        ax.set_yticks(range(len(grid)), grid.index)
        for (i, j), v in np.ndenumerate(grid.to_numpy(dtype=float)):
            ax.text(j, i, "–" if np.isnan(v) else f"{v:.0f}", ha="center", va="center", color="w" if v < 60 else "k", fontsize=7)
        ax.set_xlabel("test generator")
        ax.set_ylabel("trained on")
        title = f"{labels[detector]}: {M.METRICS.get(metric).title} (%)"
        ax.set_title(title, fontsize=9)
        fig.colorbar(image, ax=ax)
        out.append(Figure(f"heatmap-{detector}", title, _png(fig)))
    return out


def _axis_value(spec: str) -> tuple[str, float] | None:
    call = read(spec)
    if call.name not in CURVE_AXES:
        return None
    value = dict(call.kwargs).get(CURVE_AXES[call.name][0])
    return (call.name, float(value)) if isinstance(value, (int, float)) else None


def robustness_curves(long: pd.DataFrame, labels: dict[str, str], metric: str = "acc") -> list[Figure]:
    """Per degradation kind: the metric (mean over test generators) against its strength, one line per detector."""
    plt = _pyplot()
    table = _seed_means(long[long["generator"] == MEAN], metric)
    axes = {spec: _axis_value(spec) for spec in sorted(set(table["degradation"])) if spec != "none"}
    out = []
    for kind in sorted({a[0] for a in axes.values() if a}):
        fig, ax = plt.subplots(figsize=(4, 3))
        for (detector, train), part in table.groupby(["detector", "train_generators"], sort=True):
            points = sorted((axes[s][1], 100 * v) for s, v in zip(part["degradation"], part["mean"]) if axes.get(s) and axes[s][0] == kind)
            if not points:
                continue
            line = ax.plot(*zip(*points), marker="o", label=f"{labels[detector]} ({train})")[0]
            clean = part.loc[part["degradation"] == "none", "mean"]
            if len(clean):
                ax.axhline(100 * clean.item(), color=line.get_color(), linestyle="--", linewidth=0.8)
        ax.set_xlabel(CURVE_AXES[kind][1])
        ax.set_ylabel(f"{M.METRICS.get(metric).title} (%)")
        title = f"{M.METRICS.get(metric).title} against {CURVE_AXES[kind][1]} (dashed: clean)"
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
        out.append(Figure(f"curve-{kind}", title, _png(fig)))
    return out


def score_histograms(histograms: pd.DataFrame, labels: dict[str, str], generators: Sequence[str] = ()) -> list[Figure]:
    """Per detector: p_fake of reals and fakes on clean images, one panel per test generator (``histograms``: counts
    per detector, generator and label, every training set and seed together)."""
    plt = _pyplot()
    edges = np.linspace(*RANGE, BINS + 1)
    out = []
    for detector, part in histograms.groupby("detector", sort=True):
        names = ordered_columns(set(part["generator"]), generators)
        fig, axes = plt.subplots(1, len(names), figsize=(2.2 * len(names), 2.4), sharey=True, squeeze=False,
                                 layout="constrained")  # keeps the title clear of the panel titles
        for ax, generator in zip(axes[0], names):
            rows = part[part["generator"] == generator]
            for label, name, color in ((0, "real", "tab:blue"), (1, "fake", "tab:red")):
                counts = rows.loc[rows["label"] == label, "counts"]
                total = np.sum(np.stack(counts.to_list()), axis=0) if len(counts) else np.zeros(BINS)
                ax.hist(edges[:-1], bins=edges, weights=total, alpha=0.6, label=name, color=color)
            ax.set_title(generator, fontsize=8)
            ax.set_xlabel("p_fake", fontsize=7)
        axes[0][0].legend(fontsize=7)
        title = f"{labels[detector]}: p_fake of reals and fakes per generator (clean)"
        fig.suptitle(title, fontsize=9)
        out.append(Figure(f"hist-{detector}", title, _png(fig)))
    return out
