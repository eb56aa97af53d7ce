"""The launcher named in a run configuration file, and a run whose jobs ran on different hardware (issue 32)."""

import pytest
import submitit
import yaml
from typer.testing import CliRunner

from mirage_bench import api
from mirage_bench.cli import app
from mirage_bench.cluster import jobs, launch
from mirage_bench.cluster.launcher import Launcher
from mirage_bench.engine import runner
from mirage_bench.reports.leaderboard import write_leaderboard


def test_a_config_file_names_the_launcher_and_a_flag_overrides_one_of_its_settings(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(api, "load_benchmark", lambda *args, **kwargs: tiny[0])
    monkeypatch.setattr(submitit, "AutoExecutor", lambda *a, **k: pytest.fail("a dry run made an executor"))
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"out": str(tmp_path / "out"),
                                      "launcher": {"kind": "submitit-local", "max_jobs": 3, "time_min": 30, "cpus_per_job": 2}}))
    result = CliRunner().invoke(app, ["run", "--config", str(config), "--dry-run", "--max-jobs", "5"], terminal_width=250)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "2 job(s) to submit (submitit-local); 0 of 1 training cells are done" in lines
    assert "  training: one array of 1 job(s), at most 5 at once" in lines  # the flag's 5, not the file's 3
    assert "  each job: timeout_min=30, gpus_per_node=0, cpus_per_task=2, slurm_array_parallelism=5" in lines
    assert not (tmp_path / "out").exists()


def test_a_config_file_with_gpus_its_device_cannot_use_is_refused(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"device": "cpu", "launcher": {"kind": "submitit-local", "gpus_per_job": 2}}))
    result = CliRunner().invoke(app, ["run", "--config", str(config), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "pass --device cuda" in result.output and not (tmp_path / "out").exists()


def _in_this_process(launcher: Launcher, folder):
    """submitit's debug executor: each job runs in the driver's process when the driver polls it, so the test can
    stand in for where it ran."""
    executor = submitit.AutoExecutor(folder, cluster="debug")
    executor.update_parameters(**launcher.parameters())
    return executor


def test_a_run_whose_jobs_ran_on_two_gpus_shows_both_in_the_leaderboard(tiny, tmp_path, monkeypatch):
    bench = tiny[0]
    devices = iter(["cuda:0: NVIDIA A100-SXM4-80GB", "cuda:0: NVIDIA H100 80GB HBM3"])  # the training job's, the evaluation's
    measured = jobs.environment
    monkeypatch.setattr(jobs, "environment", lambda device: {**measured(device), "device": next(devices)})
    monkeypatch.setattr(launch, "_executor", _in_this_process)
    record = launch.execute_jobs(bench, runner.Options(out=tmp_path), Launcher("submitit-local", poll_s=0.01), notify=lambda line: None)
    both = "cuda:0: NVIDIA A100-SXM4-80GB; cuda:0: NVIDIA H100 80GB HBM3"
    assert record.device == both and [env["device"] for env in record.environments] == both.split("; ")
    assert record.train_cells[0].environment == 0 and {cell.environment for cell in record.eval_cells} == {1}

    board, _, paths = write_leaderboard(tmp_path, tmp_path / "board", n_boot=0)
    assert board["hardware"].tolist() == [both]
    assert both in paths[0].read_text()
