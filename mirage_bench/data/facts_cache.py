"""What decoding each image file found (size, format, sha256, or why it is unusable), remembered by file identity.

Why: a run decodes every image it reads before any work, to refuse corrupt files and to hash contents (the
hashes name its cells). On GenImage that is hundreds of thousands of files, minutes on 16 cores, again at
every ``run``, ``eval`` and ``--dry-run``. A file whose identity is unchanged gives the same answer, so the
answer is kept in a SQLite table beside the prediction store.

A file's identity is ``(size, mtime_ns, ctime_ns, inode)`` of what its path reaches, as git's index judges
a file unchanged: an edit, a copy, a re-extraction or a ``touch`` is a miss and is decoded again. The
table is also keyed by the decoder (Pillow's version) and the pixel limit, which decide what is usable.
``mirage-bench data verify`` never reads this cache.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import PIL

from mirage_bench.errors import DataError, storage_error, storage_errors

#: Bump when what is remembered about a file changes.
FORMAT = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS facts (path TEXT PRIMARY KEY, identity TEXT NOT NULL, decoder TEXT NOT NULL,
                                  result TEXT NOT NULL);
"""
_QUERY_CHUNK = 500  # stays below SQLite's limit on bound parameters
#: SQLite's messages for a storage fault (it reports no errno), as the errno whose message and fix they share.
_STORAGE_FAULTS = {"attempt to write a readonly database": errno.EROFS, "database or disk is full": errno.ENOSPC,
                   "unable to open database file": errno.EACCES}

Result = dict[str, Any] | tuple[str, str]  # the facts of a usable image, or (kind, reason)


def identity(path: str) -> str | None:
    """What makes a file "the same file" here; None when it cannot be read (the decoder then says why)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


class FactsCache:
    """``lookup(paths)`` -> the remembered results of unchanged files; ``remember(paths, identities, results)``.

    The table is created by the first ``remember``, so a scan that fails before it leaves no file behind.
    ``writable=False`` (a dry run) reads an existing table and never creates or changes one.
    """

    def __init__(self, path: str | Path, max_pixels: int, writable: bool = True) -> None:
        self.path = Path(path)
        self.decoder = f"{FORMAT}:pillow-{PIL.__version__}:{max_pixels}"
        self.writable = writable
        self._db: sqlite3.Connection | None = None

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._db is None and (create or self.path.is_file()):
            if create:
                with storage_errors(self.path.parent):
                    self.path.parent.mkdir(parents=True, exist_ok=True)
            uri = self.path.absolute().as_uri() + ("" if self.writable else "?mode=ro")
            with self._usable():
                self._db = sqlite3.connect(uri, uri=True, timeout=60)
                if self.writable:
                    self._db.executescript(_SCHEMA)
        return self._db

    @contextmanager
    def _usable(self) -> Iterator[None]:
        """SQLite's errors as errors that name this file and what to do about it (never a silent re-scan)."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            fault = next((code for text, code in _STORAGE_FAULTS.items() if text in str(exc)), None)
            if fault is not None:
                raise storage_error(self.path, fault, f"SQLite: {exc}") from exc
            if "locked" not in str(exc):
                raise DataError(self._damaged(exc)) from exc
            raise DataError(f"{self.path} (the decoded-facts cache of this output folder) stayed locked by another "
                            f"process for over a minute ({exc}); wait for the other run, or give this one another --out") from exc
        except sqlite3.DatabaseError as exc:
            raise DataError(self._damaged(exc)) from exc

    def _damaged(self, exc: Exception) -> str:
        return (f"{self.path} is not a usable decoded-facts cache ({exc}). It only remembers what decoding each data file "
                "found: remove it, and the next run decodes the files again")

    def lookup(self, paths: Sequence[str]) -> dict[str, Result]:
        """Results of the files in ``paths`` whose identity and decoder match what was remembered."""
        db = self._connect(create=False)
        if db is None:
            return {}
        found: dict[str, Result] = {}
        for start in range(0, len(paths), _QUERY_CHUNK):
            chunk = list(paths[start:start + _QUERY_CHUNK])
            marks = ",".join("?" * len(chunk))
            with self._usable():
                rows = db.execute(f"SELECT path, identity, result FROM facts WHERE decoder = ? AND path IN ({marks})",
                                  [self.decoder, *chunk]).fetchall()
            for path, remembered, result in rows:
                if identity(path) == remembered:
                    found[path] = _result(json.loads(result))
        return found

    def remember(self, paths: Iterable[str], identities: Iterable[str | None], results: Iterable[Result]) -> None:
        """Keep each result under the identity its file had *before* it was decoded (a file changed meanwhile is
        a miss next time, never a stale hit)."""
        rows = [(path, ident, self.decoder, json.dumps(result)) for path, ident, result in zip(paths, identities, results)
                if ident is not None]
        if not self.writable or not rows:
            return
        db = self._connect(create=True)
        with self._usable(), db:
            db.executemany("INSERT OR REPLACE INTO facts (path, identity, decoder, result) VALUES (?, ?, ?, ?)", rows)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> "FactsCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _result(value: Any) -> Result:
    """JSON gives back a list where a (kind, reason) tuple was kept."""
    return tuple(value) if isinstance(value, list) else value
