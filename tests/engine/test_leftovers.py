"""What killed runs leave (temporary files, a state.pt beside a committed model.pt, run folders without a record)
is tidied by the next run, which deletes nothing that holds results."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch

import helpers
from mirage_bench.engine.runner import Options, execute
from mirage_bench.store import INTERRUPTED, STARTED, Store, temporary_beside


def test_a_claimed_run_id_has_a_start_record(tmp_path):
    store = Store(tmp_path)
    run_id = store.new_run_id()
    started = json.loads((store.run_dir(run_id) / STARTED).read_text())
    assert started["pid"] == os.getpid() and started["run_id"] == run_id and started["argv"] == sys.argv
    assert store.run_ids() == []  # not finished: readers do not list it


def test_temporary_files_of_the_store_are_removed_and_nothing_else(tmp_path):
    store = Store(tmp_path)
    leftovers = [temporary_beside(store.prediction_path("c1")), temporary_beside(tmp_path / "checkpoints" / "t1" / "state.pt"),
                 temporary_beside(tmp_path / "runs" / "r1" / "record.json"), temporary_beside(tmp_path / "leaderboard.md")]
    (tmp_path / "runs" / "r1" / "record.json").write_text("{}")
    kept = [tmp_path / ".run.lock", tmp_path / "predictions" / ".notes.tmp", tmp_path / "predictions" / "c0.parquet",
            tmp_path / "features" / ".shard.abcdefgh.tmp"]
    for path in kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    done = store.clean_leftovers()
    assert not any(path.exists() for path in leftovers) and all(path.exists() for path in kept)
    assert len(done) == len(leftovers)


def _zip(path, value=1.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.full((8,), value)}, path)


def test_state_beside_a_committed_model_is_removed_beside_a_damaged_one_kept(tmp_path):
    store = Store(tmp_path)
    for cell in ("done", "damaged", "training"):
        _zip(store.checkpoint_dir(cell) / "state.pt")
    _zip(store.checkpoint_dir("done") / "model.pt")
    (store.checkpoint_dir("damaged") / "model.pt").write_bytes(b"")
    store.clean_leftovers()
    assert not (store.checkpoint_dir("done") / "state.pt").exists()
    assert (store.checkpoint_dir("done") / "model.pt").is_file()
    assert (store.checkpoint_dir("damaged") / "state.pt").is_file(), "the state of a damaged model is what retrains it"
    assert (store.checkpoint_dir("training") / "state.pt").is_file()


def test_run_folders_without_a_record_are_marked_or_removed_when_empty(tmp_path):
    store = Store(tmp_path)
    finished, killed = store.new_run_id(), store.new_run_id()
    (store.run_dir(finished) / "record.json").write_text("{}")
    empty = store.run_dir("20200101-000000-000")
    empty.mkdir()
    holding = store.run_dir("20200101-000000-001")  # a folder of an older version with something in it
    holding.mkdir()
    (holding / "metrics.csv").write_text("a\n")
    done = store.clean_leftovers()
    assert not empty.exists()
    for run in (killed, holding.name):
        assert (store.run_dir(run) / INTERRUPTED).is_file()
    assert (holding / "metrics.csv").read_text() == "a\n" and (store.run_dir(killed) / STARTED).is_file()
    assert not (store.run_dir(finished) / INTERRUPTED).exists()
    assert store.run_ids() == [finished]
    assert len(done) == 3
    assert store.clean_leftovers() == []  # marked once


# -- a run killed with SIGKILL, twice, then a rerun -------------------------------------------------------------

_KILLED_RUN = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import helpers
    from mirage_bench import store
    from mirage_bench.engine import trainer
    from mirage_bench.engine.runner import Options, execute

    data, out, point, ready = sys.argv[1:5]

    def hang():  # stands still until the test kills this process with SIGKILL
        Path(ready).write_text("ready")
        time.sleep(600)

    if point == "after-model":  # model.pt committed, state.pt not yet removed
        save = trainer.save_checkpoint
        def save_checkpoint(*args, **kwargs):
            save(*args, **kwargs)
            hang()
        trainer.save_checkpoint = save_checkpoint
    else:  # in the second predictions write: its temporary file written, not yet linked
        commit, seen = store._commit, []
        def _commit(tmp, path):
            seen.append(path) if path.suffix == ".parquet" else None
            if len(seen) == 2 and path.suffix == ".parquet":
                hang()
            return commit(tmp, path)
        store._commit = _commit
    execute(helpers.benchmark(Path(data)), Options(out=Path(out), state_every=3))
""")


def _kill_at(point, data, out, tmp_path):
    ready = tmp_path / f"{point}.ready"
    script = _KILLED_RUN.format(tests=str(Path(__file__).parent))
    process = subprocess.Popen([sys.executable, "-c", script, str(data), str(out), point, str(ready)])
    try:
        deadline = time.monotonic() + 300
        while not ready.exists():
            assert process.poll() is None, f"the run ended before reaching {point}"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


def test_runs_killed_by_sigkill_leave_nothing_behind_after_the_next_run(tiny_data, tiny_reference, tmp_path):
    data, out = tiny_data, tmp_path / "out"
    reference_out, reference = tiny_reference
    _kill_at("after-model", data, out, tmp_path)
    model = next(out.glob("checkpoints/*/model.pt"))
    assert (model.parent / "state.pt").is_file()  # what a kill at that moment leaves
    _kill_at("mid-write", data, out, tmp_path)
    assert list(out.rglob(".*.tmp")), "the kill left a temporary file"
    record = execute(helpers.benchmark(data), Options(out=out, state_every=3))
    assert not list(out.rglob("*.tmp"))
    assert not (model.parent / "state.pt").exists()
    runs = sorted(p for p in (out / "runs").iterdir())
    assert all(any(run.iterdir()) for run in runs)
    killed = [run for run in runs if not (run / "record.json").is_file()]
    assert len(killed) == 2 and all((run / INTERRUPTED).is_file() and (run / STARTED).is_file() for run in killed)
    assert Store(out).run_ids() == [record.run_id]
    predictions = Store(out).read_predictions()
    assert set(predictions["run_id"]) <= {run.name for run in runs if (run / STARTED).is_file()}
    assert len(set(predictions["run_id"])) == 2, "the killed run's cell stays, naming its run"
    assert record.train_cells[0].checkpoint_sha256 == reference.train_cells[0].checkpoint_sha256
    helpers.assert_same_scores(helpers.stored_logits(out), helpers.stored_logits(reference_out))
