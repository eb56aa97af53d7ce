"""The fast path's degradation plans, preprocessing and scorer against the reference, on CPU tensors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from mirage_bench.config import InputSpec
from mirage_bench.degradations import image_seed, parse
from mirage_bench.kernels.ops import normalize
from mirage_bench.preprocess import eval_geometry, eval_transform
from mirage_bench.scoring.device_plan import device_plan, device_plans


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
def test_device_plans_match_the_reference_degradation(spec):
    degradation = parse(spec)
    plan = device_plan(degradation)
    assert plan is not None
    image = _photo(61, 83, seed=1)
    expected = np.asarray(degradation.apply(image, image_seed(0, "x"))).astype(int)
    got = plan(_as_batch(image))[0].permute(1, 2, 0).numpy().astype(int)
    np.testing.assert_array_equal(got, expected)  # blur and resizes are bit-exact (kernels.ops, kernels.resample)


@pytest.mark.parametrize("spec", ["jpeg(q=65)", "webp(q=80)", "noise(std=3)", "chain(blur(s=2),jpeg(q=50))", "crop(size=8)"])
def test_cpu_only_degradations_have_no_device_plan(spec):
    assert device_plan(parse(spec)) is None


@pytest.mark.parametrize(
    ("shape", "spec"),
    [
        ((70, 90), InputSpec(size=32, resize=40)),
        ((20, 28), InputSpec(size=32)),  # smaller than the crop: upscaled, never padded
        ((45, 33), InputSpec(size=16, odd_size="crop-even", interpolation="bilinear")),
        ((13, 9), InputSpec(size=32, small_image="tile")),  # NPR's copies side by side
        ((45, 61), InputSpec(size=16, eval_square=24)),  # a bilinear square, then the crop
    ],
)
def test_gpu_preprocess_matches_eval_transform(shape, spec):
    image = _photo(*shape, seed=2)
    expected = eval_transform(image, spec)
    got = normalize(eval_geometry(_as_batch(image), spec), spec.mean, spec.std)[0]
    torch.testing.assert_close(got, expected, rtol=0, atol=0)  # PIL's resize bytes, then the same float ops


@pytest.mark.parametrize("workers", [0, 2])
def test_fast_scorer_matches_reference_scores(tmp_path, workers):
    """Mixed sizes, a CPU variant that changes the size (crop), batches that split chunks unevenly, and
    (workers=2) stacked chunks through shared memory: every score equals the reference's, up to float rounding in
    batches of other sizes (the inputs are the reference's bit for bit, ``test_gpu_preprocess_matches_eval_transform``)."""
    from mirage_bench.detectors.infra.build import build_tiny
    from mirage_bench.scoring import FastScorer

    paths = []
    for k, (h, w) in enumerate([(40, 40), (40, 40), (37, 52), (64, 48), (40, 40), (37, 52), (40, 40)]):
        path = tmp_path / f"img{k}.png"
        _photo(h, w, seed=k).save(path)
        paths.append(str(path))
    manifest = pd.DataFrame({"path": paths, "image_id": [f"id{k}" for k in range(len(paths))]})
    degradations = [parse(s) for s in ["none", "blur(s=2)", "jpeg(q=50)", "downscale(size=30)", "crop(size=24)"]]
    torch.manual_seed(0)
    detector = build_tiny("tinycnn", ["input.size=32", "input.resize=36"]).eval()
    scores = FastScorer("cpu", workers=workers, batch_size=3).score_one(detector, manifest, degradations)
    logits, impls = scores.logits, scores.impls
    assert logits.shape == (5, 7)
    assert impls[2] == "fast:pil+cpu-ref-degrade+cpu-preprocess" and impls[1] == "fast:pil+cpu-degrade+cpu-preprocess"
    with torch.no_grad():
        for j, d in enumerate(degradations):
            for k, path in enumerate(paths):
                image = Image.open(path).convert("RGB")
                x = eval_transform(d.apply(image, image_seed(0, f"id{k}")), detector.input_spec)
                reference = float(detector(x[None])[0])
                assert logits[j, k] == pytest.approx(reference, rel=1e-5, abs=1e-6)


def test_worker_chunks_stack_each_source_and_size_once(tmp_path):
    from mirage_bench.scoring.decoded_grid import CLEAN, DecodedGrid

    sizes = [(40, 40), (37, 52), (40, 40), (37, 52), (40, 40)]
    paths = []
    for k, (h, w) in enumerate(sizes):
        paths.append(str(tmp_path / f"img{k}.png"))
        _photo(h, w, seed=k).save(paths[-1])
    manifest = pd.DataFrame({"path": paths, "image_id": [f"id{k}" for k in range(len(paths))]})
    degradations = [parse(s) for s in ["none", "jpeg(q=50)", "crop(size=24)"]]
    grid = DecodedGrid(manifest, degradations, [1, 2], 0, raw_jpeg=False)
    parts = grid.collate([grid[k] for k in range(len(paths))])
    layout = [(p.source, list(p.rows), tuple(p.pixels.shape)) for p in parts]
    assert layout == [
        (CLEAN, [0, 2, 4], (3, 40, 40, 3)), (CLEAN, [1, 3], (2, 37, 52, 3)),
        (1, [0, 2, 4], (3, 40, 40, 3)), (1, [1, 3], (2, 37, 52, 3)),
        (2, [0, 1, 2, 3, 4], (5, 24, 24, 3)),  # the crop makes every image one size
    ]
    clean = Image.open(paths[3]).convert("RGB")
    assert np.array_equal(parts[1].pixels[1].numpy(), np.asarray(clean))
    expected = degradations[1].apply(clean, image_seed(0, "id3"))
    assert np.array_equal(parts[3].pixels[1].numpy(), np.asarray(expected))


def test_model_batches_keep_whole_chunks_within_the_batch_size():
    from mirage_bench.scoring.decoded_grid import CLEAN, Part
    from mirage_bench.scoring.batches import model_batches

    def chunk(rows):
        return [Part(CLEAN, tuple(rows), torch.zeros(len(rows), 2, 2, 3, dtype=torch.uint8)),
                Part(0, tuple(rows), torch.zeros(len(rows), 1, 1, 3, dtype=torch.uint8))]  # a variant: not counted

    chunks = [chunk([0, 1, 2]), chunk([3, 4, 5]), chunk([6, 7]), chunk([8])]
    batches = list(model_batches(chunks, batch_size=6))
    assert [count for _, count in batches] == [6, 3]
    seen = [int(r) for parts, _ in batches for p in parts if p.source == CLEAN for r in p.rows]
    assert seen == list(range(9))


def test_model_batches_are_cut_short_when_images_are_large():
    from mirage_bench.scoring.decoded_grid import CLEAN, Part
    from mirage_bench.scoring.batches import model_batches

    chunks = [[Part(CLEAN, (k,), torch.zeros(1, 10, 10, 3, dtype=torch.uint8))] for k in range(5)]  # 300 bytes each
    assert [count for _, count in model_batches(chunks, batch_size=8, max_bytes=700)] == [2, 2, 1]
    assert [count for _, count in model_batches(chunks, batch_size=8, max_bytes=100)] == [1, 1, 1, 1, 1]  # one chunk always goes


def test_model_batches_ramp_up_from_one_chunk_to_the_batch_size():
    from mirage_bench.scoring.decoded_grid import CLEAN, Part
    from mirage_bench.scoring.batches import model_batches

    chunks = [[Part(CLEAN, tuple(range(8 * k, 8 * k + 8)), torch.zeros(8, 2, 2, 3, dtype=torch.uint8))] for k in range(40)]
    assert [count for _, count in model_batches(chunks, batch_size=256, ramp_from=8)] == [8, 16, 32, 64, 128, 72]
    assert [count for _, count in model_batches(chunks, batch_size=256)] == [256, 64]
    assert [count for _, count in model_batches(chunks, batch_size=20, ramp_from=8)] == [8, 16] + [16] * 18 + [8]  # whole chunks under 20


def test_a_full_model_batch_goes_before_the_next_chunk_arrives():
    """The model starts as soon as a batch is full: waiting for the next chunk would hold the device idle for it."""
    from mirage_bench.scoring.decoded_grid import CLEAN, Part
    from mirage_bench.scoring.batches import model_batches

    pulled = []

    def loader():
        for k in range(4):
            pulled.append(k)
            yield [Part(CLEAN, (2 * k, 2 * k + 1), torch.zeros(2, 2, 2, 3, dtype=torch.uint8))]

    batches = model_batches(loader(), batch_size=4, ramp_from=2)
    next(batches)
    assert pulled == [0]
    next(batches)
    assert pulled == [0, 1, 2]


def test_compiled_scorer_model_compiles_once_for_all_batch_sizes():
    """Batch sizes vary within a run; a size of 2 or more after the first must reuse the first graph."""
    from torch._dynamo.testing import CompileCounter

    from mirage_bench.scoring.fast import compiled

    torch._dynamo.reset()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 1)).eval()
    counter = CompileCounter()
    model = compiled(net, backend=counter)
    with torch.no_grad():
        for batch in (4, 3, 7, 2):
            x = torch.randn(batch, 3, 8, 8)
            torch.testing.assert_close(model(x), net(x))
    assert counter.frame_count == 1


