"""Detectors that score whole images (NPR) refuse, by name, an image above their card's pixel cap."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from mirage_bench.cards import load_recipe
from mirage_bench.cli import app
from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.detectors.infra.checkpoint import save_checkpoint
from mirage_bench.errors import DataError
from mirage_bench.preprocess import eval_geometry, eval_transform
from mirage_bench.reports.predict import predict


def _image(width: int, height: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_npr_card_carries_its_cap_and_shows_it():
    assert load_recipe("npr").input.max_pixels == 4096 * 4096
    assert load_recipe("npr-mini").input.max_pixels == 4096 * 4096
    shown = CliRunner().invoke(app, ["detectors", "show", "npr"])
    assert shown.exit_code == 0 and "max_pixels: 16777216" in shown.output


def test_native_size_evaluation_refuses_an_image_above_the_cap_naming_it_and_the_fix():
    spec = load_recipe("npr", ["input.max_pixels=1000"]).input
    assert eval_transform(_image(40, 24), spec, "small.png").shape == (3, 24, 40)  # 960 pixels
    with pytest.raises(DataError) as refusal:
        eval_transform(_image(40, 26), spec, "big.png")
    message = str(refusal.value)
    assert "big.png is 40x26 = 1,040 pixels" in message and "cap of 1,000" in message
    assert "--set input.eval_crop=center" in message and "--set input.max_pixels=N" in message
    with pytest.raises(DataError, match="big.png is 40x26"):  # the fast path's geometry keeps the same cap
        eval_geometry(torch.zeros(1, 3, 26, 40, dtype=torch.uint8), spec, "big.png")
    cropped = load_recipe("npr", ["input.max_pixels=1000", "input.eval_crop=center", "input.size=16"]).input
    assert eval_transform(_image(400, 260), cropped).shape == (3, 16, 16)  # a crop bounds what the model reads


def test_predict_skips_an_image_above_the_checkpoints_cap(tmp_path):
    torch.manual_seed(0)
    save_checkpoint(build_tiny("npr", ["input.max_pixels=1000"]), tmp_path / "npr.pt", {"threshold": 0.5})
    (tmp_path / "in").mkdir()
    _image(40, 24).save(tmp_path / "in" / "small.png")
    _image(40, 26).save(tmp_path / "in" / "big.png")
    out = predict([tmp_path / "in"], tmp_path / "npr.pt")
    assert list(out.frame.path) == [str(tmp_path / "in" / "small.png")]
    [(path, kind, reason)] = out.inputs.skipped
    assert path == str(tmp_path / "in" / "big.png") and kind == "above-pixel-cap" and "40x26" in reason
