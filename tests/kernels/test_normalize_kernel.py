"""The normalisation kernel (``kernels.normalize_triton``) on the CPU: the reference's float32 values bit for bit
through Triton's interpreter, correctly rounded divisions in its sm_90 PTX, and the variants a call launches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mirage_bench.config import InputSpec
from mirage_bench.preprocess import eval_geometry, to_tensor

pytest.importorskip("triton")


def test_kernel_gives_the_references_floats_from_strided_crops_in_the_interpreter(tmp_path):
    """Crops at unaligned offsets of images of several sizes, two specs' means and stds: every float equals the
    reference's ``to_tensor`` (numpy's float32 division, then torch's on the CPU), and the output is channels-last."""
    from interpreted import run_interpreted

    rng = np.random.default_rng(3)
    sizes = [(256, 341, 224), (40, 37, 16), (9, 9, 9)]
    for k, (h, w, _) in enumerate(sizes):
        np.save(tmp_path / f"in{k}.npy", rng.integers(0, 256, (2, 3, h, w), dtype=np.uint8))
    specs = [InputSpec(), InputSpec(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))]
    script = (
        "import sys, numpy as np, torch\n"
        "from mirage_bench.kernels.normalize_triton import normalize_channels_last\n"
        "from mirage_bench.config import InputSpec\n"
        "from mirage_bench.preprocess import eval_geometry\n"
        "root, crops, stats = sys.argv[1], [int(c) for c in sys.argv[2].split(',')], sys.argv[3].split(';')\n"
        "for k, crop in enumerate(crops):\n"
        "    x = eval_geometry(torch.from_numpy(np.load(f'{root}/in{k}.npy')), InputSpec(size=crop))  # a strided centre crop\n"
        "    for i, pair in enumerate(stats):\n"
        "        mean, std = (torch.tensor([float(v) for v in part.split(',')]) for part in pair.split('/'))\n"
        "        out = normalize_channels_last(x, mean, std)\n"
        "        assert out.is_contiguous(memory_format=torch.channels_last)\n"
        "        np.save(f'{root}/out{k}_{i}.npy', out.numpy())\n"
    )
    stats = ";".join(",".join(map(str, spec.mean)) + "/" + ",".join(map(str, spec.std)) for spec in specs)
    run_interpreted(script, str(tmp_path), ",".join(str(c) for *_, c in sizes), stats)
    for k, (*_, crop) in enumerate(sizes):
        cropped = eval_geometry(torch.from_numpy(np.load(tmp_path / f"in{k}.npy")), InputSpec(size=crop))
        for i, spec in enumerate(specs):
            expected = np.stack([to_tensor(Image.fromarray(im.permute(1, 2, 0).numpy()), spec).numpy() for im in cropped])
            np.testing.assert_array_equal(np.load(tmp_path / f"out{k}_{i}.npy"), expected, err_msg=f"size {k}, spec {i}")


def test_kernel_divides_with_correct_rounding_on_hopper():
    """``div_rn``: IEEE division in the PTX for sm_90 (``div.rn.f32``), not the approximate ``div.full.f32`` that
    Triton's ``/`` may emit, which would drift from the reference by a unit in the last place."""
    from triton_keys import hopper_ptx

    from mirage_bench.kernels.normalize_triton import _BLOCK, _normalize

    signature = {"src": "*u8", "dst": "*fp32", "mean": "*fp32", "std": "*fp32", **{name: "i32" for name in
                 ("total", "channels", "height", "width", "stride_n", "stride_c", "stride_h", "stride_w")}, "BLOCK": "constexpr"}
    ptx = hopper_ptx(_normalize, signature, {"BLOCK": _BLOCK})
    assert ptx.count("div.rn.f32") >= 2 and "div.full" not in ptx and "div.approx" not in ptx, ptx[-2000:]


def test_a_calls_launches_are_the_two_variants_compiled_ahead():
    """Crops of every size and offset launch one of two variants (the source 16-byte aligned or not), the two that
    ``warm`` compiles: Triton's keys for sm_90, as its JIT launch computes them."""
    from triton_keys import hopper_key

    from mirage_bench.kernels.normalize_triton import _BLOCK, _normalize

    def key(src: torch.Tensor, shape: tuple[int, ...], strides: tuple[int, ...]) -> str:
        out, table = torch.empty(shape, dtype=torch.float32, device="meta"), torch.empty(3, dtype=torch.float32, device="meta")
        return hopper_key(_normalize, src, out, table, table, int(np.prod(shape)), *shape[1:], *strides, BLOCK=_BLOCK)

    storage = torch.empty(1 << 20, dtype=torch.uint8, device="meta")
    warmed = {key(storage[offset:], (1, 1, 1, 1), (1, 1, 1, 1)) for offset in (0, 1)}  # normalize_triton._compile's launches
    launched = set()
    for n, h, w, crop in [(1, 256, 256, 224), (7, 256, 341, 224), (16, 341, 256, 224), (3, 40, 37, 16), (256, 224, 224, 224)]:
        top, left = (h - crop) // 2, (w - crop) // 2
        launched.add(key(storage[top * w + left:], (n, 3, crop, crop), (3 * h * w, h * w, w, 1)))
    assert launched == warmed and len(warmed) == 2
