"""PIL's fixed-point resampling weights (``precompute_coeffs`` then ``normalize_coeffs_8bpc`` in
``libImaging/Resample.c``), computed in float64 with the same operations in the same order; what both the CPU and
the Triton resize (``resample``, ``resample_triton``) multiply by."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image


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
