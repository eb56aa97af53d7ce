"""The labelled fast variant (univfd-cached) trains its head on cached features: the encoder runs once."""

from __future__ import annotations

import helpers
from mirage_bench.cards import load_recipe
from mirage_bench.detectors import DETECTORS
from mirage_bench.engine.runner import Options, execute


def test_cached_feature_training_encodes_each_image_once(tmp_path, monkeypatch):
    cls = DETECTORS.get("univfd")
    calls = []
    original = cls.encode
    monkeypatch.setattr(cls, "encode", lambda self, images: calls.append(len(images)) or original(self, images))
    bench = helpers.benchmark(tmp_path / "data", seeds=(0, 1))
    bench.recipes = [load_recipe("univfd-cached", [*cls.tiny_overrides, "train.epochs=2", "train.batch_size=4"])]
    execute(bench, Options(out=tmp_path / "out"), evaluate=False)
    train_images = len(bench.subsets.train["g1"])
    trained_by_encoder = sum(calls)
    # validation runs the full model, twice an epoch under the plateau schedule (clean scoring for the threshold,
    # then the accuracy the plateau watches); training itself must have encoded the 16 training images once,
    # for both seeds together (the second seed hits the cache)
    validation_calls = 2 * 2 * 2 * len(bench.subsets.validation["g1"])  # 2 seeds x 2 epochs x 2 passes
    assert trained_by_encoder == train_images + validation_calls
    assert (tmp_path / "out" / "features").is_dir()
