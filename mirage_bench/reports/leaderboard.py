"""``mirage-bench leaderboard``: detectors ranked across runs of one protocol version on one data set.

Each row is a detector and training set: the mean over test generators (and seeds) of each of the
protocol's metrics on clean images, with a bootstrap 95% interval of that mean, plus the hardware and
throughput the runs recorded. Runs whose protocol version or data manifest hash differ are refused
(:func:`mirage_bench.reports.runs.check_comparable`), never ranked side by side. Each row reads its clean cells
once, together (its interval resamples them jointly), and drops them before the next row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mirage_bench import metrics as M
from mirage_bench.errors import DataError
from mirage_bench.reports.aggregate import MEAN, METRIC_COLUMNS
from mirage_bench.reports.frames import frame_markdown
from mirage_bench.reports.resample import Subset, interval, resampled_means
from mirage_bench.reports.runs import Evidence, RANDOM_BACKBONE_NOTE, RECONSTRUCTION_NOTE, load_runs
from mirage_bench.reports.tables import ROW_FLAGS, flag_notes, marked
from mirage_bench.store import Store, replace_text


def select_runs(root: str | Path, protocol: str | None = None) -> list[str]:
    """Every finished run in the store, of ``protocol`` when given; several protocols need a choice."""
    store = Store(root)
    by_protocol: dict[str, list[str]] = {}
    for run_id in store.run_ids():
        by_protocol.setdefault(store.run_record(run_id)["protocol"]["name"], []).append(run_id)
    if protocol is None and len(by_protocol) > 1:
        raise DataError(f"the store {root} holds runs of protocols {sorted(by_protocol)}; choose one with --protocol")
    name = protocol if protocol is not None else next(iter(by_protocol), None)
    if name not in by_protocol:
        raise DataError(f"no finished run of protocol {name!r} in {root}; protocols with runs: {sorted(by_protocol) or '(none)'}")
    return by_protocol[name]


def _throughput(records: Sequence[dict[str, Any]], cell_ids: set[str]) -> float:
    """Images scored per second by these eval cells, from those that recorded ``seconds`` (NaN if none did)."""
    timed = [(c["images"], c["seconds"]) for r in records for c in r.get("eval_cells", [])
             if "seconds" in c and c.get("computed_in_this_run") and c["cell_id"] in cell_ids]
    seconds = sum(s for _, s in timed)
    return sum(n for n, _ in timed) / seconds if seconds else float("nan")


#: One leaderboard row: a recipe (hash) of a detector, evaluated by one implementation, on one training set.
ROW_KEYS = ["detector", "recipe_hash", "impl", "train_generators"]


def leaderboard(evidence: Evidence, metrics: Sequence[str], n_boot: int = 1000, level: float = 0.95) -> pd.DataFrame:
    """Rows ranked by the first metric (mean over generators and seeds, clean images); percent."""
    cells = evidence.cells
    clean = cells.where(cells.catalogue["degradation"] == "none")
    if clean.catalogue.empty:
        raise DataError(f"runs {evidence.run_ids} hold no clean ('none') predictions to rank")
    timed = cells.catalogue.groupby(ROW_KEYS, sort=True, dropna=False)["cell_id"].unique()  # timing: every degradation
    rows = []
    for key, part in clean.catalogue.groupby(ROW_KEYS, sort=True, dropna=False):
        detector, _, _, train = key
        group = clean.rows(part.index, [*ROW_KEYS, "seed", "generator", "degradation", *METRIC_COLUMNS])
        runs = set(part["run_id"])
        flags = {flag: bool(part[flag].any()) for flag in ROW_FLAGS}
        row: dict[str, Any] = {"detector": marked(detector, flags), "train": train, "seeds": part["seed"].nunique(), **flags}
        long = M.mean_over(M.subset_metrics(group, metrics, n_boot=0, workers=1), "generator", MEAN)
        means = M.over_seeds(long[long["generator"] == MEAN]).set_index("metric")["mean"]
        subsets = [Subset(g["label"].to_numpy(int), [g["p_fake"].to_numpy(float)], [float(g["threshold"].iloc[0])])
                   for _, g in group.groupby(["seed", "generator"], sort=True)]
        for name in metrics:
            value = means[name]
            lo, hi = interval(resampled_means(name, subsets, n_boot)[0], level) if n_boot else (np.nan, np.nan)
            row.update({name: 100 * value, f"{name} lo": 100 * lo, f"{name} hi": 100 * hi})
        row["hardware"] = "; ".join(sorted({r["device"] for r in evidence.records if r["run_id"] in runs}))
        row["images/s"] = _throughput(evidence.records, set(timed[key]))
        row["runs"] = ",".join(sorted(runs))
        rows.append(row)
    first = metrics[0]
    board = pd.DataFrame(rows).sort_values(first, ascending=not M.METRICS.get(first).higher_is_better, kind="stable")
    board.insert(0, "rank", range(1, len(board) + 1))
    return board.reset_index(drop=True)


def _replace(path: Path, text: str) -> None:
    # The leaderboard is a view regenerated from the store, so replacing it loses no result.
    replace_text(path, text)


def _cell(value: float, lo: float, hi: float) -> str:
    if not np.isfinite(value):
        return "–"  # undefined on some subset (e.g. AP of a one-class subset): the mean is undefined too
    return f"{value:.1f} [{lo:.1f}, {hi:.1f}]" if np.isfinite(lo) else f"{value:.1f}"


def display(board: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """The leaderboard as people read it: one column per metric, 'value [lo, hi]'."""
    shown = board[["rank", "detector", "train", "seeds"]].copy()
    for name in metrics:
        shown[f"{M.METRICS.get(name).title} (%)"] = [_cell(v, lo, hi) for v, lo, hi in zip(board[name], board[f"{name} lo"], board[f"{name} hi"])]
    rates = [f"{r:,.0f}" if np.isfinite(r) else "–" for r in board["images/s"]]
    shown["hardware"], shown["images/s"], shown["runs"] = board["hardware"], rates, board["runs"]
    return shown


def notes(board: pd.DataFrame, evidence: Evidence) -> list[str]:
    out = [(f"Protocol {evidence.title}; data manifest hash {evidence.data_hash}. Mean over test generators and seeds, "
              "clean images, threshold 0.5; [95% bootstrap interval]; – where a metric is undefined on some subset. "
              "images/s: (image, degradation) pairs scored per second, each model's own forwards plus an equal share "
              "of the decoding and degradations it shared with the models scored alongside (an image that several "
              "test subsets list is scored once and counted in each); – where the runs recorded no timing.")]
    out += evidence.notes
    return out + flag_notes({flag: bool(board[flag].any()) for flag in ROW_FLAGS})


def title(evidence: Evidence) -> str:
    return f"Leaderboard: {evidence.protocol} v{evidence.protocol_version}"


def write_leaderboard(root: str | Path, out: str | Path = "results", protocol: str | None = None,
                      metrics: Sequence[str] | None = None, n_boot: int = 1000) -> tuple[pd.DataFrame, Evidence, list[Path]]:
    """Rank the store's runs and write ``<out>/leaderboard.md`` and ``.json``; ``metrics``: the protocol card's by default."""
    evidence = load_runs(root, select_runs(root, protocol))
    metrics = evidence.metrics if metrics is None else list(metrics)
    board = leaderboard(evidence, metrics, n_boot)
    out = Path(out)
    paths = [out / "leaderboard.md", out / "leaderboard.json"]
    _replace(paths[0], frame_markdown(display(board, metrics), title(evidence), notes(board, evidence)))
    payload = {"protocol": evidence.protocol, "protocol_version": evidence.protocol_version, "data_hash": evidence.data_hash,
               "unit": "percent", "metrics": list(metrics), "random_backbone_note": RANDOM_BACKBONE_NOTE,
               "reconstruction_note": RECONSTRUCTION_NOTE,
               "rows": json.loads(board.to_json(orient="records"))}
    _replace(paths[1], json.dumps(payload, indent=2) + "\n")
    return board, evidence, paths
