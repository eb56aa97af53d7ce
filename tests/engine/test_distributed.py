"""Sharded evaluation with 2 gloo processes scores each image once, with the scores of one process."""

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import helpers
from mirage_bench.detectors.infra.build import build_detector
from mirage_bench.scoring import ReferenceScorer
from mirage_bench.degradations import expand


def _worker(rank, init, manifest, out):
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    torch.manual_seed(0)
    detector = build_detector(helpers.recipe())
    scores = ReferenceScorer(batch_size=2).score_one(detector, manifest, expand(["none"]))
    if rank == 0:
        np.save(out, scores.logits)
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    manifest = helpers.write_images(tmp_path / "data", "g2", "val", 4, 3, 0)  # 7 images: odd
    mp.spawn(_worker, args=(f"file://{tmp_path / 'rendezvous'}", manifest, str(tmp_path / "two.npy")), nprocs=2)
    torch.manual_seed(0)
    single = ReferenceScorer(batch_size=3).score_one(build_detector(helpers.recipe()), manifest, expand(["none"]))
    two = np.load(tmp_path / "two.npy")
    assert two.shape == single.logits.shape == (1, 7)
    np.testing.assert_allclose(two, single.logits, atol=1e-6, rtol=0)


def _train_worker(rank, init, train, validation, workdir, out):
    from mirage_bench.engine.trainer import train_cell

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    torch.manual_seed(0)
    detector = build_detector(helpers.recipe())
    result = train_cell(detector, train, validation, 0, workdir, state_every=2)
    torch.save({k: v.clone() for k, v in detector.state_dict().items()}, f"{out}.{rank}.pt")
    if rank == 0:
        torch.save({"threshold": result.threshold}, f"{out}.result.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_training_keeps_ranks_in_step(tmp_path):
    """Data-parallel training: each rank sees half of every global batch, gradients are averaged, and the
    ranks end with identical weights; rank 0 writes the one checkpoint."""
    train = helpers.write_images(tmp_path / "data", "g1", "train", 7, 6, 1)  # 13 images: uneven shards
    validation = helpers.write_images(tmp_path / "data", "g1", "trainval", 3, 3, 2)
    workdir = tmp_path / "cell"
    mp.spawn(_train_worker, args=(f"file://{tmp_path / 'rendezvous'}", train, validation, workdir, str(tmp_path / "w")), nprocs=2)
    rank0, rank1 = (torch.load(tmp_path / f"w.{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    assert (workdir / "model.pt").is_file() and not (workdir / "state.pt").exists()


def _cli_worker(rank, port, bench, out, logs):
    import os

    from typer.testing import CliRunner

    from mirage_bench import api
    from mirage_bench.cli import app

    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    api.load_benchmark = lambda *args, **kwargs: bench
    result = CliRunner().invoke(app, ["eval", "--out", str(out), "--bootstrap", "0"], terminal_width=250)
    (logs / f"rank{rank}.txt").write_text(f"{result.exit_code}\n{result.output}")
    if dist.is_initialized():
        dist.destroy_process_group()


@pytest.mark.slow
def test_under_torchrun_only_rank_zero_writes_the_report(tmp_path):
    """``mirage-bench eval`` in 2 gloo processes: both score their shards, rank 0 alone prints and writes metrics.csv."""
    import socket

    from mirage_bench.engine.runner import Options, execute
    from mirage_bench.store import Store

    bench = helpers.benchmark(tmp_path / "data")
    out = tmp_path / "out"
    execute(bench, Options(out=out), evaluate=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_cli_worker, args=(port, bench, out, tmp_path), nprocs=2)
    code0, output0 = (tmp_path / "rank0.txt").read_text().split("\n", 1)
    code1, output1 = (tmp_path / "rank1.txt").read_text().split("\n", 1)
    assert (code0, code1) == ("0", "0"), output0 + output1
    assert "Acc / AP" in output0 and "Acc / AP" not in output1 and "already exists" not in output1
    store = Store(out)
    assert (store.run_dir(store.latest_run_id()) / "metrics.csv").is_file()


@pytest.mark.parametrize(("device", "made_current"), [("cuda:1", "cuda:1"), ("cuda", None), ("cpu", None)])
def test_a_single_process_run_makes_its_cuda_device_current(monkeypatch, device, made_current):
    """Triton kernels, CUDA events and synchronisation act on the current device: ``--device cuda:1`` outside
    torchrun must make device 1 current, or they would act on device 0."""
    from mirage_bench import distributed

    current: list[str] = []
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: current.append(str(d)))
    assert distributed.init_from_env(device) == device
    assert current == ([made_current] if made_current else [])
