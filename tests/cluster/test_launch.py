"""The benchmark matrix as submitit jobs (issue 32), through submitit's local executor: no Slurm needed."""

import json
import multiprocessing
import os
import signal
import socket
import threading
import time

import pytest
import submitit
from typer.testing import CliRunner

from mirage_bench import api
from mirage_bench.cli import app
from mirage_bench.cluster import launch
from mirage_bench.cluster.cell_lock import claim_cell, lock_path
from mirage_bench.cluster.jobs import EvalJob, JobSpec, TrainJob, save_plan
from mirage_bench.engine import runner
from mirage_bench.engine.store_lock import StoreInUse
from mirage_bench.errors import DataError
from mirage_bench.store import Store

LOCAL = launch.Launcher("submitit-local", poll_s=0.1)


def _options(out):
    return runner.Options(out=out, state_every=1)  # a state.pt after every training step: a job can be killed mid-training


def test_jobs_store_the_one_process_predictions(tiny, tmp_path, engine_helpers):
    bench, reference, _ = tiny
    record = launch.execute_jobs(bench, _options(tmp_path), LOCAL)
    assert engine_helpers.stored_logits(tmp_path).equals(reference)  # same cell ids, same bits
    assert [(j["kind"], j["state"]) for j in record.jobs] == [("train", "done"), ("eval", "done")]
    assert record.train_cells[0].trained_in_this_run and all(c.computed_in_this_run for c in record.eval_cells)
    assert record.environments[0]["host"] == socket.gethostname() and record.launcher == "submitit-local"
    assert record.train_cells[0].environment == 0 and {c.environment for c in record.eval_cells} == {0}
    assert record.device == record.environments[0]["device"]
    cell = record.train_cells[0].cell_id
    assert json.loads((tmp_path / "environments" / f"{cell}.json").read_text())["job"] == record.jobs[0]["job_id"]
    assert (tmp_path / "runs" / record.run_id / "record.json").is_file()


def test_a_job_killed_mid_training_fails_the_run_and_a_rerun_resumes_it(tiny, tmp_path):
    bench, _, checkpoint = tiny
    cell = runner.train_cells(bench)[0].cell_id
    state = tmp_path / "checkpoints" / cell / "state.pt"
    killed = []

    def kill_when_training() -> None:
        while not state.is_file():
            time.sleep(0.005)
        pid = json.loads(lock_path(tmp_path, f"train-{cell}").read_text())["pid"]  # the job holding the cell
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    watcher = threading.Thread(target=kill_when_training, daemon=True)
    watcher.start()
    with pytest.raises(launch.JobsFailed) as failed:
        launch.execute_jobs(bench, _options(tmp_path), LOCAL)
    watcher.join(5)
    assert killed and not (tmp_path / "checkpoints" / cell / "model.pt").exists()  # killed before training ended
    message = str(failed.value)
    assert f"train tinycnn on g1 (seed 0, cell {cell}): Job " in message and "has not produced any output" in message
    assert "log: " in message and "_log.err" in message
    assert "eval tinycnn on g1" in message and "not run: its training job failed" in message
    [run] = [p for p in (tmp_path / "runs").iterdir()]
    assert [j["state"] for j in json.loads((run / "failed.json").read_text())["failed"]] == ["failed", "failed"]
    assert state.is_file()  # what the rerun resumes from

    record = launch.execute_jobs(bench, _options(tmp_path), LOCAL, evaluate=False)  # training only: one job, not two
    assert [(j["kind"], j["state"], j["cell_id"]) for j in record.jobs] == [("train", "done", cell)]
    assert record.train_cells[0].checkpoint_sha256 == checkpoint and not state.exists()


def _drive(bench, out) -> None:
    """A driver in its own process, waiting if another holds the store."""
    launch.execute_jobs(bench, runner.Options(out=out, state_every=1, wait=True), LOCAL)


def test_two_drivers_started_at_once_compute_each_cell_once(tiny, tmp_path):
    bench, _, _ = tiny
    spawn = multiprocessing.get_context("spawn")
    drivers = [spawn.Process(target=_drive, args=(bench, tmp_path)) for _ in range(2)]
    for driver in drivers:
        driver.start()
    for driver in drivers:
        driver.join(120)
    assert [driver.exitcode for driver in drivers] == [0, 0]
    records = [json.loads(path.read_text()) for path in sorted((tmp_path / "runs").glob("*/record.json"))]
    assert len(records) == 2
    trained = [c["cell_id"] for r in records for c in r["train_cells"] if c["trained_in_this_run"]]
    scored = [c["cell_id"] for r in records for c in r["eval_cells"] if c["computed_in_this_run"]]
    assert len(trained) == 1 and sorted(scored) == sorted(c["cell_id"] for c in records[0]["eval_cells"])


def _training_job(bench, out):
    """Its training cell's id, a TrainJob of a saved plan, and a local executor: jobs without a driver."""
    spec = JobSpec(out / "plan.pkl", _options(out), "r")
    save_plan(bench, spec.plan)
    return runner.train_cells(bench)[0].cell_id, TrainJob(spec), submitit.AutoExecutor(out / "jobs", cluster="local")


def test_two_jobs_on_one_cell_compute_it_once(tiny, tmp_path):
    cell, train, executor = _training_job(tiny[0], tmp_path)
    jobs = executor.map_array(train, [cell, cell])  # as an earlier driver's job and a rerun's, at once
    assert sorted(job.result()["computed"] for job in jobs) == [False, True]


