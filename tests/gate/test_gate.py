"""The regression gate on a tiny real run: passes unchanged, and each part fails on the regression it is there for."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from mirage_bench import metrics as M
from mirage_bench.cli import app
from mirage_bench.scoring import reference
from mirage_bench.engine.runner import Options, execute
from mirage_bench.errors import DataError
from mirage_bench.gate import check_gate, update_baseline
from mirage_bench.gate.baseline import read_baseline
from mirage_bench.gate import trained
from mirage_bench.gate.trained import FACTOR, FLOOR, measure, summary
from mirage_bench.reports.runs import load_runs

def _wrong_side(store, fraction: float) -> None:
    """Push a fraction of every stored cell's fakes to p_fake 0 (the first ones by image id), in place."""
    for path in (store / "predictions").glob("*.parquet"):
        frame = pd.read_parquet(path)
        fakes = frame.index[frame["label"] == 1]
        frame.loc[fakes[: int(len(fakes) * fraction)], "p_fake"] = 0.0
        frame.to_parquet(path, index=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, engine_helpers):
    """The anchor store (seeds 0 and 1 of the tiny benchmark) and a copy whose scores stand in for the same runs
    under other CPU kernels (a quarter of the fakes moved to the wrong side)."""
    data, anchor = tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("anchor")
    execute(engine_helpers.benchmark(data, seeds=(0, 1)), Options(out=anchor))
    other = tmp_path_factory.mktemp("other") / "store"
    shutil.copytree(anchor, other)
    _wrong_side(other, 0.25)
    return data, anchor, other


@pytest.fixture(scope="module")
def baseline(runs, tmp_path_factory):
    """The baseline of the anchor and its stand-in; the tiny subsets (7-9 images) move a value by 11 points per
    image, so the chaos limit is lifted here to keep the model gated (test_a_model_beyond_the_chaos_limit...)."""
    data, anchor, other = runs
    folder = tmp_path_factory.mktemp("baselines") / "tiny"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trained, "CHAOS_LIMIT", 100.0)
        update_baseline(anchor, [], folder, [other])
    return folder


def test_an_unchanged_run_passes_both_parts(runs, baseline):
    data, anchor, _ = runs
    result = check_gate(anchor, [], baseline, data)
    assert result.passed, (result.trained.failures, result.scored.failures)
    stored = load_runs(anchor, []).predictions.query("seed == 0").drop_duplicates(["image_id", "degradation"])
    assert (result.scored.logits["compared"] == len(stored)).all()  # every distinct (image, degradation) of the run
    assert set(result.trained.rows["seed"]) == {0, 1}


def test_each_seed_has_its_centre_and_each_value_one_tolerance_from_the_spread(runs, baseline):
    data, anchor, other = runs
    written = read_baseline(baseline)
    assert [(s.seed) for s in written.trained.samples] == [0, 1, 0, 1]
    values = pd.concat([summary(load_runs(anchor, [])), summary(load_runs(other, []))])
    key = values.query("generator == 'mean' and degradation == 'none' and metric == 'acc'")
    centres = key.groupby("seed")["value"].transform("mean")
    tolerance = max(FLOOR, FACTOR * (key["value"] - centres).abs().max())
    assert tolerance > FLOOR  # the stand-in spread is wider than the floor
    mine = [v for v in written.trained.values if (v.generator, v.degradation, v.metric) == ("mean", "none", "acc")]
    assert [v.seed for v in mine] == [0, 1]
    for v in mine:
        assert v.center == pytest.approx(key[key.seed == v.seed]["value"].mean(), abs=1e-4)
        assert v.tolerance == pytest.approx(tolerance, abs=1e-4)


def test_a_model_beyond_the_chaos_limit_is_left_to_the_scored_part(runs):
    data, anchor, other = runs
    part = measure([load_runs(anchor, []), load_runs(other, [])])
    assert [(u.detector, u.train_generators) for u in part.ungated] == [("tinycnn", "g1")]
    assert part.ungated[0].largest_spread > trained.CHAOS_LIMIT and "points over the kernel settings" in part.ungated[0].reason
    assert part.values == []


