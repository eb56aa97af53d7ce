"""Sharded evaluation with 2 gloo processes scores each image once, with the scores of one process."""

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import helpers
from mirage_bench.detectors.build import build_detector
from mirage_bench.engine.evaluator import score_subset
from mirage_bench.engine.sources import expand_degradations


def _worker(rank, init, manifest, out):
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    torch.manual_seed(0)
    detector = build_detector(helpers.recipe())
    scores = score_subset(detector, manifest, expand_degradations(["none"]), batch_size=2)
    if rank == 0:
        np.save(out, scores.logits)
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    manifest = helpers.write_images(tmp_path / "data", "g2", "val", 4, 3, 0)  # 7 images: odd
    mp.spawn(_worker, args=(f"file://{tmp_path / 'rendezvous'}", manifest, str(tmp_path / "two.npy")), nprocs=2)
    torch.manual_seed(0)
    single = score_subset(build_detector(helpers.recipe()), manifest, expand_degradations(["none"]), batch_size=3)
    two = np.load(tmp_path / "two.npy")
    assert two.shape == single.logits.shape == (1, 7)
    np.testing.assert_allclose(two, single.logits, atol=1e-6, rtol=0)