def test_a_job_that_raises_is_named_by_its_error(tiny, tmp_path):
    cell, train, executor = _training_job(tiny[0], tmp_path)
    job = executor.submit(EvalJob(train.spec), cell)  # its checkpoint was never trained
    assert launch._error_line(job.exception()) == (f"mirage_bench.errors.DataError: training cell {cell} has no checkpoint in "
                                                   f"{tmp_path / 'checkpoints' / cell}; its training job did not finish (see its log)")


def test_a_job_stopped_at_its_time_limit_is_requeued_and_resumes(tiny, tmp_path):
    bench, _, checkpoint = tiny
    cell, train, executor = _training_job(bench, tmp_path)
    executor.update_parameters(timeout_min=1)  # under 10 minutes: submitit counts any stop signal as the time limit
    job = executor.submit(train, cell)
    state, lock = tmp_path / "checkpoints" / cell / "state.pt", lock_path(tmp_path, f"train-{cell}")
    while not state.is_file():
        time.sleep(0.005)
    first = json.loads(lock.read_text())["pid"]
    os.kill(first, signal.SIGUSR2)  # what Slurm sends before the time limit (submitit's --signal=USR2@90)
    assert job.result()["computed"]
    assert json.loads(lock.read_text())["pid"] != first  # a second process (the requeued job) finished the cell
    assert runner.checkpoint_hash(Store(tmp_path), runner.train_cells(bench)[0]) == checkpoint


def test_a_driver_refuses_a_store_whose_cells_are_still_computed(tiny, tmp_path):
    bench, _, _ = tiny
    with claim_cell(tmp_path, "train-abc", "4242"), pytest.raises(StoreInUse, match="train-abc .*pid .*job 4242"):
        launch.execute_jobs(bench, _options(tmp_path), LOCAL)
    assert not (tmp_path / "runs").exists()  # refused before the run claimed an id


def test_dry_run_lists_the_jobs_and_submits_nothing(tiny, tmp_path, monkeypatch):
    bench, _, _ = tiny
    monkeypatch.setattr(api, "load_benchmark", lambda *args, **kwargs: bench)
    monkeypatch.setattr(submitit, "AutoExecutor", lambda *a, **k: pytest.fail("a dry run made an executor"))
    result = CliRunner().invoke(app, ["run", "--out", str(tmp_path / "out"), "--dry-run", "--launcher", "submitit",
                                      "--slurm-partition", "gpu", "--gpus-per-job", "1", "--max-jobs", "4", "--slurm-mem", "32"],
                                terminal_width=250)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "2 job(s) to submit (submitit); 0 of 1 training cells are done" in lines
    assert "  training: one array of 1 job(s), at most 4 at once" in lines
    assert any(line.startswith("  evaluation: 1 job(s), one per checkpoint; 1 after their training job (Slurm dependency afterok")
               for line in lines)
    assert "  each job: timeout_min=240, gpus_per_node=1, mem_gb=32.0, slurm_partition=gpu, slurm_array_parallelism=4" in lines
    assert not (tmp_path / "out").exists()


def test_slurm_options_need_a_scheduler_launcher(tmp_path):
    result = CliRunner().invoke(app, ["run", "--out", str(tmp_path), "--slurm-partition", "gpu"])
    assert result.exit_code == 2 and "pass --launcher submitit" in result.output


def test_submitit_without_slurm_is_refused_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    result = CliRunner().invoke(app, ["run", "--out", str(tmp_path / "out"), "--launcher", "submitit"])
    assert result.exit_code == 2 and "no sbatch/srun on its PATH" in result.output and "submitit-local" in result.output
    assert not (tmp_path / "out").exists()


class _FakeJob:
    def __init__(self, job_id):
        self.job_id = job_id


class _FakeSlurm:
    """Records what would be submitted to Slurm: the array, then each evaluation with its extra sbatch lines."""

    folder = "jobs"

    def __init__(self):
        self.parameters, self.submitted = {}, []

    def update_parameters(self, **kwargs):
        self.parameters.update(kwargs)

    def map_array(self, fn, cells):
        self.submitted.append(("array", type(fn).__name__, list(cells)))
        return [_FakeJob(f"7_{i}") for i in range(len(cells))]

    def submit(self, fn, cell):
        self.submitted.append(("job", type(fn).__name__, cell, dict(self.parameters["slurm_additional_parameters"])))
        return _FakeJob("8")


def test_on_slurm_each_evaluation_waits_for_its_training_job(tiny, tmp_path):
    bench, _, _ = tiny
    cell = runner.train_cells(bench)[0]
    plan = launch.Plan([cell], [cell], [cell])
    fake = _FakeSlurm()
    submitted = launch._Submitted(fake, JobSpec(tmp_path / "plan.pkl", _options(tmp_path), "r"), slurm=True)
    submitted.submit(plan, lambda line: None)
    assert fake.submitted == [("array", "TrainJob", [cell.cell_id]),
                              ("job", "EvalJob", cell.cell_id, {"dependency": "afterok:7_0", "kill-on-invalid-dep": "yes"})]


def test_an_evaluation_without_its_checkpoint_is_refused_before_submitting(tiny, tmp_path):
    bench, _, _ = tiny
    with pytest.raises(DataError, match="has no checkpoint in .*run `mirage-bench train`"):
        launch.execute_jobs(bench, _options(tmp_path), LOCAL, train=False)
    assert not (tmp_path / "runs").exists()