def test_nvjpeg_needs_a_cuda_device_and_a_grid_that_runs_there():
    from mirage_bench.degradations import expand
    from mirage_bench.errors import ConfigError
    from mirage_bench.scoring.fast import check_nvjpeg

    def check(grid, device):
        degradations = expand(grid)
        check_nvjpeg(degradations, device_plans(degradations), torch.device(device))

    check(["none", "blur(s=3)", "downscale(size=64)"], "cuda")
    with pytest.raises(ConfigError, match=r"and jpeg\(q=65\), jpeg\(q=30\) run\(s\) on CPU workers"):
        check(["none", "genimage"], "cuda")
    with pytest.raises(ConfigError, match="the device is cpu"):
        check(["none"], "cpu")


def test_nvjpeg_without_torchvisions_jpeg_decoder_is_a_config_error(monkeypatch):
    """torchvision 0.29 deprecated its image decoders: a release without ``decode_jpeg`` must stop the run before any
    training, with the fix named, not raise a bare ImportError mid-run."""
    import sys
    import types

    from mirage_bench.degradations import expand
    from mirage_bench.errors import ConfigError
    from mirage_bench.scoring.fast import check_nvjpeg

    monkeypatch.setitem(sys.modules, "torchvision.io", types.ModuleType("torchvision.io"))
    with pytest.raises(ConfigError, match=r"torchvision\.io\.decode_jpeg, which torchvision .* does not have.*--impl fast"):
        check_nvjpeg(expand(["none", "blur(s=3)"]), [device_plan(parse("none"))] * 2, torch.device("cuda"))


