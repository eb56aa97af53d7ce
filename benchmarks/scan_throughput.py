"""Data-root scan: what a run spends reading a GenImage-shaped root before any training or scoring.

A run decodes every image it reads (to refuse corrupt files and hash contents, which name its cells). Rows,
all on the same folder, made by this script (GenImage's layout: 8 generators, each with ``train`` and ``val``
splits of ``ai`` PNGs and ``nature`` JPEGs, at ``--size`` px):

- (a) before: every file of the root decoded in one process (what ``load_benchmark`` did until 2026-11-27);
- (b) a first run now: only the splits the ``genimage`` protocol reads (SD v1.4's train, every val), in
  ``--workers`` processes, remembering each file's facts;
- (c) a later run: the same files, unchanged, looked up by identity (``data.facts_cache``).

    python benchmarks/scan_throughput.py                       # 8 x (200 train + 50 val) per class, 256 px
    python benchmarks/scan_throughput.py --train 20 --val 5 --size 64 --workers 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from mirage_bench.machine import usable_cores

GENERATORS = [("ADM", "imagenet_ai_0508_adm"), ("BigGAN", "imagenet_ai_0419_biggan"), ("glide", "imagenet_glide"),
              ("Midjourney", "imagenet_midjourney"), ("stable_diffusion_v_1_4", "imagenet_ai_0419_sdv4"),
              ("stable_diffusion_v_1_5", "imagenet_ai_0424_sdv5"), ("VQDM", "imagenet_ai_0419_vqdm"),
              ("wukong", "imagenet_ai_0424_wukong")]


def _write(job: tuple[str, int, int]) -> None:
    path, size, seed = job
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)  # smooth-ish content, photo-like sizes on disk
    image = Image.fromarray(base).resize((size, size), Image.BICUBIC)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "PNG" if path.endswith(".png") else "JPEG", **({} if path.endswith(".png") else {"quality": 90}))


def make_root(root: Path, train: int, val: int, size: int, workers: int) -> int:
    jobs = []
    for top, inner in GENERATORS:
        for split, n in (("train", train), ("val", val)):
            for i in range(n):
                jobs.append((str(root / top / inner / split / "ai" / f"{i:05d}.png"), size, len(jobs)))
                jobs.append((str(root / top / inner / split / "nature" / f"n{i:05d}.JPEG"), size, len(jobs)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_write, jobs, chunksize=16))
    return len(jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=200, help="images per class in each generator's train split")
    parser.add_argument("--val", type=int, default=50, help="images per class in each generator's val split")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=min(16, usable_cores()))
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from mirage_bench.data import build_manifest
    from mirage_bench.data.facts_cache import FactsCache
    from mirage_bench.data.images import MAX_PIXELS
    from mirage_bench.data.subsets import ROLES
    from mirage_bench.protocol import load_protocol

    card = load_protocol("genimage")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "GenImage"
        files = make_root(root, args.train, args.val, args.size, args.workers)
        rows = []

        def timed(label: str, **kwargs) -> None:
            start = time.perf_counter()
            manifest, _ = build_manifest(root, card.layout, card, **kwargs)
            rows.append((label, len(manifest), time.perf_counter() - start))

        timed("(a) before: every file, one process", workers=1)
        with FactsCache(Path(tmp) / "facts.sqlite", MAX_PIXELS) as facts:
            timed(f"(b) first run: splits read, {args.workers} processes", workers=args.workers, roles=ROLES, facts=facts)
        with FactsCache(Path(tmp) / "facts.sqlite", MAX_PIXELS) as facts:
            timed("(c) later run: unchanged files from the cache", workers=args.workers, roles=ROLES, facts=facts)

    table = Table(title=f"Scan of a GenImage-shaped root: {files} files of {args.size} px, {os.cpu_count()} cores")
    for column in ("row", "images in manifest", "seconds", "vs (a)"):
        table.add_column(column, justify="left" if column == "row" else "right")
    for label, images, seconds in rows:
        table.add_row(label, str(images), f"{seconds:.2f}", f"{rows[0][2] / seconds:.1f}x")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
