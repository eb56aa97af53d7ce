"""Bootstrap intervals: our counted resamples against the obvious loop (scikit-learn on each resample).

One synthetic subset (``--images``, half real, float32 scores as the store keeps them). Per metric: the time
per resample of scikit-learn's metric on each resample drawn (measured on ``--naive-boot`` resamples) and of
``metrics.resampled_values`` on ``--boot`` resamples; then every default metric together through
``bootstrap_intervals``, which is what each table cell costs. The values of both paths are compared.

    python benchmarks/metrics_throughput.py                   # 12,000 images (a GenImage val subset), 1,000 resamples
    python benchmarks/metrics_throughput.py --images 500 --boot 50 --naive-boot 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=12000)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--naive-boot", type=int, default=50)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from mirage_bench import metrics as M

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], [args.images // 2, args.images - args.images // 2])
    scores = np.clip(rng.normal(0.4 + 0.2 * labels, 0.2), 0, 1).astype(np.float32).astype(float)
    index = M.resample_index(labels, args.boot, rng)
    table = Table(title=f"Bootstrap, {args.images} images: ms per resample (naive on {args.naive_boot}, ours on {args.boot})")
    for column in ("metric", "scikit-learn per resample", "ours", "speed-up", "same values"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name in M.DEFAULT_METRICS:
        metric = M.METRICS.get(name)
        threshold = M.threshold_for(metric, 0.5)
        metric.fn(labels, scores, threshold), M.resampled_values([metric], labels, scores, index[:2], [threshold])  # warm-up
        start = time.perf_counter()
        naive = [metric.fn(labels[i], scores[i], threshold) for i in index[:args.naive_boot]]
        naive_ms = 1000 * (time.perf_counter() - start) / args.naive_boot
        start = time.perf_counter()
        ours = M.resampled_values([metric], labels, scores, index, [threshold])[0]
        ours_ms = 1000 * (time.perf_counter() - start) / args.boot
        same = np.allclose(ours[:args.naive_boot], naive, rtol=0, atol=1e-12)
        table.add_row(name, f"{naive_ms:.3f}", f"{ours_ms:.3f}", f"{naive_ms / ours_ms:.0f}x", "yes" if same else "NO")
    start = time.perf_counter()
    M.bootstrap_intervals(M.DEFAULT_METRICS, labels, scores, 0.5, args.boot)
    table.add_row("all, one table cell", "", f"{1000 * (time.perf_counter() - start) / args.boot:.3f}", "", "")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
