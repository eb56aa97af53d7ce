"""One run per output folder: a second run refuses at once naming the holder, waits with ``wait``, and a killed
holder leaves no lock behind (the kernel drops a ``flock`` with its process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

import helpers
from mirage_bench.engine.runner import Options, execute
from mirage_bench.engine.store_lock import StoreInUse, hold_store

HOLDER = """
import sys
from mirage_bench.engine.store_lock import hold_store
with hold_store(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()  # holds until the test closes stdin (or kills it)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding ``tmp_path / 'out'``; yields it once it holds the lock."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "out")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_a_second_process_is_refused_at_once_naming_the_holder(holder, tmp_path):
    started = time.monotonic()
    with pytest.raises(StoreInUse, match=rf"in use by another mirage-bench run \(pid {holder.pid} on host .*, started .*--wait"):
        with hold_store(tmp_path / "out"):
            pytest.fail("the lock was taken twice")
    assert time.monotonic() - started < 5


def test_with_wait_it_says_whom_it_waits_for_and_proceeds_when_the_holder_ends(holder, tmp_path):
    lines: list[str] = []

    def notify(line: str) -> None:
        lines.append(line)
        holder.stdin.close()  # the holder ends only once this process waits

    with hold_store(tmp_path / "out", wait=True, notify=notify) as held:
        assert held and holder.wait(timeout=60) == 0
    assert len(lines) == 1 and f"pid {holder.pid}" in lines[0] and lines[0].startswith("waiting for the other run on")


def test_a_killed_holder_leaves_no_stale_lock(holder, tmp_path):
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (tmp_path / "out" / ".run.lock").is_file()  # the file stays; its lock died with the process
    with hold_store(tmp_path / "out") as held:
        assert held


def test_the_holding_process_may_take_it_again(tmp_path):
    """The CLI takes the lock before it reads the data, and ``execute`` takes it again."""
    with hold_store(tmp_path / "out"), hold_store(tmp_path / "out") as again:
        assert again


def test_execute_refuses_a_held_store_before_any_training(holder, tmp_path, monkeypatch):
    from mirage_bench.engine import runner

    monkeypatch.setattr(runner, "train_into_store", lambda *a, **k: pytest.fail("trained on a store another run holds"))
    with pytest.raises(StoreInUse, match=f"pid {holder.pid}"):
        execute(helpers.benchmark(tmp_path / "data"), Options(out=tmp_path / "out"))
    assert not (tmp_path / "out" / "runs").exists()


def test_the_cli_refuses_before_the_data_scan(holder, tmp_path, monkeypatch):
    from mirage_bench.cli import app
    from mirage_bench.engine import benchmark

    monkeypatch.setattr(benchmark, "_read_data", lambda *a, **k: pytest.fail("the data was scanned"))
    result = CliRunner().invoke(app, ["run", "--detectors", "tinycnn", "--out", str(tmp_path / "out")], terminal_width=250)
    assert result.exit_code == 2, result.output
    assert f"pid {holder.pid}" in result.output and "pass --wait" in result.output and "another --out" in result.output
    assert "Traceback" not in result.output
