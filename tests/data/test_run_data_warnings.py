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


def _noise(seed: int, side: int = 20) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8))


def _invoke(tmp_path, extra, sets=()):
    """A tiny run over generator ``a``: 20 px JPEG reals and PNG fakes in its train and val splits (GenImage layout)."""
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
    return CliRunner().invoke(app, ["run", "--protocols", str(cards), "--protocol", "one", "--data-root", str(root),
                                    "--detectors", "tinycnn", "--out", str(tmp_path / "out"), "--bootstrap", "0",
                                    *[x for s in [*TINY, *sets] for x in ("--set", s)]], terminal_width=250)


def _run(tmp_path, extra=lambda root: None) -> tuple[str, dict]:
    result = _invoke(tmp_path, extra)
    assert result.exit_code == 0, result.output
    store = Store(tmp_path / "out")
    [source] = json.loads((store.run_dir(store.latest_run_id()) / "record.json").read_text())["data_sources"]
    return " ".join(result.output.split()), source


def test_format_shortcut_is_warned_in_the_output_and_the_record(tmp_path):
    output, source = _run(tmp_path)
    shortcut = "generator 'a': reals are JPEG 100% but fakes are PNG 100%; a detector can separate them by file format alone"
    assert f"warning: {shortcut}" in output
    assert len([w for w in source["warnings"] if shortcut in w]) == 1
    assert source["converted"] == {} and source["upscaled"] == {}


def test_converted_images_are_counted_by_kind(tmp_path):
    def convert(root):
        _noise(1).convert("CMYK").save(root / "a" / "val" / "nature" / "cmyk.jpg", "JPEG")
        _noise(2).convert("P").save(root / "a" / "val" / "ai" / "palette.png", "PNG")
        _noise(3).convert("P").save(root / "a" / "train" / "ai" / "palette.png", "PNG")

    output, source = _run(tmp_path, convert)
    assert source["converted"] == {"CMYK": 1, "palette": 2}
    assert "converted to RGB: 1 x CMYK, 2 x palette" in output


def test_test_images_upscaled_at_evaluation_are_counted_per_detector(tmp_path):
    def small(root):
        _noise(4, side=12).save(root / "a" / "val" / "ai" / "small.png")  # below tinycnn's 16 px crop
        _noise(5, side=12).save(root / "a" / "train" / "ai" / "small.png")  # a training image: not counted

    output, source = _run(tmp_path, small)
    assert source["upscaled"] == {"tinycnn": 1}
    assert "test images upscaled at evaluation (smaller than the detector's input): 1 for tinycnn" in output


def test_a_test_image_above_the_pixel_cap_is_refused_before_training(tmp_path, monkeypatch):
    from mirage_bench.engine import runner

    def no_training(*args, **kwargs):
        raise AssertionError("trained before the test images were checked")

    monkeypatch.setattr(runner, "train_cell", no_training)
    result = _invoke(tmp_path, lambda root: None, ["input.eval_crop=none", "input.max_pixels=399"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "is 20x20 = 400 pixels, above this detector's cap of 399 pixels" in " ".join(result.output.split())
    assert not (tmp_path / "out" / "checkpoints").exists()
