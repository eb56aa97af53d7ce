"""Fault injection: a killed run, started again, ends with the store of an uninterrupted run."""

import pandas as pd
import pytest

import helpers
from mirage_bench import store as store_mod
from mirage_bench.engine import runner, trainer
from mirage_bench.engine.runner import Options, execute
from mirage_bench.reports.runs import load_runs
from mirage_bench.store import Store


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after the raise point runs (no except clause catches it)."""


def _logits(out):
    frame = Store(out).read_predictions()
    return frame.sort_values(["image_id", "cell_id"], ignore_index=True)[["image_id", "cell_id", "degradation", "logit", "p_fake"]]


def _kill_on_call(monkeypatch, owner, name, call):
    original = getattr(owner, name)
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise Killed(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


def _kill_mid_epoch(monkeypatch):
    """Kill inside the second epoch's loop, after one batch (the last full state is from step 6)."""
    original = trainer._with_empty_batches
    seen = {"n": 0}

    def batches(loader, remaining):
        for item in original(loader, remaining):
            seen["n"] += 1
            if seen["n"] == 7:
                raise Killed("mid-epoch")
            yield item

    monkeypatch.setattr(trainer, "_with_empty_batches", batches)


FAULTS = {
    "mid-epoch": _kill_mid_epoch,
    "between-temp-and-rename": lambda mp: _kill_on_call(mp, store_mod, "_commit", 2),
    "between-cells": lambda mp: _kill_on_call(mp, Store, "write_predictions", 2),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_resumed_store_equals_uninterrupted(fault, tiny_data, tiny_reference, tmp_path):
    ref_out, ref_record = tiny_reference
    bench = helpers.benchmark(tiny_data)
    with pytest.MonkeyPatch.context() as mp:
        FAULTS[fault](mp)
        with pytest.raises(Killed):
            execute(bench, Options(out=tmp_path, state_every=3))
    if fault == "mid-epoch":
        assert (Store(tmp_path).checkpoint_dir(ref_record.train_cells[0].cell_id) / trainer.STATE_FILE).is_file()
    record = execute(bench, Options(out=tmp_path, state_every=3))
    resumed, expected = _logits(tmp_path), _logits(ref_out)
    helpers.assert_same_scores(resumed, expected)
    assert [c.checkpoint_sha256 for c in record.train_cells] == [c.checkpoint_sha256 for c in ref_record.train_cells]
    load_runs(tmp_path, [record.run_id]).predictions  # the exactly-once counts hold (reading checks them)


def test_second_run_recomputes_nothing(tiny_data, tiny_reference):
    out, first = tiny_reference
    files = sorted((out / "predictions").glob("*.parquet"))
    stamps = [p.stat().st_mtime_ns for p in files]
    second = execute(helpers.benchmark(tiny_data), Options(out=out))
    assert not any(c.trained_in_this_run for c in second.train_cells)
    assert not any(c.computed_in_this_run for c in second.eval_cells)
    assert [c.cell_id for c in second.eval_cells] == [c.cell_id for c in first.eval_cells]
    assert [p.stat().st_mtime_ns for p in files] == stamps
    assert second.run_id != first.run_id
    plan = runner.describe_plan(helpers.benchmark(tiny_data), Store(out))
    assert set(plan["status"]) == {"done"}


def test_editing_what_documents_a_recipe_recomputes_nothing(tiny_data, tiny_reference):
    """A card's description, citation, note, tags and variant_of change no number: no retraining, no row split."""
    out, first = tiny_reference
    documented = helpers.benchmark(tiny_data, overrides=["description=reworded", "citation=Someone et al. 2026",
                                                    "note=re-run", "tags=[edited]", "variant_of=tinycnn"])
    second = execute(documented, Options(out=out))
    assert not any(c.trained_in_this_run for c in second.train_cells)
    assert not any(c.computed_in_this_run for c in second.eval_cells)
    assert [c.cell_id for c in second.train_cells] == [c.cell_id for c in first.train_cells]
    changed = helpers.benchmark(tiny_data, overrides=["train.lr=0.01"])
    assert {c.cell_id for c in runner.train_cells(changed)}.isdisjoint(c.cell_id for c in first.train_cells)


def test_plan_summary_names_what_each_model_still_needs(tiny_data, tiny_reference):
    out, _ = tiny_reference
    bench = helpers.benchmark(tiny_data)
    plan = runner.describe_plan(bench, Store(out))
    assert runner.summarize_plan(bench, plan).to_dict("records") == [
        {"detector": "tinycnn", "train": "g1", "seed": 0, "training": "done", "evaluation": "done: 4 cells"}]
    missing = (plan["kind"] == "eval") & (plan["subset"] == "g2")  # as if g2's cells had not been scored
    partial = runner.summarize_plan(bench, plan.assign(status=plan["status"].mask(missing, "to do")))
    assert partial["evaluation"].tolist() == ["2 of 4 cells to do: g2 (none, jpeg(q=50))"]
    fresh = runner.summarize_plan(bench, runner.describe_plan(bench, Store(out / "elsewhere")))
    assert fresh["training"].tolist() == ["to do: train on 16 images (8 steps), validate on 8"]
    assert fresh["evaluation"].tolist() == ["after training: 4 cells (2 subsets x 2 degradations)"]


def test_every_image_scored_once_per_cell(tiny_reference):
    out, record = tiny_reference
    predictions = load_runs(out, [record.run_id]).predictions
    for cell in record.eval_cells:
        rows = predictions[predictions.cell_id == cell.cell_id]
        assert len(rows) == cell.images == rows["image_id"].nunique()


def test_mirage_resumes_with_its_memory_bank(tiny_data, tmp_path):
    """MiraGe's bank is training state: a run killed mid-epoch resumes to the uninterrupted run's weights."""
    from mirage_bench.cards import load_recipe
    from mirage_bench.detectors import DETECTORS

    mirage = load_recipe("mirage", [*DETECTORS.get("mirage").tiny_overrides, "train.epochs=2", "train.batch_size=4"])

    def bench():
        b = helpers.benchmark(tiny_data)
        b.recipes, b.degradations = [mirage], b.degradations[:1]
        return b

    reference = execute(bench(), Options(out=tmp_path / "ref", state_every=3))
    with pytest.MonkeyPatch.context() as mp:
        _kill_mid_epoch(mp)
        with pytest.raises(Killed):
            execute(bench(), Options(out=tmp_path / "killed", state_every=3))
    resumed = execute(bench(), Options(out=tmp_path / "killed", state_every=3))
    assert [c.checkpoint_sha256 for c in resumed.train_cells] == [c.checkpoint_sha256 for c in reference.train_cells]
    pd.testing.assert_frame_equal(_logits(tmp_path / "killed"), _logits(tmp_path / "ref"), check_exact=True)
