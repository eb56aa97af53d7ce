"""A full disk, a read-only filesystem or a denied permission: one message naming the path and the fix, no
temporary file left, and a rerun after the fix that keeps what was stored."""

import errno
import os
import sqlite3
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import helpers
from mirage_bench import api
from mirage_bench.data.facts_cache import FactsCache
from mirage_bench.engine import runner
from mirage_bench.engine.runner import Options, execute
from mirage_bench.errors import StorageError
from mirage_bench.store import PREDICTION_COLUMNS, Store

CAUSES = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up", errno.EROFS: "the filesystem is read-only",
          errno.EACCES: "permission is denied", errno.EPERM: "the operation is not permitted"}


def _fault(code, where):
    return OSError(code, os.strerror(code), str(where))


def _assert_one_clear_message(error, path, code):
    message = str(error.value)
    assert message.startswith(f"cannot write {path}: {CAUSES[code]} ("), message
    assert "choose another --out" in message and "run the same command again" in message


@pytest.mark.parametrize("code", sorted(CAUSES))
def test_each_storage_fault_names_the_path_and_its_cause(code, tmp_path, monkeypatch):
    def failing(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half a file")
        raise _fault(code, where)

    monkeypatch.setattr(pq, "write_table", failing)
    store = Store(tmp_path)
    with pytest.raises(StorageError) as error:
        store.write_predictions("c1", pd.DataFrame({c: ["x"] for c in PREDICTION_COLUMNS}).assign(cell_id="c1"))
    _assert_one_clear_message(error, store.prediction_path("c1"), code)
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_full_disk_at_a_store_write_keeps_the_cells_stored_before(tiny_data, tiny_reference, tmp_path, monkeypatch):
    code = errno.ENOSPC
    write_table = pq.write_table
    targets = []

    def failing(table, where, **kwargs):
        targets.append(Path(where))
        if len(targets) == 2:  # the second cell: part of it written, then the disk gives up
            Path(where).write_bytes(b"PAR1 half a file")
            raise _fault(code, where)
        return write_table(table, where, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(pq, "write_table", failing)
        with pytest.raises(StorageError) as error:
            execute(helpers.benchmark(tiny_data), Options(out=tmp_path, state_every=3))
    stored = sorted((tmp_path / "predictions").glob("*.parquet"))
    failed_cell = targets[1].name.split(".")[1]
    _assert_one_clear_message(error, tmp_path / "predictions" / f"{failed_cell}.parquet", code)
    assert not list(tmp_path.rglob("*.tmp")), "the partial temporary file is removed"
    assert len(stored) == 1
    stamp = stored[0].stat().st_mtime_ns
    record = execute(helpers.benchmark(tiny_data), Options(out=tmp_path, state_every=3))  # after the fix
    assert stored[0].stat().st_mtime_ns == stamp, "a cell stored before the fault is kept, not recomputed"
    assert sum(c.computed_in_this_run for c in record.eval_cells) == len(record.eval_cells) - 1
    helpers.assert_same_scores(helpers.stored_logits(tmp_path), helpers.stored_logits(tiny_reference[0]))


def _failing_write_bytes(monkeypatch, prefix, code):
    """``Path.write_bytes`` into a temporary file named ``prefix...`` writes part of its bytes and raises ``code``."""
    write_bytes = Path.write_bytes

    def failing(self, data):
        if self.name.startswith(prefix):
            write_bytes(self, data[: len(data) // 3])
            raise _fault(code, self)
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", failing)


def test_a_full_disk_at_the_checkpoint_save_resumes_from_the_training_state(tiny_data, tiny_reference, tmp_path, monkeypatch):
    ref_out, ref_record = tiny_reference
    bench = helpers.benchmark(tiny_data)
    checkpoint = Store(tmp_path).checkpoint_dir(ref_record.train_cells[0].cell_id)
    with monkeypatch.context() as patched:
        _failing_write_bytes(patched, ".model.pt.", errno.ENOSPC)
        with pytest.raises(StorageError) as error:
            execute(bench, Options(out=tmp_path, state_every=3))
    _assert_one_clear_message(error, checkpoint / "model.pt", errno.ENOSPC)
    assert sorted(p.name for p in checkpoint.iterdir()) == ["state.pt"], "no temporary file; the training state kept"
    record = execute(bench, Options(out=tmp_path, state_every=3))
    assert record.train_cells[0].checkpoint_sha256 == ref_record.train_cells[0].checkpoint_sha256
    helpers.assert_same_scores(helpers.stored_logits(tmp_path), helpers.stored_logits(ref_out))


def test_a_read_only_filesystem_at_the_training_state_is_one_message(tiny_data, tmp_path, monkeypatch):
    _failing_write_bytes(monkeypatch, ".state.pt.", errno.EROFS)
    with pytest.raises(StorageError) as error:
        execute(helpers.benchmark(tiny_data), Options(out=tmp_path, state_every=3))
    cell = runner.train_cells(helpers.benchmark(tiny_data))[0].cell_id
    _assert_one_clear_message(error, Store(tmp_path).checkpoint_dir(cell) / "state.pt", errno.EROFS)
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_folder_that_refuses_new_files_is_one_message(tmp_path, monkeypatch):
    """As a folder without write permission answers (tests run as root, for whom chmod does not stop writes)."""
    def refused(*args, dir=None, **kwargs):
        raise _fault(errno.EACCES, Path(dir) / "x")

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    path = Store(tmp_path).prediction_path("c1")
    with pytest.raises(StorageError) as error:
        Store(tmp_path).write_predictions("c1", pd.DataFrame({c: ["x"] for c in PREDICTION_COLUMNS}).assign(cell_id="c1"))
    _assert_one_clear_message(error, path, errno.EACCES)


def test_a_read_only_folder_for_real(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        try:
            (folder / "probe").touch()
        except PermissionError:
            pass
        else:
            pytest.skip("this user (root) can write into a mode-0555 folder")
        with pytest.raises(StorageError, match="permission is denied"):
            Store(folder).new_run_id()
    finally:
        folder.chmod(0o755)


def test_the_cli_prints_one_message_and_exits_2(tmp_path, monkeypatch):
    from mirage_bench.cli import app

    bench = helpers.benchmark(tmp_path / "data")
    monkeypatch.setattr(api, "load_benchmark", lambda *args, **kwargs: bench)
    with monkeypatch.context() as patched:
        patched.setattr(pq, "write_table", lambda table, where, **kwargs: (_ for _ in ()).throw(_fault(errno.ENOSPC, where)))
        full = CliRunner().invoke(app, ["run", "--out", str(tmp_path / "out"), "--bootstrap", "0"], terminal_width=400)
    assert full.exit_code == 2
    assert "error: cannot write" in full.output and "the disk is full" in full.output and "Traceback" not in full.output
    fixed = CliRunner().invoke(app, ["run", "--out", str(tmp_path / "out"), "--bootstrap", "0"], terminal_width=400)
    assert fixed.exit_code == 0, fixed.output


def _facts(path):
    return FactsCache(path, max_pixels=100)


def _remember(facts, n=1, start=0):
    names = [f"/data/{i:06d}-{'x' * 200}.png" for i in range(start, start + n)]
    facts.remember(names, ["1:2:3:4"] * n, [("unusable", "test")] * n)


def test_the_facts_cache_on_a_read_only_database(tmp_path, monkeypatch):
    path = tmp_path / "image_facts.sqlite"
    with _facts(path) as facts:
        _remember(facts)
    connect = sqlite3.connect
    with monkeypatch.context() as patched:  # the database opened read-only, as on a read-only filesystem
        patched.setattr(sqlite3, "connect", lambda database, **kwargs: connect(database + "?mode=ro", **kwargs))
        with pytest.raises(StorageError) as error, _facts(path) as facts:
            _remember(facts, start=1)
    _assert_one_clear_message(error, path, errno.EROFS)
    with _facts(path) as facts:  # after the fix
        _remember(facts, start=1)


def test_the_facts_cache_on_a_full_disk(tmp_path, monkeypatch):
    path = tmp_path / "image_facts.sqlite"
    connect = sqlite3.connect

    def small(database, **kwargs):  # SQLite's own "database or disk is full", from a page limit
        db = connect(database, **kwargs)
        db.execute("PRAGMA max_page_count = 3")
        return db

    with monkeypatch.context() as patched:
        patched.setattr(sqlite3, "connect", small)
        with pytest.raises(StorageError) as error, _facts(path) as facts:
            _remember(facts, n=200)
    _assert_one_clear_message(error, path, errno.ENOSPC)
    with _facts(path) as facts:  # after the fix
        _remember(facts, n=200)
