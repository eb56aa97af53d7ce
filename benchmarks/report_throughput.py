"""Table metrics with intervals, per report: one thread against one per core, on GenImage-sized cells.

Every ``run``, ``report`` and ``leaderboard`` computes each table cell's seven default metrics and their
bootstrap intervals (1,000 resamples) from the stored predictions. This makes ``--cells`` cells of
``--images`` images each (half real, float32 scores) and times ``metrics.subset_metrics`` with one thread
and with ``--workers`` threads in the same run; the two tables must be equal.

    python benchmarks/report_throughput.py                    # 16 cells of 12,000 images
    python benchmarks/report_throughput.py --cells 4 --images 400 --boot 50
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def main() -> None:
    from mirage_bench.machine import usable_cores

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=16)
    parser.add_argument("--images", type=int, default=12000)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=min(16, usable_cores()))
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from mirage_bench import metrics as M

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], [args.images // 2, args.images - args.images // 2])
    frames = [pd.DataFrame({"detector": "d", "recipe_hash": "r", "impl": "reference", "train_generators": "t", "seed": 0,
                            "degradation": "none", "generator": f"g{k:02d}", "image_id": np.arange(args.images).astype(str),
                            "label": labels, "threshold": 0.5,
                            "p_fake": np.clip(rng.normal(0.4 + 0.2 * labels, 0.2), 0, 1).astype(np.float32)})
              for k in range(args.cells)]
    predictions = pd.concat(frames, ignore_index=True)
    rows, tables = [], []
    for workers in (1, args.workers):
        start = time.perf_counter()
        tables.append(M.subset_metrics(predictions, M.DEFAULT_METRICS, n_boot=args.boot, workers=workers))
        rows.append((workers, time.perf_counter() - start))
    same = tables[0].equals(tables[1])
    table = Table(title=f"{args.cells} cells x {args.images} images, {len(M.DEFAULT_METRICS)} metrics, {args.boot} resamples, "
                        f"{usable_cores()} cores")
    for column in ("threads", "seconds", "s per cell", "vs 1 thread", "same table"):
        table.add_column(column, justify="right")
    for workers, seconds in rows:
        table.add_row(str(workers), f"{seconds:.2f}", f"{seconds / args.cells:.3f}", f"{rows[0][1] / seconds:.1f}x",
                      "yes" if same else "NO")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
