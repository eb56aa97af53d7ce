"""The fast path's degradation plans, preprocessing and scorer against the reference, on CPU tensors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from mirage_bench.config import InputSpec
from mirage_bench.degradations import image_seed, parse
from mirage_bench.fastpath.gpu_degrade import gpu_plan
from mirage_bench.fastpath.gpu_preprocess import eval_preprocess
from mirage_bench.preprocess import eval_transform


def _photo(h: int, w: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (h // 6 + 2, w // 6 + 2, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((w, h), Image.BICUBIC)


def _as_batch(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None]


@pytest.mark.parametrize(
    "spec",
    ["none", "blur(s=3)", "downscale(size=40)", "downscale(f=0.5, interp=bicubic)", "chain(blur(s=1),downscale(size=30))", "resize(w=50,h=20)"],
)
def test_gpu_plans_match_the_reference_degradation(spec):
    degradation = parse(spec)
    plan = gpu_plan(degradation)
    assert plan is not None
    image = _photo(61, 83, seed=1)
    expected = np.asarray(degradation.apply(image, image_seed(0, "x"))).astype(int)
    got = plan(_as_batch(image))[0].permute(1, 2, 0).numpy().astype(int)
    assert got.shape == expected.shape
    diff = np.abs(got - expected)
    if "downscale" in spec or "resize" in spec:
        assert diff.max() <= 2 and diff.mean() < 0.25  # PIL resize tolerance (see fastpath.ops)
    else:
        assert diff.max() == 0  # blur is bit-exact


@pytest.mark.parametrize("spec", ["jpeg(q=65)", "webp(q=80)", "noise(std=3)", "chain(blur(s=2),jpeg(q=50))", "crop(size=8)"])
def test_cpu_only_degradations_have_no_gpu_plan(spec):
    assert gpu_plan(parse(spec)) is None


@pytest.mark.parametrize(
    ("shape", "spec"),
    [
        ((70, 90), InputSpec(size=32, resize=40)),
        ((20, 28), InputSpec(size=32)),  # smaller than the crop: upscaled, never padded
        ((45, 33), InputSpec(size=16, odd_size="crop-even", interpolation="bilinear")),
    ],
)
def test_gpu_preprocess_matches_eval_transform(shape, spec):
    image = _photo(*shape, seed=2)
    expected = eval_transform(image, spec)
    got = eval_preprocess(_as_batch(image), spec)[0]
    assert got.shape == expected.shape
    one_level = 1.0 / 255.0 / min(spec.std)
    assert (got - expected).abs().max() <= 2 * one_level + 1e-6


def test_fast_scorer_matches_reference_scores(tmp_path):
    from mirage_bench.detectors.build import build_tiny
    from mirage_bench.fastpath.evaluator import score_subset_fast

    paths = []
    for k, (h, w) in enumerate([(40, 40), (40, 40), (37, 52), (64, 48), (40, 40)]):
        path = tmp_path / f"img{k}.png"
        _photo(h, w, seed=k).save(path)
        paths.append(str(path))
    manifest = pd.DataFrame({"path": paths, "image_id": [f"id{k}" for k in range(len(paths))]})
    degradations = [parse(s) for s in ["none", "blur(s=2)", "jpeg(q=50)", "downscale(size=30)"]]
    torch.manual_seed(0)
    detector = build_tiny("tinycnn", ["input.size=32", "input.resize=36"]).eval()
    scores, impls = score_subset_fast(detector, manifest, degradations, device="cpu", workers=0, batch_size=3)
    logits = scores.logits
    assert logits.shape == (4, 5)
    assert impls[2].startswith("fast:pil+cpu-ref") and impls[1].startswith("fast:pil+gpu")
    with torch.no_grad():
        for j, d in enumerate(degradations):
            for k, path in enumerate(paths):
                image = Image.open(path).convert("RGB")
                x = eval_transform(d.apply(image, image_seed(0, f"id{k}")), detector.input_spec)
                reference = float(detector(x[None])[0])
                assert logits[j, k] == pytest.approx(reference, abs=0.05)
