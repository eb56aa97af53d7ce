"""Compiling the Triton variants ahead of the first batch (``kernels.warm``), on the CPU: which variants a call
needs (the blur's checked against the keys Triton itself computes for sm_90; the resize's one), and when the
compile jobs run."""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import pandas as pd
import pytest
import torch
from triton_keys import triton_keys

from mirage_bench.config import InputSpec
from mirage_bench.degradations import parse
from mirage_bench.kernels.warm import after, compiling
from mirage_bench.scoring.device_plan import device_plan, device_plans
from mirage_bench.scoring.warmup import GROUP_COUNTS, blur_launch_shapes, kernel_compiles

needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="the blur kernel's module needs Triton")
GENIMAGE = [parse(s) for s in ["none", "jpeg(q=95)", "jpeg(q=75)", "blur(s=3)", "blur(s=5)", "downscale(size=112)", "downscale(size=64)"]]
#: GenImage's sizes (512 px PNGs, 500x375 JPEGs), odd ones, and images narrower than the kernel (WIDE).
SIZES = [(512, 512), (375, 500), (333, 257), (16, 16), (7, 9), (1, 40)]


def _launches(counts, radii=(1, 12, 20), sizes=SIZES):
    return [((n, 3, h, w), r) for n in counts for h, w in sizes for r in radii]


@needs_triton
def test_variant_key_splits_launches_exactly_as_triton_does():
    from mirage_bench.kernels.blur_triton import pass_arguments, variant_key

    launches = _launches([*range(1, 41), 64, 128, 256])
    ours = [variant_key(*args) for shape, radius in launches for args in pass_arguments(shape, radius)]
    theirs = triton_keys(launches)
    pairs = set(zip(ours, theirs))
    assert len(pairs) == len(set(ours)) == len(set(theirs)), sorted(pairs)
    assert len(set(theirs)) > 5  # the sizes reach several classes: the check has something to split


@needs_triton
@pytest.mark.parametrize("size", SIZES)
def test_warmed_group_counts_reach_every_variant_of_any_batch_size(size):
    assert set(triton_keys(_launches(GROUP_COUNTS, sizes=[size]))) == set(triton_keys(_launches(range(1, 257), sizes=[size])))


@needs_triton
def test_one_compile_job_per_variant():
    from mirage_bench.kernels.blur_triton import variant_compiles

    launches = _launches(GROUP_COUNTS)
    assert len(variant_compiles(launches, torch.device("cuda"))) == len(set(triton_keys(launches)))


def test_blur_inputs_follow_the_chain_sizes():
    def blur_inputs(spec, size):
        return device_plan(parse(spec)).blur_inputs(size)

    assert blur_inputs("blur(s=3)", (500, 375)) == [(3.0, (500, 375))]
    assert blur_inputs("chain(downscale(size=100),blur(s=2),resize(w=30,h=20),blur(s=1))", (500, 375)) == [
        (2.0, (133, 100)), (1.0, (30, 20))]
    assert blur_inputs("blur(s=0)", (8, 8)) == [] and blur_inputs("downscale(size=64)", (8, 8)) == []


@needs_triton
def test_launch_shapes_come_from_the_manifest_sizes_and_the_device_blurs():
    manifest = pd.DataFrame({"path": ["a", "b", "c"], "width": [512, 500, 512], "height": [512, 375, 512]})
    grid = [*GENIMAGE, parse("chain(blur(s=2),jpeg(q=50))")]  # a blur in the workers: not the device's
    grid = device_plans(grid)
    shapes = blur_launch_shapes(manifest, grid, batch_size=4)
    assert shapes == {((n, 3, h, w), r) for n in (1, 2, 4) for h, w in ((512, 512), (375, 500)) for r in (12, 20)}
    assert blur_launch_shapes(manifest.drop(columns="width"), grid, 4) == set()
    unknown = pd.DataFrame({"width": [500.0, None, 0], "height": [375.0, 512, 512]})  # only the first size is usable
    assert blur_launch_shapes(unknown, grid, 1) == {((1, 3, 375, 500), 12), ((1, 3, 375, 500), 20)}
    assert kernel_compiles(manifest, grid, 4, torch.device("cpu")) == []


@needs_triton
def test_the_resize_kernel_compiles_ahead_when_the_call_resizes_on_the_device():
    """Its one variant, when a model's input spec or a device degradation resizes; not for a resize that runs in
    the workers (in a chain with JPEG), nor on the CPU."""
    from mirage_bench.kernels import resample_triton

    manifest = pd.DataFrame({"width": [500], "height": [375]})
    cuda = torch.device("cuda", 0)

    def resize_jobs(grid, specs, device=cuda):
        return [job for job in kernel_compiles(manifest, device_plans([parse(d) for d in grid]), 4, device, specs) if job.func is resample_triton._compile]

    assert len(resize_jobs(["none", "blur(s=1)"], [InputSpec(size=224, resize=256)])) == 1
    assert len(resize_jobs(["none", "downscale(size=64)"], [InputSpec(size=224)])) == 1
    assert resize_jobs(["none", "blur(s=1)", "chain(downscale(size=64),jpeg(q=50))"], [InputSpec(size=224)]) == []
    assert resize_jobs(["none"], [InputSpec(size=224, resize=256, eval_resize=False)]) == []
    assert resize_jobs(["downscale(size=64)"], [InputSpec(size=224, resize=256)], torch.device("cpu")) == []
    assert [device_plan(parse(d)) is not None and device_plan(parse(d)).resizes for d in ["resize(w=30,h=20)", "chain(blur(s=1),downscale(size=30))", "blur(s=2)", "jpeg(q=50)"]] == [
        True, True, False, False]


