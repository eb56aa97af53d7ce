"""Messages for weights files that cannot be used: a refused pickle never repeats torch's advice to turn off
``weights_only``, and a file that does not fit the architecture gets no download advice."""

from __future__ import annotations

import pytest
import torch

from mirage_bench.config import BackboneConfig
from mirage_bench.errors import CheckpointError, WeightsError


class Payload:
    """Stands for any object a pickle may carry (unpickling it may run code)."""


@pytest.fixture
def pickled_object(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": Payload()}, path)
    return path


def _assert_refused_for_safety(text: str) -> None:
    assert "holds Python objects other than tensors (e.g. " in text and "Payload" in text
    assert "refused for safety" in text
    assert "weights_only" not in text and "trust the source of the checkpoint" not in text and "add_safe_globals" not in text


def test_a_timm_weights_file_holding_objects_is_refused_for_safety_with_a_conversion(pickled_object):
    from mirage_bench.detectors.infra.timm_backbone import load_timm_classifier

    with pytest.raises(WeightsError) as caught:
        load_timm_classifier(BackboneConfig(name="mb-tiny-resnet", pretrained=str(pickled_object)))
    _assert_refused_for_safety(str(caught.value))
    assert "safetensors.torch.save_file" in str(caught.value)


def test_a_clip_weights_file_holding_objects_is_refused_for_safety_without_download_advice(pickled_object):
    from mirage_bench.detectors.clip.backbone import load_clip

    with pytest.raises(WeightsError) as caught:
        load_clip(BackboneConfig(name="mb-tiny-clip", pretrained=str(pickled_object)))
    _assert_refused_for_safety(str(caught.value))
    assert "internet" not in str(caught.value) and "download" not in str(caught.value)


def test_a_checkpoint_holding_objects_is_refused_for_safety(pickled_object):
    from mirage_bench.detectors.infra.checkpoint import read_checkpoint

    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(pickled_object)
    _assert_refused_for_safety(str(caught.value))
    assert "mirage-bench train" in str(caught.value)


def test_a_clip_file_of_the_wrong_shape_names_the_shape_not_downloads(tmp_path):
    import open_clip

    from mirage_bench.detectors.clip.backbone import load_clip, register_model_configs

    register_model_configs()
    state = open_clip.create_model("mb-tiny-clip").state_dict()
    state["text_projection"] = torch.zeros(3, 5)
    path = tmp_path / "other.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError) as caught:
        load_clip(BackboneConfig(name="mb-tiny-clip", pretrained=str(path)))
    text = str(caught.value)
    assert f"weights file {path} cannot be loaded into backbone 'mb-tiny-clip'" in text and "size mismatch for text_projection" in text
    assert "internet" not in text and "download" not in text


@pytest.mark.parametrize("load", ["timm", "clip"])
def test_a_damaged_file_is_named_without_the_advice_to_turn_off_weights_only(tmp_path, load):
    """(A damaged checkpoint is refused before torch reads it: ``store.zip_damage``.)"""
    from mirage_bench.detectors.clip.backbone import load_clip
    from mirage_bench.detectors.infra.timm_backbone import load_timm_classifier

    path = tmp_path / "damaged.pt"
    path.write_bytes(b"not a tensor file at all")
    with pytest.raises(WeightsError) as caught:
        {"timm": lambda: load_timm_classifier(BackboneConfig(name="mb-tiny-resnet", pretrained=str(path))),
         "clip": lambda: load_clip(BackboneConfig(name="mb-tiny-clip", pretrained=str(path)))}[load]()
    text = str(caught.value)
    assert str(path) in text and "(UnpicklingError: Unsupported operand 110)" in text
    assert "weights_only" not in text and "trusted source" not in text and "internet" not in text
