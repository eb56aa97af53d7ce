"""A CPU training step beside busy loader workers: torch's default intra-op threads against ``machine.cpu_threads``.

tinycnn (its card: 32 px input, batch 32, Adam) trains on batches that a DataLoader decodes in ``--workers``
processes from PNG files of ``--size`` px (written by this script) and crops at random, as the engine's loader
does. Each step (forward, backward, optimiser; waiting for data excluded) is timed, and so is the whole loop,
with torch's default threads and with ``cpu_threads(workers)``; the two settings alternate ``--rounds`` times,
so that load from other processes falls on both alike.

    python benchmarks/cpu_threads.py                          # 2 workers, 256 px files, 3 rounds of 20 steps
    python benchmarks/cpu_threads.py --workers 1 --steps 3 --rounds 1 --size 64
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from mirage_bench.cards import load_recipe
from mirage_bench.detectors.infra.build import build_detector
from mirage_bench.machine import cpu_threads, usable_cores


class Crops(Dataset):
    """Decode a PNG and crop ``crop`` px at random: the loader's CPU work per image."""

    def __init__(self, files: list[Path], crop: int) -> None:
        self.files, self.crop = files, crop

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.files[index]) as image:
            pixels = np.asarray(image.convert("RGB"))
        y, x = np.random.default_rng(index).integers(0, pixels.shape[0] - self.crop + 1, size=2)
        tile = torch.from_numpy(pixels[y:y + self.crop, x:x + self.crop].copy()).permute(2, 0, 1).float() / 127.5 - 1
        return tile, index % 2


def write_files(folder: Path, count: int, size: int) -> list[Path]:
    rng = np.random.default_rng(0)
    files = []
    for i in range(count):
        base = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)  # photo-like file sizes
        path = folder / f"{i:05d}.png"
        Image.fromarray(base).resize((size, size), Image.BICUBIC).save(path)
        files.append(path)
    return files


def train_round(files: list[Path], threads: int, workers: int, steps: int) -> tuple[list[float], float]:
    """Per-step seconds and the loop's seconds, with ``threads`` intra-op threads in this process."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    recipe = load_recipe("tinycnn")
    model = build_detector(recipe).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.train.lr)
    loader = DataLoader(Crops(files, recipe.input.size), batch_size=recipe.train.batch_size, num_workers=workers)
    step_seconds = []
    started = time.perf_counter()
    for i, (images, labels) in enumerate(loader):
        if i == steps:
            break
        t0 = time.perf_counter()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(images), labels.float())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step_seconds.append(time.perf_counter() - t0)
    return step_seconds, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=256, help="side of the PNG files in px")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    default, limited = torch.get_num_threads(), cpu_threads(args.workers)
    settings = {f"torch default ({default} threads)": default, f"cpu_threads ({limited} thread(s))": limited}
    print(f"{usable_cores()} usable cores, {args.workers} loader workers, {args.steps} steps a round, {args.rounds} rounds")
    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(Path(tmp), 32 * (args.steps + 1), args.size)
        times: dict[str, list[float]] = {name: [] for name in settings}
        loops: dict[str, list[float]] = {name: [] for name in settings}
        for _ in range(args.rounds):
            for name, threads in settings.items():
                steps, loop = train_round(files, threads, args.workers, args.steps)
                times[name] += steps[1:]  # the first step builds Adam's state
                loops[name].append(loop)
    print(f"{'setting':<28} {'median step ms':>15} {'p90 step ms':>12} {'loop s (median)':>16}")
    for name in settings:
        p90 = statistics.quantiles(times[name], n=10)[-1] if len(times[name]) > 1 else times[name][0]
        print(f"{name:<28} {1000 * statistics.median(times[name]):>15.1f} {1000 * p90:>12.1f} "
              f"{statistics.median(loops[name]):>16.2f}")


if __name__ == "__main__":
    main()
