"""A training run that diverges stops with an error that names the cause, not a crash deep in checkpointing."""

import pytest

import helpers
from mirage_bench.engine.runner import Options, execute
from mirage_bench.errors import TrainingError


def test_non_finite_validation_loss_is_a_training_error(tmp_path):
    bench = helpers.benchmark(tmp_path / "data", overrides=["train.lr=1e30", "train.epochs=1"])
    with pytest.raises(TrainingError, match=r"training diverged, the validation loss after epoch 0 is nan .*lower train\.lr"):
        execute(bench, Options(out=tmp_path / "out"))
