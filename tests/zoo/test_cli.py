"""The published checkpoints on the command line: listed apart from the recipes, fetched, and seen by doctor."""

from __future__ import annotations

import shutil

from typer.testing import CliRunner

from mirage_bench.cli import app
from mirage_bench.zoo.card import load_published, published_paths
from mirage_bench.zoo.fetch import cache_path

from zoo_helpers import FIXTURE, FIXTURE_SHA256

runner = CliRunner()


def test_detectors_list_shows_published_cards_apart_with_licence_and_source() -> None:
    result = runner.invoke(app, ["detectors", "list", "--no-count"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    trained, published = result.output.split("Published checkpoints (eval only")
    assert "univfd-ojha2023" not in trained and "cnnspot-wang2020-p05" not in trained
    rows = {line.split("│")[1].strip(): line for line in published.splitlines() if line.count("│") > 4}
    assert "MIT" in rows["univfd-ojha2023"] and "WisconsinAIVision/UniversalFakeDetect@76a0e3e" in rows["univfd-ojha2023"]
    assert "CC-BY-NC-SA-4.0" in rows["cnnspot-wang2020-p05"] and "PeterWang512/CNNDetection@ea0b562" in rows["cnnspot-wang2020-p05"]
    assert "unpinned" in rows["npr-tan2024"]


def test_weights_fetch_offline_names_what_to_do_then_finds_the_file_put_in_place() -> None:
    card = load_published("univfd-ojha2023")
    missing = runner.invoke(app, ["weights", "fetch", "univfd-ojha2023", "--offline"], env={"COLUMNS": "2000"})
    assert missing.exit_code == 2 and f"put it at {cache_path(card)}" in missing.output and "Traceback" not in missing.output
    doctor = runner.invoke(app, ["doctor"], env={"COLUMNS": "2000"})
    assert f"0 of {len(published_paths())} cached" in doctor.output
    cache_path(card).parent.mkdir(parents=True)
    shutil.copyfile(FIXTURE, cache_path(card))
    found = runner.invoke(app, ["weights", "fetch", "univfd-ojha2023", "--offline"], env={"COLUMNS": "2000"})
    assert found.exit_code == 0 and f"univfd-ojha2023: {cache_path(card)} (sha256 {FIXTURE_SHA256})" in found.output
    doctor = runner.invoke(app, ["doctor"], env={"COLUMNS": "2000"})
    assert f"1 of {len(published_paths())} cached: univfd-ojha2023" in doctor.output  # its path follows, wrapped as the table likes


def test_detectors_show_prints_a_published_card_and_refuses_overrides_on_it() -> None:
    shown = runner.invoke(app, ["detectors", "show", "cnnspot-wang2020-p05"])
    assert shown.exit_code == 0 and "kind: published" in shown.output and "state_dict_key: model" in shown.output
    refused = runner.invoke(app, ["detectors", "show", "cnnspot-wang2020-p05", "--set", "input.size=32"])
    assert refused.exit_code == 2 and "show its recipe instead: `mirage-bench detectors show cnnspot --set ...`" in refused.output
