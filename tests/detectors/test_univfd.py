"""UnivFD: a frozen CLIP image tower and one linear layer; the cached variant is labelled as such."""

from __future__ import annotations

import open_clip
import torch

from mirage_bench.cards import load_recipe
from mirage_bench.detectors.base import held_bytes
from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.detectors.infra.inspect import count_trainable


def test_only_the_linear_layer_trains_and_is_saved() -> None:
    detector = build_tiny("univfd")
    width = open_clip.get_model_config("mb-tiny-clip")["embed_dim"]
    assert [n for n, _ in detector.trainable_parameters()] == ["fc.weight", "fc.bias"]
    assert detector.num_trainable() == width + 1
    assert set(detector.state_dict()) == {"fc.weight", "fc.bias"}
    assert not any(p.requires_grad for p in detector.encoder.parameters())


def test_forward_is_head_of_encode_and_encode_is_clip_image_embedding() -> None:
    detector = build_tiny("univfd").eval()
    images = torch.randn(3, 3, 32, 32)
    features = detector.encode(images)
    assert torch.equal(detector(images), detector.head(features))
    clip = open_clip.create_model("mb-tiny-clip", pretrained=None)
    clip.visual.load_state_dict(detector.encoder.state_dict())
    with torch.no_grad():
        assert torch.allclose(features, clip.encode_image(images, normalize=False), atol=1e-6)
    assert detector.head(features.half()).dtype == torch.float32


def test_full_card_trains_one_linear_layer_on_the_vit_l_embedding() -> None:
    card = load_recipe("univfd")
    assert (card.backbone.name, card.backbone.pretrained) == ("ViT-L-14-quickgelu", "openai")
    assert count_trainable(card) == open_clip.get_model_config("ViT-L-14-quickgelu")["embed_dim"] + 1
    assert card.train.augment == ["cnnspot(p=0.5)"] and card.input.eval_crop == "center" and card.input.size == 224


def test_cached_variant_is_labelled_and_has_no_augmentation() -> None:
    full, fast = load_recipe("univfd"), load_recipe("univfd-cached")
    assert fast.params["train_on_cached_features"] and not full.params["train_on_cached_features"]
    assert fast.description.startswith("FAST VARIANT") and "cached" in fast.name and fast.variant_of == "univfd"
    assert fast.train.augment == [] and fast.input.train_crop == "center" and not fast.input.flip
    assert build_tiny("univfd-cached").trains_on_cached_features and not build_tiny("univfd").trains_on_cached_features


def test_random_clip_build_drops_only_open_clips_random_init_line(caplog) -> None:
    """pretrained: none is asked for and labelled everywhere; open_clip's "initialized randomly" line is dropped
    while the backbone is built, and only then."""
    import logging

    from mirage_bench.config import BackboneConfig
    from mirage_bench.detectors.clip.backbone import load_clip

    with caplog.at_level(logging.WARNING):
        _, identity = load_clip(BackboneConfig(name="mb-tiny-clip", pretrained="none"))
        open_clip.create_model("mb-tiny-clip", pretrained=None)  # outside load_clip: open_clip's line stays
    assert identity["random"] is True
    assert [r.getMessage() for r in caplog.records].count(
        "No pretrained weights loaded for model 'mb-tiny-clip'. Model initialized randomly.") == 1


def test_held_bytes_count_the_frozen_image_tower_once() -> None:
    """What a pass of the engine budgets per model: the frozen tower is outside ``parameters()`` but on the device."""
    detector = build_tiny("univfd")
    tower = sum(t.numel() * t.element_size() for t in (*detector.encoder.parameters(), *detector.encoder.buffers()))
    head = sum(p.numel() * p.element_size() for p in detector.parameters())
    assert tower > 0 and held_bytes([detector]) == tower + head
    detector.hold_frozen("alias", detector.encoder)  # the same storage held twice is counted once
    assert held_bytes([detector]) == tower + head
