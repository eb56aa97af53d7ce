"""From a decoded RGB image to the tensor a detector reads, exactly as its :class:`InputSpec` says.

Steps, in order: resize the shorter side (if ``resize``) -> small-image policy (never zero-padding) ->
odd-size policy -> [training: the recipe's blur/JPEG augmentation] -> crop -> flip (training) -> [0, 1]
float -> normalise. That is the order CNNDetection's and UnivFD's loaders compose (resize, augment, crop,
flip). Training randomness comes from an explicit ``torch.Generator`` so that a resumed run draws the same
crops.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from mirage_bench.config import InputSpec
from mirage_bench.errors import DataError
from mirage_bench.geometry import center_offset, shorter_side_to

_INTERPOLATION = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


def resize_shorter(image: Image.Image, side: int, interpolation: str) -> Image.Image:
    if min(image.size) == side:
        return image
    return image.resize(shorter_side_to(image.size, side), _INTERPOLATION[interpolation])


def _fit(image: Image.Image, spec: InputSpec, name: str, needs_crop: bool, training: bool) -> Image.Image:
    resize = spec.resize_for(training)
    if not training and spec.eval_square is not None:
        image = image.resize((spec.eval_square, spec.eval_square), Image.Resampling.BILINEAR)
    elif resize is not None:
        image = resize_shorter(image, resize, spec.interpolation)
    if needs_crop and min(image.size) < spec.size:
        if spec.small_image == "error":
            raise DataError(
                f"image {name} is {image.size[0]}x{image.size[1]} px, smaller than the {spec.size} px crop, and the "
                "input spec says small_image: error. Set input.small_image=upscale to resize such images up."
            )
        image = tile(image, spec.size) if spec.small_image == "tile" else resize_shorter(image, spec.size, spec.interpolation)
    if spec.odd_size == "crop-even":
        w, h = image.size
        if w % 2 or h % 2:
            image = image.crop((0, 0, w - w % 2, h - h % 2))  # drop the last row/column
    return image


def tile(image: Image.Image, size: int) -> Image.Image:
    """Copies of ``image`` side by side, ``ceil(size / side)`` along each axis, so that both sides reach ``size``
    without resampling (NPR's ``translate_duplicate`` for GenImage's small images)."""
    w, h = image.size
    tiled = Image.new("RGB", (w * math.ceil(size / w), h * math.ceil(size / h)))
    for left in range(0, tiled.width, w):
        for top in range(0, tiled.height, h):
            tiled.paste(image, (left, top))
    return tiled


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """torchvision's ``CenterCrop`` placement (``geometry.center_offset``)."""
    w, h = image.size
    left, top = center_offset(w, size), center_offset(h, size)
    return image.crop((left, top, left + size, top + size))


def to_tensor(image: Image.Image, spec: InputSpec) -> torch.Tensor:
    array = np.asarray(image, dtype=np.float32) / 255.0  # [H, W, 3]
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1)  # [3, H, W]
    mean = torch.tensor(spec.mean).view(3, 1, 1)
    std = torch.tensor(spec.std).view(3, 1, 1)
    return (tensor - mean) / std


def eval_upscale_side(spec: InputSpec) -> int | None:
    """The shorter side below which :func:`eval_transform` enlarges an image (its resize, or the crop's
    ``small_image: upscale``), or None when evaluation never resamples an image up."""
    crop_upscales = spec.eval_crop == "center" and spec.small_image == "upscale"
    return max([side for side in (spec.resize_for(training=False), spec.eval_square, spec.size if crop_upscales else None) if side], default=None)


def check_pixel_cap(width: int, height: int, spec: InputSpec, name: str) -> None:
    """Refuse an image that evaluation would feed whole (``eval_crop: none``) when it is larger than the spec's
    ``max_pixels``: a detector's memory grows with the pixels it reads (NPR: 9.5 GB for one 6000x6000 image)."""
    if spec.max_pixels is None or spec.eval_crop != "none" or width * height <= spec.max_pixels:
        return
    raise DataError(
        f"image {name} is {width}x{height} = {width * height:,} pixels, above this detector's cap of {spec.max_pixels:,} "
        "pixels for scoring at native size (input.max_pixels), where memory grows with the pixels. Score a centre crop "
        "instead (--set input.eval_crop=center), or raise the cap (--set input.max_pixels=N) where the memory allows."
    )


def eval_transform(image: Image.Image, spec: InputSpec, name: str = "<image>") -> torch.Tensor:
    """Deterministic evaluation preprocessing."""
    image = _fit(image, spec, name, needs_crop=spec.eval_crop == "center", training=False)
    check_pixel_cap(*image.size, spec, name)
    if spec.eval_crop == "center":
        image = center_crop(image, spec.size)
    return to_tensor(image, spec)


def train_transform(
    image: Image.Image, spec: InputSpec, generator: torch.Generator, name: str = "<image>", augment: Any = None
) -> torch.Tensor:
    """Training preprocessing: resize, ``augment`` (an object with ``apply(image, generator)``: the recipe's
    blur/JPEG), random crop policy, flip; reproducible through ``generator``."""
    image = _fit(image, spec, name, needs_crop=spec.train_crop in {"random", "center"}, training=True)
    if augment is not None:
        image = augment.apply(image, generator)
    w, h = image.size
    if spec.train_crop == "random":
        left = int(torch.randint(0, w - spec.size + 1, (1,), generator=generator))
        top = int(torch.randint(0, h - spec.size + 1, (1,), generator=generator))
        image = image.crop((left, top, left + spec.size, top + spec.size))
    elif spec.train_crop == "center":
        image = center_crop(image, spec.size)
    elif spec.train_crop == "random-resized":
        image = _random_resized_crop(image, spec, generator)
    if spec.flip and bool(torch.rand(1, generator=generator) < 0.5):
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return to_tensor(image, spec)


def validation_transform(image: Image.Image, spec: InputSpec, generator: torch.Generator, augment: Any = None,
                         name: str = "<image>") -> torch.Tensor:
    """The validation images a plateau schedule watches, as CNNDetection's ``get_val_opt`` prepares them: the
    training resize, ``augment`` (its fixed blur/JPEG), a centre crop, no flip."""
    image = _fit(image, spec, name, needs_crop=True, training=True)
    if augment is not None:
        image = augment.apply(image, generator)
    return to_tensor(center_crop(image, spec.size), spec)


def _random_resized_crop(image: Image.Image, spec: InputSpec, generator: torch.Generator) -> Image.Image:
    """torchvision's own ``RandomResizedCrop`` (its ``get_params``: scale, ratio 3/4..4/3, ten tries, then the
    centre crop of the whole image at the nearest allowed ratio). ``get_params`` draws from the global torch
    RNG, so ``generator``'s state stands in for it during the call (and takes the draws' advance back); the
    global state is restored. (``fork_rng`` + ``manual_seed`` would cost 1.5 ms an image.)"""
    default = torch.random.default_generator
    saved = default.get_state()
    default.set_state(generator.get_state())
    try:
        top, left, h, w = T.RandomResizedCrop.get_params(image, list(spec.random_resized_scale), [3 / 4, 4 / 3])
        generator.set_state(default.get_state())
    finally:
        default.set_state(saved)
    return TF.resized_crop(image, top, left, h, w, [spec.size, spec.size], interpolation=T.InterpolationMode(spec.interpolation))
