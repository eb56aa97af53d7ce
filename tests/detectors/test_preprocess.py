"""Evaluation preprocessing places its centre crop where torchvision's CenterCrop does, as the field's scripts
(CNNSpot, UnivFD) crop: ``round((W - size) / 2)``, which differs from ``(W - size) // 2`` for half the odd
margins."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from mirage_bench.config import InputSpec
from mirage_bench.preprocess import center_crop, eval_geometry


@pytest.mark.parametrize("margin", range(8))
def test_center_crop_matches_torchvision(margin):
    size = 16
    pixels = np.random.default_rng(margin).integers(0, 256, (size + margin + 3, size + margin, 3), dtype=np.uint8)  # H, W
    image = Image.fromarray(pixels)
    expected = np.asarray(TF.center_crop(image, [size, size]))
    np.testing.assert_array_equal(np.asarray(center_crop(image, size)), expected)
    batch = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    np.testing.assert_array_equal(eval_geometry(batch, InputSpec(size=size))[0].permute(1, 2, 0).numpy(), expected)


@pytest.mark.parametrize("size", [(500, 375), (375, 500), (333, 257), (257, 333), (640, 427), (300, 300)])
def test_eval_transform_equals_the_torchvision_pipeline_of_the_field(size):
    """Resize(256, bicubic) -> CenterCrop(224) -> ToTensor -> Normalize, the UnivFD/CLIP evaluation pipeline."""
    import torchvision.transforms as T

    from mirage_bench.preprocess import eval_transform

    spec = InputSpec(size=224, resize=256, interpolation="bicubic", mean=(0.48145466, 0.4578275, 0.40821073),
                     std=(0.26862954, 0.26130258, 0.27577711))
    field = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
                       T.Normalize(spec.mean, spec.std)])
    pixels = np.random.default_rng(size[0]).integers(0, 256, (size[1] // 8 + 1, size[0] // 8 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).resize(size, Image.BICUBIC)
    torch.testing.assert_close(eval_transform(image, spec), field(image), rtol=0, atol=1e-6)


def test_eval_resize_false_evaluates_at_native_resolution_and_training_still_resizes():
    """UnivFD's and CNNSpot's authors train on resize-256 crops and test a 224 centre crop of the full image."""
    import torchvision.transforms as T

    from mirage_bench.kernels.ops import normalize
    from mirage_bench.preprocess import eval_transform, train_transform

    spec = InputSpec(size=224, resize=256, eval_resize=False, interpolation="bilinear", train_crop="center", flip=False)
    pixels = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    authors = T.Compose([T.CenterCrop(224), T.ToTensor(), T.Normalize(spec.mean, spec.std)])
    torch.testing.assert_close(eval_transform(image, spec), authors(image), rtol=0, atol=1e-6)
    batch = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    torch.testing.assert_close(normalize(eval_geometry(batch, spec), spec.mean, spec.std)[0], authors(image), rtol=0, atol=1e-6)
    resized = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(spec.mean, spec.std)])
    torch.testing.assert_close(train_transform(image, spec, torch.Generator().manual_seed(0)), resized(image), rtol=0, atol=1e-6)


def test_the_univfd_and_cnnspot_cards_evaluate_at_native_resolution():
    from mirage_bench.cards import load_recipe

    for card in ("univfd", "cnnspot", "univfd-cached"):
        spec = load_recipe(card).input
        assert spec.resize == 256 and spec.resize_for(training=False) is None, card
