"""Run options that depend on the device: the evaluation path and the number of data-loading workers."""

from __future__ import annotations

import os

import helpers
import pytest

from mirage_bench.engine.runner import Options, execute
from mirage_bench.errors import ConfigError
from mirage_bench.scoring import resolve_impl


def test_workers_as_given_or_refused_when_negative():
    assert Options(workers=3).resolved_workers("cuda") == 3
    assert Options(workers=0).resolved_workers("cuda:1") == 0
    with pytest.raises(ConfigError, match="--workers -1"):
        Options(workers=-1).resolved_workers("cpu")


def test_default_workers_feed_a_gpu_and_stay_off_on_a_cpu(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(32)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert Options().resolved_workers("cpu") == 0
    assert Options().resolved_workers("cuda") == 16  # 31 free cores, capped
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun, four GPUs: each rank gets its share
    assert Options().resolved_workers("cuda:0") == 7
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert Options().resolved_workers("cuda") == 1


def test_auto_implementation_is_fast_on_cuda_only():
    assert resolve_impl("auto", "cuda:0") == "fast"
    assert resolve_impl("auto", "cpu") == "reference"


def test_nvjpeg_decoding_is_refused_before_any_training_where_it_cannot_apply(tmp_path):
    """On a CPU (and, in ``check_nvjpeg``'s test, for grids with CPU-only degradations) --impl fast-nvjpeg
    fails at the start of the run, not after hours of training, and leaves no checkpoint."""
    assert resolve_impl("fast-nvjpeg", "cuda") == "fast-nvjpeg"
    with pytest.raises(ConfigError, match="fast-nvjpeg decodes JPEG files on a CUDA device.*the device is cpu"):
        execute(helpers.benchmark(tmp_path / "data"), Options(out=tmp_path / "out", impl="fast-nvjpeg"))
    assert not list((tmp_path / "out").rglob("*.pt"))


def test_a_pillow_release_of_unknown_resize_order_is_a_note_at_the_start_not_a_refusal(tmp_path, monkeypatch):
    """The fast path resizes on the GPU as the installed Pillow does, and the order of its passes changed between
    releases: under one it has not measured, it resizes with PIL itself (the reference's bytes, more slowly), and
    the run says so at its start; the reference path needs no such knowledge."""
    import warnings

    import PIL

    from mirage_bench.engine.runner import evaluation_impl

    bench = helpers.benchmark(tmp_path / "data")
    monkeypatch.setattr(PIL, "__version__", "14.0.0")
    with pytest.warns(UserWarning, match=r"Pillow 14.0.0: .*resizes with PIL itself"):
        assert evaluation_impl(bench, Options(), "cuda:0") == "fast"  # what execute asks first (no CUDA device needed)
    with pytest.warns(UserWarning, match="Pillow 14.0.0"):
        assert evaluation_impl(bench, Options(impl="fast"), "cpu") == "fast"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert evaluation_impl(bench, Options(), "cpu") == "reference"
    assert evaluation_impl(bench, Options(impl="reference"), "cuda") == "reference"
