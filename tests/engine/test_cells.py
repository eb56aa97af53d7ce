"""Cell ids are content hashes that stores depend on: their definition must not drift."""

import hashlib

import pandas as pd

from mirage_bench.hashing import frame_hash


def test_frame_hash_is_the_documented_line_stream_in_any_row_order():
    manifest = pd.DataFrame({"image_id": ["b2", "a1", "c3"], "sha256": ["ff", "00", "7e"], "label": [1, 0, 1],
                             "generator": ["sdv14", "sdv14", "ü-gen"], "path": ["/x", "/y", "/z"]})
    stream = "a1\t00\t0\tsdv14\nb2\tff\t1\tsdv14\nc3\t7e\t1\tü-gen\n"  # id, sha256, label, generator; sorted by id
    assert frame_hash(manifest) == hashlib.sha256(stream.encode()).hexdigest()
    assert frame_hash(manifest.iloc[::-1].assign(path="/elsewhere")) == frame_hash(manifest)  # order and paths do not count
    assert frame_hash(manifest.iloc[:0]) == hashlib.sha256(b"").hexdigest()


def test_a_fast_path_change_makes_new_fast_cells_and_keeps_the_reference_ones(monkeypatch):
    """Fast-path results computed before a change to what it computes (``FASTPATH_VERSION``) are never resumed as
    if current; reference cells do not depend on the fast path."""
    from mirage_bench.engine import cells

    args = ("c" * 64, "s" * 16, "blur(s=3)", 0)
    reference, fast = cells.eval_cell_id(*args), cells.eval_cell_id(*args, impl="fast:pil+cuda-degrade+cuda-preprocess")
    monkeypatch.setattr(cells, "FASTPATH_VERSION", cells.FASTPATH_VERSION + 1)
    assert cells.eval_cell_id(*args) == reference
    assert cells.eval_cell_id(*args, impl="fast:pil+cuda-degrade+cuda-preprocess") not in (fast, reference)
