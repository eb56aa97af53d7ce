"""Ablation report: paired bootstrap of each variant's change against the full model, on a generated store."""

import numpy as np
import pytest
import storegen
import yaml
from sklearn.metrics import average_precision_score

from mirage_bench.errors import ConfigError, DataError
from mirage_bench.reports.ablation import (
    ablation_summary,
    ablation_table,
    find_variants,
)
from mirage_bench.reports.runs import load_runs


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    # "weak" separates far less than "full"; "same" is statistically like "full" but scored with other noise.
    run_id = storegen.write_run(root, detectors=("full", "weak", "same"), seeds=(0, 1), degradations=("none",),
                                strength={"full": 3.0, "weak": 0.3, "same": 3.0}, n=60)
    return load_runs(root, [run_id]).predictions


def test_deltas_match_the_store_and_intervals_are_paired(predictions):
    table = ablation_table(predictions, "full", metrics=("acc", "ap"), n_boot=200)
    for generator in storegen.GENERATORS:
        row = table[(table.variant == "weak") & (table.generator == generator) & (table.metric == "acc")].iloc[0]
        diffs = []
        for seed in (0, 1):
            acc = {d: np.mean((g.p_fake > 0.5) == g.label) for d, g in predictions[
                (predictions.generator == generator) & (predictions.seed == seed)].groupby("detector")}
            diffs.append(acc["weak"] - acc["full"])
        assert row.delta == pytest.approx(100 * np.mean(diffs))
        assert row.lo <= row.delta <= row.hi
    ap = table[(table.variant == "same") & (table.generator == "g1") & (table.metric == "ap")].iloc[0]
    assert ap.full == pytest.approx(100 * np.mean([average_precision_score(g.label, g.p_fake) for _, g in
                                                    predictions[(predictions.generator == "g1") & (predictions.detector == "full")].groupby("seed")]))
    mean = table[(table.generator == "mean") & (table.metric == "acc")].set_index("variant")
    assert mean.loc["weak", "hi"] < 0  # a much weaker variant: the whole interval is below zero
    assert mean.loc["same", "lo"] < mean.loc["same", "delta"] < mean.loc["same", "hi"]
    summary = ablation_summary(table)
    assert list(summary.variant.unique()) == ["same", "weak"]


def test_pairing_refuses_different_images(predictions):
    other = predictions.copy()
    drop = other[(other.detector == "weak") & (other.generator == "g1")].index[:1]
    with pytest.raises(DataError, match="different images"):
        ablation_table(other.drop(drop), "full", n_boot=0)


def test_variants_are_found_by_variant_of(tmp_path):
    for name, extra in (("tinyfull", {}), ("tinyfull-a", {"variant_of": "tinyfull"}), ("other", {"variant_of": "tinycnn"})):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({"name": name, "base": "tinycnn", **extra}))
    assert find_variants("tinyfull", [tmp_path]) == ["tinyfull-a"]
    with pytest.raises(ConfigError, match="variant_of: tinyfull-a"):
        find_variants("tinyfull-a", [tmp_path])
