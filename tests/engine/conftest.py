import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the tests' own helpers module

import pytest  # noqa: E402

import helpers  # noqa: E402


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """A folder for ``helpers.benchmark``'s images, shared by a test module."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def tiny_reference(tiny_data, tmp_path_factory):
    """An uninterrupted run of ``helpers.benchmark`` (state saved every 3 steps): its output folder and record."""
    from mirage_bench.engine.runner import Options, execute

    out = tmp_path_factory.mktemp("reference")
    return out, execute(helpers.benchmark(tiny_data), Options(out=out, state_every=3))
