"""PIL's antialiased resize (``Image.resize``, bicubic or bilinear, 8 bits per channel) on batched uint8 tensors,
bit-exact.

Why: the reference preprocessing and the ``downscale``/``resize`` degradations call PIL. The fast path used to
approximate them on CUDA with ``F.interpolate(antialias=True)`` on float32 copies, rounding and clamping after
each pass: within 2 grey levels of PIL, for about 20 MB of device memory traffic per 512 px image and resize
(float conversions, two interpolations, in-place rounds and clamps). PIL's own arithmetic is integer: per output
pixel, a sum of uint8 inputs times fixed-point weights with 22 fractional bits, then a shift and a clamp; one
pass along each axis, each stored as uint8. The Triton kernel ``resample_triton`` runs those integers on the
device, one launch per pass that reads and writes uint8: PIL's bytes, for a tenth of the traffic. On the CPU
the fast path calls PIL itself, image by image.

The weights are PIL's (``precompute_coeffs`` then ``normalize_coeffs_8bpc`` in ``libImaging/Resample.c``),
computed in float64 with the same operations in the same order. Which pass runs first depends on the Pillow
release (``horizontal_first``), and the order changes the bytes: each pass rounds and clamps. Tested bit-exact
against the installed PIL on the CPU (the kernel through Triton's interpreter) and on CUDA (``tests/gpu``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import PIL
import torch
from PIL import Image

from mirage_bench.errors import ConfigError
from mirage_bench.kernels.ops import host_to_device, triton_module

#: Fractional bits of PIL's fixed-point weights (``PRECISION_BITS``: 32 bits, less 8 for the pixel, less 2 for
#: the overshoot of filters with negative lobes).
PRECISION_BITS = 22
_HALF = 1 << (PRECISION_BITS - 1)


def _bicubic(x: np.ndarray) -> np.ndarray:
    """PIL's bicubic kernel (a = -0.5), in its operation order."""
    a = -0.5
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def _bilinear(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


#: Interpolation -> (kernel, support, PIL's filter), as PIL's filters.
FILTERS = {"bicubic": (_bicubic, 2.0, Image.Resampling.BICUBIC), "bilinear": (_bilinear, 1.0, Image.Resampling.BILINEAR)}


@lru_cache(maxsize=1024)
def coefficients(in_size: int, out_size: int, interpolation: str) -> tuple[np.ndarray, np.ndarray]:
    """PIL's weights for resizing an axis of ``in_size`` pixels to ``out_size``: the first input pixel of each
    output pixel (int64 ``[out]``) and its fixed-point weights (int32 ``[out, taps]``, zero past the pixels it
    reads). Same float64 operations as ``precompute_coeffs``: a C cast truncates toward zero, and each output's
    weight sum runs in input order."""
    if interpolation not in FILTERS:
        raise ValueError(f"PIL-exact resizing covers {sorted(FILTERS)}, not {interpolation!r}")
    if in_size < 1 or out_size < 1:
        raise ValueError(f"cannot resize an axis of {in_size} pixels to {out_size}")
    kernel, support, _ = FILTERS[interpolation]
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = support * filterscale
    taps = int(math.ceil(support)) * 2 + 1
    center = 0.0 + (np.arange(out_size) + 0.5) * scale
    first = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    count = np.minimum(np.trunc(center + support + 0.5), in_size).astype(np.int64) - first
    x = np.arange(taps)
    weights = np.where(x[None, :] < count[:, None], kernel(((x[None, :] + first[:, None]) - center[:, None] + 0.5) * (1.0 / filterscale)), 0.0)
    total = np.zeros(out_size)
    for t in range(taps):  # PIL's order; numpy's sum would pair the terms up
        total = total + weights[:, t]
    weights = np.where(total[:, None] != 0.0, weights / np.where(total == 0.0, 1.0, total)[:, None], weights)
    scaled = weights * (1 << PRECISION_BITS)
    fixed = np.trunc(np.where(weights < 0, scaled - 0.5, scaled + 0.5)).astype(np.int64)
    if int(255 * np.clip(fixed, 0, None).sum(axis=1).max()) + _HALF >= 2**31:  # PIL sums in int32, as the kernel
        raise ValueError(f"resizing {in_size} -> {out_size} pixels ({interpolation}) would overflow PIL's int32 sums")
    return first, fixed.astype(np.int32)


def _release(version: str) -> tuple[int, int]:
    major, minor = (version.split(".") + ["0"])[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def horizontal_first(size: tuple[int, int], target: tuple[int, int], version: str | None = None) -> bool:
    """Whether Pillow ``version`` (default: the installed one) resizes ``size = (height, width)`` to ``target`` with the horizontal pass first
    (when both axes change). Measured on Pillow 10.2 to 13.0 (``tests/kernels``): before 12.2 always; 12.2 and
    12.3 run the vertical pass first only for an image over 100 times taller than wide whose height shrinks; 13
    runs the horizontal pass first when both axes grow, or when the width shrinks by at least half what the
    height shrinks by. Other releases are refused: their order is not known here."""
    (h, w), (th, tw) = size, target
    version = version or PIL.__version__
    release = _release(version)
    if (10, 0) <= release < (12, 2):
        return True
    if (12, 2) <= release < (13, 0):
        return not (h > 100 * w and th < h)
    if release[0] == 13:
        return (tw > w and th > h) or 2 * (w - tw) >= h - th
    raise ConfigError(
        f"the fast path reproduces PIL's resize bit for bit, and the order of its two passes (which changes the "
        f"bytes) is known for Pillow 10.0 to 13.x; Pillow {version} is installed. Install one of those "
        "(pip install 'pillow>=10.2,<14') or score with --impl reference."
    )


def pil_passes(size: tuple[int, int], target: tuple[int, int]) -> list[tuple[int, int]]:
    """The passes PIL runs to resize ``size = (height, width)`` to ``target``, in the installed Pillow's order
    (``horizontal_first``): ``(axis, length)`` with axis 0 the height and 1 the width, only for an axis that
    changes."""
    passes = [(1, target[1]), (0, target[0])]
    if not horizontal_first(size, target):
        passes.reverse()
    return [(axis, length) for axis, length in passes if size[axis] != length]


def check_pillow(version: str | None = None) -> None:
    """The ConfigError of a Pillow release whose pass order is not known (``horizontal_first``), for a run to give
    at its start rather than at its first resize on the GPU."""
    horizontal_first((1, 1), (1, 1), version)


@lru_cache(maxsize=1024)
def _device_coefficients(in_size: int, out_size: int, interpolation: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``coefficients`` on ``device``, kept: a batch resizes to the same few sizes dozens of times."""
    first, fixed = coefficients(in_size, out_size, interpolation)
    return host_to_device(torch.from_numpy(first), device), host_to_device(torch.from_numpy(fixed), device)


def _pass_triton(x: torch.Tensor, axis: int, out_size: int, interpolation: str) -> torch.Tensor:
    """One of PIL's passes on contiguous uint8 ``[N, C, H, W]`` on CUDA: along ``axis`` (3: width, 2: height)."""
    first, fixed = _device_coefficients(x.shape[axis], out_size, interpolation, x.device)
    n, c, h, w = x.shape
    lines, length, inner = (x.view(n * c, h, w), h, w) if axis == 2 else (x.view(n * c * h, w, 1), w, 1)
    shape = [n, c, h, w]
    shape[axis] = out_size
    out = torch.empty(shape, dtype=torch.uint8, device=x.device)
    triton_module("resample_triton").resample_pass_triton(lines, out, first, fixed, length, out_size, inner)
    return out


def resize_uint8(images: torch.Tensor, size: tuple[int, int], interpolation: str = "bicubic") -> torch.Tensor:
    """``Image.resize((width, height), resample)`` of each uint8 image of ``[N, 3, H, W]``, ``size = (height,
    width)``, bit for bit: on CUDA PIL's two passes as Triton kernels (``resize_triton``), on the CPU PIL itself."""
    if interpolation not in FILTERS:
        raise ValueError(f"PIL-exact resizing covers {sorted(FILTERS)}, not {interpolation!r}")
    if images.dtype != torch.uint8:
        raise TypeError(f"resize_uint8 expects uint8 images, got {images.dtype}")
    if images.shape[0] == 0:
        return images.new_empty((*images.shape[:2], *size))
    if images.is_cuda:
        return resize_triton(images, size, interpolation)
    resample = FILTERS[interpolation][2]
    pixels = images.permute(0, 2, 3, 1).numpy()
    resized = [np.asarray(Image.fromarray(np.ascontiguousarray(p)).resize((size[1], size[0]), resample)) for p in pixels]
    return torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2).contiguous()


def resize_triton(images: torch.Tensor, size: tuple[int, int], interpolation: str) -> torch.Tensor:
    """PIL's passes over uint8 ``[N, C, H, W]``, each one launch of the Triton kernel, in the order of the installed
    Pillow (``horizontal_first``); a pass runs only if its axis changes, as in PIL. On the CPU only under Triton's
    interpreter (the tests)."""
    x = images.contiguous()
    for axis, out_size in pil_passes(tuple(x.shape[-2:]), size):
        x = _pass_triton(x, 2 + axis, out_size, interpolation)
    return x if x is not images else images.clone()
