"""Several GPUs per job (issue 32): one task per GPU, the tasks a torchrun group running the engine's DDP path."""

import json
import os
import shutil

import pytest
import submitit
import torch
import torch.distributed as dist
from typer.testing import CliRunner

from mirage_bench import distributed
from mirage_bench.cli import app
from mirage_bench.cluster import jobs, launch
from mirage_bench.cluster.jobs import EvalJob, JobSpec, TrainJob, join_tasks, save_plan
from mirage_bench.cluster.launcher import Launcher
from mirage_bench.engine import runner
from mirage_bench.errors import ConfigError
from mirage_bench.runconfig import RunConfig


def test_each_gpu_of_a_job_gets_a_task_with_its_share_of_the_cores(tmp_path, monkeypatch):
    launcher = Launcher("submitit", partition="gpu", gpus_per_job=4, cpus_per_job=32)
    assert launcher.parameters() == {"timeout_min": 240, "gpus_per_node": 4, "tasks_per_node": 4, "cpus_per_task": 8,
                                     "slurm_partition": "gpu"}
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")  # submitit's Slurm executor looks for srun
    executor = submitit.AutoExecutor(tmp_path / "jobs", cluster="slurm")
    executor.update_parameters(**launcher.parameters())
    sbatch = executor._executor._make_submission_file_text("python -m job", "uid").splitlines()
    assert {"#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4", "#SBATCH --cpus-per-task=8"} <= set(sbatch)
    assert not any("gpu-bind" in line for line in sbatch)  # every task sees the node's GPUs, as torchrun's ranks do
    assert "  each job runs 4 tasks, one GPU each, as one torchrun group (rank 0 writes)" in launch.describe_jobs(launch.Plan([], [], []), launcher)
    assert Launcher("submitit", gpus_per_job=1, cpus_per_job=8).parameters()["cpus_per_task"] == 8
    assert "tasks_per_node" not in Launcher("submitit", gpus_per_job=1).parameters()


@pytest.mark.parametrize("device, launcher, message", [
    ("cpu", {"kind": "submitit-local", "gpus_per_job": 2}, "would leave the GPUs idle: pass --device cuda"),
    ("cuda:1", {"kind": "submitit", "gpus_per_job": 2}, "names one: pass --device cuda"),
    ("cuda", {"kind": "submitit"}, "--gpus-per-job 0 gives the jobs none"),
    ("cuda", {"kind": "submitit", "gpus_per_job": 2, "cpus_per_job": 7}, "give a multiple of 2"),
])
def test_settings_the_tasks_cannot_use_are_refused(device, launcher, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(device=device, launcher=launcher)


def test_two_gpus_per_job_on_the_cpu_are_refused_before_any_work(tmp_path):
    result = CliRunner().invoke(app, ["run", "--out", str(tmp_path / "out"), "--launcher", "submitit-local", "--gpus-per-job", "2"])
    assert result.exit_code == 2 and "--gpus-per-job 2 runs each job as 2 tasks" in result.output
    assert not (tmp_path / "out").exists()


def _slurm_task(monkeypatch, rank: int, tasks: int) -> None:
    """The variables Slurm gives task ``rank`` of a one-node job of ``tasks`` tasks, beside the submitting shell's own
    torchrun variables (which the job inherits)."""
    for name, value in {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": str(tasks), "SLURM_JOB_NUM_NODES": "1",
                        "SLURM_NODEID": "0", "SLURM_JOB_NODELIST": "gpu[07]", "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank),
                        "CUDA_VISIBLE_DEVICES": "0,1", "MASTER_PORT": "29500", "RANK": "0", "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(name, value)
    for name in ("MASTER_ADDR", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "SLURM_ARRAY_JOB_ID"):
        monkeypatch.delenv(name, raising=False)


def test_each_task_exports_what_torchrun_sets_and_the_engine_reads(monkeypatch):
    ports = []
    for rank in (0, 1):
        _slurm_task(monkeypatch, rank, 2)
        join_tasks("cpu")
        ports.append(os.environ["MASTER_PORT"])
    assert ports[0] == ports[1] != "29500"  # drawn from the job id (the same in both tasks), not the shell's copy
    assert {name: os.environ[name] for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR")} == \
        {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "gpu07"}
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"  # the node's GPUs, indexed by local rank
    assert not distributed.is_main()
    joined, current = [], []
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kwargs: joined.append(backend))
    monkeypatch.setattr(distributed, "check_device", lambda device: None)  # no GPU here
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    assert distributed.init_from_env("cuda") == "cuda:1" and (joined, current) == (["nccl"], [1])


def test_a_one_task_job_keeps_its_environment(monkeypatch):
    _slurm_task(monkeypatch, 0, 1)
    join_tasks("cpu")
    assert (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["MASTER_PORT"]) == ("0", "1", "29500")
    assert "LOCAL_RANK" not in os.environ


def test_a_task_that_cannot_see_the_gpu_of_its_rank_is_refused(monkeypatch):
    _slurm_task(monkeypatch, 1, 2)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # a cluster that binds one GPU to each task
    with pytest.raises(ConfigError, match="task 1 of this job sees 1 GPU.*--gpus-per-job 1"):
        join_tasks("cuda")


@pytest.mark.slow
def test_a_job_of_two_tasks_trains_and_scores_each_cell_once_as_one_group(tiny, tmp_path, engine_helpers):
    """Two tasks on the CPU (gloo): the engine's DDP path inside a job, each rank told by join_tasks. The driver refuses
    this on the CPU (GPUs would sit idle); the jobs are submitted here directly."""
    bench = tiny[0]
    cell = runner.train_cells(bench)[0]
    spec = JobSpec(tmp_path / "plan.pkl", runner.Options(out=tmp_path, state_every=1), "r")
    save_plan(bench, spec.plan)
    executor = submitit.AutoExecutor(tmp_path / "jobs", cluster="local")
    executor.update_parameters(tasks_per_node=2, timeout_min=10)
    training = launch._Tracked("train", cell, job=executor.submit(TrainJob(spec), cell.cell_id))
    results = training.job.results()  # every task's
    launch._poll(training)  # what the driver reads of it
    assert training.state == "done", training.error
    assert [r["computed"] for r in results] == [True, True]  # one decision, rank 0's, taken under the cell's lock
    assert training.result == results[0] and results[0]["environment"]["device"].startswith("2 x cpu")

    scores = executor.submit(EvalJob(spec), cell.cell_id).results()
    assert scores[0]["seconds"].keys() == scores[1]["seconds"].keys() and len(scores[0]["seconds"]) == 4
    written = sorted(path.stem for path in (tmp_path / jobs.ENVIRONMENTS).iterdir())
    assert written == sorted([cell.cell_id, *scores[0]["seconds"]])

    one = tmp_path / "one"  # the group's checkpoint scored by one process: the same predictions
    shutil.copytree(tmp_path / "checkpoints", one / "checkpoints")
    runner.execute(bench, runner.Options(out=one), train=False)
    engine_helpers.assert_same_scores(engine_helpers.stored_logits(tmp_path), engine_helpers.stored_logits(one))
    assert json.loads((tmp_path / jobs.ENVIRONMENTS / f"{cell.cell_id}.json").read_text())["job"] == training.job.job_id
