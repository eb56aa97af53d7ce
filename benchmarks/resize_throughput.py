"""Resize throughput: PIL's integer arithmetic as a Triton kernel against the float resize the fast path used before.

The fast path resizes on the device for the models' preprocessing (UnivFD: shorter side to 256, bicubic) and for
the ``downscale`` degradations (bilinear). Baseline (a): ``F.interpolate(antialias=True)`` on float32 copies,
rounded and clamped after each pass, as the fast path did until ``kernels.resample`` (within 2 grey levels of
PIL). (b): ``resample.resize_uint8``, PIL's fixed-point passes, each one kernel launch reading and writing uint8
(bit-exact). Per workload: milliseconds per batch (synchronised, after a warm-up), images/s, device memory
traffic per image (bytes read and written by each op: dispatched torch ops counted with a dispatch mode, each
kernel launch as its uint8 input, output and weight tables) and the largest difference from PIL. On a CPU, (b) is
PIL itself and the traffic column still counts what the CUDA path would move.

    python benchmarks/resize_throughput.py                     # CUDA
    python benchmarks/resize_throughput.py --device cpu --images 8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from attention_throughput import ActivationTraffic  # noqa: E402  (the benchmarks' dispatch-mode byte counter)
from blur_throughput import timed  # noqa: E402

from mirage_bench.kernels.pil_weights import FILTERS, coefficients  # noqa: E402
from mirage_bench.kernels.resample import pil_passes, resize_uint8  # noqa: E402

#: (name, input (height, width), output (height, width), interpolation): GenImage's two sizes through UnivFD's
#: preprocessing resize, and the grid's strongest downscale.
WORKLOADS = [
    ("preprocess 512x512 -> 256x256, bicubic", (512, 512), (256, 256), "bicubic"),
    ("preprocess 500x375 -> 341x256, bicubic", (375, 500), (256, 341), "bicubic"),
    ("downscale 512x512 -> 64x64, bilinear", (512, 512), (64, 64), "bilinear"),
]


def float_resize(images: torch.Tensor, size: tuple[int, int], interpolation: str) -> torch.Tensor:
    """Baseline (a): the fast path's resize before ``kernels.resample`` (horizontal, then vertical, each rounded)."""
    h, w = images.shape[-2:]
    x = images.to(torch.float32)
    if w != size[1]:
        x = F.interpolate(x, size=(h, size[1]), mode=interpolation, antialias=True).round_().clamp_(0, 255)
    if h != size[0]:
        x = F.interpolate(x, size=size, mode=interpolation, antialias=True).round_().clamp_(0, 255)
    return x.to(torch.uint8)


def kernel_bytes(n: int, size: tuple[int, int], target: tuple[int, int], interpolation: str) -> int:
    """Bytes the CUDA path's launches move for ``n`` RGB images: per pass, its uint8 input and output and the
    weight tables (each read at least once)."""
    (h, w), moved = size, 0
    for axis, out in pil_passes(size, target):
        first, fixed = coefficients((h, w)[axis], out, interpolation)
        new = (h, out) if axis == 1 else (out, w)
        moved += n * 3 * (h * w + new[0] * new[1]) + first.nbytes + fixed.nbytes
        h, w = new
    return moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    table = Table(title=f"Resize, {args.images} RGB images a batch, {name}")
    for column in ("workload", "implementation", "ms/batch", "images/s", "vs (a)", "MB/image moved", "max |diff| vs PIL"):
        table.add_column(column, justify="left" if column in ("workload", "implementation") else "right")
    for label, size, target, interpolation in WORKLOADS:
        host = rng.integers(0, 256, (args.images, *size, 3), dtype=np.uint8)
        expected = np.stack([np.asarray(Image.fromarray(im).resize(target[::-1], FILTERS[interpolation][2])) for im in host])
        images = torch.from_numpy(host).permute(0, 3, 1, 2).contiguous().to(device)
        counter = ActivationTraffic()
        with counter:
            float_resize(images[:1], target, interpolation)
        rows = [("(a) float32 F.interpolate, rounded per pass", float_resize, sum(counter.bytes.values())),
                ("(b) PIL's integers" + (", Triton kernel" if device.type == "cuda" else " (PIL on the CPU)"), resize_uint8,
                 kernel_bytes(1, size, target, interpolation))]
        baseline = None
        for implementation, fn, moved in rows:
            seconds = timed(lambda: fn(images, target, interpolation), args.repeats, device)
            baseline = baseline or seconds
            got = fn(images, target, interpolation).permute(0, 2, 3, 1).cpu().numpy()
            worst = int(np.abs(got.astype(int) - expected).max())
            table.add_row(label, implementation, f"{seconds * 1e3:.2f}", f"{args.images / seconds:,.0f}", f"{baseline / seconds:.2f}x",
                          f"{moved / 1e6:.2f}", str(worst))
            label = ""
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