@needs_triton
def test_sizes_of_one_class_launch_the_same_variants_at_every_count():
    from mirage_bench.kernels.blur_triton import size_class

    classes: dict[tuple, set] = {}
    for h, w in np.random.default_rng(1).integers(1, 70, (300, 2)).tolist():
        keys = set(triton_keys([((n, 3, h, w), 12) for n in range(1, 65)]))
        classes.setdefault(size_class(h, w, 12), []).append(keys)
    shared = [members for members in classes.values() if len(members) > 1]
    assert len(shared) > 20  # many classes have several sizes: the check compares something
    for members in shared:
        assert all(keys == members[0] for keys in members)


@needs_triton
def test_launch_shapes_reach_every_variant_of_every_size_and_count():
    """One size per ``size_class`` stands for all: the shapes warmed reach exactly the variants that the blurs
    (one after a downscale) of every size in the manifest launch at every group count."""
    from mirage_bench.kernels.ops import blur_radius

    sizes = [tuple(int(v) for v in size) for size in np.random.default_rng(0).integers(1, 60, (40, 2))] + [(512, 512), (500, 375)]
    manifest = pd.DataFrame({"width": [w for w, _ in sizes], "height": [h for _, h in sizes]})
    grid = [parse("blur(s=3)"), parse("chain(downscale(size=24),blur(s=1))"), parse("jpeg(q=90)")]
    every = {((n, 3, bh, bw), blur_radius(sigma)) for plan in device_plans(grid) if plan for size in sizes for sigma, (bw, bh) in plan.blur_inputs(size)
             for n in range(1, 65)}
    warmed = blur_launch_shapes(manifest, device_plans(grid), 64)
    assert len(warmed) < len(every) / 20
    assert set(triton_keys(warmed)) == set(triton_keys(every))


def test_compile_jobs_run_in_threads_and_the_first_item_waits_for_them():
    ran = []
    release = threading.Event()

    def job():
        release.wait(5)
        ran.append(threading.current_thread().name)

    with compiling([job, job]) as wait:
        items = after(wait, iter([1, 2, 3]))
        assert ran == []
        release.set()
        assert next(items) == 1 and len(ran) == 2
        assert list(items) == [2, 3]
    assert all(name.startswith("mirage-compile") for name in ran)


def test_a_failed_compile_job_raises_at_the_wait():
    def job():
        raise RuntimeError("ptxas failed")

    with compiling([job]) as wait, pytest.raises(RuntimeError, match="ptxas failed"):
        next(after(wait, [1]))


def test_the_fast_scorer_waits_for_the_compiles_before_its_first_batch(tmp_path, monkeypatch):
    """The scorer forks its workers, starts the compile jobs, and scores nothing before they have finished."""
    from PIL import Image

    from mirage_bench.detectors.infra.build import build_tiny
    from mirage_bench.scoring import FastScorer, fast

    paths = []
    for k in range(5):
        paths.append(str(tmp_path / f"img{k}.png"))
        Image.new("RGB", (20 + k, 24), (k * 40, 90, 200)).save(paths[-1])
    manifest = pd.DataFrame({"path": paths, "image_id": [f"id{k}" for k in range(5)], "width": [20 + k for k in range(5)],
                             "height": [24] * 5})
    degradations = [parse("none"), parse("blur(s=1)")]
    done = threading.Event()
    calls = []

    def jobs(frame, grid, batch_size, device, specs):
        calls.append((len(frame), [plan is not None for plan in grid], batch_size, len(specs)))
        return [lambda: (threading.Event().wait(0.2), done.set())]

    monkeypatch.setattr(fast, "kernel_compiles", jobs)
    torch.manual_seed(0)
    detector = build_tiny("tinycnn", ["input.size=16", "input.resize=16"]).eval()
    scored = []

    def on_batch(count):
        assert done.is_set()
        scored.append(count)

    scores = FastScorer("cpu", workers=0, batch_size=2).score_one(detector, manifest, degradations, on_batch=on_batch)
    assert calls == [(5, [True, True], 2, 1)] and sum(scored) == 10
    assert scores.logits.shape == (2, 5) and torch.isfinite(torch.from_numpy(scores.logits)).all()


def test_without_triton_the_compiles_the_blur_and_the_resize_say_how_to_get_it(monkeypatch):
    import sys

    from mirage_bench.errors import ConfigError
    from mirage_bench.kernels.ops import gaussian_blur_uint8
    from mirage_bench.kernels.resample import resize_triton

    import mirage_bench.kernels

    monkeypatch.setitem(sys.modules, "triton", None)  # "import triton" now fails, as where it is not installed
    for name in ("blur_triton", "resample_triton"):  # and the kernel modules import it afresh
        monkeypatch.delitem(sys.modules, f"mirage_bench.kernels.{name}", raising=False)
        monkeypatch.delattr(mirage_bench.kernels, name, raising=False)
    manifest = pd.DataFrame({"width": [500], "height": [375]})
    with pytest.raises(ConfigError, match=r"Triton cannot be imported .* or score with --impl reference"):
        kernel_compiles(manifest, device_plans(GENIMAGE), 4, torch.device("cuda", 0))
    with pytest.raises(ConfigError, match="Triton cannot be imported"):
        gaussian_blur_uint8(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 1.0, fused=True)
    with pytest.raises(ConfigError, match="Triton cannot be imported"):
        resize_triton(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), (4, 4), "bicubic")
