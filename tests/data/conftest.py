"""Fixture trees: tiny generated images written at hand-listed publisher paths."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}


def write_image(path: Path, size: tuple[int, int] = (12, 10), seed: int | None = None) -> Path:
    """A small RGB image whose pixels depend on ``seed`` (default: the path), in the format of its extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    seed = zlib.crc32(str(path).encode()) if seed is None else seed
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(path, _FORMATS[path.suffix.lower()])
    return path


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[[list[str]], Path]:
    """``make_tree(["ADM/.../x.png", ...], name="root")`` -> the root folder with those images."""

    def make(paths: list[str], name: str = "root") -> Path:
        root = tmp_path / name
        for rel in paths:
            write_image(root / rel)
        root.mkdir(parents=True, exist_ok=True)
        return root

    return make
