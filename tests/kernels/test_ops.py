"""The fast uint8 ops against the reference computations (scipy, PIL), on CPU tensors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from PIL import Image

from mirage_bench.kernels.ops import gaussian_blur_uint8


def _random_images(n, h, w, seed=0):
    rng = np.random.default_rng(seed)
    smooth = rng.integers(0, 256, (n, h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    # mix smooth content with noise so that both flat areas and edges are exercised
    big = np.stack([np.asarray(Image.fromarray(s).resize((w, h), Image.BILINEAR)) for s in smooth])
    images = np.clip(big.astype(int) + rng.integers(-20, 21, big.shape), 0, 255).astype(np.uint8)
    images[:, : h // 2, : w // 3] = 200  # a flat area: sums land next to integers, where rounding order shows
    return images


def _scipy_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    out = img.copy()
    for c in range(3):
        ndi.gaussian_filter(out[:, :, c], output=out[:, :, c], sigma=sigma)
    return out


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 3.0, 5.0])
@pytest.mark.parametrize("shape", [(37, 53), (8, 9)])
def test_blur_is_bit_exact_with_scipy_uint8(sigma, shape):
    images = _random_images(2, *shape, seed=int(sigma * 10))
    expected = np.stack([_scipy_blur(im, sigma) for im in images])
    got = gaussian_blur_uint8(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), sigma)
    np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy(), expected)


def test_fused_triton_blur_is_bit_exact_with_scipy_in_the_interpreter(tmp_path):
    """The CUDA kernel's arithmetic and border handling, run on the CPU by Triton's interpreter (in a fresh
    process: the interpreter is chosen when the kernel is defined). FMA contraction, the one thing the
    interpreter cannot show, is switched off in the launch and checked on CUDA in tests/gpu."""
    pytest.importorskip("triton")
    from interpreted import run_interpreted

    sigmas = [0.5, 1.0, 3.0, 5.0]
    # small: the kernel is wider than the image (repeated reflections); edge: radius 20 = one row short of the height
    inputs = {"big": _random_images(3, 37, 53, seed=1), "small": _random_images(1, 8, 9, seed=3), "edge": _random_images(1, 21, 30, seed=4)}
    for name, images in inputs.items():
        np.save(tmp_path / f"{name}.npy", images)
    script = (
        "import sys, numpy as np, torch\n"
        "from mirage_bench.kernels.blur_triton import gaussian_blur_uint8_triton\n"
        "from mirage_bench.kernels.ops import gaussian_kernel\n"
        "root, names, sigmas = sys.argv[1], sys.argv[2].split(','), [float(s) for s in sys.argv[3].split(',')]\n"
        "for name in names:\n"
        "    x = torch.from_numpy(np.load(f'{root}/{name}.npy')).permute(0, 3, 1, 2).contiguous()\n"
        "    for s in sigmas:\n"
        "        out = gaussian_blur_uint8_triton(x, gaussian_kernel(s))\n"
        "        np.save(f'{root}/{name}_{s}.npy', out.permute(0, 2, 3, 1).numpy())\n"
    )
    run_interpreted(script, str(tmp_path), ",".join(inputs), ",".join(map(str, sigmas)))
    for name, images in inputs.items():
        for sigma in sigmas:
            expected = np.stack([_scipy_blur(im, sigma) for im in images])
            np.testing.assert_array_equal(np.load(tmp_path / f"{name}_{sigma}.npy"), expected, err_msg=f"{name}, sigma {sigma}")


def _ptx_for_hopper(wide: bool) -> str:
    """The blur kernel as launched, compiled for an H100 (sm_90) by Triton on the CPU (no GPU needed)."""
    pytest.importorskip("triton")
    from triton_keys import hopper_ptx

    from mirage_bench.kernels.blur_triton import _BLOCK, COMPILE_OPTIONS, _blur_pass

    signature = {"src": "*u8", "dst": "*u8", "weights": "*fp64", "total": "i64", "length": "i32", "stride": "i32", "radius": "i32",
                 "WIDE": "constexpr", "BLOCK": "constexpr"}
    return hopper_ptx(_blur_pass, signature, {"WIDE": wide, "BLOCK": _BLOCK}, COMPILE_OPTIONS)


@pytest.mark.parametrize("wide", [False, True])
def test_fused_triton_blur_compiles_for_hopper_without_fma(wide):
    """Every float64 multiply and add is its own rounded instruction, as in scipy's C loop."""
    ptx = _ptx_for_hopper(wide)
    assert "fma" not in ptx
    assert "mul.rn.f64" in ptx and "add.rn.f64" in ptx


def test_fused_triton_blur_spills_no_registers_on_hopper(tmp_path):
    """Register spills to local memory made the radius-20 pass 25x slower than the radius-12 one on an H100
    (``benchmarks/blur_throughput.py``); Triton's bundled ptxas reports them without a GPU. The radius is a
    runtime loop bound, so one compiled kernel serves every radius."""
    import re
    import subprocess

    from triton.backends.nvidia.compiler import get_ptxas

    (tmp_path / "blur.ptx").write_text(_ptx_for_hopper(wide=False))
    report = subprocess.run([get_ptxas(90).path, "-v", "--gpu-name=sm_90a", str(tmp_path / "blur.ptx"), "-o", str(tmp_path / "blur.cubin")],
                            capture_output=True, text=True, check=True, timeout=120).stderr
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", report)
    assert spills is not None, report
    assert spills.groups() == ("0", "0"), report


def test_fused_triton_blur_compiles_one_variant_per_size_class_not_per_sigma_or_height():
    """Launches of the grid's two blurs over GenImage's image sizes (512 px PNG, 500x375 JPEG), at every model
    batch size, map to 5 Triton compile keys (as JIT launches compute them, for sm_90, on the CPU): rows and
    columns of the PNGs; rows of the JPEGs with the flat size divisible by 16 or not; their columns when it is not
    (when it is, the PNGs' columns variant). Each key is a cold compile on first use, mid-run; with the radius a
    constexpr and the axis length specialised, these launches made 12."""
    from triton_keys import triton_keys

    from mirage_bench.kernels.ops import blur_radius

    launches = [((n, 3, h, w), blur_radius(sigma)) for n in range(1, 257) for h, w in ((512, 512), (375, 500)) for sigma in (3.0, 5.0)]
    keys = set(triton_keys(launches))
    assert len(keys) == 5, sorted(keys)


def test_ops_refuse_float_input():
    with pytest.raises(TypeError, match="uint8"):
        gaussian_blur_uint8(torch.zeros(1, 3, 4, 4), 1.0)
