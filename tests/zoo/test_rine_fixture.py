"""RINE's released 2-class file (mever-team/rine, ckpt/model_2class_trainable.pth, Apache-2.0; a copy in
tests/fixtures/published) loads strictly into our RINE built for ViT-L/14 and scores as the authors' head."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from mirage_bench.detectors.infra.build import build_detector
from mirage_bench.zoo.card import load_published
from mirage_bench.zoo.keymap import map_state
from mirage_bench.zoo.load import published_recipe, read_published_state

RINE_FIXTURE = Path(__file__).parents[1] / "fixtures" / "published" / "rine_model_2class_trainable.pth"


def authors_head(state: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    """src/models.py Model.forward after the hooks, in eval mode: proj1, softmax(alpha) over blocks, sum, proj2, head."""
    def linear_relu(x: torch.Tensor, prefix: str, indices: tuple[int, ...]) -> torch.Tensor:
        for i in indices:
            x = F.relu(F.linear(x, state[f"{prefix}.{i}.weight"], state[f"{prefix}.{i}.bias"]))
        return x

    g = linear_relu(tokens, "proj1", (1, 4, 7, 10))
    z = linear_relu((torch.softmax(state["alpha"], dim=1) * g).sum(dim=1), "proj2", (1, 4, 7, 10))
    return F.linear(linear_relu(z, "head", (0, 3)), state["head.6.weight"], state["head.6.bias"]).squeeze(1)


def test_the_released_2class_file_loads_strictly_into_rine_on_vit_l14() -> None:
    card = load_published("rine-koutlis2024")
    published = read_published_state(card, RINE_FIXTURE)
    assert sum(v.numel() for v in published.values()) == 283_009
    with torch.device("meta"):  # the real ViT-L/14 architecture (24 blocks of width 1024), no weights in memory
        detector = build_detector(published_recipe(card, ["backbone.pretrained=none"]))
    assert detector.num_trainable() == 283_009
    mapped = map_state(card, published, detector.state_dict())
    detector.load_state_dict(mapped, strict=True, assign=True)
    detector.eval()
    tokens = torch.randn(2, 24, 1024, generator=torch.Generator().manual_seed(0))  # the hooks' class tokens
    with torch.no_grad():
        assert torch.allclose(detector.head(tokens), authors_head(published, tokens), atol=1e-5)
