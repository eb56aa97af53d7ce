"""Paper-style tables as data: rows x columns x metrics, with best / second marks and footnotes.

The numbers come from :mod:`mirage_bench.metrics` over the stored predictions (one pass over the cells,
:mod:`mirage_bench.reports.aggregate`; ``over_seeds``); this module only arranges them. Where a function takes
``cells``, a predictions frame and a catalogue of cells (:mod:`mirage_bench.reports.cells`) serve alike: only the
columns constant in a cell are read. Values are percent,
means over seeds (with the standard deviation when there is more than one seed). Renderers
(:mod:`mirage_bench.reports.render`) turn a :class:`Table` into Markdown, LaTeX, CSV, JSON or rich.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from mirage_bench import metrics as M
from mirage_bench.degradations.spec import Call, read
from mirage_bench.errors import DataError
from mirage_bench.protocol import HEADLINE_METRICS
from mirage_bench.reports.aggregate import FAMILY, MEAN, metric_pass
from mirage_bench.reports.cells import Cells, as_cells
from mirage_bench.reports.runs import RANDOM_BACKBONE_NOTE, RECONSTRUCTION_NOTE
ROW_KEYS = ["detector", "train_generators"]
ROW_HEADER = ["detector", "train"]
DAGGER = "†"
DOUBLE_DAGGER = "‡"
#: Each row flag of the predictions, the mark its rows carry and the footnote that says what the mark means.
ROW_FLAGS = {"random_backbone": (DAGGER, RANDOM_BACKBONE_NOTE), "reconstruction": (DOUBLE_DAGGER, RECONSTRUCTION_NOTE)}


def marked(detector: str, flags: dict[str, bool]) -> str:
    """``detector`` with the mark of each flag it holds (``†`` random backbone, ``‡`` reconstruction)."""
    return detector + "".join(mark for flag, (mark, _) in ROW_FLAGS.items() if flags.get(flag))


def flag_notes(flags: dict[str, bool]) -> list[str]:
    """The footnote of each flag that some row holds."""
    return [f"{mark} {note}." for flag, (mark, note) in ROW_FLAGS.items() if flags.get(flag)]


@dataclass
class Table:
    """``values[r, c, m]``: row r, column c, metric m, in percent (NaN where there is nothing)."""
    name: str
    title: str
    row_header: list[str]
    rows: list[tuple[str, ...]]
    columns: list[str]
    metrics: list[str]
    values: np.ndarray
    std: np.ndarray
    random_backbone: list[bool]
    reconstruction: list[bool]
    footnotes: list[str] = field(default_factory=list)

    def flags(self, r: int) -> dict[str, bool]:
        return {"random_backbone": self.random_backbone[r], "reconstruction": self.reconstruction[r]}

    def marks(self) -> np.ndarray:
        """``'best'`` / ``'second'`` / ``''`` per cell and metric, ranking the rows within each column."""
        out = np.full(self.values.shape, "", dtype=object)
        if len(self.rows) < 2:
            return out
        for c in range(len(self.columns)):
            for m, name in enumerate(self.metrics):
                sign = 1 if M.METRICS.get(name).higher_is_better else -1
                column = np.round(sign * self.values[:, c, m], 1)  # rank what is printed
                distinct = np.unique(column[np.isfinite(column)])[::-1]
                for mark, level in zip(("best", "second"), distinct[:2]):
                    out[column == level, c, m] = mark
        return out

    def row_label(self, r: int) -> list[str]:
        label = list(self.rows[r])
        label[0] = marked(label[0], self.flags(r))
        return label

    def cell_text(self, r: int, c: int, m: int) -> str:
        value = self.values[r, c, m]
        if not np.isfinite(value):
            return "–"
        std = self.std[r, c, m]
        return f"{value:.1f}" + (f"±{std:.1f}" if np.isfinite(std) else "")


def metric_long(predictions: pd.DataFrame | Cells, metrics: Sequence[str] = M.DEFAULT_METRICS, n_boot: int = 1000) -> pd.DataFrame:
    """The long table: per subset, metric and seed, plus the mean over generators and per family, each with its
    bootstrap interval (:func:`mirage_bench.reports.aggregate.metric_pass`)."""
    return metric_pass(as_cells(predictions), metrics, n_boot).long


def ordered_columns(present: set[str], generators: Sequence[str]) -> list[str]:
    """Test generators in protocol order (then any others), the mean, then the family means."""
    families = sorted(g for g in present if g.startswith(FAMILY))
    plain = present - set(families) - {MEAN}
    return [g for g in generators if g in plain] + sorted(plain - set(generators)) + [MEAN] * (MEAN in present) + families


def _row_flags(cells: pd.DataFrame) -> pd.DataFrame:
    return cells.groupby(ROW_KEYS, sort=True)[list(ROW_FLAGS)].any()


def with_row_flags(long: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """``long`` with each row's flags as columns (``random_backbone``, ``reconstruction``), so that a CSV or JSON
    of it says what the tables mark with † and ‡."""
    return long.merge(_row_flags(cells).reset_index(), on=ROW_KEYS, how="left", validate="many_to_one")


def _build(name: str, title: str, seeds: pd.DataFrame, column_key: str, columns: list[str], metrics: Sequence[str],
           row_flags: pd.DataFrame) -> Table:
    rows = sorted({tuple(str(v) for v in key) for key in seeds[ROW_KEYS].itertuples(index=False)})
    values = np.full((len(rows), len(columns), len(metrics)), np.nan)
    std = np.full_like(values, np.nan)
    keys = list(zip(seeds[ROW_KEYS].astype(str).apply(tuple, axis=1), seeds[column_key].astype(str), seeds["metric"]))
    index = {key: i for i, key in enumerate(keys)}
    if len(index) != len(keys):
        row, col, met = next(k for k, count in Counter(keys).items() if count > 1)
        raise DataError(f"table {name!r}: row {row}, column {col!r}, metric {met!r} holds several results (recipes or "
                        "evaluation implementations of one detector under one name); name them apart first "
                        "(mirage_bench.reports.runs.label_variants, which load_runs applies)")
    for r, row in enumerate(rows):
        for c, col in enumerate(columns):
            for m, met in enumerate(metrics):
                i = index.get((row, col, met))
                if i is not None:
                    values[r, c, m] = 100 * seeds["mean"].iloc[i]
                    std[r, c, m] = 100 * seeds["std"].iloc[i]
    flags = {flag: [bool(row_flags[flag].get(row, False)) for row in rows] for flag in ROW_FLAGS}
    notes = flag_notes({flag: any(values) for flag, values in flags.items()})
    return Table(name, title, list(ROW_HEADER), rows, columns, list(metrics), values, std, flags["random_backbone"],
                 flags["reconstruction"], notes)


def _titles(metrics: Sequence[str]) -> str:
    return " / ".join(M.METRICS.get(m).title for m in metrics)


def main_table(long: pd.DataFrame, cells: pd.DataFrame, generators: Sequence[str] = (), metrics: Sequence[str] = HEADLINE_METRICS,
               degradation: str = "none") -> Table:
    """Rows detectors (x training set), columns test generators and their mean, on clean images."""
    subset = long[(long["degradation"] == degradation) & long["metric"].isin(metrics)]
    seeds = M.over_seeds(subset)
    present = set(seeds["generator"])
    singletons = {f"{FAMILY}{f}" for f, n in cells.groupby("family")["generator"].nunique().items() if n == 1}
    columns = [c for c in ordered_columns(present, generators) if c not in singletons]  # a one-generator family repeats its column
    title = f"{_titles(metrics)} (%) per test generator, degradation {degradation}; threshold 0.5"
    table = _build("main", title, seeds, "generator", columns, metrics, _row_flags(cells))
    note = "mean: unweighted mean over the test generators (– where a generator's value is undefined)"
    if any(c.startswith(FAMILY) for c in columns):
        note += "; family:X: mean over the generators of family X"
    table.footnotes.append(note + ".")
    return table


def _strength(value: object) -> tuple:
    """Numbers before words, numbers by value: ``q=30`` before ``q=100``."""
    return (0, float(value), "") if isinstance(value, (int, float)) else (1, 0.0, str(value))


def degradation_order(spec: str) -> tuple:
    """Sort key of a degradation spec: ``none`` first, then by kind, then by each parameter's value (numerically:
    ``jpeg(q=30)`` before ``jpeg(q=100)``, which sort the other way as strings)."""

    def key(call: Call) -> tuple:
        values = [*call.args, *(v for _, v in call.kwargs)]
        return (call.name, tuple(key(v) if isinstance(v, Call) else _strength(v) for v in values))

    return (spec != "none", key(read(spec)), spec)


def degradation_table(long: pd.DataFrame, cells: pd.DataFrame, metrics: Sequence[str] = HEADLINE_METRICS) -> Table:
    """Rows detectors, columns degradations (clean first, then by kind and strength), cells the mean over test
    generators."""
    subset = long[(long["generator"] == MEAN) & long["metric"].isin(metrics)]
    seeds = M.over_seeds(subset)
    columns = sorted(set(seeds["degradation"]), key=degradation_order)
    title = f"{_titles(metrics)} (%) under each degradation, mean over test generators"
    table = _build("degradation", title, seeds, "degradation", columns, metrics, _row_flags(cells))
    table.footnotes.append(_largest_drops(table))
    return table


def _largest_drops(table: Table) -> str:
    """Per row and metric, the degradation that moves the value furthest down from clean ('none')."""
    if "none" not in table.columns or len(table.columns) == 1:
        return ("Only clean images ('none') were evaluated: no degradation to compare with." if table.columns == ["none"]
                else "No clean ('none') results: changes from clean are not shown.")
    degraded = table.columns[1:]  # 'none' sorts first
    drops = table.values[:, 1:, :] - table.values[:, :1, :]
    parts = []
    for r in range(len(table.rows)):
        for i, m in enumerate(table.metrics):
            if np.isfinite(drops[r, :, i]).any():
                worst = int(np.nanargmin(drops[r, :, i]))
                parts.append(f"{' '.join(table.rows[r])} {M.METRICS.get(m).title} {drops[r, worst, i]:+.1f} ({degraded[worst]})")
    return "Largest drop from clean (the most harmful degradation): " + "; ".join(parts) + " points."
