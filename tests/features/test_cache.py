"""The frozen-feature cache: reuse, every key part that must miss, fp16 values, the byte cap."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.detectors.infra.checkpoint import sha256_file
from mirage_bench.errors import ConfigError, ContractError, DataError
from mirage_bench.features import FeatureCache, FeatureKey, encode_with_cache, feature_keys
from mirage_bench.preprocess import eval_transform


def _write_images(folder, n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


class EncodeSpy:
    """Counts the images that reach the detector's encoder."""

    def __init__(self, detector) -> None:
        self.images = 0
        self._encode = detector.encode
        detector.encode = self

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.images += images.shape[0]
        return self._encode(images)


def _run(detector, cache, paths, degradation="none"):
    keys = feature_keys(detector, [sha256_file(p) for p in paths], degradation)
    load = lambda i: eval_transform(Image.open(paths[i]).convert("RGB"), detector.input_spec)
    return encode_with_cache(detector, cache, keys, load, batch_size=2)


@pytest.fixture
def setup(tmp_path):
    detector = build_tiny("univfd-cached").eval()
    spy = EncodeSpy(detector)
    paths = _write_images(tmp_path, 5, seed=0)
    return detector, spy, paths, FeatureCache(tmp_path / "cache", cap_bytes=1 << 20)


def test_second_run_makes_no_encoder_call_and_returns_the_same_fp16_values(setup, tmp_path) -> None:
    detector, spy, paths, cache = setup
    first = _run(detector, cache, paths)
    assert spy.images == 5 and (cache.hits, cache.misses) == (0, 5)
    assert first.dtype == torch.float16 and first.shape == (5, detector.feature_dim)
    reopened = FeatureCache(tmp_path / "cache", cap_bytes=1 << 20)  # a later run, a new process
    second = _run(detector, reopened, paths)
    assert spy.images == 5 and (reopened.hits, reopened.misses) == (5, 0)
    assert torch.equal(first, second)
    assert torch.allclose(second.float(), detector.encode(torch.stack([eval_transform(Image.open(p).convert("RGB"), detector.input_spec) for p in paths])), atol=1e-2)


def test_changed_bytes_at_the_same_path_miss(setup, tmp_path) -> None:
    detector, spy, paths, cache = setup
    before = _run(detector, cache, paths)
    _write_images(tmp_path, 2, seed=1)  # overwrites 0.png and 1.png
    after = _run(detector, cache, paths)
    assert (cache.hits, cache.misses) == (3, 7) and spy.images == 7
    assert not torch.equal(before[:2], after[:2]) and torch.equal(before[2:], after[2:])


def test_another_degradation_misses(setup) -> None:
    detector, spy, paths, cache = setup
    _run(detector, cache, paths, "none")
    _run(detector, cache, paths, "jpeg(q=50)")
    assert cache.misses == 10 and spy.images == 10


def test_another_backbone_identity_misses(setup, monkeypatch) -> None:
    detector, spy, paths, cache = setup
    _run(detector, cache, paths)
    identity = {**detector.backbone_identity(), "pretrained": "/weights/other.safetensors", "sha256": "ab" * 32, "random": False}
    monkeypatch.setattr(detector, "backbone_identity", lambda: identity)
    _run(detector, cache, paths)
    assert cache.misses == 10 and spy.images == 10


def test_random_backbones_with_other_weights_miss(setup) -> None:
    detector = setup[0]
    other = build_tiny("univfd-cached").eval()
    with torch.no_grad():
        next(other.encoder.parameters()).add_(1.0)  # same identity (random mb-tiny-clip), other weights
    assert detector.backbone_identity() == other.backbone_identity()
    assert feature_keys(detector, ["0" * 64])[0].backbone != feature_keys(other, ["0" * 64])[0].backbone


def test_another_input_spec_misses(setup) -> None:
    detector = setup[0]
    other = build_tiny("univfd-cached", ["input.interpolation=bicubic"])
    assert feature_keys(detector, ["0" * 64])[0].input_spec != feature_keys(other, ["0" * 64])[0].input_spec


def test_repeated_keys_in_one_call_are_computed_once(setup) -> None:
    detector, spy, paths, cache = setup
    features = _run(detector, cache, [paths[0], paths[1], paths[0]])
    assert spy.images == 2 and torch.equal(features[0], features[2])


def _keys(n: int, tag: str) -> list[FeatureKey]:
    return [FeatureKey("b", "s", f"{tag}{i}", "none") for i in range(n)]


def test_cap_evicts_the_oldest_shard_and_refuses_a_batch_above_it(tmp_path) -> None:
    one_shard = 128 + 4 * 8 * 2  # npy header + 4 rows of 8 fp16 values
    cache = FeatureCache(tmp_path, cap_bytes=2 * one_shard)
    compute = lambda idx: torch.randn(len(idx), 8)
    cache.get_or_compute(_keys(4, "a"), compute)
    cache.get_or_compute(_keys(4, "b"), compute)
    cache.get_or_compute(_keys(4, "c"), compute)
    assert cache.evicted_shards == 1 and cache.size_bytes <= cache.cap_bytes and len(cache) == 8
    cache.get_or_compute(_keys(4, "b"), compute)
    assert cache.misses == 12  # "b" survived
    cache.get_or_compute(_keys(4, "a"), compute)
    assert cache.misses == 16  # "a" was evicted first
    with pytest.raises(ConfigError, match="cap"):
        cache.get_or_compute(_keys(40, "d"), compute)


def test_damaged_shard_is_a_data_error(tmp_path) -> None:
    cache = FeatureCache(tmp_path, cap_bytes=1 << 20)
    cache.get_or_compute(_keys(2, "a"), lambda idx: torch.randn(len(idx), 8))
    for shard in sorted((tmp_path / "shards").glob("*.npy")):
        shard.write_bytes(b"not an array")
    with pytest.raises(DataError, match="delete the folder"):
        cache.get_or_compute(_keys(2, "a"), lambda idx: torch.randn(len(idx), 8))


def test_head_trains_on_cached_features_with_falling_loss(setup) -> None:
    detector, _, paths, cache = setup
    features = _run(detector, cache, paths)
    labels = torch.tensor([0.0, 1, 0, 1, 0])
    optimiser = torch.optim.Adam(detector.parameters(), lr=3e-2)
    losses = []
    for _ in range(20):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(detector.head(features), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-3:]) < 0.85 * np.mean(losses[:3]), losses


def test_a_detector_whose_encoder_trains_cannot_cache_features():
    """MiraGe has encode()/head() too, but its vision prompts train: cached features would go stale."""
    with pytest.raises(ContractError, match="'mirage' does not declare a frozen encoder"):
        feature_keys(build_tiny("mirage"), ["0" * 64])
