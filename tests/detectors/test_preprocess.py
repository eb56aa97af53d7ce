"""Evaluation preprocessing places its centre crop where torchvision's CenterCrop does, as the field's scripts
(CNNSpot, UnivFD) crop: ``round((W - size) / 2)``, which differs from ``(W - size) // 2`` for half the odd
margins."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from mirage_bench.fastpath.ops import center_crop as center_crop_batch
from mirage_bench.preprocess import center_crop


@pytest.mark.parametrize("margin", range(8))
def test_center_crop_matches_torchvision(margin):
    size = 16
    pixels = np.random.default_rng(margin).integers(0, 256, (size + margin + 3, size + margin, 3), dtype=np.uint8)  # H, W
    image = Image.fromarray(pixels)
    expected = np.asarray(TF.center_crop(image, [size, size]))
    np.testing.assert_array_equal(np.asarray(center_crop(image, size)), expected)
    batch = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    np.testing.assert_array_equal(center_crop_batch(batch, size)[0].permute(1, 2, 0).numpy(), expected)
