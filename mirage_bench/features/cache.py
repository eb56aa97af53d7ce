"""An on-disk cache of frozen features: fp16 vectors, a SQLite index, shards written atomically, a byte cap.

Layout under ``root``: ``index.sqlite`` maps each key digest to (shard, row); ``shards/<n>.npy`` holds one
``[rows, dim]`` fp16 array per batch of misses. A shard is written to a temporary file and renamed before
the index names it, so a crash never leaves the index pointing at half a file.

Size policy: ``cap_bytes`` bounds the total size of the shard files. Before a new shard is written, the
oldest shards (in write order) are evicted, whole, until the new one fits; their keys become misses and are
recomputed when next asked for. A single batch larger than the cap is refused (:class:`ConfigError`): raise
the cap or pass fewer keys per call. ``hits``, ``misses`` and ``evicted_shards`` count what happened.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from mirage_bench.errors import ConfigError, ContractError, DataError
from mirage_bench.features.keys import FeatureKey

DEFAULT_CAP_BYTES = 16 * 1024**3
_SCHEMA = """
CREATE TABLE IF NOT EXISTS shards (seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE NOT NULL,
                                   bytes INTEGER NOT NULL, dim INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entries (digest TEXT PRIMARY KEY, shard TEXT NOT NULL, row INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS entries_by_shard ON entries (shard);
"""
_QUERY_CHUNK = 500  # stays below SQLite's limit on bound parameters


class FeatureCache:
    """``FeatureCache(root, cap_bytes).get_or_compute(keys, compute_fn) -> fp16 [N, D]``."""

    def __init__(self, root: str | Path, cap_bytes: int = DEFAULT_CAP_BYTES) -> None:
        if cap_bytes <= 0:
            raise ConfigError(f"feature cache cap_bytes must be > 0, got {cap_bytes}")
        self.root = Path(root)
        self.cap_bytes = int(cap_bytes)
        self.shard_dir = self.root / "shards"
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.root / "index.sqlite", timeout=60, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self.hits = 0
        self.misses = 0
        self.evicted_shards = 0

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "FeatureCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def size_bytes(self) -> int:
        return int(self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM shards").fetchone()[0])

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    # -- lookup and fill ----------------------------------------------------------------------------
    def get_or_compute(self, keys: Sequence[FeatureKey], compute_fn: Callable[[list[int]], torch.Tensor]) -> torch.Tensor:
        """Features for ``keys`` in order, fp16 ``[N, D]``.

        ``compute_fn(indices)`` is called once, with the positions in ``keys`` whose features are missing
        (each distinct key once), and returns their features ``[len(indices), D]``. Computed features go
        through fp16 before being returned, so a first run and a cached run return identical values.
        """
        digests = [k.digest for k in keys]
        found = self._lookup(sorted(set(digests)))
        rows: dict[str, np.ndarray] = self._read(found)
        missing: dict[str, int] = {}
        for i, d in enumerate(digests):
            if d not in rows and d not in missing:
                missing[d] = i
        self.hits += len(digests) - sum(1 for d in digests if d in missing)
        self.misses += len(missing)
        if missing:
            computed = self._check_computed(compute_fn(list(missing.values())), len(missing), rows)
            self._write(list(missing), computed)
            rows.update(zip(missing, computed))
        if not digests:
            return torch.empty(0, 0, dtype=torch.float16)
        return torch.from_numpy(np.stack([rows[d] for d in digests]))

    def _lookup(self, digests: list[str]) -> dict[str, tuple[str, int]]:
        out: dict[str, tuple[str, int]] = {}
        for start in range(0, len(digests), _QUERY_CHUNK):
            chunk = digests[start : start + _QUERY_CHUNK]
            marks = ",".join("?" * len(chunk))
            for digest, shard, row in self._db.execute(f"SELECT digest, shard, row FROM entries WHERE digest IN ({marks})", chunk):
                out[digest] = (shard, row)
        return out

    def _read(self, found: dict[str, tuple[str, int]]) -> dict[str, np.ndarray]:
        by_shard: dict[str, list[tuple[str, int]]] = {}
        for digest, (shard, row) in found.items():
            by_shard.setdefault(shard, []).append((digest, row))
        out: dict[str, np.ndarray] = {}
        for shard in sorted(by_shard):
            path = self.shard_dir / shard
            try:
                array = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise DataError(
                    f"feature cache shard {path} is listed in {self.root / 'index.sqlite'} but cannot be read "
                    f"({type(exc).__name__}: {exc}). The cache is damaged: delete the folder {self.root} and run again."
                ) from exc
            for digest, row in by_shard[shard]:
                out[digest] = np.array(array[row], dtype=np.float16)
        return out

    @staticmethod
    def _check_computed(features: torch.Tensor, expected: int, hits: dict[str, np.ndarray]) -> np.ndarray:
        if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.shape[0] != expected:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ContractError(f"compute_fn must return a [{expected}, D] tensor of features, got {shape}")
        array = features.detach().to("cpu", torch.float16).numpy()
        if not np.isfinite(array).all():
            raise ContractError(
                "computed features are not finite in fp16 (NaN, or |x| > 65504); the encoder's output cannot be cached"
            )
        dims = {v.shape[0] for v in hits.values()}
        if dims and dims != {array.shape[1]}:
            raise ContractError(f"computed features have width {array.shape[1]}, cached ones for the same keys {sorted(dims)}")
        return array

    # -- writing and eviction -----------------------------------------------------------------------
    def _write(self, digests: list[str], array: np.ndarray) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".shard.", suffix=".npy.tmp", dir=self.shard_dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, array)
            size = Path(tmp).stat().st_size
            if size > self.cap_bytes:
                raise ConfigError(
                    f"{len(digests)} new features need {size:,} bytes, more than the feature cache's cap of "
                    f"{self.cap_bytes:,} bytes ({self.root}). Raise the cap or encode fewer images per call."
                )
            self._evict_for(size)
            name = f"{os.urandom(8).hex()}.npy"
            os.replace(tmp, self.shard_dir / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with self._db:  # one transaction: the shard and all its entries appear together
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT INTO shards (name, bytes, dim) VALUES (?, ?, ?)", (name, size, array.shape[1]))
            self._db.executemany(
                "INSERT OR REPLACE INTO entries (digest, shard, row) VALUES (?, ?, ?)",
                [(d, name, row) for row, d in enumerate(digests)],
            )

    def _evict_for(self, incoming: int) -> None:
        """Remove the oldest shards until ``incoming`` more bytes fit under the cap."""
        while self.size_bytes + incoming > self.cap_bytes:
            seq, name = self._db.execute("SELECT seq, name FROM shards ORDER BY seq LIMIT 1").fetchone()
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("DELETE FROM entries WHERE shard = ?", (name,))
                self._db.execute("DELETE FROM shards WHERE seq = ?", (seq,))
            (self.shard_dir / name).unlink(missing_ok=True)
            self.evicted_shards += 1
