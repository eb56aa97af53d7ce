"""A cell counts as done only if its file reads back: damaged files are named, moved aside and recomputed."""

import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import helpers
from mirage_bench.detectors.infra.checkpoint import read_checkpoint
from mirage_bench.engine import runner
from mirage_bench.engine.runner import Options, execute
from mirage_bench.errors import CheckpointError, DataError
from mirage_bench.store import DAMAGED, PREDICTION_COLUMNS, Store


def _frame(cell_id, n=40):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({c: ["x"] * n for c in PREDICTION_COLUMNS})
    return frame.assign(cell_id=cell_id, image_id=[f"i{k:03d}" for k in range(n)], seed=0, label=rng.integers(0, 2, n),
                        logit=rng.normal(size=n).astype(np.float32), p_fake=rng.random(n).astype(np.float32),
                        degradation_seed=rng.integers(0, 2**63, n, dtype=np.uint64), random_backbone=False)


def _flip_value(data: bytes, value: np.ndarray) -> bytes:
    """``data`` with the lowest bit of ``value``'s stored bytes flipped: a number that still decodes, changed (the
    damage that a reader that only parses the file would not see)."""
    at = data.find(value.tobytes())
    assert at >= 0, "value not found in the file"
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


DAMAGE = {
    "emptied": lambda data, frame: b"",
    "truncated": lambda data, frame: data[: len(data) // 2],
    "junk": lambda data, frame: b"not a parquet file at all" * 10,
    "bit-flipped": lambda data, frame: _flip_value(data, frame["logit"].to_numpy()[5:6]),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_predictions_file_is_not_done_and_is_moved_aside(damage, tmp_path, capsys):
    store = Store(tmp_path)
    frame = _frame("c1")
    path = store.write_predictions("c1", frame)
    damaged = DAMAGE[damage](path.read_bytes(), store.read_predictions(["c1"]))
    path.write_bytes(damaged)
    assert not store.has_predictions("c1")
    assert not path.exists()
    moved = list((tmp_path / DAMAGED / "predictions").glob("c1.parquet.*"))
    assert len(moved) == 1 and moved[0].read_bytes() == damaged  # kept as it was found
    line = capsys.readouterr().err
    assert line.count("\n") == 1 and f"damaged: {path}" in line and str(moved[0]) in line
    store.write_predictions("c1", frame)  # the cell is computed again into its place
    assert store.has_predictions("c1")


def test_a_reader_names_the_damaged_file_and_the_fix(tmp_path):
    store = Store(tmp_path)
    store.write_predictions("c1", _frame("c1"))
    path = store.write_predictions("c2", _frame("c2"))
    path.write_bytes(path.read_bytes()[:100])
    for read in (lambda: store.read_predictions(), lambda: store.read_predictions(["c1", "c2"])):
        with pytest.raises(DataError, match="mirage-bench run` again on this --out") as error:
            read()
        assert str(path) in str(error.value) and "is damaged" in str(error.value)
    assert path.is_file()  # a reader moves nothing


def test_a_damaged_run_record_is_named_with_the_fix(tmp_path):
    store = Store(tmp_path)
    run_id = store.new_run_id()
    record = store.run_dir(run_id) / "record.json"
    record.write_text('{"run_id": ')  # cut short
    with pytest.raises(DataError, match="is damaged") as error:
        store.run_record(run_id)
    assert str(record) in str(error.value) and "mirage-bench run` again on this --out" in str(error.value)


def test_a_dry_run_names_a_damaged_file_and_leaves_it(tmp_path, capsys):
    path = Store(tmp_path).write_predictions("c1", _frame("c1"))
    path.write_bytes(b"")
    assert not Store(tmp_path, repair=False).has_predictions("c1")
    assert path.is_file() and not (tmp_path / DAMAGED).exists()
    assert f"damaged: {path}" in capsys.readouterr().err


def test_a_file_written_before_the_checksums_is_read_when_it_parses(tmp_path):
    store = Store(tmp_path)
    frame = _frame("c1")
    store.prediction_path("c1").parent.mkdir(parents=True)
    frame.to_parquet(store.prediction_path("c1"), index=False)  # as the store wrote it before
    assert store.has_predictions("c1")
    pd.testing.assert_frame_equal(store.read_predictions(["c1"]), frame)


def test_the_row_count_and_content_checksum_are_in_the_file(tmp_path):
    import pyarrow.parquet as pq

    path = Store(tmp_path).write_predictions("c1", _frame("c1", n=7))
    marks = pq.read_schema(path).metadata
    assert marks[b"mirage_bench.rows"] == b"7" and len(marks[b"mirage_bench.content_sha256"]) == 64


def _silently_flipped_checkpoint(path):
    """One bit of a weight flipped: ``torch.load`` still loads the file, with that weight changed."""
    state = torch.load(path, weights_only=True)["state"]
    name, tensor = max(state.items(), key=lambda item: item[1].numel())
    path.write_bytes(_flip_value(path.read_bytes(), tensor.flatten()[3:4].numpy()))
    assert not torch.equal(torch.load(path, weights_only=True)["state"][name], tensor)


def test_a_checkpoint_with_a_flipped_bit_is_refused_not_loaded(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"format": "mirage-bench/checkpoint-v1", "state": {"w": torch.arange(4000, dtype=torch.float32)}}, path)
    _silently_flipped_checkpoint(path)
    with pytest.raises(CheckpointError, match="fails its CRC-32 check"):
        read_checkpoint(path)


def test_a_run_recomputes_damaged_cells_and_retrains_a_damaged_model(tiny_data, tiny_reference, tmp_path, capsys):
    ref_out, ref_record = tiny_reference
    first = execute(helpers.benchmark(tiny_data), Options(out=tmp_path))
    store = Store(tmp_path)
    model = store.checkpoint_dir(first.train_cells[0].cell_id) / "model.pt"
    _silently_flipped_checkpoint(model)
    emptied = store.prediction_path(first.eval_cells[1].cell_id)
    emptied.write_bytes(b"")
    capsys.readouterr()
    plan = runner.describe_plan(helpers.benchmark(tiny_data), Store(tmp_path, repair=False))  # a dry run names, moves nothing
    assert set(plan["status"]) == {"to do"} and model.is_file()
    again = execute(helpers.benchmark(tiny_data), Options(out=tmp_path))
    err = capsys.readouterr().err
    assert f"damaged: {model}" in err and "trained again" in err
    assert [c.trained_in_this_run for c in again.train_cells] == [True]
    assert again.train_cells[0].checkpoint_sha256 == ref_record.train_cells[0].checkpoint_sha256
    moved = sorted(str(p.relative_to(tmp_path / DAMAGED)).rsplit(".", 1)[0] for p in (tmp_path / DAMAGED).rglob("*.*"))
    assert moved == sorted(str(p.relative_to(tmp_path)) for p in (model, emptied))
    assert f"damaged: {emptied}" in err and emptied.stat().st_size > 0
    with zipfile.ZipFile(next((tmp_path / DAMAGED).rglob("model.pt.*"))) as archive:
        assert archive.testzip() is not None  # the damaged file itself, kept
    pd.testing.assert_frame_equal(helpers.stored_logits(tmp_path), helpers.stored_logits(ref_out), check_exact=True)


def test_report_names_a_damaged_file_instead_of_a_traceback(tiny_data, tmp_path):
    record = execute(helpers.benchmark(tiny_data), Options(out=tmp_path))
    path = Store(tmp_path).prediction_path(record.eval_cells[0].cell_id)
    path.write_bytes(b"")
    from mirage_bench.cli import app

    for command in (["report", "--store", str(tmp_path), "--out", str(tmp_path / "r"), "--no-figures", "--bootstrap", "0"],
                    ["leaderboard", "--store", str(tmp_path), "--out", str(tmp_path / "board")]):
        result = CliRunner().invoke(app, command, terminal_width=400)
        assert result.exit_code == 2, result.output
        assert str(path) in result.output.replace("\n", "") and "mirage-bench run` again" in result.output.replace("\n", "")
        assert "Traceback" not in result.output
