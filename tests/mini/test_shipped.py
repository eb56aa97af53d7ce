"""The shipped mini set: intact, consistent with its protocol cards, and its fakes learned (not copies or noise)."""

from __future__ import annotations

import hashlib
import json

import pytest

from mirage_bench.mini import default_root
from mirage_bench.mini.quality import quality_report
from mirage_bench.mini.families import GENERATORS
from mirage_bench.mini.manifest import read_manifest
from mirage_bench.protocol import load_protocol

ROOT = default_root()
#: RMS pixel distance (0..1 scale, ~5/255) that every sampled fake keeps from its nearest training crop;
#: for scale, the nearest training crop to any held-out-photo real is 0.048 away in the shipped set
MIN_COPY_RMS = 0.02
#: a reconstruction of a smooth crop may be close to its source, but never the source itself (~1.3/255)
MIN_RECONSTRUCTION_RMS = 0.005
#: colour-histogram logistic regression accuracy (5-fold CV, train split) at or above which colour alone
#: would separate a family from its reals almost perfectly
MAX_COLOUR_ACCURACY = 0.95
MAX_SET_BYTES = 5_000_000


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads((ROOT / "card.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def report() -> dict:
    return quality_report(ROOT)


def test_files_match_the_manifest_and_the_version(card: dict) -> None:
    records = read_manifest(ROOT)
    on_disk = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.png") if p.name != "contact_sheet.png")
    assert on_disk == [r.rel_path for r in records]
    for record in records:
        assert hashlib.sha256((ROOT / record.rel_path).read_bytes()).hexdigest() == record.sha256, record.rel_path
    content = hashlib.sha256("\n".join(f"{r.rel_path} {r.sha256}" for r in records).encode()).hexdigest()
    assert card["content_sha256"] == content and card["version"].endswith(content[:12])
    assert sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file()) < MAX_SET_BYTES


def test_protocol_cards_expect_the_shipped_counts(card: dict) -> None:
    records = read_manifest(ROOT)
    for name in ("mini", "mini-matrix"):
        protocol = load_protocol(name)
        assert sorted(protocol.generators) == sorted(GENERATORS)
        for key, entry in protocol.generators.items():
            assert entry.folder == key
            for split, counts in entry.expected.items():
                rows = [r for r in records if r.generator == key and r.split == split]
                assert counts.real == sum(r.label == 0 for r in rows) and counts.fake == sum(r.label == 1 for r in rows)


@pytest.mark.parametrize("generator", GENERATORS)
def test_each_generator_learned(report: dict, generator: str) -> None:
    assert report[generator]["loss_fell"]


@pytest.mark.parametrize("generator", GENERATORS)
def test_fakes_are_not_copies(report: dict, generator: str) -> None:
    entry = report[generator]
    if "source_rms" in entry:
        assert entry["source_rms"]["min"] > MIN_RECONSTRUCTION_RMS
    else:
        assert entry["nearest_training_rms"]["min"] > MIN_COPY_RMS


@pytest.mark.parametrize("generator", GENERATORS)
def test_colour_alone_does_not_separate_fakes_from_reals(report: dict, generator: str) -> None:
    assert report[generator]["colour_logreg_accuracy"]["cv_train"] < MAX_COLOUR_ACCURACY


def test_verify_reads_the_shipped_set_as_its_card_does_with_nothing_excluded() -> None:
    """With --protocol, `data verify` uses the card's layout (the root alone is ambiguous: it holds a manifest.csv)."""
    from typer.testing import CliRunner

    from mirage_bench.cli import app

    result = CliRunner().invoke(app, ["data", "verify", str(ROOT), "--protocol", "mini"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "1792 usable images, 0 file(s) excluded, 3 not data (the card's not_data)" in result.output
    assert "layout genimage (named by protocol 'mini')" in result.output
    assert "generators and counts match protocol mini v1" in result.output
