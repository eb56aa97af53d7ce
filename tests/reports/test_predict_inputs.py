"""`predict` reads its inputs by the rules a run's scan keeps: bad entries are skipped and listed, or refused with --strict."""

import io
import os

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from mirage_bench.cli import app
from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.detectors.infra.checkpoint import save_checkpoint
from mirage_bench.errors import DataError
from mirage_bench.reports.predict import collect_inputs

BAD = {  # entry under the folder -> the kind it is skipped as
    ".hidden.png": "hidden",
    ".cache/": "hidden",
    "away.png": "symlink-outside-root",
    "dangling.png": "broken-symlink",
    "shot.png/": "folder",
    "junk.png": "not-an-image",
    "notes.txt": "not-an-image-extension",
}


def _image(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    """Two good images beside one entry of every bad kind."""
    root = tmp_path / "images"
    _image(root / "a.png"), _image(root / "sub" / "b.png", 1)
    _image(root / ".hidden.png"), _image(root / ".cache" / "c.png")
    os.symlink(_image(tmp_path / "elsewhere" / "x.png"), root / "away.png")
    os.symlink(root / "gone.png", root / "dangling.png")
    _image(root / "shot.png" / "d.png")
    (root / "junk.png").write_bytes(b"not an image at all")
    (root / "notes.txt").write_text("notes")
    return root


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    save_checkpoint(build_tiny("tinycnn"), tmp_path / "model.pt", {"threshold": 0.5})
    return tmp_path / "model.pt"


def test_every_bad_entry_is_skipped_with_its_reason(folder):
    chosen = collect_inputs([folder])
    assert chosen.paths == [str(folder / "a.png"), str(folder / "sub" / "b.png")]
    assert {os.path.relpath(p, folder) + "/" * p.endswith("/"): kind for p, kind, _ in chosen.skipped} == BAD
    assert chosen.summary()[0] == "scored 2 of 9 files; 7 skipped:"


def test_csv_lists_keep_the_same_rules(folder, tmp_path):
    listing = tmp_path / "images" / "list.csv"
    pd.DataFrame({"path": ["a.png", "shot.png", "dangling.png", "../elsewhere/x.png"]}).to_csv(listing, index=False)
    chosen = collect_inputs([listing])
    assert chosen.paths == [str(folder / "a.png")]
    assert [kind for _, kind, _ in chosen.skipped] == ["folder", "broken-symlink", "outside-root"]


def test_strict_refuses_naming_every_skipped_file(folder):
    with pytest.raises(DataError, match="--strict: 7 input file") as refusal:
        collect_inputs([folder], strict=True)
    for entry in BAD:
        assert str(folder / entry.rstrip("/")) in str(refusal.value)


def test_cli_scores_the_usable_files_and_prints_the_count(folder, checkpoint):
    result = CliRunner().invoke(app, ["predict", str(folder), "--checkpoint", str(checkpoint)])
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(io.StringIO(result.stdout)).path) == [str(folder / "a.png"), str(folder / "sub" / "b.png")]
    assert "scored 2 of 9 files; 7 skipped:" in result.stderr and "junk.png (not-an-image)" in result.stderr
    strict = CliRunner().invoke(app, ["predict", str(folder), "--checkpoint", str(checkpoint), "--strict"])
    assert strict.exit_code == 2 and "dangling.png (broken-symlink)" in strict.output and "Traceback" not in strict.output
