"""Report memory and time against the size of the store: the cell-by-cell reader against today's pandas path.

Generates, in a temporary folder, one finished run per size (``--rows``, default 1e5, 1e6, 1e7) of GenImage-like
cells (``--cell-rows`` images each, 12,500 by default: a GenImage test subset), spread over 8 test generators x
7 degradations x 3 seeds x as many detectors as the size needs, written through ``Store.write_predictions`` (so
every file carries its checksum). Then, each step in its own child process (so its peak RSS is its own):

- ``report``: ``build_report(load_runs(...))`` without figures: every subset's metrics with bootstrap intervals,
  the means over generators and families with theirs, both tables; each cell read and checked once.
- ``leaderboard``: ``write_leaderboard``: each row's clean cells read together, once.
- ``report, pandas (today)``: what ``report`` did before: every prediction read into one frame
  (``Store.read_predictions``), then per-subset metrics, means over generators and families on it. Skipped with
  the reason printed where its measured bytes per row at the smallest size (its peak above the new path's)
  say it would need over 40% of the memory available (a shared machine); ``--pandas-max-rows`` sets a limit.

    python benchmarks/report_scaling.py                              # 1e5, 1e6, 1e7 rows (the last takes a while)
    python benchmarks/report_scaling.py --rows 2000,8000 --cell-rows 500 --boot 20
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

GENERATORS = [f"gen{g}" for g in range(8)]
DEGRADATIONS = ["none", "jpeg(q=95)", "jpeg(q=65)", "jpeg(q=30)", "blur(s=1)", "blur(s=3)", "downscale(size=112)"]
SEEDS = 3
METRICS = ["acc", "ap", "auroc"]
STEPS = ("report", "leaderboard", "report, pandas (today)")


def _images(generator: str, n: int) -> pd.DataFrame:
    rel = [f"{generator}/val/{'ai' if i % 2 else 'nature'}/{i:06d}.png" for i in range(n)]
    return pd.DataFrame({"image_id": [hashlib.sha256(r.encode()).hexdigest()[:16] for r in rel], "path": ["/data/" + r for r in rel],
                         "rel_path": rel, "sha256": [hashlib.sha256(b"x" + r.encode()).hexdigest() for r in rel],
                         "generator": generator, "family": "gan" if generator in ("gen0", "gen1") else "diffusion",
                         "label": np.arange(n) % 2})


def make_store(root: Path, rows: int, cell_rows: int) -> str:
    """One finished run of ``rows`` predictions in cells of ``cell_rows``; returns its run id."""
    from mirage_bench.store import PREDICTION_COLUMNS, Store, write_json

    store = Store(root)
    run_id = store.new_run_id()
    images = {g: _images(g, cell_rows) for g in GENERATORS}
    rng = np.random.default_rng(0)
    cells = []
    for i in range(max(1, rows // cell_rows)):
        g, k = GENERATORS[i % 8], (i // 8) % len(DEGRADATIONS)
        seed, detector = (i // (8 * len(DEGRADATIONS))) % SEEDS, f"det{i // (8 * len(DEGRADATIONS) * SEEDS)}"
        labels = images[g]["label"].to_numpy()
        logits = (2 * labels - 1) * 1.5 / (1 + k) + rng.normal(0, 1.5, cell_rows)
        cell_id = hashlib.sha256(f"{detector}/{seed}/{g}/{k}".encode()).hexdigest()[:20]
        frame = images[g].assign(run_id=run_id, cell_id=cell_id, detector=detector, recipe_hash="r" + detector, train_generators="gen0",
                                 seed=seed, checkpoint_sha256=f"c{detector}{seed}", degradation=DEGRADATIONS[k], degradation_seed=0,
                                 logit=logits.astype(np.float32), p_fake=(1 / (1 + np.exp(-logits))).astype(np.float32),
                                 threshold=0.5, impl="reference", random_backbone=False)
        store.write_predictions(cell_id, frame[PREDICTION_COLUMNS])
        cells.append({"cell_id": cell_id, "generator": g, "degradation": DEGRADATIONS[k], "images": cell_rows,
                      "computed_in_this_run": True, "seconds": 1.0})
    card = {"name": "scaling", "test": GENERATORS, "metrics": METRICS}
    write_json(store.run_dir(run_id) / "record.json", {
        "run_id": run_id, "device": "cpu", "world_size": 1, "protocol": {"name": "scaling", "version": 1, "card": card},
        "data": {"test": {g: g for g in GENERATORS}}, "train_cells": [], "eval_cells": cells, "seeds": list(range(SEEDS)),
        "recipes": {}})
    return run_id


def child(step: str, root: Path, run_id: str, boot: int) -> None:
    """Run one step; print its seconds and peak RSS as JSON."""
    from mirage_bench import metrics as M
    from mirage_bench.reports.leaderboard import write_leaderboard
    from mirage_bench.reports.report import build_report
    from mirage_bench.reports.runs import check_comparable, comparability, load_runs
    from mirage_bench.store import Store

    start = time.perf_counter()
    if step == "report":
        build_report(load_runs(root, [run_id]), METRICS, n_boot=boot, with_figures=False)
    elif step == "leaderboard":
        with tempfile.TemporaryDirectory() as out:
            write_leaderboard(root, out, n_boot=boot)
    else:
        record = Store(root).run_record(run_id)
        check_comparable([record]), comparability(record)  # as load_runs did (its data hash imports the engine, and torch, in both paths)
        frame = Store(root).read_predictions([c["cell_id"] for c in record["eval_cells"]])
        per_subset = M.subset_metrics(frame, METRICS, n_boot=boot)
        M.mean_over(per_subset, "generator")
        M.family_means(per_subset, frame[["generator", "family"]])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps({"seconds": time.perf_counter() - start, "peak": peak}))


def _measure(step: str, root: Path, run_id: str, boot: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", step, "--store", str(root), "--run", run_id, "--boot", str(boot)],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"step {step!r} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _available() -> int:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="100000,1000000,10000000", help="comma-separated store sizes (rows)")
    parser.add_argument("--cell-rows", type=int, default=12500)
    parser.add_argument("--boot", type=int, default=100, help="bootstrap resamples per interval")
    parser.add_argument("--pandas-max-rows", type=float, default=None, help="skip today's path above this many rows")
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.store, args.run, args.boot)
        return

    from rich.console import Console
    from rich.table import Table

    sizes = [int(float(r)) for r in args.rows.split(",")]
    table = Table(title=f"Report scaling: cells of {args.cell_rows:,} rows, {args.boot} resamples, metrics {', '.join(METRICS)}; "
                        f"{os.cpu_count()} CPUs, {_available() / 2**30:.1f} GiB available at start")
    for column in ("step", "rows", "cells", "seconds", "peak RSS (MiB)", "vs pandas (time)", "vs pandas (peak)"):
        table.add_column(column, justify="left" if column == "step" else "right")
    per_row = None  # today's path: bytes of peak RSS per row, measured at the smallest size
    skipped = []
    with tempfile.TemporaryDirectory(prefix="report-scaling-") as tmp:
        for rows in sizes:
            root = Path(tmp) / f"store-{rows}"
            start = time.perf_counter()
            run_id = make_store(root, rows, args.cell_rows)
            print(f"{rows:,} rows: store written in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
            n = max(1, rows // args.cell_rows) * args.cell_rows
            results = {}
            for step in STEPS:
                if step == STEPS[2]:
                    limit = args.pandas_max_rows if args.pandas_max_rows is not None else (
                        0.4 * _available() / per_row if per_row else float("inf"))
                    if n > limit:
                        skipped.append(f"{step} at {n:,} rows: its {per_row or 0:,.0f} bytes per row above the new path's peak "
                                       f"at {sizes[0]:,} rows need ~{(per_row or 0) * n / 2**30:.1f} GiB more, over 40% of the "
                                       f"{_available() / 2**30:.1f} GiB available" if args.pandas_max_rows is None
                                       else f"{step} at {n:,} rows: over --pandas-max-rows {args.pandas_max_rows:,.0f}")
                        continue
                results[step] = _measure(step, root, run_id, args.boot)
                if step == STEPS[2] and per_row is None:  # growth over the new path's peak (imports, torch) per row
                    per_row = max(0.0, results[step]["peak"] - results[STEPS[0]]["peak"]) / n
            base = results.get(STEPS[2])
            for step, r in results.items():
                ratio = (lambda key: f"{r[key] / base[key]:.2f}x") if base and step != STEPS[2] else (lambda key: "")
                table.add_row(step, f"{n:,}", f"{n // args.cell_rows:,}", f"{r['seconds']:.1f}", f"{r['peak'] / 2**20:,.0f}",
                              ratio("seconds"), ratio("peak"))
            print(f"{rows:,} rows measured", file=sys.stderr, flush=True)
    Console(width=140).print(table)
    for line in skipped:
        print(f"skipped: {line}")


if __name__ == "__main__":
    main()
