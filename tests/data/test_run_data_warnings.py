"""A run prints and records what `data stats` warns about its data, and counts the images decoding converted."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from mirage_bench.cli import app
from mirage_bench.store import Store

TINY = ["params.width=4", "params.stages=2", "input.size=16", "train.batch_size=4", "train.epochs=1"]


def _noise(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (20, 20, 3), dtype=np.uint8))


def _run(tmp_path, extra=lambda root: None) -> tuple[str, dict]:
    """One tiny run over generator ``a``: JPEG reals and PNG fakes in its train and val splits (GenImage layout)."""
    root = tmp_path / "data"
    for split, n in (("train", 6), ("val", 3)):
        for i in range(n):
            for folder, fmt, seed in (("nature", "JPEG", i), ("ai", "PNG", 100 + i)):
                (root / "a" / split / folder).mkdir(parents=True, exist_ok=True)
                _noise(seed + 10 * len(split)).save(root / "a" / split / folder / f"{i}.{fmt.lower().replace('jpeg', 'jpg')}", fmt)
    extra(root)
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "one.yaml").write_text(yaml.safe_dump({"name": "one", "version": 1, "layout": "genimage", "train": ["a"],
                                                    "test": ["a"], "generators": {"a": {"folder": "a", "family": "gan"}}}))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "--protocols", str(cards), "--protocol", "one", "--data-root", str(root),
                                      "--detectors", "tinycnn", "--out", str(out), "--bootstrap", "0",
                                      *[x for s in TINY for x in ("--set", s)]], terminal_width=250)
    assert result.exit_code == 0, result.output
    store = Store(out)
    [source] = json.loads((store.run_dir(store.latest_run_id()) / "record.json").read_text())["data_sources"]
    return " ".join(result.output.split()), source


def test_format_shortcut_is_warned_in_the_output_and_the_record(tmp_path):
    output, source = _run(tmp_path)
    shortcut = "generator 'a': reals are JPEG 100% but fakes are PNG 100%; a detector can separate them by file format alone"
    assert f"warning: {shortcut}" in output
    assert len([w for w in source["warnings"] if shortcut in w]) == 1
    assert source["converted"] == {}


def test_converted_images_are_counted_by_kind(tmp_path):
    def convert(root):
        _noise(1).convert("CMYK").save(root / "a" / "val" / "nature" / "cmyk.jpg", "JPEG")
        _noise(2).convert("P").save(root / "a" / "val" / "ai" / "palette.png", "PNG")
        _noise(3).convert("P").save(root / "a" / "train" / "ai" / "palette.png", "PNG")

    output, source = _run(tmp_path, convert)
    assert source["converted"] == {"CMYK": 1, "palette": 2}
    assert "converted to RGB: 1 x CMYK, 2 x palette" in output
