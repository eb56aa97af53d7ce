"""PIL's resize in integers (``kernels.resample``) against the installed PIL: the weights and the pass order in
numpy, the Triton kernel through Triton's interpreter, and the CPU path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mirage_bench.kernels.pil_weights import FILTERS, PRECISION_BITS, coefficients
from mirage_bench.kernels.resample import horizontal_first, pass_order_known, pil_passes, resize_uint8


def _noise(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """Random pixels with a flat block: noise makes the bicubic overshoot clamp (where the pass order shows), and
    flat areas put sums next to the rounding boundary."""
    images = np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    images[:, : h // 2, : w // 3] = 200
    return images


def _pil(images: np.ndarray, size: tuple[int, int], interpolation: str) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(im).resize(size[::-1], FILTERS[interpolation][2])) for im in images])


def _numpy_pass(x: np.ndarray, axis: int, out_size: int, interpolation: str) -> np.ndarray:
    """One pass of the kernel's arithmetic in numpy (int64, which PIL's int32 sums never exceed): HWC ``x``."""
    first, fixed = coefficients(x.shape[axis], out_size, interpolation)
    index = np.minimum(first[:, None] + np.arange(fixed.shape[1]), x.shape[axis] - 1)
    taps = np.take(x.astype(np.int64), index, axis=axis)  # axis becomes [out, taps]
    weights = fixed.reshape((1,) * axis + fixed.shape + (1,) * (x.ndim - axis - 1))
    total = (taps * weights).sum(axis=axis + 1) + (1 << (PRECISION_BITS - 1))
    return np.clip(total >> PRECISION_BITS, 0, 255).astype(np.uint8)


def _numpy_resize(image: np.ndarray, size: tuple[int, int], interpolation: str) -> np.ndarray:
    for axis, out_size in pil_passes(image.shape[:2], size):
        image = _numpy_pass(image, axis, out_size, interpolation)
    return image


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_weights_and_pass_order_give_the_installed_pils_bytes(interpolation):
    """400 random size pairs (up, down, mixed, one axis only), with the pass order of the installed Pillow."""
    rng = np.random.default_rng(7)
    for case in range(400):
        h, w, th, tw = (int(v) for v in rng.integers(1, 70, 4))
        image = _noise(1, h, w, seed=case)[0]
        expected = _pil(image[None], (th, tw), interpolation)[0]
        np.testing.assert_array_equal(_numpy_resize(image, (th, tw), interpolation), expected, err_msg=f"{(h, w)} -> {(th, tw)}")


@pytest.mark.parametrize("size, target", [((512, 512), (256, 256)), ((375, 500), (256, 341)), ((512, 512), (64, 64)),
                                          ((301, 3), (224, 224)), ((40, 30), (16, 28)), ((1, 9), (30, 2))])
def test_weights_and_pass_order_hold_for_the_protocols_sizes_and_the_order_edges(size, target):
    image = _noise(1, *size, seed=1)[0]
    for interpolation in FILTERS:
        np.testing.assert_array_equal(_numpy_resize(image, target, interpolation), _pil(image[None], target, interpolation)[0])


@pytest.mark.parametrize("version, size, target, first", [
    ("12.1.0", (301, 3), (224, 224), True),  # before 12.2: always horizontal first
    ("12.2.0", (301, 3), (224, 224), False),  # 12.2-12.3: over 100x taller than wide, height shrinking
    ("12.3.0", (300, 3), (224, 224), True),
    ("13.0.0", (40, 30), (16, 28), False),  # 13: the width shrinks by less than half the height's shrink
    ("13.0.0", (40, 30), (2, 11), True),  # exactly half: horizontal first
    ("13.0.0", (39, 42), (61, 76), True),  # both grow
    ("13.0.0", (20, 20), (10, 30), False),  # the width grows, the height shrinks
])
def test_pass_order_follows_the_pillow_release(version, size, target, first):
    """The orders measured on Pillow 10.2, 10.4, 11.3, 12.0, 12.1, 12.2, 12.3 and 13.0 (``/tmp`` installs of
    their wheels, 750 size pairs where the order changes the bytes); the installed release is checked above."""
    assert horizontal_first(size, target, version) is first


@pytest.mark.parametrize("version", ["9.5.0", "14.0.0"])
def test_an_unmeasured_pillow_release_has_no_known_pass_order(version):
    """Such a release is not refused: callers resize with PIL itself there (``resize_uint8``, ``scoring.device_plan``)."""
    assert not pass_order_known(version)
    with pytest.raises(ValueError, match=rf"known for Pillow 10.0 to 13.x, not {version}"):
        horizontal_first((10, 10), (5, 20), version)


def test_cpu_path_is_pil_on_each_image_of_the_batch():
    images = _noise(3, 37, 29, seed=4)
    got = resize_uint8(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), (20, 41), "bilinear")
    np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy(), _pil(images, (20, 41), "bilinear"))


def test_resize_refuses_float_input_and_unsupported_filters():
    with pytest.raises(TypeError, match="uint8"):
        resize_uint8(torch.zeros(1, 3, 4, 4), (2, 2))
    with pytest.raises(ValueError, match="lanczos"):
        resize_uint8(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), (2, 2), "lanczos")


def test_triton_kernel_gives_pils_bytes_in_the_interpreter(tmp_path):
    """The CUDA kernel's integer arithmetic, gathers and clamps on the CPU through Triton's interpreter: both
    orders of the passes, downscaling by up to 8 (33 taps), upscaling, and axes of one pixel."""
    pytest.importorskip("triton")
    from interpreted import run_interpreted

    cases = [((48, 40), (56, 56)), ((48, 40), (30, 21)), ((64, 64), (8, 8)), ((40, 30), (16, 28)), ((7, 5), (3, 60)), ((9, 1), (4, 1))]
    for k, (size, _) in enumerate(cases):
        np.save(tmp_path / f"in{k}.npy", _noise(2, *size, seed=k))
    script = (
        "import sys, numpy as np, torch\n"
        "from mirage_bench.kernels.resample import resize_triton\n"
        "root, targets = sys.argv[1], [tuple(map(int, t.split('x'))) for t in sys.argv[2].split(',')]\n"
        "for k, target in enumerate(targets):\n"
        "    x = torch.from_numpy(np.load(f'{root}/in{k}.npy')).permute(0, 3, 1, 2).contiguous()\n"
        "    for interpolation in ('bicubic', 'bilinear'):\n"
        "        out = resize_triton(x, target, interpolation)\n"
        "        np.save(f'{root}/out{k}_{interpolation}.npy', out.permute(0, 2, 3, 1).numpy())\n"
    )
    run_interpreted(script, str(tmp_path), ",".join(f"{h}x{w}" for _, (h, w) in cases))
    for k, (_, target) in enumerate(cases):
        images = np.load(tmp_path / f"in{k}.npy")
        for interpolation in FILTERS:
            np.testing.assert_array_equal(np.load(tmp_path / f"out{k}_{interpolation}.npy"), _pil(images, target, interpolation),
                                          err_msg=f"case {k}, {interpolation}")


_SIGNATURE = {"src": "*u8", "dst": "*u8", "first": "*i64", "weights": "*i32", "total": "i32", "length": "i32", "out_length": "i32",
              "inner": "i32", "taps": "i32", "BLOCK": "constexpr"}


def test_triton_kernel_assembles_for_hopper_without_spills(tmp_path):
    """The kernel as the GPU machine would build it: PTX for sm_90 from Triton on the CPU, then Triton's bundled
    ptxas to a cubin, with no register spilled to local memory."""
    pytest.importorskip("triton")
    import re
    import subprocess

    from triton.backends.nvidia.compiler import get_ptxas
    from triton_keys import hopper_ptx

    from mirage_bench.kernels.resample_triton import _BLOCK, _resample_pass

    (tmp_path / "resample.ptx").write_text(hopper_ptx(_resample_pass, _SIGNATURE, {"BLOCK": _BLOCK}))
    report = subprocess.run([get_ptxas(90).path, "-v", "--gpu-name=sm_90a", str(tmp_path / "resample.ptx"), "-o", str(tmp_path / "resample.cubin")],
                            capture_output=True, text=True, check=True, timeout=120).stderr
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", report)
    assert spills is not None and spills.groups() == ("0", "0"), report


def test_triton_kernel_has_one_variant_for_every_size_and_count():
    """No integer argument is specialised, so a call's resizes of any sizes and image counts compile one variant
    (Triton's compile keys for sm_90, as its JIT launch computes them): what ``kernels.warm`` compiles ahead."""
    pytest.importorskip("triton")
    from triton_keys import hopper_key

    from mirage_bench.kernels.resample_triton import _BLOCK, _resample_pass

    keys = set()
    for n, (h, w), (th, tw) in [(1, (375, 500), (256, 341)), (16, (512, 512), (256, 256)), (7, (512, 512), (64, 64)), (32, (33, 17), (48, 16))]:
        for length, out_length, inner, outer in ((w, tw, 1, n * 3 * h), (h, th, tw, n * 3)):
            first, fixed = coefficients(length, out_length, "bicubic")
            meta = [torch.empty(size, dtype=dtype, device="meta") for size, dtype in
                    ((outer * length * inner, torch.uint8), (outer * out_length * inner, torch.uint8), (len(first), torch.int64), (fixed.size, torch.int32))]
            keys.add(hopper_key(_resample_pass, *meta, outer * out_length * inner, length, out_length, inner, fixed.shape[1], BLOCK=_BLOCK))
    assert len(keys) == 1, sorted(keys)
