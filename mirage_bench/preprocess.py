"""From a decoded RGB image to the tensor a detector reads, exactly as its :class:`InputSpec` says.

Steps, in order: resize the shorter side (if ``resize``) -> small-image policy (never zero-padding) ->
odd-size policy -> [training: the recipe's blur/JPEG augmentation] -> crop -> flip (training) -> [0, 1]
float -> normalise. That is the order CNNDetection's and UnivFD's loaders compose (resize, augment, crop,
flip). Training randomness comes from an explicit ``torch.Generator`` so that a resumed run draws the same
crops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from mirage_bench.config import InputSpec
from mirage_bench.errors import DataError
from mirage_bench.geometry import center_offset, shorter_side_to
from mirage_bench.kernels.pil_weights import FILTERS
from mirage_bench.kernels.resample import resize_uint8

_INTERPOLATION = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class ResizeTo:
    """Resample to ``size`` = (width, height)."""

    size: tuple[int, int]
    interpolation: str

    def on_image(self, image: Image.Image) -> Image.Image:
        return image.resize(self.size, _INTERPOLATION[self.interpolation])

    def on_batch(self, x: torch.Tensor) -> torch.Tensor:
        return resize_uint8(x, (self.size[1], self.size[0]), self.interpolation)


@dataclass(frozen=True)
class TileTo:
    """Copies of the image side by side, ``repeats`` = (across, down), so that both sides reach the crop without
    resampling (NPR's ``translate_duplicate`` for GenImage's small images)."""

    repeats: tuple[int, int]

    def on_image(self, image: Image.Image) -> Image.Image:
        w, h = image.size
        tiled = Image.new("RGB", (w * self.repeats[0], h * self.repeats[1]))
        for left in range(0, tiled.width, w):
            for top in range(0, tiled.height, h):
                tiled.paste(image, (left, top))
        return tiled

    def on_batch(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat(1, 1, self.repeats[1], self.repeats[0])


@dataclass(frozen=True)
class CropTo:
    """Keep ``box`` = (left, top, right, bottom), PIL's convention."""

    box: tuple[int, int, int, int]

    def on_image(self, image: Image.Image) -> Image.Image:
        return image.crop(self.box)

    def on_batch(self, x: torch.Tensor) -> torch.Tensor:
        left, top, right, bottom = self.box
        return x[..., top:bottom, left:right]


Step = ResizeTo | TileTo | CropTo


def _shorter_to(size: tuple[int, int], side: int, interpolation: str) -> list[Step]:
    return [] if min(size) == side else [ResizeTo(shorter_side_to(size, side), interpolation)]


def _fit_steps(size: tuple[int, int], spec: InputSpec, name: str, needs_crop: bool, training: bool) -> tuple[list[Step], tuple[int, int]]:
    """The policy, written once for PIL images and uint8 batches alike: the steps that fit an image of ``size`` =
    (width, height) to the spec before any crop (resize, small-image policy, odd-size policy), and the size after
    them."""
    steps: list[Step] = []
    resize = spec.resize_for(training)
    if not training and spec.eval_square is not None:
        steps.append(ResizeTo((spec.eval_square, spec.eval_square), "bilinear"))
    elif resize is not None:
        steps += _shorter_to(size, resize, spec.interpolation)
    size = steps[-1].size if steps else size
    if needs_crop and min(size) < spec.size:
        if spec.small_image == "error":
            raise DataError(
                f"image {name} is {size[0]}x{size[1]} px, smaller than the {spec.size} px crop, and the "
                "input spec says small_image: error. Set input.small_image=upscale to resize such images up."
            )
        if spec.small_image == "tile":
            repeats = (math.ceil(spec.size / size[0]), math.ceil(spec.size / size[1]))
            steps.append(TileTo(repeats))
            size = (size[0] * repeats[0], size[1] * repeats[1])
        else:
            steps += _shorter_to(size, spec.size, spec.interpolation)
            size = steps[-1].size if steps else size
    if spec.odd_size == "crop-even" and (size[0] % 2 or size[1] % 2):
        size = (size[0] - size[0] % 2, size[1] - size[1] % 2)
        steps.append(CropTo((0, 0, *size)))  # drop the last row/column
    return steps, size


def _center_box(size: tuple[int, int], crop: int) -> tuple[int, int, int, int]:
    """torchvision's ``CenterCrop`` placement (``geometry.center_offset``)."""
    left, top = center_offset(size[0], crop), center_offset(size[1], crop)
    return left, top, left + crop, top + crop


def eval_steps(size: tuple[int, int], spec: InputSpec, name: str = "<image>") -> list[Step]:
    """Evaluation's geometry for an image of ``size`` = (width, height): ``_fit_steps``, the pixel cap, the centre crop."""
    steps, size = _fit_steps(size, spec, name, needs_crop=spec.eval_crop == "center", training=False)
    check_pixel_cap(*size, spec, name)
    if spec.eval_crop == "center":
        steps.append(CropTo(_center_box(size, spec.size)))
    return steps


def eval_interpolations(spec: InputSpec) -> set[str]:
    """The interpolations evaluation may resample with under ``spec`` (empty when it never resamples)."""
    used = {"bilinear"} if spec.eval_square is not None else {spec.interpolation} if spec.resize_for(training=False) else set()
    if spec.eval_crop == "center" and spec.small_image == "upscale":
        used.add(spec.interpolation)
    return used


def _run(image: Image.Image, steps: list[Step]) -> Image.Image:
    for step in steps:
        image = step.on_image(image)
    return image


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """torchvision's ``CenterCrop`` placement (``geometry.center_offset``)."""
    return image.crop(_center_box(image.size, size))


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
    return to_tensor(_run(image, eval_steps(image.size, spec, name)), spec)


def eval_geometry(x: torch.Tensor, spec: InputSpec, name: str = "<batch>") -> torch.Tensor:
    """``eval_transform``'s geometry on uint8 ``[G, 3, H, W]`` (one size, any device) -> uint8 ``[G, 3, S, S]``, the
    same pixels (``kernels.resample`` gives PIL's resize bytes). Normalising (``kernels.ops.normalize``) comes
    after, once per batch of equally sized results."""
    for step in eval_steps((x.shape[-1], x.shape[-2]), spec, name):
        x = step.on_batch(x)
    return x


def batch_supported(spec: InputSpec) -> bool:
    """Whether ``eval_geometry`` gives ``eval_transform``'s pixels under ``spec``: every resampling it may do is one
    that ``kernels.resample`` reproduces (bicubic, bilinear)."""
    return eval_interpolations(spec) <= set(FILTERS)


def train_transform(
    image: Image.Image, spec: InputSpec, generator: torch.Generator, name: str = "<image>", augment: Any = None
) -> torch.Tensor:
    """Training preprocessing: resize, ``augment`` (an object with ``apply(image, generator)``: the recipe's
    blur/JPEG), random crop policy, flip; reproducible through ``generator``."""
    image = _run(image, _fit_steps(image.size, spec, name, needs_crop=spec.train_crop in {"random", "center"}, training=True)[0])
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
    image = _run(image, _fit_steps(image.size, spec, name, needs_crop=True, training=True)[0])
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
