"""PIL's antialiased resize (``Image.resize``, bicubic or bilinear, 8 bits per channel) on batched uint8 tensors,
bit-exact.

Why: the reference preprocessing and the ``downscale``/``resize`` degradations call PIL. The fast path used to
approximate them on CUDA with ``F.interpolate(antialias=True)`` on float32 copies, rounding and clamping after
each pass: within 2 grey levels of PIL, for several times the device memory traffic (float conversions, two
interpolations, in-place rounds and clamps; ``benchmarks/resize_throughput.py``). PIL's own arithmetic is integer: per output
pixel, a sum of uint8 inputs times fixed-point weights with 22 fractional bits, then a shift and a clamp; one
pass along each axis, each stored as uint8. The Triton kernel ``resample_triton`` runs those integers on the
device, one launch per pass that reads and writes uint8: PIL's bytes, for a tenth of the traffic. On the CPU,
and on CUDA under a Pillow release whose pass order has not been measured (``pass_order_known``), PIL itself
resizes, image by image: exact by construction, only slower.

The weights are PIL's (``pil_weights``). Which pass runs first depends on the Pillow
release (``horizontal_first``), and the order changes the bytes: each pass rounds and clamps. Tested bit-exact
against the installed PIL on the CPU (the kernel through Triton's interpreter) and on CUDA (``tests/gpu``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import PIL
import torch
from PIL import Image

from mirage_bench.kernels import triton_kernels
from mirage_bench.kernels.device import host_to_device
from mirage_bench.kernels.pil_weights import FILTERS, coefficients

def _release(version: str) -> tuple[int, int]:
    major, minor = (version.split(".") + ["0"])[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def pass_order_known(version: str | None = None) -> bool:
    """Whether ``horizontal_first`` knows the pass order of Pillow ``version`` (default: the installed one)."""
    return (10, 0) <= _release(version or PIL.__version__) < (14, 0)


def horizontal_first(size: tuple[int, int], target: tuple[int, int], version: str | None = None) -> bool:
    """Whether Pillow ``version`` (default: the installed one) resizes ``size = (height, width)`` to ``target`` with the
    horizontal pass first (when both axes change). Measured on Pillow 10.2 to 13.0 (``tests/kernels``): before 12.2
    always; 12.2 and 12.3 run the vertical pass first only for an image over 100 times taller than wide whose height
    shrinks; 13 runs the horizontal pass first when both axes grow, or when the width shrinks by at least half what
    the height shrinks by. For another release (``pass_order_known``) a ValueError: callers resize with PIL there."""
    (h, w), (th, tw) = size, target
    version = version or PIL.__version__
    release = _release(version)
    if not pass_order_known(version):
        raise ValueError(f"the order of PIL's two resize passes is known for Pillow 10.0 to 13.x, not {version}")
    if release < (12, 2):
        return True
    if release < (13, 0):
        return not (h > 100 * w and th < h)
    return (tw > w and th > h) or 2 * (w - tw) >= h - th


def pil_passes(size: tuple[int, int], target: tuple[int, int]) -> list[tuple[int, int]]:
    """The passes PIL runs to resize ``size = (height, width)`` to ``target``, in the installed Pillow's order
    (``horizontal_first``): ``(axis, length)`` with axis 0 the height and 1 the width, only for an axis that
    changes."""
    passes = [(1, target[1]), (0, target[0])]
    if not horizontal_first(size, target):
        passes.reverse()
    return [(axis, length) for axis, length in passes if size[axis] != length]


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
    triton_kernels.resample().resample_pass_triton(lines, out, first, fixed, length, out_size, inner)
    return out


def resize_uint8(images: torch.Tensor, size: tuple[int, int], interpolation: str = "bicubic") -> torch.Tensor:
    """``Image.resize((width, height), resample)`` of each uint8 image of ``[N, 3, H, W]``, ``size = (height,
    width)``, bit for bit: on CUDA PIL's two passes as Triton kernels (``resize_triton``) where the installed
    Pillow's pass order is known, elsewhere PIL itself (on the host)."""
    if interpolation not in FILTERS:
        raise ValueError(f"PIL-exact resizing covers {sorted(FILTERS)}, not {interpolation!r}")
    if images.dtype != torch.uint8:
        raise TypeError(f"resize_uint8 expects uint8 images, got {images.dtype}")
    if images.shape[0] == 0:
        return images.new_empty((*images.shape[:2], *size))
    if images.is_cuda and pass_order_known():
        return resize_triton(images, size, interpolation)
    resample = FILTERS[interpolation][2]
    pixels = images.permute(0, 2, 3, 1).cpu().numpy()
    resized = [np.asarray(Image.fromarray(np.ascontiguousarray(p)).resize((size[1], size[0]), resample)) for p in pixels]
    return torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2).contiguous().to(images.device)


def resize_triton(images: torch.Tensor, size: tuple[int, int], interpolation: str) -> torch.Tensor:
    """PIL's passes over uint8 ``[N, C, H, W]``, each one launch of the Triton kernel, in the order of the installed
    Pillow (``horizontal_first``); a pass runs only if its axis changes, as in PIL. On the CPU only under Triton's
    interpreter (the tests)."""
    x = images.contiguous()
    for axis, out_size in pil_passes(tuple(x.shape[-2:]), size):
        x = _pass_triton(x, 2 + axis, out_size, interpolation)
    return x if x is not images else images.clone()
