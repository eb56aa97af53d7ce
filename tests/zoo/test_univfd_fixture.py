"""The one real published file kept here, UnivFD's fc_weights.pth (saved from CUDA tensors), loads on the CPU."""

from __future__ import annotations

import shutil

import torch

from mirage_bench.zoo.card import load_published
from mirage_bench.zoo.fetch import cache_path
from mirage_bench.zoo.load import load_published_detector

from zoo_helpers import FIXTURE, FIXTURE_SHA256, TINY_CLIP as TINY


def test_real_univfd_head_loads_into_univfd_and_scores_as_the_authors_model() -> None:
    card = load_published("univfd-ojha2023")
    assert card.weights.sha256 == FIXTURE_SHA256 and card.weights.size == FIXTURE.stat().st_size
    detector = load_published_detector(card, weights=FIXTURE, overrides=TINY)
    published = torch.load(FIXTURE, map_location="cpu", weights_only=True)
    assert torch.equal(detector.fc.weight, published["weight"]) and torch.equal(detector.fc.bias, published["bias"])
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():  # the authors' CLIPModel.forward: fc(model.encode_image(x))
        expected = torch.nn.functional.linear(detector.encoder(images).float(), published["weight"], published["bias"])
        assert torch.allclose(detector(images), expected.squeeze(1), atol=1e-6)


def test_a_file_copied_into_the_cache_by_hand_is_used_after_its_sha256_matched() -> None:
    card = load_published("univfd-ojha2023")
    target = cache_path(card)
    target.parent.mkdir(parents=True)
    shutil.copyfile(FIXTURE, target)
    detector = load_published_detector(card, offline=True, overrides=TINY)
    assert torch.equal(detector.fc.bias, torch.load(FIXTURE, weights_only=True, map_location="cpu")["bias"])
