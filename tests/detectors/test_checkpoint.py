"""Checkpoints load strictly and refuse, with readable messages, anything that does not match."""

from __future__ import annotations

import pytest
import torch

from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.detectors.infra.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint, sha256_file
from mirage_bench.errors import CheckpointError


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    detector = build_tiny("tinycnn").eval()
    path = tmp_path / "tiny.ckpt"
    digest = save_checkpoint(detector, path, {"threshold": 0.42})
    return detector, path, digest


def test_round_trip_is_exact_and_records_identity(saved):
    detector, path, digest = saved
    assert digest == sha256_file(path)
    payload = read_checkpoint(path)
    assert payload["recipe"]["input"]["size"] == 16
    assert payload["versions"]["torch"] == torch.__version__.split("+")[0] or payload["versions"]["torch"]
    restored, meta = load_checkpoint(path)
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(detector(images), restored(images))
    assert meta == {"threshold": 0.42}


def test_shape_mismatch_is_listed(saved, tmp_path):
    _, path, _ = saved
    payload = read_checkpoint(path)
    payload["state"]["head.weight"] = torch.zeros(1, 99)
    bad = tmp_path / "bad.ckpt"
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match=r"shape mismatches: head.weight \(checkpoint \(1, 99\), model \(1, 8\)\)"):
        load_checkpoint(bad)


def test_other_backbone_is_refused(saved, tmp_path):
    _, path, _ = saved
    payload = read_checkpoint(path)
    payload["backbone"] = {**payload["backbone"], "sha256": "0" * 64, "random": False}
    bad = tmp_path / "other.ckpt"
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match="made for another backbone .*sha256: checkpoint '0000"):
        load_checkpoint(bad)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.ckpt")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="has format None; expected 'mirage-bench/checkpoint-v1'"):
        load_checkpoint(foreign)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(garbage)


def test_trained_backbone_checkpoint_loads_without_its_pretrained_weights(tmp_path, monkeypatch):
    """CNNSpot's checkpoint holds every weight: loading must not fetch ImageNet weights again."""
    from mirage_bench.detectors.infra import timm_backbone

    torch.manual_seed(0)
    detector = build_tiny("cnnspot").eval()
    path = tmp_path / "cnnspot.ckpt"
    save_checkpoint(detector, path)
    payload = read_checkpoint(path)
    payload["recipe"]["backbone"]["pretrained"] = "imagenet"  # as trained online
    payload["backbone"] = {**payload["backbone"], "pretrained": "imagenet", "random": False}
    online = tmp_path / "online.ckpt"
    torch.save(payload, online)
    calls = []
    original = timm_backbone._create
    monkeypatch.setattr(timm_backbone, "_create", lambda *a, **k: calls.append(k.get("pretrained")) or original(*a, **k))
    restored, _ = load_checkpoint(online)
    assert not any(calls)  # never asked timm for pretrained weights
    assert restored.backbone_identity()["pretrained"] == "imagenet" and not restored.random_backbone
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(detector(images), restored(images))
