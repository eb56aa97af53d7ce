"""Not a test: trains the reference ``tinycnn`` detector on each family of a mini set and scores every family.

Run: ``PYTHONPATH=. python tests/mini/probe_tinycnn.py [ROOT]`` (default: the shipped set). Prints a
train-family x test-family table of val accuracy (threshold 0.5) and AP; the numbers quoted in the mini
set's report come from this script, until the benchmark engine runs the ``mini-matrix`` protocol itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import average_precision_score

from mirage_bench.cards import load_recipe
from mirage_bench.detectors.infra.build import build_detector
from mirage_bench.mini import default_root
from mirage_bench.mini.checks import load_pixels, select
from mirage_bench.mini.families import GENERATORS
from mirage_bench.mini.manifest import read_manifest


def tensors(root: Path, records, generator: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    rows = select(records, generator, split)
    x = torch.from_numpy(load_pixels(root, rows)).permute(0, 3, 1, 2).float() / 127.5 - 1  # mean/std 0.5
    return x, torch.tensor([r.label for r in rows], dtype=torch.float32)


def train(x: torch.Tensor, y: torch.Tensor, seed: int, steps: int = 600, batch: int = 32) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_detector(load_recipe("tinycnn"))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        index = torch.randint(0, len(x), (batch,), generator=gen)
        images = x[index]
        flip = torch.rand(batch, generator=gen) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(3), images)
        loss, _ = model.training_loss(images, y[index])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def main(root: Path) -> None:
    torch.set_num_threads(1)
    records = read_manifest(root)
    generators = [g for g in GENERATORS if any(r.generator == g for r in records)]
    val = {g: tensors(root, records, g, "val") for g in generators}
    print(f"{'train/test':<10}" + "".join(f"{g:>16}" for g in generators) + "   (val accuracy / AP)")
    for train_gen in generators:
        model = train(*tensors(root, records, train_gen, "train"), seed=0)
        cells = []
        with torch.no_grad():
            for g in generators:
                x, y = val[g]
                p = model.p_fake(model(x)).numpy()
                cells.append(f"{np.mean((p > 0.5) == y.numpy()):.3f}/{average_precision_score(y.numpy(), p):.3f}")
        print(f"{train_gen:<10}" + "".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default_root())
