"""freqnet-tan2024: a bare state dict under the authors' names (networks/base_model.py saves model.state_dict())
loads strictly into the freqnet recipe and scores as the model it was saved from."""

from __future__ import annotations

from pathlib import Path

import torch

from mirage_bench.cards import load_recipe
from mirage_bench.detectors.infra.build import build_detector
from mirage_bench.zoo.card import load_published
from mirage_bench.zoo.load import load_published_detector

from zoo_helpers import save


def test_the_authors_state_dict_loads_strictly_and_scores_the_same(tmp_path: Path) -> None:
    torch.manual_seed(0)
    authors = build_detector(load_recipe("freqnet")).eval()  # our names are theirs: weight1..4, realconv1..4, layer1, fc1
    for m in authors.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # statistics away from (0, 1), so a mis-mapped buffer shows
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    file = save(authors.state_dict(), tmp_path / "4-classes-freqnet-v2.pth")
    detector = load_published_detector(load_published("freqnet-tan2024"), weights=file)
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(detector(images), authors(images))
