"""``mirage-bench report``: from stored predictions to tables and figures in every format, written once.

:func:`build_report` computes everything (metrics through :mod:`mirage_bench.metrics`); :func:`write_report`
writes ``main.{md,tex,csv,json}``, ``degradation.{...}``, ``metrics.csv`` (every subset, metric and seed
with its bootstrap interval, and the mean over generators and per family with the interval of that mean) and
``report.html`` into a new folder; an existing file is never replaced. The predictions are read one cell at a
time, once (:mod:`mirage_bench.reports.aggregate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from mirage_bench import metrics as M
from mirage_bench.progress import Progress, no_progress
from mirage_bench.reports import figures as F
from mirage_bench.reports.aggregate import metric_pass
from mirage_bench.reports.page import page
from mirage_bench.reports.render import TEXT_FORMATS
from mirage_bench.reports.runs import Evidence, RANDOM_BACKBONE_NOTE, RECONSTRUCTION_NOTE
from mirage_bench.store import atomic_write
from mirage_bench.reports.tables import (
    ROW_FLAGS,
    Table,
    degradation_table,
    main_table,
    marked,
    with_row_flags,
)


@dataclass
class Report:
    evidence: Evidence
    long: pd.DataFrame
    tables: list[Table]
    figures: list[F.Figure]

    def provenance(self) -> list[str]:
        ev = self.evidence
        cells = ev.cells.catalogue
        lines = [f"Protocol {ev.title}; data manifest hash {ev.data_hash or 'n/a'}.",
                 f"{int(cells['rows'].sum())} stored predictions in {len(cells)} cells; metrics from the prediction store, "
                 "95% bootstrap intervals in metrics.csv (a mean's interval: resample by resample, the mean of its "
                 "subsets' resamples)."]
        if cells["random_backbone"].any():
            lines.append(f"Rows marked † use {RANDOM_BACKBONE_NOTE}.")
        if cells["reconstruction"].any():
            lines.append(f"Rows marked ‡ are a {RECONSTRUCTION_NOTE}.")
        return lines + ev.notes


def build_report(evidence: Evidence, metrics: Sequence[str] = M.DEFAULT_METRICS, n_boot: int = 1000,
                 with_figures: bool = True, progress: Progress = no_progress) -> Report:
    """Tables in the protocol's headline metrics (``evidence.metrics``); ``metrics.csv`` holds ``metrics`` too.
    ``progress`` shows the metric pass (:mod:`mirage_bench.progress`)."""
    cells = evidence.cells.catalogue
    done = metric_pass(evidence.cells, list(dict.fromkeys([*evidence.metrics, *metrics])), n_boot, progress=progress)
    long = with_row_flags(done.long, cells)
    tables = [main_table(long, cells, evidence.generator_order, evidence.metrics), degradation_table(long, cells, evidence.metrics)]
    figures: list[F.Figure] = []
    if with_figures:
        flags = cells.groupby("detector")[list(ROW_FLAGS)].any()
        labels = {detector: marked(detector, row) for detector, row in flags.to_dict("index").items()}  # † and ‡ as the tables
        figures = [*F.heatmaps(long, labels, evidence.generator_order), *F.robustness_curves(long, labels),
                   *F.score_histograms(done.histograms, labels, evidence.generator_order)]
    return Report(evidence, long, tables, figures)


def write_report(report: Report, out: str | Path) -> list[Path]:
    """Write every output into ``out`` (created; files already there are never replaced)."""
    out = Path(out)
    written = []

    def put(name: str, text: str) -> None:
        path = out / name
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        written.append(path)

    for table in report.tables:
        for suffix, render in TEXT_FORMATS.items():
            put(f"{table.name}.{suffix}", render(table))
    put("metrics.csv", report.long.to_csv(index=False))
    put("report.html", page(f"mirage-bench report: {report.evidence.title}", report.provenance(), report.tables, report.figures))
    return written
