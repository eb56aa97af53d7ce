"""Fixtures for the published-checkpoint tests: an empty torch hub cache per test, and a tiny CLIP with ViT-L/14's
768-d embedding (so the real UnivFD head fits it) and three blocks (so FatFormer's three adapters fit it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import open_clip
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # the tests' own zoo_helpers module

from zoo_helpers import TINY_768  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def tiny_clip_768(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("clip_configs")
    (folder / f"{TINY_768}.json").write_text(json.dumps({
        "embed_dim": 768, "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "layers": 3, "width": 64, "head_width": 32, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 48, "heads": 2, "layers": 2},
    }))
    open_clip.add_model_config(folder)
    return TINY_768


@pytest.fixture(autouse=True)
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TORCH_HOME per test: nothing cached, nothing downloaded."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "torch_home"
