"""`mirage-bench run --data-root DIR --train A` on a folder with no card: the protocol is built, kept and recorded."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mirage_bench.cli import app
from mirage_bench.errors import ConfigError
from mirage_bench.runconfig import RunConfig


@pytest.fixture
def flat_folder(tmp_path):
    """ForenSynths' flat layout, ``{gen}/{0_real,1_fake}``, no split folders: 3 generators of 12 + 12 tiny images."""
    rng = np.random.default_rng(0)
    for g, generator in enumerate(["alpha", "beta", "gamma"]):
        for label in ("0_real", "1_fake"):
            folder = tmp_path / "own" / generator / label
            folder.mkdir(parents=True)
            for k in range(12):
                pixels = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8) // (2 if label == "0_real" else 1)
                Image.fromarray(pixels).save(folder / f"{g}{k:02d}.png")
    return tmp_path / "own"


def test_a_run_trains_on_a_folder_without_a_card_and_records_the_protocol_it_built(flat_folder, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "--data-root", str(flat_folder), "--train", "alpha", "--detectors", "tinycnn",
                                      "--out", str(out), "--bootstrap", "0"], terminal_width=250)
    assert result.exit_code == 0, result.output
    assert "protocol built from" in result.output and "carved" in result.output
    [card] = (out / "protocols").glob("own-train-alpha-*.yaml")
    [record] = [json.loads(p.read_text()) for p in (out / "runs").glob("*/record.json")]
    assert record["protocol"]["card"]["train"] == ["alpha"] and record["protocol"]["card"]["test"] == ["beta", "gamma"]
    assert record["protocol"]["card"]["carve"]["seed"] == 0
    assert any("protocol built from" in note for note in record["data_sources"][0]["notes"])
    assert {c["generator"] for c in record["eval_cells"]} == {"beta", "gamma"}
    again = CliRunner().invoke(app, ["run", "--data-root", str(flat_folder), "--train", "alpha", "--detectors", "tinycnn",
                                     "--out", str(out), "--bootstrap", "0"], terminal_width=250)
    assert again.exit_code == 0 and "computed nothing" in again.output
    assert list((out / "protocols").iterdir()) == [card], "the same folder builds the same card: one file"


@pytest.mark.parametrize("settings, words", [
    ({"train_generators": "alpha", "protocol": "mini", "data_root": "x"}, "pass one of them"),
    ({"train_generators": "alpha"}, "pass it with --data-root"),
    ({"test_generators": "beta", "data_root": "x"}, "pass --train too"),
])
def test_own_data_settings_that_cannot_go_together_are_refused(settings, words):
    with pytest.raises(ConfigError, match=words):
        RunConfig.from_sources(None, settings)
