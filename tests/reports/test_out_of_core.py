"""Reports read the store cell by cell, each cell once and checked; intervals of means; output fixes."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import storegen
from rich.console import Console

from mirage_bench import metrics as M
from mirage_bench.errors import DataError
from mirage_bench.reports.leaderboard import write_leaderboard
from mirage_bench.reports.render import print_table
from mirage_bench.reports.report import build_report
from mirage_bench.reports.runs import load_runs
from mirage_bench.store import Store

ROOT = Path(__file__).resolve().parents[2]


def _count_reads(monkeypatch) -> list[str]:
    reads: list[str] = []
    original = Store.read_cell

    def counted(self, cell_id):
        reads.append(cell_id)
        return original(self, cell_id)

    monkeypatch.setattr(Store, "read_cell", counted)
    return reads


def _no_op_run(root: Path, run_id: str) -> str:
    """A second record of the same cells (a run that computed nothing), as a no-op `mirage-bench run` leaves."""
    store = Store(root)
    record = store.run_record(run_id)
    again = store.new_run_id()
    (store.run_dir(again) / "record.json").write_text(json.dumps({**record, "run_id": again}))
    return again


def test_report_and_leaderboard_read_each_cell_once(tmp_path, monkeypatch):
    first = storegen.write_run(tmp_path, ("alpha", "beta"), degradations=("none", "blur(s=1)"))
    second = _no_op_run(tmp_path, first)
    cells = {p.stem for p in (tmp_path / "predictions").glob("*.parquet")}
    reads = _count_reads(monkeypatch)
    build_report(load_runs(tmp_path, [first, second]), metrics=("acc",), n_boot=0, with_figures=True)
    assert sorted(reads) == sorted(cells)  # the two records list every cell twice: read once each
    reads.clear()
    write_leaderboard(tmp_path, tmp_path / "board", n_boot=10)
    clean = [c for c in cells if pq.read_table(tmp_path / "predictions" / f"{c}.parquet", columns=["degradation"])["degradation"][0].as_py() == "none"]
    assert sorted(reads) == sorted(clean)


def test_a_damaged_cell_is_named_with_the_fix_not_skipped(tmp_path):
    run_id = storegen.write_run(tmp_path, ("alpha",), degradations=("none",))
    path = sorted((tmp_path / "predictions").glob("*.parquet"))[0]
    table = pq.read_table(path)
    changed = table.set_column(table.schema.get_field_index("p_fake"), "p_fake", pa.array(table["p_fake"].to_numpy()[::-1].copy()))
    pq.write_table(changed.replace_schema_metadata(table.schema.metadata), path)  # the old checksum, other scores
    evidence = load_runs(tmp_path, [run_id])  # planning reads footers only
    with pytest.raises(DataError, match=f"{path.name} is damaged .*checksum.*moves the file aside"):
        build_report(evidence, metrics=("acc",), n_boot=0, with_figures=False)


def test_mean_and_family_rows_carry_the_interval_of_the_mean(tmp_path):
    run_id = storegen.write_run(tmp_path, ("alpha",), degradations=("none",))
    evidence = load_runs(tmp_path, [run_id])
    long = build_report(evidence, metrics=("acc", "auroc"), n_boot=50, with_figures=False).long
    rows = evidence.predictions
    for column, generators in (("mean", storegen.GENERATORS), ("family:diffusion", ("g2", "g3"))):
        for name in ("acc", "auroc"):
            resampled = np.mean([M.bootstrap_values([name], g.label, g.p_fake, 0.45, 50)[0]
                                 for _, g in rows[rows.generator.isin(generators)].groupby("generator")], axis=0)
            row = long[(long.generator == column) & (long.metric == name)].iloc[0]
            assert (row.lo, row.hi) == pytest.approx(M.percentile_interval(resampled))
            assert row.lo <= row.value <= row.hi


def test_degradations_sort_by_strength_and_a_clean_only_table_says_so(tmp_path):
    run_id = storegen.write_run(tmp_path, ("alpha",), degradations=("none", "jpeg(q=100)", "jpeg(q=30)", "blur(s=2)"))
    table = build_report(load_runs(tmp_path, [run_id]), metrics=("acc",), n_boot=0, with_figures=False).tables[1]
    assert table.columns == ["none", "blur(s=2)", "jpeg(q=30)", "jpeg(q=100)"]
    assert table.footnotes[-1].startswith("Largest drop from clean") and "alpha g1 Acc -" in table.footnotes[-1]
    clean = storegen.write_run(tmp_path / "clean", ("alpha", "beta"), degradations=("none",))
    notes = build_report(load_runs(tmp_path / "clean", [clean]), metrics=("acc",), n_boot=0, with_figures=False).tables[1].footnotes
    assert notes[-1] == "Only clean images ('none') were evaluated: no degradation to compare with."
    assert not any("+0.0" in note for note in notes)


def test_set_variants_are_named_by_their_overrides(tmp_path):
    first = storegen.write_run(tmp_path, ("alpha",), degradations=("none",))
    second = storegen.write_run(tmp_path, ("alpha",), degradations=("none",), recipe="-lr", rng_seed=1, checkpoint="c2")
    for run_id, lr in ((first, 0.001), (second, 0.003)):
        path = Store(tmp_path).run_dir(run_id) / "record.json"
        record = json.loads(path.read_text())
        record["recipes"]["alpha"]["train"] = {"lr": lr, "epochs": 5}
        path.write_text(json.dumps(record))
    board, _, _ = write_leaderboard(tmp_path, tmp_path / "board", n_boot=0)
    assert sorted(board.detector) == ["alpha (train.lr=0.001, recipe ralpha)", "alpha (train.lr=0.003, recipe ralpha-l)"]


def test_tables_fit_the_terminal_or_print_every_column_when_wide(tmp_path):
    run_id = storegen.write_run(tmp_path, ("alpha", "beta"), degradations=("none",))
    table = build_report(load_runs(tmp_path, [run_id]), metrics=("acc", "ap"), n_boot=0, with_figures=False).tables[0]
    narrow = Console(width=60, record=True)
    print_table(narrow, table, where="main.csv")
    text = narrow.export_text()
    assert max(map(len, text.splitlines())) <= 60 and "left out to fit 60 characters" in text and "main.csv" in text
    assert "mean" in text  # the mean is kept; generators go first
    wide = Console(width=60, record=True)
    print_table(wide, table, wide=True)
    text = wide.export_text()
    assert all(c in text for c in table.columns) and "left out" not in text


@pytest.mark.slow
def test_report_scaling_benchmark_prints_every_step():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "report_scaling.py"), "--rows", "1000", "--cell-rows", "250",
                           "--boot", "5"], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    for step in ("report ", "leaderboard", "report, pandas (today)"):
        assert f"│ {step}" in done.stdout, done.stdout
