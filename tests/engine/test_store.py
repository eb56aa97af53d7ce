import pandas as pd
import pytest

from mirage_bench import store as store_mod
from mirage_bench.errors import DataError
from mirage_bench.store import PREDICTION_COLUMNS, Store


def _frame(cell_id, n=3):
    return pd.DataFrame({c: [0] * n for c in PREDICTION_COLUMNS}).assign(cell_id=cell_id, image_id=[f"i{k}" for k in range(n)])


def test_written_once_never_overwritten(tmp_path):
    store = Store(tmp_path)
    store.write_predictions("c1", _frame("c1"))
    with pytest.raises(DataError, match="never overwritten"):
        store.write_predictions("c1", _frame("c1", 5))
    assert len(store.read_predictions(["c1"])) == 3
    assert not list((tmp_path / "predictions").glob(".*.tmp"))


def test_crash_before_rename_leaves_no_result(tmp_path, monkeypatch):
    store = Store(tmp_path)

    def crash(tmp, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(store_mod, "_commit", crash)
    with pytest.raises(KeyboardInterrupt):
        store.write_predictions("c1", _frame("c1"))
    assert not store.has_predictions("c1")
    assert store.read_predictions().empty


def test_run_ids_are_never_reused(tmp_path):
    store = Store(tmp_path)
    ids = [store.new_run_id() for _ in range(5)]
    assert len(set(ids)) == 5 and ids == sorted(ids)


def test_missing_cells_are_named(tmp_path):
    with pytest.raises(DataError, match="absent"):
        Store(tmp_path).read_predictions(["absent"])
