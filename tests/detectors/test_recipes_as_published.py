"""Each baseline's training images are prepared as its authors' code prepares them (issue 28). The references
below are written from the authors' code paths, read at the commits the cards cite, with torchvision, scipy and
PIL doing the work:

- CNNDetection@ea0b562 ``data/datasets.py`` (UnivFD@1abc486 the same): ``TF.resize(img, 256)`` (bilinear), then
  ``data_augment`` (scipy ``gaussian_filter`` per channel into the uint8 array, then a PIL JPEG round trip),
  then the crop; ``train.py get_val_opt``: the same resize, blur 1.5 and JPEG q 65, a ``CenterCrop(224)``.
- Dassl@c61a1b5 ``_build_transform_train`` (CLIPping@3298cae, MaPLe@69bce21): ``RandomResizedCrop((224, 224),
  scale, bicubic)`` on the decoded image, no Resize before it.
- NPR@73cde1c README (GenImage): ``translate_duplicate`` tiles an image under 224 px, then ``CenterCrop(224)``.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image
from scipy.ndimage import gaussian_filter

from mirage_bench.cards import load_recipe
from mirage_bench.degradations import training_augmentation
from mirage_bench.engine.trainer import _PlateauImages, _seed_of, _TrainImages
from mirage_bench.preprocess import eval_transform, train_transform


def _photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth random content (blur and JPEG act on it as on a photo), RGB uint8."""
    coarse = np.random.default_rng(seed).integers(0, 256, (height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.BICUBIC)


def _authors_blur_jpeg(image: Image.Image, sigma: float, quality: int) -> Image.Image:
    """CNNDetection's ``data_augment`` with both branches taken: blur into the uint8 array, then PIL JPEG."""
    array = np.array(image)
    for c in range(3):
        gaussian_filter(array[:, :, c], output=array[:, :, c], sigma=sigma)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="jpeg", quality=quality)
    return Image.open(buffer).convert("RGB")


def _normalised(image: Image.Image, spec) -> torch.Tensor:
    return TF.normalize(TF.to_tensor(image), list(spec.mean), list(spec.std))


def _one_image_set(tmp_path, image: Image.Image) -> pd.DataFrame:
    path = tmp_path / "image.png"
    image.save(path)
    return pd.DataFrame({"path": [str(path)], "label": [1]})


@pytest.mark.parametrize("card", ["cnnspot", "univfd"])
def test_training_resizes_to_256_then_blurs_and_compresses_then_crops(card, tmp_path):
    recipe = load_recipe(card, ["input.train_crop=center", "input.flip=false", "train.augment=[cnnspot(p=1.0)]"])
    image = _photo(512, 384)
    images = _TrainImages(_one_image_set(tmp_path, image), recipe.input, training_augmentation(recipe.train.augment), seed=4)
    # The policy's draws for the item's generator: blur?, sigma / 3, jpeg?, then the quality.
    g = torch.Generator().manual_seed(_seed_of(4, 0, 0))
    u = torch.rand(3, generator=g, dtype=torch.float64)
    quality = int(torch.randint(30, 101, (1,), generator=g))
    resized = TF.resize(image, 256, interpolation=T.InterpolationMode.BILINEAR)
    expected = _normalised(TF.center_crop(_authors_blur_jpeg(resized, 3.0 * float(u[1]), quality), [224, 224]), recipe.input)
    torch.testing.assert_close(images[0][0], expected, rtol=0, atol=1e-6)


def test_the_plateau_validation_images_are_get_val_opts(tmp_path):
    recipe = load_recipe("cnnspot", ["train.val_augment=[cnnspot-val(p=1.0)]"])
    image = _photo(480, 640, seed=1)
    images = _PlateauImages(_one_image_set(tmp_path, image), recipe.input, training_augmentation(recipe.train.val_augment), seed=0)
    resized = TF.resize(image, 256, interpolation=T.InterpolationMode.BILINEAR)
    expected = _normalised(TF.center_crop(_authors_blur_jpeg(resized, 1.5, 65), [224, 224]), recipe.input)
    torch.testing.assert_close(images[0][0], expected, rtol=0, atol=1e-6)
    assert load_recipe("cnnspot").train.val_augment == ["cnnspot-val(p=0.5)"]
    assert load_recipe("cnnspot-p01").train.val_augment == ["cnnspot-val(p=0.1)"]  # get_val_opt keeps the probabilities


def _dassl_crop(image: Image.Image, scale: tuple[float, float], seed: int) -> Image.Image:
    torch.manual_seed(seed)
    return T.RandomResizedCrop((224, 224), scale=scale, interpolation=T.InterpolationMode.BICUBIC)(image)


