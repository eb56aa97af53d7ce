"""The tiny benchmark the cluster tests split into jobs, with what one process stores for it."""

import pytest

from mirage_bench.engine import runner
from mirage_bench.store import Store


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, engine_helpers):
    """The tiny benchmark, what a one-process run stores for it and its checkpoint's content hash."""
    root = tmp_path_factory.mktemp("tiny")
    bench = engine_helpers.benchmark(root / "data")
    runner.execute(bench, runner.Options(out=root / "one", state_every=1))
    return bench, engine_helpers.stored_logits(root / "one"), runner.checkpoint_hash(Store(root / "one"), runner.train_cells(bench)[0])
