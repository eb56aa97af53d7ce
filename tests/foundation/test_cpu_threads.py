"""CPU intra-op threads beside loader workers: threads + workers never exceed the cores this process may use."""

from __future__ import annotations

import pytest
import torch

from mirage_bench.errors import ConfigError
from mirage_bench.machine import cpu_threads, limit_cpu_threads, usable_cores


@pytest.mark.parametrize("workers, cores, threads", [(0, 8, 8), (3, 8, 5), (7, 8, 1), (8, 8, 1), (20, 8, 1), (2, 2, 1)])
def test_the_cores_left_beside_the_workers_at_least_one(workers, cores, threads):
    assert cpu_threads(workers, cores) == threads


def test_the_default_cores_are_the_usable_ones():
    assert cpu_threads(0) == usable_cores()


def test_negative_workers_are_refused():
    with pytest.raises(ConfigError, match="loader workers must be >= 0, got -1"):
        cpu_threads(-1)


def test_limit_sets_torch_threads_and_returns_the_previous_count():
    before = torch.get_num_threads()
    try:
        assert limit_cpu_threads(1, cores=2) == before
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
