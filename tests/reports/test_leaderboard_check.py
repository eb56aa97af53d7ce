"""Leaderboard ranking and refusal of incomparable runs (the regression gate: tests/gate)."""

import json

import numpy as np
import pandas as pd
import pytest
import storegen

from mirage_bench.errors import DataError
from mirage_bench.reports.leaderboard import write_leaderboard


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    storegen.write_run(root, detectors=("alpha", "beta"), degradations=("none",), strength={"alpha": 0.5, "beta": 3.0})
    storegen.write_run(root, detectors=("gamma",), degradations=("none",), random=["gamma"], strength={"gamma": 1.5}, rng_seed=1)
    return root


def _clean_acc(root, detector):
    frame = pd.read_parquet(sorted((root / "predictions").glob("*.parquet")))
    rows = frame[(frame.detector == detector) & (frame.degradation == "none")]
    return 100 * np.mean([np.mean((g.p_fake > 0.5) == g.label) for _, g in rows.groupby("generator")])


def test_leaderboard_ranks_across_runs_with_intervals(store, tmp_path):
    root = store
    board, _, paths = write_leaderboard(root, tmp_path, n_boot=200)
    expected = sorted(("alpha", "beta", "gamma"), key=lambda d: -_clean_acc(root, d))
    assert [d.rstrip("†") for d in board.detector] == expected
    for row in board.to_dict("records"):
        assert row["acc"] == pytest.approx(_clean_acc(root, row["detector"].rstrip("†")))
        assert row["acc lo"] <= row["acc"] <= row["acc hi"]
    assert "gamma†" in set(board.detector)
    md = paths[0].read_text()
    assert "random backbone weights" in md and "cpu" in md
    data = json.loads(paths[1].read_text())
    assert [r["detector"] for r in data["rows"]] == list(board.detector)


def test_leaderboard_refuses_other_protocol_versions_and_data(tmp_path):
    storegen.write_run(tmp_path, detectors=("alpha",), degradations=("none",))
    storegen.write_run(tmp_path, detectors=("beta",), degradations=("none",), version=2)
    with pytest.raises(DataError, match="protocol version 2"):
        write_leaderboard(tmp_path, tmp_path / "out", n_boot=0)
    other = tmp_path / "b"
    storegen.write_run(other, detectors=("alpha",), degradations=("none",))
    storegen.write_run(other, detectors=("beta",), degradations=("none",), data_salt="x")
    with pytest.raises(DataError, match="data manifest hash"):
        write_leaderboard(other, tmp_path / "out", n_boot=0)


def test_leaderboard_ranks_by_the_protocol_cards_first_metric(tmp_path):
    """A card that leads with AP (UniversalFakeDetect's) ranks by AP and shows its metrics, not Acc / AP."""
    storegen.write_run(tmp_path, detectors=("alpha", "beta"), degradations=("none",), strength={"alpha": 0.5, "beta": 3.0},
                       metrics=["ap", "acc", "oracle_acc"])
    board, evidence, paths = write_leaderboard(tmp_path, tmp_path / "out", n_boot=0)
    assert evidence.metrics == ["ap", "acc", "oracle_acc"]
    assert list(board.detector) == ["beta", "alpha"]
    assert board["ap"].is_monotonic_decreasing
    assert json.loads(paths[1].read_text())["metrics"] == ["ap", "acc", "oracle_acc"]
    assert "oracle" in paths[0].read_text().lower()
