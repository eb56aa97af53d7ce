"""The decoded-facts cache: an unchanged file is never decoded twice, a changed one always is."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from mirage_bench.data import build_manifest
from mirage_bench.data import manifest as manifest_module
from mirage_bench.data.facts_cache import FactsCache
from mirage_bench.data.images import MAX_PIXELS
from mirage_bench.errors import DataError

from .conftest import write_image

FILES = ["gen/val/ai/0.png", "gen/val/ai/1.png", "gen/val/nature/0.png", "gen/val/nature/1.png"]


@pytest.fixture
def decoded(monkeypatch):
    """The paths decoded, in order (scans here stay in this process: fewer files than PARALLEL_FROM)."""
    seen: list[str] = []
    examine = manifest_module._examine

    def counting(job):
        seen.append(os.path.basename(os.path.dirname(job[0])) + "/" + os.path.basename(job[0]))
        return examine(job)

    monkeypatch.setattr(manifest_module, "_examine", counting)
    return seen


def _scan(root, cache_path, writable=True, max_pixels=MAX_PIXELS):
    with FactsCache(cache_path, max_pixels, writable=writable) as facts:
        return build_manifest(root, layout="genimage", facts=facts, max_pixels=max_pixels)


def test_a_second_scan_decodes_nothing_and_finds_the_same(make_tree, tmp_path, decoded):
    root = make_tree(FILES)
    (root / "gen/val/ai/broken.png").write_bytes(b"\x89PNG truncated")
    first, first_excluded = _scan(root, tmp_path / "facts.sqlite")
    assert len(decoded) == 5
    again, again_excluded = _scan(root, tmp_path / "facts.sqlite")
    assert len(decoded) == 5  # nothing new decoded, the corrupt file's verdict included
    pd.testing.assert_frame_equal(again, first)
    pd.testing.assert_frame_equal(again_excluded, first_excluded)
    assert list(again_excluded["rel_path"]) == ["gen/val/ai/broken.png"]


def test_a_changed_file_is_decoded_again_with_its_new_content(make_tree, tmp_path, decoded):
    root = make_tree(FILES)
    first, _ = _scan(root, tmp_path / "facts.sqlite")
    changed = root / "gen/val/ai/1.png"
    stat = changed.stat()
    write_image(changed, size=(24, 24), seed=99)
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime, as a tar extraction might leave it
    decoded.clear()
    again, _ = _scan(root, tmp_path / "facts.sqlite")
    assert decoded == ["ai/1.png"]
    row = again.set_index("rel_path").loc["gen/val/ai/1.png"]
    assert row["width"] == 24 and row["sha256"] != first.set_index("rel_path").loc["gen/val/ai/1.png", "sha256"]


def test_another_pixel_limit_is_another_verdict(make_tree, tmp_path, decoded):
    root = make_tree(FILES)
    write_image(root / "gen/val/ai/big.png", size=(24, 24))
    _scan(root, tmp_path / "facts.sqlite")
    decoded.clear()
    _, excluded = _scan(root, tmp_path / "facts.sqlite", max_pixels=200)
    assert len(decoded) == 5 and excluded[["rel_path", "kind"]].values.tolist() == [["gen/val/ai/big.png", "too-large"]]


def test_a_dry_run_reads_the_cache_but_never_writes_one(make_tree, tmp_path, decoded):
    root = make_tree(FILES)
    _scan(root, tmp_path / "none" / "facts.sqlite", writable=False)
    assert not (tmp_path / "none").exists()
    _scan(root, tmp_path / "facts.sqlite")
    decoded.clear()
    _scan(root, tmp_path / "facts.sqlite", writable=False)
    assert decoded == []


@pytest.mark.parametrize("writable", [True, False])
def test_a_damaged_cache_is_an_error_naming_it_and_the_fix_never_a_silent_rescan(make_tree, tmp_path, writable):
    root = make_tree(FILES)
    damaged = tmp_path / "facts.sqlite"
    damaged.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DataError, match=r"facts\.sqlite is not a usable decoded-facts cache .*remove it, and the next run "
                                        r"decodes the files again"):
        _scan(root, damaged, writable=writable)
    assert damaged.read_bytes() == b"this is not a database" * 100  # left as it was
