"""The detector's evaluation preprocessing (``preprocess.eval_transform``) on batched uint8 tensors: geometry here,
then ``ops.normalize``."""

from __future__ import annotations

import torch

from mirage_bench.config import InputSpec
from mirage_bench.errors import DataError
from mirage_bench.kernels.ops import center_crop
from mirage_bench.kernels.resample import resize_uint8
from mirage_bench.geometry import shorter_side_to
from mirage_bench.preprocess import check_pixel_cap


def _resize_shorter(x: torch.Tensor, side: int, interpolation: str) -> torch.Tensor:
    h, w = x.shape[-2:]
    if min(h, w) == side:
        return x
    tw, th = shorter_side_to((w, h), side)
    return resize_uint8(x, (th, tw), interpolation)


def eval_geometry(x: torch.Tensor, spec: InputSpec, name: str = "<batch>") -> torch.Tensor:
    """uint8 ``[G, 3, H, W]`` (one size) -> uint8 ``[G, 3, S, S]``: ``eval_transform``'s resizes and crops in its
    order. Normalising (``ops.normalize``) comes after, once per batch of equally sized results: for images of
    many sizes, that is one set of kernels per batch instead of one per image."""
    crop = spec.eval_crop == "center"
    resize = spec.resize_for(training=False)
    if resize is not None:
        x = _resize_shorter(x, resize, spec.interpolation)
    if crop and min(x.shape[-2:]) < spec.size:
        if spec.small_image == "error":
            h, w = x.shape[-2:]
            raise DataError(
                f"image {name} is {w}x{h} px, smaller than the {spec.size} px crop, and the input spec says "
                "small_image: error. Set input.small_image=upscale to resize such images up."
            )
        x = _resize_shorter(x, spec.size, spec.interpolation)
    if spec.odd_size == "crop-even":
        h, w = x.shape[-2:]
        x = x[..., : h - h % 2, : w - w % 2]
    if crop:
        x = center_crop(x, spec.size)
    check_pixel_cap(x.shape[-1], x.shape[-2], spec, name)
    return x


def supported(spec: InputSpec) -> bool:
    """Whether the GPU preprocessing reproduces this spec: it never resizes, or resizes bicubic/bilinear (it
    cannot tile small images or resize to a square)."""
    if spec.eval_square is not None or (spec.small_image == "tile" and spec.eval_crop == "center"):
        return False
    never_resizes = spec.resize_for(training=False) is None and (spec.eval_crop == "none" or spec.small_image == "error")
    return never_resizes or spec.interpolation in {"bicubic", "bilinear"}