def test_raw_jpeg_files_reach_the_device_undecoded_and_keep_their_rows(tmp_path):
    """The nvjpeg path's bookkeeping, on the CPU (torchvision decodes there with libjpeg-turbo): JPEG files
    travel as bytes and are decoded in one call, PNGs are decoded in the workers, and every image lands under
    its own manifest row."""
    from mirage_bench.scoring.decoded_grid import CLEAN, RAW_JPEG
    from mirage_bench.scoring.batches import grid_loader, on_device

    paths = []
    for k, (h, w) in enumerate([(40, 48), (40, 40), (33, 52), (40, 48), (40, 40)]):
        path = tmp_path / f"img{k}.{'png' if k % 2 else 'jpg'}"
        _photo(h, w, seed=k).save(path, quality=90)
        paths.append(path)
    manifest = pd.DataFrame({"path": [str(p) for p in paths], "image_id": [f"id{k}" for k in range(len(paths))]})
    degradations = [parse("none")]
    loader = grid_loader(manifest, degradations, device_plans(degradations), 0, raw_jpeg=True, batch_size=8, workers=0,
                         pin_memory=False)
    seen = []
    for parts in loader:
        assert sorted(row for part in parts if part.source == RAW_JPEG for row in part.rows) == [0, 2, 4]
        for rows, images in on_device(parts, torch.device("cpu"))[CLEAN]:
            for row, image in zip(rows.tolist(), images):
                expected = np.asarray(Image.open(paths[row]).convert("RGB")).astype(int)
                got = image.permute(1, 2, 0).numpy().astype(int)
                # PIL and torchvision bundle their own libjpeg-turbo builds (equal here); a wrong row is far off
                assert got.shape == expected.shape and np.abs(got - expected).max() <= 1, row
                seen.append(row)
    assert sorted(seen) == [0, 1, 2, 3, 4]


def test_an_unmeasured_pillow_release_resizes_with_pil_and_says_so(monkeypatch):
    """No refusal: the resizes whose pass order is unknown leave the device plans for the CPU workers (exact by
    construction), and the scorer's check returns a note for the run to print."""
    import PIL

    from mirage_bench.scoring import FastScorer

    monkeypatch.setattr(PIL, "__version__", "14.0.0")
    grid = [parse(s) for s in ["none", "blur(s=2)", "downscale(size=30)", "chain(blur(s=1),resize(w=20,h=10))"]]
    assert [device_plan(d) is not None for d in grid] == [True, True, False, False]
    (note,) = FastScorer("cpu").check(grid)
    assert "Pillow 14.0.0" in note and "resizes with PIL" in note
    monkeypatch.undo()
    assert FastScorer("cpu").check(grid) == []


def test_impl_names_are_checked_and_auto_follows_the_device():
    from mirage_bench.errors import ConfigError
    from mirage_bench.scoring import FastScorer, ReferenceScorer, make_scorer, resolve_impl

    assert resolve_impl("auto", "cpu") == "reference" and resolve_impl("auto", "cuda:1") == "fast"
    with pytest.raises(ConfigError, match="did you mean 'fast-nvjpeg'"):
        resolve_impl("fast-nvjpg", "cpu")
    assert isinstance(make_scorer("auto", "cpu"), ReferenceScorer)
    scorer = make_scorer("fast-nvjpeg", "cpu", batch_size=8, workers=2)
    assert isinstance(scorer, FastScorer) and scorer.impl == "fast-nvjpeg" and scorer.nvjpeg and scorer.workers == 2
    with pytest.raises(ConfigError, match="the device is cpu"):
        scorer.check([parse("none")])
