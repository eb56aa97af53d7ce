"""A file's header is checked before its bytes are read, and its hash is read in chunks: refusing or hashing a
large file costs little memory (a 1 GB junk ``.png`` used to be read whole first)."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path

import pytest

from mirage_bench.data.images import UnusableImage, decode_file

from .conftest import write_image
from .test_bad_files import _png_header_only

BIG = 128 * 2**20  # sparse: costs no disk
SMALL = 16 * 2**20  # far below BIG: a whole-file read cannot stay under it


def _sparse(path: Path, head: bytes, size: int = BIG) -> Path:
    path.write_bytes(head)
    os.truncate(path, size)
    return path


def _peak(fn) -> tuple[object, int]:
    """(what ``fn`` returned or raised, peak bytes Python allocated meanwhile)."""
    tracemalloc.start()
    try:
        try:
            result = fn()
        except UnusableImage as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_large_junk_file_is_refused_by_its_header_without_reading_it(tmp_path):
    junk = _sparse(tmp_path / "junk.png", b"")
    refusal, peak = _peak(lambda: decode_file(junk))
    assert isinstance(refusal, UnusableImage) and refusal.kind == "not-an-image"
    assert peak < SMALL


def test_oversized_header_is_refused_before_the_pixel_data_is_read(tmp_path):
    bomb = _sparse(tmp_path / "bomb.png", _png_header_only(9000, 9000))
    refusal, peak = _peak(lambda: decode_file(bomb))
    assert isinstance(refusal, UnusableImage) and refusal.kind == "too-large"
    assert "9000x9000" in refusal.reason and peak < SMALL


@pytest.mark.parametrize("digest", [True, False])
def test_a_large_usable_file_is_hashed_in_chunks(tmp_path, digest):
    """A JPEG with a large tail (decoders stop at its end marker): usable, hashed over every byte, in bounded memory."""
    image = write_image(tmp_path / "small.jpg", size=(16, 16))
    padded = _sparse(tmp_path / "padded.jpg", image.read_bytes())
    decoded, peak = _peak(lambda: decode_file(padded, digest=digest))
    assert decoded.bytes == BIG and (decoded.width, decoded.height) == (16, 16)
    with open(padded, "rb") as fh:
        assert decoded.sha256 == (hashlib.file_digest(fh, "sha256").hexdigest() if digest else None)
    assert peak < SMALL
