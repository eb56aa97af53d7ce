"""The CLI end to end: a real (tiny) engine run, reported and ranked (the regression gate: tests/gate)."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from mirage_bench.cli import app
from mirage_bench.engine.runner import Options, execute

@pytest.fixture(scope="module")
def run(tmp_path_factory, engine_helpers):
    """A tiny real run: tinycnn trained and scored by the engine, predictions in the store."""
    data, out = tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("runs")
    record = execute(engine_helpers.benchmark(data), Options(out=out))
    return out, record.run_id


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_report_and_leaderboard_commands_write_their_files(run, tmp_path):
    out, run_id = run
    result = _invoke("report", run_id, "--store", out, "--out", tmp_path / "rep", "--bootstrap", "0", "--no-figures")
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "rep").iterdir()} >= {"main.md", "main.tex", "main.csv", "main.json", "report.html"}
    assert "tinycnn" in result.output
    again = _invoke("report", run_id, "--store", out, "--out", tmp_path / "rep", "--bootstrap", "0", "--no-figures")
    assert again.exit_code == 2 and "already exists" in again.output
    board = _invoke("leaderboard", "--store", out, "--out", tmp_path, "--bootstrap", "0")
    assert board.exit_code == 0, board.output
    assert json.loads((tmp_path / "leaderboard.json").read_text())["rows"][0]["detector"] == "tinycnn"


def test_predict_command_prints_json(run, tmp_path):
    out, run_id = run
    record = json.loads((out / "runs" / run_id / "record.json").read_text())
    checkpoint = record["train_cells"][0]["checkpoint"]
    frames = [pd.read_parquet(p) for p in sorted((out / "predictions").glob("*.parquet"))]
    frame = next(f for f in frames if (f.degradation == "none").all())  # predict scores clean images
    result = _invoke("predict", *frame.path[:3], "--checkpoint", checkpoint, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["p_fake"] for r in rows] == pytest.approx(list(frame.p_fake[:3]), abs=1e-6)
    assert [r["threshold"] for r in rows] == pytest.approx([frame.threshold.iloc[0]] * 3)


def test_ablate_runs_full_model_and_variants_on_the_same_cells(tmp_path, monkeypatch, engine_helpers):
    import yaml

    from mirage_bench.cards import load_recipe
    from mirage_bench import api
    from mirage_bench.reports.ablation import ablation_table
    from mirage_bench.runconfig import RunConfig
    from mirage_bench.reports.runs import load_runs

    helpers = engine_helpers
    cards = tmp_path / "cards"
    cards.mkdir()
    tiny = {"params": {"width": 4, "stages": 2}, "input": {"size": 16}, "train": {"batch_size": 4, "epochs": 1}}
    (cards / "tfull.yaml").write_text(yaml.safe_dump({"name": "tfull", "base": "tinycnn", **tiny}))
    (cards / "tfull-narrow.yaml").write_text(yaml.safe_dump({"name": "tfull-narrow", "base": "tfull", "variant_of": "tfull",
                                                             "params": {"width": 2}}))
    asked = {}

    def load_benchmark(config, **_):
        asked.update(detectors=list(config.detectors), seeds=list(config.seeds))
        bench = helpers.benchmark(tmp_path / "data", config.seeds)
        bench.recipes = [load_recipe(d, (), config.recipe_dirs) for d in config.detectors]
        return bench

    monkeypatch.setattr(api, "load_benchmark", load_benchmark)
    config = RunConfig(protocol="tiny", seeds=[0], out=tmp_path / "runs", recipe_dirs=[cards], bootstrap=0)
    record = api.ablate("tfull", config, notify=lambda line: None)
    assert asked == {"detectors": ["tfull", "tfull-narrow"], "seeds": [0]}
    table = ablation_table(load_runs(tmp_path / "runs", [record.run_id]).predictions, "tfull", n_boot=100)
    assert set(table.variant) == {"tfull-narrow"} and set(table.generator) == {"g1", "g2", "mean"}
    assert ((table.lo <= table.delta + 1e-9) & (table.delta <= table.hi + 1e-9)).all()
    preds = load_runs(tmp_path / "runs", [record.run_id]).predictions
    g2 = preds[(preds.generator == "g2") & (preds.degradation == "none")]
    acc = {d: 100 * ((g.p_fake > 0.5) == g.label).mean() for d, g in g2.groupby("detector")}
    row = table[(table.generator == "g2") & (table.metric == "acc") & (table.degradation == "none")].iloc[0]
    assert row.delta == pytest.approx(acc["tfull-narrow"] - acc["tfull"])
