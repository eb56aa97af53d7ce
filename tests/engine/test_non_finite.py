"""NaN or inf logits are refused before they reach the store (metrics would count a NaN score as "real")."""

import numpy as np
import pytest

import helpers
from mirage_bench.engine.runner import Options, execute
from mirage_bench.errors import ContractError
from mirage_bench.scoring import ReferenceScorer
from mirage_bench.store import Store


def test_non_finite_logits_are_refused_naming_detector_cell_degradation_and_images(tmp_path, monkeypatch):
    bench = helpers.benchmark(tmp_path / "data")
    execute(bench, Options(out=tmp_path / "out"), evaluate=False)  # training validates with ReferenceScorer too
    original = ReferenceScorer.score

    def poisoned(self, detectors, manifest, degradations, **kwargs):
        scored = original(self, detectors, manifest, degradations, **kwargs)
        rows = manifest["image_id"].tolist()
        for subset in bench.subsets.test.values():  # one pass scores both subsets: their first and third images
            ids = subset["image_id"].tolist()
            for scores in scored:
                scores.logits[-1, [rows.index(ids[0]), rows.index(ids[2])]] = [np.nan, np.inf]  # the last degradation
        return scored

    monkeypatch.setattr(ReferenceScorer, "score", poisoned)
    with pytest.raises(ContractError) as info:
        execute(bench, Options(out=tmp_path / "out"))
    message = str(info.value)
    first = bench.subsets.test["g1"]["image_id"].tolist()
    assert "detector 'tinycnn' (train g1, seed 0, training cell " in message
    assert "gave non-finite logits (NaN or inf) for 2 of 9 images of test subset 'g1' under degradation 'jpeg(q=50)'" in message
    assert f"first image ids: {[first[0], first[2]]}" in message and "Nothing was stored for this cell" in message
    assert "for 2 of 7 images of test subset 'g2' under degradation 'jpeg(q=50)'" in message  # refused too, in one error
    assert Store(tmp_path / "out").read_predictions().empty  # not even the finite degradation of that subset
