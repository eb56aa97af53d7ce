"""A published card in a run: its file stands for the training cell, and its rows are its own (never pooled)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

from mirage_bench.detectors.infra.checkpoint import read_checkpoint
from mirage_bench.engine.benchmark import Benchmark, load_cards
from mirage_bench.engine.runner import Options, execute
from mirage_bench.degradations import expand
from mirage_bench.errors import WeightsError
from mirage_bench.reports.runs import load_runs
from mirage_bench.runconfig import RunConfig
from mirage_bench.zoo.card import load_published
from mirage_bench.zoo.fetch import cache_path

from zoo_helpers import FIXTURE, TINY_CLIP

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))  # the engine tests' tiny image trees
import helpers  # noqa: E402


def test_run_scores_the_published_file_as_a_finished_training_cell(tmp_path: Path) -> None:
    card = load_published("univfd-ojha2023")
    cache_path(card).parent.mkdir(parents=True)
    shutil.copyfile(FIXTURE, cache_path(card))
    recipes = load_cards(RunConfig(detectors=["univfd-ojha2023"], overrides=TINY_CLIP)).recipes  # `run --detectors univfd-ojha2023`
    assert [r.name for r in recipes] == ["univfd-ojha2023"] and "never trained here" in recipes[0].note
    tiny = helpers.benchmark(tmp_path / "data")
    bench = Benchmark(tiny.protocol, tiny.subsets, recipes, expand(["none"]), [0])
    record = execute(bench, Options(out=tmp_path / "out"), train=False)  # `mirage-bench eval`: nothing to train
    payload = read_checkpoint(record.train_cells[0].checkpoint)
    published = torch.load(FIXTURE, map_location="cpu", weights_only=True)
    assert torch.equal(payload["state"]["fc.weight"], published["weight"])
    assert payload["metadata"]["published"] == "univfd-ojha2023" and payload["metadata"]["threshold"] == 0.5
    predictions = load_runs(tmp_path / "out", [record.run_id]).predictions
    assert set(predictions["detector"]) == {"univfd-ojha2023"} and (predictions["threshold"] == 0.5).all()
    again = execute(bench, Options(out=tmp_path / "out"))
    assert not again.train_cells[0].trained_in_this_run
    assert not any(c.computed_in_this_run for c in again.eval_cells)


def test_a_hand_downloaded_file_that_is_missing_stops_the_run_before_any_data_is_read() -> None:
    with pytest.raises(WeightsError, match="'npr-tan2024-genimage' are not on this machine and it is downloaded by hand"):
        load_cards(RunConfig(detectors=["npr-mini", "npr-tan2024-genimage"]))
