"""A library error raised in a DataLoader worker reaches the user as that error's message, not as the
DataLoader's RuntimeError carrying the worker's traceback; other errors pass through untouched."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from mirage_bench.degradations import parse
from mirage_bench.errors import DataError, worker_errors


@pytest.fixture()
def manifest_with_truncated_png(tmp_path) -> pd.DataFrame:
    paths = []
    for k in range(4):
        path = tmp_path / f"img{k}.png"
        Image.fromarray(np.random.default_rng(k).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    data = (tmp_path / "img2.png").read_bytes()
    (tmp_path / "img2.png").write_bytes(data[: len(data) // 2])
    return pd.DataFrame({"path": paths, "image_id": [f"id{k}" for k in range(4)]})


@pytest.mark.parametrize("fast", [False, True])
def test_a_corrupt_image_in_a_worker_is_reported_by_name(manifest_with_truncated_png, fast):
    from mirage_bench.detectors.infra.build import build_tiny
    from mirage_bench.scoring import FastScorer, ReferenceScorer

    detector = build_tiny("tinycnn", ["input.size=32"]).eval()
    scorer = (FastScorer if fast else ReferenceScorer)("cpu", workers=1, batch_size=2)
    with pytest.raises(DataError) as caught:
        scorer.score_one(detector, manifest_with_truncated_png, [parse("none")])
    message = str(caught.value)
    assert message.startswith(manifest_with_truncated_png["path"][2] + ": decoding failed")
    assert "Traceback" not in message and "worker process" not in message


class _Failing(Dataset):
    def __init__(self, error: Exception) -> None:
        self.error = error

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> torch.Tensor:
        raise self.error


def test_other_worker_errors_are_left_as_the_dataloader_raises_them():
    with pytest.raises(ValueError, match="Caught ValueError in DataLoader worker process"):
        list(worker_errors(DataLoader(_Failing(ValueError("a bug")), num_workers=1)))


def test_a_single_message_library_error_keeps_its_class_and_message():
    from mirage_bench.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        list(worker_errors(DataLoader(_Failing(ConfigError("bad value for x: 3; expected 1-2")), num_workers=1)))
    assert str(caught.value) == "bad value for x: 3; expected 1-2"
