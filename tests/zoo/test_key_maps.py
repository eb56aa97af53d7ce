"""Every published card's key map, against our detector's state dict (built on the meta device): the authors' names
map onto it exactly, and one renamed or reshaped key is refused by name."""

from __future__ import annotations

import pytest
import torch

from mirage_bench.detectors.infra.build import build_detector
from mirage_bench.errors import CheckpointError
from mirage_bench.zoo.card import PublishedCard, load_published, published_paths
from mirage_bench.zoo.keymap import map_state
from mirage_bench.zoo.load import published_recipe

from zoo_helpers import TINY_CLIP


#: A ConvNeXt tower (AIDE's) has no tiny stand-in of the same width: it is built at full size, random, on the meta device.
FULL_SIZE = ("backbone.pretrained=none",)


def full_size(card: PublishedCard) -> bool:
    """Whether the card's detector is built at its real size here, so that its documented shapes are checked."""
    return card.backbone is None or card.backbone.name.startswith("convnext")


def ours_and_published(card: PublishedCard) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Our state dict, and the same tensors under the authors' names (the card's renames undone, ignored keys added)."""
    overrides = () if card.backbone is None else FULL_SIZE if full_size(card) else TINY_CLIP
    with torch.device("meta"):
        ours = build_detector(published_recipe(card, overrides)).state_dict()
    published = {}
    for key, value in ours.items():
        for old, new in card.key_map.rename.items():
            if key == new or ((old == "" or old.endswith(".")) and key.startswith(new)):
                key = old + key[len(new):]
                break
        published[key] = value
    published |= {k: torch.empty(1, device="meta") for k in card.key_map.ignore}
    return ours, published


@pytest.mark.parametrize("name", sorted(published_paths()))
def test_the_authors_names_map_onto_ours_and_a_changed_key_is_named(name: str) -> None:
    card = load_published(name)
    ours, published = ours_and_published(card)
    assert map_state(card, published, ours).keys() == ours.keys()
    for key, shape in card.key_map.shapes.items():  # the authors' shapes; a tiny CLIP stands in for ViT-L/14 here
        assert key in published and (not full_size(card) or list(published[key].shape) == shape), (name, key)
    victim = next(k for k in published if k not in card.key_map.ignore)
    renamed = {("renamed." + k if k == victim else k): v for k, v in published.items()}
    with pytest.raises(CheckpointError, match=f"unexpected keys \\(published -> ours\\): renamed.{victim} -> "):
        map_state(card, renamed, ours)
    reshaped = {**published, victim: torch.empty(7, 3, device="meta")}
    with pytest.raises(CheckpointError, match=f"shape mismatch: published {victim} \\[7, 3\\] vs ours "):
        map_state(card, reshaped, ours)