def test_a_run_of_a_seed_the_baseline_lacks_is_refused(runs, baseline, tmp_path, engine_helpers):
    data, _, _ = runs
    out = tmp_path / "seed7"
    execute(engine_helpers.benchmark(data, seeds=(7,)), Options(out=out))
    with pytest.raises(DataError, match=r"seed\(s\) \[7\].*holds seed\(s\) \[0, 1\]"):
        check_gate(out, [], baseline, data)


def test_a_changed_preprocessing_fails_the_scored_part(runs, baseline, monkeypatch):
    """A 1% change in what the model sees (e.g. a normalisation constant) moves logits far beyond rounding."""
    data, anchor, _ = runs
    transform = reference.eval_transform
    monkeypatch.setattr(reference, "eval_transform", lambda *args: transform(*args) * 1.01)
    result = check_gate(anchor, [], baseline, data)
    assert not result.passed
    logits, _ = result.scored.failures
    assert set(logits["status"]) == {"changed"} and (logits["beyond"] > 0).all()
    assert result.trained.failures.empty  # the stored run did not change


def test_a_changed_metric_fails_the_scored_part(runs, baseline, monkeypatch):
    data, anchor, _ = runs
    compute = M.compute
    monkeypatch.setattr(M, "compute", lambda name, *a, **k: compute(name, *a, **k) * (0.99 if name == "ap" else 1.0))
    _, metrics = check_gate(anchor, [], baseline, data).scored.failures
    assert not metrics.empty and set(metrics["metric"]) == {"ap"}


def test_a_worse_trained_run_fails_the_trained_part(runs, baseline, tmp_path):
    data, anchor, _ = runs
    worse = tmp_path / "worse"
    shutil.copytree(anchor, worse)
    _wrong_side(worse, 1.0)
    result = check_gate(worse, [], baseline, data)
    failed = result.trained.failures
    assert not failed.empty and set(failed["status"]) == {"worse"}
    assert result.scored.passed  # the committed checkpoints still score as they did


def test_the_cli_passes_and_fails_with_exit_codes(runs, baseline, tmp_path, monkeypatch):
    data, anchor, _ = runs
    ok = CliRunner().invoke(app, ["check", "--store", str(anchor), "--baseline", str(baseline), "--data-root", str(data)])
    assert ok.exit_code == 0, ok.output
    assert "check passed" in ok.output
    transform = reference.eval_transform
    monkeypatch.setattr(reference, "eval_transform", lambda *args: transform(*args) + 0.05)
    failed = CliRunner().invoke(app, ["check", "--store", str(anchor), "--baseline", str(baseline), "--data-root", str(data)])
    assert failed.exit_code == 1, failed.output
    assert "check FAILED" in failed.output and "logits changed" in failed.output


def test_a_damaged_or_old_baseline_is_refused_by_name(runs, baseline, tmp_path):
    data, anchor, _ = runs
    copy = tmp_path / "copy"
    shutil.copytree(baseline, copy)
    checkpoint = next((copy / "checkpoints").glob("*.pt"))
    checkpoint.write_bytes(checkpoint.read_bytes()[:-1] + b"x")
    with pytest.raises(DataError, match=f"{checkpoint.name}.*has changed"):
        check_gate(anchor, [], copy, data)
    old = tmp_path / "mini.json"
    old.write_text(json.dumps({"format": "mirage-bench/baseline-v1"}))
    with pytest.raises(DataError, match="old single-file format"):
        read_baseline(old)


def test_changed_test_images_are_refused_before_scoring(runs, baseline, tmp_path):
    data, anchor, _ = runs
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    image = sorted(copy.rglob("val/ai/*.png"))[0]
    image.write_bytes(image.read_bytes() + b"\0")
    with pytest.raises(DataError, match="differ from the files"):
        check_gate(anchor, [], baseline, copy)
    with pytest.raises(DataError, match="not under"):
        check_gate(anchor, [], baseline, tmp_path / "nowhere")
