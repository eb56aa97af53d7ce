"""Writing the mini set's images and its ``manifest.csv``: one row per image, where it came from, its sha256."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from PIL import Image

from mirage_bench.errors import DataError
from mirage_bench.mini.photos import Crop

LABEL_DIRS = ("nature", "ai")  # index = label: 0 real, 1 fake


@dataclass(frozen=True)
class ImageRecord:
    rel_path: str
    generator: str
    family: str
    split: str
    label: int
    source: str  # photo | sample | reconstruction
    photo: str  # source photo of a real crop or of a reconstruction; "" for samples
    view: int
    left: int
    top: int
    side: int
    sha256: str


def write_image(root: Path, generator: str, family: str, split: str, label: int, index: int, pixels: np.ndarray,
                source: str, crop: Crop | None) -> ImageRecord:
    """Save one ``[S, S, 3]`` uint8 image as PNG under ``generator/split/{nature,ai}/`` and describe it."""
    rel_path = f"{generator}/{split}/{LABEL_DIRS[label]}/{index:05d}.png"
    path = root / rel_path
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGB").save(path, format="PNG", optimize=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    where = (crop.photo, crop.view, crop.left, crop.top, crop.side) if crop is not None else ("", -1, -1, -1, -1)
    return ImageRecord(rel_path, generator, family, split, label, source, *where, digest)


def write_manifest(root: Path, records: list[ImageRecord]) -> list[ImageRecord]:
    """``manifest.csv`` sorted by path; returns the records in that order."""
    ordered = sorted(records, key=lambda r: r.rel_path)
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(ImageRecord)])
        writer.writeheader()
        writer.writerows(asdict(r) for r in ordered)
    return ordered


def read_manifest(root: Path) -> list[ImageRecord]:
    path = Path(root) / "manifest.csv"
    if not path.is_file():
        raise DataError(f"{path} not found: {root} is not a mini set (build one with `mirage-bench data mini`)")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    ints = {f.name for f in fields(ImageRecord) if f.type in ("int", int)}
    return [ImageRecord(**{k: int(v) if k in ints else v for k, v in row.items()}) for row in rows]
