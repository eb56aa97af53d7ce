"""``mirage-bench run`` end to end over a hand-built benchmark (the data package is stubbed out)."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

import helpers
from mirage_bench import api
from mirage_bench.cli import app
from mirage_bench.metrics import compute
from mirage_bench.store import Store


@pytest.fixture
def stub_data(tmp_path, monkeypatch):
    from mirage_bench.cli.console import console

    monkeypatch.setattr(console, "width", 250)  # the table must not fold in the captured output
    bench = helpers.benchmark(tmp_path / "data")
    monkeypatch.setattr(api, "load_benchmark", lambda *args, **kwargs: bench)
    return bench


def test_run_prints_table_from_store_and_dry_run_lists_cells(stub_data, tmp_path):
    out = tmp_path / "out"
    cli = CliRunner()
    dry = cli.invoke(app, ["run", "--out", str(out), "--dry-run"], terminal_width=200)
    assert dry.exit_code == 0, dry.output
    assert "to do" in dry.output and "train on 16 images" in dry.output and "4 cells" in dry.output
    result = cli.invoke(app, ["run", "--out", str(out), "--bootstrap", "20"], terminal_width=250)
    assert result.exit_code == 0, result.output
    store = Store(out)
    predictions = store.read_predictions()
    g2 = predictions[(predictions.generator == "g2") & (predictions.degradation == "none")]
    expected = f"{100 * compute('acc', g2.label, g2.p_fake):.1f} / {100 * compute('ap', g2.label, g2.p_fake):.1f}"
    assert expected in result.output
    metrics = pd.read_csv(store.run_dir(store.latest_run_id()) / "metrics.csv")
    assert {"acc", "ap", "oracle_acc", "acc_cal"} <= set(metrics.metric)
    again = cli.invoke(app, ["run", "--out", str(out), "--dry-run"], terminal_width=200)
    assert "to do" not in again.output and "done: 4 cells" in again.output
    cells = cli.invoke(app, ["run", "--out", str(out), "--dry-run", "--cells"], terminal_width=250)
    ids = [c["cell_id"] for c in json.loads((store.run_dir(store.latest_run_id()) / "record.json").read_text())["eval_cells"]]
    assert cells.exit_code == 0 and all(cell_id in cells.output for cell_id in ids)
    refused = cli.invoke(app, ["run", "--out", str(out), "--cells"])
    assert refused.exit_code == 2 and "--cells lists the plan's cells and runs nothing; pass it with --dry-run" in refused.output


def test_unusable_device_is_refused_before_any_work(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = CliRunner().invoke(app, ["run", "--detectors", "tinycnn", "--device", "cuda", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "sees no CUDA device here; use --device cpu" in result.output
    assert not (tmp_path / "checkpoints").exists()
    result = CliRunner().invoke(app, ["run", "--detectors", "tinycnn", "--device", "gpu", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "is not a torch device" in result.output


@pytest.mark.parametrize("seeds, words", [("0,x", "item 'x' is not an integer"), ("0,,1", "item '' is not an integer"),
                                          ("1,0,1", "seed(s) [1] given twice")])
def test_bad_seeds_are_refused_naming_the_item_and_the_expected_form(seeds, words, stub_data, tmp_path):
    result = CliRunner().invoke(app, ["run", "--out", str(tmp_path / "out"), "--seeds", seeds, "--dry-run"], terminal_width=250)
    assert result.exit_code == 2
    assert f"seeds = {seeds!r}: {words}" in result.output and "e.g. --seeds 0,1,2" in result.output
    assert "Traceback" not in result.output and "ValueError" not in result.output
