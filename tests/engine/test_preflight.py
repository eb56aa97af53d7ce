"""Pre-flight: every option, card, weights file and the output folder are checked before the data is read or
anything trains, and a config error leaves nothing under --out."""

from __future__ import annotations

import os

import pytest
import torch
from typer.testing import CliRunner

import helpers
from mirage_bench.cli import app
from mirage_bench.engine import benchmark, runner
from mirage_bench.engine.runner import Options, execute
from mirage_bench.errors import ConfigError, WeightsError
from mirage_bench.scoring import resolve_impl


@pytest.fixture
def no_work(monkeypatch):
    """Any data scan or training fails the test: each check must come first."""
    monkeypatch.setattr(benchmark, "_read_data", lambda *a, **k: pytest.fail("the data was scanned"))
    monkeypatch.setattr(runner, "train_into_store", lambda *a, **k: pytest.fail("a detector trained"))


def _refused(tmp_path, *args: str) -> str:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "--detectors", "tinycnn", "--out", str(out), *args], terminal_width=400)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not out.exists(), list(out.rglob("*"))  # a config error writes nothing
    return " ".join(result.output.split())


def _wrong_shape_file(tmp_path, make, key: str) -> str:
    """A state dict of the right architecture with one weight matrix (``key``) of the wrong shape."""
    state = {k: v.clone() for k, v in make().state_dict().items()}
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    path = tmp_path / "wrong.pt"
    torch.save(state, path)
    return str(path)


def test_an_unknown_implementation_is_a_config_error_with_a_suggestion(no_work, tmp_path):
    assert "error: --impl 'fastt' is not one of auto, reference, fast, fast-nvjpeg; did you mean 'fast'?" in _refused(tmp_path, "--impl", "fastt")
    with pytest.raises(ConfigError, match="not one of"):
        resolve_impl("quick", "cpu")


def test_negative_workers_are_refused_before_the_scan(no_work, tmp_path):
    assert "workers = -1: Input should be greater than or equal to 0" in _refused(tmp_path, "--workers", "-1")


def test_a_negative_bootstrap_is_refused_before_the_scan(no_work, tmp_path):
    assert "bootstrap = -1: Input should be greater than or equal to 0" in _refused(tmp_path, "--bootstrap", "-1")


def test_devices_this_machine_cannot_use_are_refused_before_the_scan(no_work, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "sees no CUDA device here; use --device cpu" in _refused(tmp_path, "--device", "cuda")
    assert "is not a torch device" in _refused(tmp_path, "--device", "gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert "--device 'cuda:2': this machine has 2 CUDA device(s), numbered from 0; use cuda:0 to cuda:1" in _refused(
        tmp_path, "--device", "cuda:2")


def test_an_unknown_detector_is_refused_before_the_scan(no_work, tmp_path):
    assert "unknown detector card 'tinycnnn'. Did you mean 'tinycnn'?" in _refused(tmp_path, "--detectors", "tinycnnn")


def test_an_unknown_backbone_is_refused_before_the_scan(no_work, tmp_path):
    assert "timm has no architecture 'resnet5O'" in _refused(tmp_path, "--detectors", "tinycnn,cnnspot-mini", "--backbone", "resnet5O")


def test_a_wrong_shape_timm_weights_file_is_refused_before_the_scan(no_work, tmp_path):
    from mirage_bench.detectors.infra.timm_backbone import LOCAL_ARCHITECTURES

    path = _wrong_shape_file(tmp_path, lambda: LOCAL_ARCHITECTURES["mb-tiny-resnet"](1000), "fc.weight")
    text = _refused(tmp_path, "--detectors", "tinycnn,cnnspot-mini", "--backbone", "mb-tiny-resnet", "--pretrained", path)
    assert f"weights file {path} does not fit architecture 'mb-tiny-resnet'" in text and "size mismatch" in text
    assert "internet" not in text


def test_a_wrong_shape_clip_weights_file_is_refused_before_the_scan_even_in_a_dry_run(no_work, tmp_path):
    import open_clip

    from mirage_bench.detectors.clip.backbone import register_model_configs

    register_model_configs()
    path = _wrong_shape_file(tmp_path, lambda: open_clip.create_model("mb-tiny-clip"), "visual.transformer.resblocks.0.mlp.c_fc.weight")
    text = _refused(tmp_path, "--detectors", "tinycnn,univfd-mini", "--pretrained", path, "--dry-run")
    assert f"weights file {path} cannot be loaded into backbone 'mb-tiny-clip'" in text and "size mismatch" in text
    assert "internet" not in text


def test_the_library_run_checks_weights_before_any_training(no_work, tmp_path):
    """``execute`` runs the same pre-flight for Python callers: the tinycnn listed first does not train."""
    from mirage_bench.detectors.infra.timm_backbone import LOCAL_ARCHITECTURES

    bench = helpers.benchmark(tmp_path / "data")
    path = _wrong_shape_file(tmp_path, lambda: LOCAL_ARCHITECTURES["mb-tiny-resnet"](1000), "fc.weight")
    bench.recipes.append(helpers.load_recipe("cnnspot-mini", ["backbone.name=mb-tiny-resnet", f"backbone.pretrained={path}"]))
    with pytest.raises(WeightsError, match="does not fit architecture"):
        execute(bench, Options(out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_an_output_folder_on_a_read_only_filesystem_is_refused_creating_nothing(no_work, tmp_path, monkeypatch):
    real = os.statvfs

    class ReadOnly:
        def __init__(self, path):
            self.f_flag = real(path).f_flag | os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", ReadOnly)
    text = _refused(tmp_path, "--out", str(tmp_path / "new" / "out"))
    assert f"cannot write {tmp_path}: the filesystem is read-only (checked before any work, nothing was written; --out " \
           f"{tmp_path / 'new' / 'out'} does not exist yet and would be created there). Fix: make it writable" in text
    assert "or choose another --out" in text and not (tmp_path / "new").exists()


def test_an_output_folder_without_write_permission_is_refused_creating_nothing(no_work, tmp_path, monkeypatch):
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **k: False if str(path) == str(tmp_path) else real(path, mode, **k))
    text = _refused(tmp_path)
    assert f"cannot write {tmp_path}: permission is denied (checked before any work" in text and "or choose another --out" in text
