"""reproduce: a published card scored per generator beside its authors' numbers (card data, never asserted here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from mirage_bench.cli import app
from mirage_bench.errors import ConfigError, DataError
from mirage_bench.mini import default_root
from mirage_bench.zoo.card import load_published
from mirage_bench.zoo.reproduce import reproduce

from zoo_helpers import FIXTURE, TINY_CLIP


def card_with_numbers(tmp_path: Path, scores: list[dict]) -> Path:
    """UnivFD's published card with made-up published numbers on the built-in mini protocol."""
    data = yaml.safe_load(Path(load_published("univfd-ojha2023").path).read_text())
    data["reproduction"] = [{"protocol": "mini", "source": "made up for this test", "tolerance": 2.0, "scores": scores}]
    path = tmp_path / "univfd-made-up.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_reproduce_sets_ours_beside_the_papers_and_flags_what_is_beyond_tolerance(tmp_path: Path) -> None:
    card = load_published(str(card_with_numbers(tmp_path, [{"subset": "dcgan", "acc": 50.0, "ap": 0.0}, {"subset": "vae", "acc": 99.0}])))
    frame = reproduce(card, default_root(), weights=FIXTURE, overrides=TINY_CLIP)
    assert frame["generator"].tolist() == ["dcgan", "vae"] and frame["images"].tolist() == [128, 128]
    assert np.allclose(frame["acc diff"], frame["acc ours"] - frame["acc paper"])
    assert frame.loc[0, "beyond tolerance"]  # AP 0 is never what a model scores on both classes
    assert np.isnan(frame.loc[1, "ap diff"]) and np.isnan(frame.loc[1, "ap paper"])
    assert frame.loc[1, "beyond tolerance"] == (abs(frame.loc[1, "acc diff"]) > 2.0)
    result = CliRunner().invoke(app, ["reproduce", str(card.path), "--data-root", str(default_root()), "--weights", str(FIXTURE),
                                      *[a for o in TINY_CLIP for a in ("--set", o)]], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "univfd (published) on mini: ours vs made up for this test - RANDOM backbone" in result.output and "FLAG" in result.output


def test_numbers_for_a_subset_the_data_lack_are_refused_before_any_model_is_built(tmp_path: Path) -> None:
    card = load_published(str(card_with_numbers(tmp_path, [{"subset": "stylegan", "acc": 50.0}])))
    with pytest.raises(DataError, match="name test subsets that protocol 'mini' does not read .*: stylegan"):
        reproduce(card, default_root(), weights=tmp_path / "never-read.pth")
    with pytest.raises(ConfigError, match="no numbers for protocol 'forensynths'; it has: mini"):
        reproduce(card, default_root(), protocol="forensynths")
