"""Every baseline card trains on a tiny image tree and is listed by the CLI (the contract itself: test_contract.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from mirage_bench.cli import app
from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.preprocess import train_transform



def _tiny_tree(root, n_per_class: int = 4) -> list[tuple[str, int]]:
    """real/ holds noise images, fake/ nearest-up-sampled noise; odd sizes on purpose (41 x 37)."""
    rng = np.random.default_rng(0)
    items = []
    for label, folder in enumerate(["real", "fake"]):
        (root / folder).mkdir()
        for i in range(n_per_class):
            if label:
                small = rng.integers(0, 256, (19, 21, 3), dtype=np.uint8)
                pixels = small.repeat(2, axis=0).repeat(2, axis=1)[:37, :41]
            else:
                pixels = rng.integers(0, 256, (37, 41, 3), dtype=np.uint8)
            path = root / folder / f"{i:02d}.png"
            Image.fromarray(pixels).save(path)
            items.append((str(path), label))
    return sorted(items)


# One card per implementation (the variants build the same model); univfd-cached trains on cached
# features, tested in tests/features.
@pytest.mark.parametrize("card", ["cnnspot", "npr", "univfd", "freqnet", "fatformer"])
def test_trains_on_a_tiny_tree_with_falling_loss(card: str, tmp_path) -> None:
    torch.manual_seed(0)
    detector = build_tiny(card)
    generator = torch.Generator().manual_seed(0)
    items = _tiny_tree(tmp_path)
    images = torch.stack([train_transform(Image.open(p).convert("RGB"), detector.input_spec, generator) for p, _ in items])
    labels = torch.tensor([label for _, label in items])
    optimiser = torch.optim.Adam([p for _, p in detector.trainable_parameters()], lr=3e-2)
    detector.train()
    losses = []
    for _ in range(20):
        loss, _ = detector.training_loss(images, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-3:]) < 0.85 * np.mean(losses[:3]), losses


def test_detectors_list_shows_every_baseline_with_counts_and_citations() -> None:
    result = CliRunner().invoke(app, ["detectors", "list"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") >= 5}
    for card, citation_word in [("cnnspot", "Wang"), ("cnnspot-p01", "Wang"), ("npr", "Tan"), ("univfd", "Ojha"), ("univfd-cached", "Ojha")]:
        assert card in rows, result.output
        assert citation_word in rows[card]
        count_cell = rows[card].split("│")[4].strip()
        assert int(count_cell.replace(",", "")) > 0
