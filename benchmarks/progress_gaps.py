"""How long a log waits between progress lines: ``data index`` on a synthetic tree, with stdout a pipe.

Writes ``--files`` distinct 8 px PNGs in GenImage layout (5 generators x {train, val} x {ai, nature}) into a
temporary folder (or reads ``--root``), runs ``python -m mirage_bench.cli data index`` on it with stdout and
stderr a pipe (as in a cluster job's log), stamps each line as it arrives and prints the gaps between lines, the
first from the process start and the last to its exit.

    python benchmarks/progress_gaps.py --files 100000
    MIRAGE_BENCH_PROGRESS_INTERVAL=2 python benchmarks/progress_gaps.py --files 2000 --workers 1
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

CELLS = [(f"gen{g}", split, cls) for g in range(5) for split in ("train", "val") for cls in ("ai", "nature")]


def write_tree(root: Path, files: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(files):
        generator, split, cls = CELLS[i % len(CELLS)]
        folder = root / generator / split / cls
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buffer, "PNG")
        (folder / f"{i:07d}.png").write_bytes(buffer.getvalue())


def stamped_lines(command: list[str]) -> tuple[list[tuple[float, str]], float, int]:
    """(seconds since the start, line) per line of ``command``'s piped output, its run time and exit code."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = [(time.monotonic() - started, line.rstrip("\n")) for line in process.stdout]
    code = process.wait()
    return lines, time.monotonic() - started, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--root", type=Path, help="index this folder instead of writing one")
    parser.add_argument("--workers", type=int, help="data index --workers (default: its own)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root
        if root is None:
            root = Path(tmp) / "tree"
            write_tree(root, args.files)
        command = [sys.executable, "-m", "mirage_bench.cli", "data", "index", str(root), "--out", f"{tmp}/index.parquet"]
        command += ["--workers", str(args.workers)] if args.workers else []
        lines, total, code = stamped_lines(command)
    for at, line in lines:
        print(f"{at:8.2f} s  {line}")
    stamps = [0.0, *(at for at, _ in lines), total]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    print(f"exit code {code}, {total:.1f} s, {len(lines)} lines; gaps (s): {' '.join(f'{g:.2f}' for g in gaps)}; "
          f"largest {max(gaps):.2f} s")
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