@pytest.mark.parametrize(("card", "size", "scale"), [
    ("coop", (640, 480), (0.08, 1.0)),
    ("mirage", (300, 500), (0.08, 1.0)),
    ("coop", (900, 60), (0.99, 1.0)),  # no try fits: torchvision's fallback, the whole image's centre at ratio 4/3
])
def test_random_resized_crop_is_dassls_from_the_decoded_image(card, size, scale):
    spec = load_recipe(card, ["input.flip=false", f"input.random_resized_scale=[{scale[0]}, {scale[1]}]"]).input
    image = _photo(*size, seed=2)
    expected = _normalised(_dassl_crop(image, scale, seed=9), spec)  # torch.manual_seed(9): Generator().manual_seed(9)'s state
    torch.testing.assert_close(train_transform(image, spec, torch.Generator().manual_seed(9)), expected, rtol=0, atol=1e-6)


def test_random_resized_crop_leaves_the_global_rng_alone():
    spec = load_recipe("coop").input
    torch.manual_seed(3)
    before = torch.get_rng_state()
    train_transform(_photo(300, 200), spec, torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), before)


def _translate_duplicate(image: Image.Image, crop: int) -> Image.Image:
    """NPR's README ``translate_duplicate``: paste copies from the top-left until both sides reach ``crop``."""
    if min(image.size) >= crop:
        return image
    width, height = image.size
    out = Image.new("RGB", (width * math.ceil(crop / width), height * math.ceil(crop / height)))
    for i in range(0, out.width, width):
        for j in range(0, out.height, height):
            out.paste(image, (i, j))
    return out


@pytest.mark.parametrize("size", [(128, 128), (100, 300), (257, 231), (600, 400)])
def test_npr_genimage_tiles_small_images_and_centre_crops_at_test(size):
    recipe = load_recipe("npr-genimage")
    assert (recipe.train.epochs, recipe.train.lr, recipe.train.batch_size) == (1, 2e-4, 32)
    image = _photo(*size, seed=3)
    expected = _normalised(TF.center_crop(_translate_duplicate(image, 224), [224, 224]), recipe.input)
    torch.testing.assert_close(eval_transform(image, recipe.input), expected, rtol=0, atol=1e-6)


def test_mirage_couplings_are_maples_one_linear_cloned_for_the_deep_layers():
    """MaPLe@69bce21 ``trainers/maple.py``: ``self.proj`` for layer 0, then ``_get_clones(single_layer, depth - 1)``."""
    from mirage_bench.detectors.infra.build import build_tiny

    torch.manual_seed(0)
    couplings = build_tiny("mirage", ["params.depth=3"]).prompts.vision_proj
    assert len(couplings) == 3
    first, deep = couplings[0], list(couplings[1:])
    for layer in deep[1:]:
        assert torch.equal(layer.weight, deep[0].weight) and torch.equal(layer.bias, deep[0].bias)
        assert layer.weight.data_ptr() != deep[0].weight.data_ptr()  # copies that train apart, not one shared layer
    assert not torch.equal(first.weight, deep[0].weight)


@pytest.mark.parametrize("size", [(500, 333), (200, 640), (256, 256)])
def test_npr_resize256_tests_as_the_authors_test_forensynths_and_ufd(size):
    """NPR@73cde1c test.py (ForenSynths, UFD: no_resize False, no_crop True): ``Resize((256, 256))``, no crop."""
    spec = load_recipe("npr-resize256").input
    image = _photo(*size, seed=4)
    expected = _normalised(T.Resize((256, 256))(image), spec)
    torch.testing.assert_close(eval_transform(image, spec), expected, rtol=0, atol=1e-6)
    assert load_recipe("npr").input.eval_square is None  # the npr card itself stays at native size


@pytest.mark.parametrize("card", ["cnnspot", "univfd"])
def test_cnnspot_and_univfd_cards_hold_cnndetections_loop(card):
    """train.py: EarlyStopping(patience=opt.earlystop_epoch=5, delta=-0.001), then -0.002; lr / 10, stop below 1e-6."""
    train = load_recipe(card).train
    s = train.schedule
    assert (s.kind, s.plateau_patience, s.plateau_min_delta, s.plateau_factor, s.min_lr) == ("plateau", 5, (0.001, 0.002), 0.1, 1e-6)
    assert train.augment == ["cnnspot(p=0.5)"] and train.val_augment == ["cnnspot-val(p=0.5)"]


def test_npr_card_holds_the_authors_lr_decay():
    """README: --delr_freq 10 --lr 0.0002 --niter 50; networks/trainer.py adjust_learning_rate: lr *= 0.9."""
    train = load_recipe("npr").train
    assert (train.lr, train.epochs, train.schedule.kind, train.schedule.step_size, train.schedule.step_gamma) == (2e-4, 50, "step", 10, 0.9)
