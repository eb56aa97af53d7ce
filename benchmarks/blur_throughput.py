"""Blur throughput: the fused Triton kernel against the torch-op version of the same bit-exact blur.

Both compute scipy's ``gaussian_filter`` on uint8 images byte for byte (``mirage_bench.kernels.ops``); the
torch-op version needs three float64 kernels per tap. Measured on the ``genimage`` grid's two blurs
(sigma 3 and 5) over a batch of 512 px RGB images, synchronised, after a warm-up; the outputs are compared.
On a CPU the baseline is scipy itself (Triton's CPU interpreter is for tests, not speed).

    python benchmarks/blur_throughput.py                      # CUDA: fused vs torch ops
    python benchmarks/blur_throughput.py --device cpu --images 4
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.ndimage as ndi
import torch


def timed(fn, repeats: int, device: torch.device) -> float:
    """Seconds per call, after one warm-up call."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def scipy_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    out = images.copy()  # [N, C, H, W]
    for plane in out.reshape(-1, *out.shape[-2:]):
        ndi.gaussian_filter(plane, output=plane, sigma=sigma)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from mirage_bench.kernels.ops import gaussian_blur_uint8

    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    host = rng.integers(0, 256, (args.images, 3, args.size, args.size), dtype=np.uint8)
    images = torch.from_numpy(host).to(device)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    table = Table(title=f"Bit-exact Gaussian blur, {args.images} images of {args.size} px RGB, {name}")
    for column in ("sigma", "baseline", "baseline images/s", "ours", "ours images/s", "speed-up", "same bytes"):
        table.add_column(column)
    for sigma in (3.0, 5.0):
        if device.type == "cuda":
            baseline_name, ours_name = "torch ops (float64, per tap)", "fused Triton kernel"
            baseline = timed(lambda: gaussian_blur_uint8(images, sigma, fused=False), args.repeats, device)
            ours = timed(lambda: gaussian_blur_uint8(images, sigma, fused=True), args.repeats, device)
            same = torch.equal(gaussian_blur_uint8(images, sigma, fused=False), gaussian_blur_uint8(images, sigma, fused=True))
        else:
            baseline_name, ours_name = "scipy gaussian_filter", "torch ops (float64, per tap)"
            baseline = timed(lambda: scipy_blur(host, sigma), args.repeats, device)
            ours = timed(lambda: gaussian_blur_uint8(images, sigma), args.repeats, device)
            same = np.array_equal(scipy_blur(host, sigma), gaussian_blur_uint8(images, sigma).numpy())
        table.add_row(f"{sigma:g}", baseline_name, f"{args.images / baseline:,.0f}", ours_name, f"{args.images / ours:,.0f}",
                      f"{baseline / ours:.1f}x", "yes" if same else "NO")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
