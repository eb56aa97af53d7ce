"""Runs of one card under other recipes or evaluation paths are separate rows, never pooled; undefined means stay NaN."""

import json

import numpy as np
import pandas as pd
import pytest
import storegen
from typer.testing import CliRunner

from mirage_bench.cli import app
from mirage_bench.errors import DataError
from mirage_bench.reports.leaderboard import display, write_leaderboard
from mirage_bench.reports.report import build_report
from mirage_bench.reports.runs import load_runs
from mirage_bench.reports.tables import main_table, metric_long

REFERENCE = "alpha (recipe ralpha, impl reference)"
LR = "alpha (recipe ralpha-l, impl reference)"
FAST = "alpha (recipe ralpha, impl fast)"


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    """One store: alpha, alpha with another recipe (and threshold), alpha on the fast path (same checkpoint)."""
    root = tmp_path_factory.mktemp("variants")
    ids = {REFERENCE: storegen.write_run(root, ("alpha",), degradations=("none",), strength={"alpha": 0.5}),
           LR: storegen.write_run(root, ("alpha",), degradations=("none",), strength={"alpha": 3.0}, rng_seed=1,
                                  recipe="-lr", threshold=0.3, checkpoint="c2"),
           FAST: storegen.write_run(root, ("alpha",), degradations=("none",), strength={"alpha": 1.5}, rng_seed=2,
                                    impl="fast:pil+cpu-degrade+cpu-preprocess")}
    return root, ids


def _own_acc(root, run_id):
    """Clean accuracy of one run's predictions alone: the mean over generators of each subset's accuracy."""
    frame = pd.concat(pd.read_parquet(p) for p in sorted((root / "predictions").glob("*.parquet")))
    rows = frame[(frame.run_id == run_id) & (frame.degradation == "none")]
    return 100 * np.mean([np.mean((g.p_fake > 0.5) == g.label) for _, g in rows.groupby("generator")])


def test_report_of_two_runs_keeps_their_recipes_and_impls_apart(variants):
    root, ids = variants
    evidence = load_runs(root, [ids[REFERENCE], ids[FAST]])
    assert set(evidence.predictions.detector) == {"alpha (impl reference)", "alpha (impl fast)"}
    assert "alpha appears under 1 recipe hash and 2 evaluation implementations" in evidence.notes[0]
    report = build_report(evidence, metrics=("acc", "ap"), n_boot=0, with_figures=False)
    subsets = report.long[report.long.generator.isin(storegen.GENERATORS)]
    assert set(subsets.n) == {20}  # every image once per row, never 40
    table = report.tables[0]
    assert sorted(table.rows) == [("alpha (impl fast)", "g1"), ("alpha (impl reference)", "g1")]
    mean = table.columns.index("mean")
    for name, run_id in (("alpha (impl fast)", ids[FAST]), ("alpha (impl reference)", ids[REFERENCE])):
        assert table.values[table.rows.index((name, "g1")), mean, 0] == pytest.approx(_own_acc(root, run_id))
    assert any("never pooled" in line for line in report.provenance())


def test_leaderboard_ranks_each_recipe_and_impl_as_its_own_row(variants, tmp_path):
    root, ids = variants  # the variants carry different thresholds: one pooled group used to crash
    board, _, paths = write_leaderboard(root, tmp_path, n_boot=100)
    assert sorted(board.detector) == sorted(ids)
    for row in board.to_dict("records"):
        assert row["runs"] == ids[row["detector"]]
        assert row["acc"] == pytest.approx(_own_acc(root, ids[row["detector"]]))
    assert "never pooled" in paths[0].read_text()


def test_two_checkpoints_of_one_recipe_are_refused_naming_the_runs(tmp_path):
    first = storegen.write_run(tmp_path, ("alpha",), degradations=("none",))
    second = storegen.write_run(tmp_path, ("alpha",), degradations=("none",), rng_seed=1, checkpoint="other")
    with pytest.raises(DataError, match=f"2 checkpoints \\(c, other\\) in runs {first}, {second}"):
        build_report(load_runs(tmp_path, [first, second]), n_boot=0, with_figures=False)
    result = CliRunner().invoke(app, ["report", first, second, "--store", str(tmp_path), "--out", str(tmp_path / "rep"),
                                      "--bootstrap", "0", "--no-figures"])
    assert result.exit_code == 2 and "error:" in result.output and "pass the run ids of one of them" in result.output
    assert "Traceback" not in result.output
    assert CliRunner().invoke(app, ["report", first, "--store", str(tmp_path), "--out", str(tmp_path / "one"),
                                    "--bootstrap", "0", "--no-figures"]).exit_code == 0


def test_a_table_refuses_variants_that_share_a_name(variants):
    root, ids = variants
    raw = load_runs(root, [ids[REFERENCE], ids[FAST]]).predictions.assign(detector="alpha")  # as if never labelled
    with pytest.raises(DataError, match="holds several results"):
        main_table(metric_long(raw, ("acc",), n_boot=0), raw, metrics=("acc",))


def test_labels_name_only_what_differs_and_stay_distinct():
    from mirage_bench.reports.runs import label_variants

    frame = pd.DataFrame({"detector": ["a", "a", "b"], "recipe_hash": ["h1", "h1", "h2"],
                          "impl": ["fast:pil+cpu", "fast:nvjpeg+gpu", "reference"]})
    labelled, notes = label_variants(frame)
    assert list(labelled.detector) == ["a (impl fast:pil+cpu)", "a (impl fast:nvjpeg+gpu)", "b"]
    assert len(notes) == 1 and notes[0].startswith("a appears")


@pytest.mark.filterwarnings("ignore:metric 'ap' on .*only one class", "ignore:mean over generator on .*family=")
def test_mean_with_an_undefined_subset_is_undefined_in_value_and_interval(tmp_path):
    run_id = storegen.write_run(tmp_path, ("alpha",), degradations=("none",), fakes_only=("g3",))
    with pytest.warns(UserWarning, match=r"metric=ap is undefined: no value \(NaN\) for generator \['g3'\]"):
        board, _, paths = write_leaderboard(tmp_path, tmp_path / "lb", n_boot=100)
    row = board.iloc[0]
    assert np.isnan(row["ap"]) and np.isnan(row["ap lo"]) and np.isnan(row["ap hi"])  # never AP of g1 and g2 alone
    assert np.isfinite(row["acc"]) and row["acc lo"] <= row["acc"] <= row["acc hi"]
    assert display(board, ("acc", "ap"))["AP (%)"].item() == "–"
    assert json.loads(paths[1].read_text())["rows"][0]["ap"] is None
    with pytest.warns(UserWarning, match="undefined"):
        table = build_report(load_runs(tmp_path, [run_id]), metrics=("acc", "ap"), n_boot=0, with_figures=False).tables[0]
    assert table.cell_text(0, table.columns.index("mean"), 1) == "–"
    assert table.cell_text(0, table.columns.index("g1"), 1) != "–"
