"""The library's own error classes.

The CLI catches :class:`MirageBenchError` once, prints its message and exits non-zero; anything else is a
bug and keeps its traceback. Messages say what failed, the value received, what is allowed and what to do.
"""

from __future__ import annotations

import errno
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, TypeVar


class MirageBenchError(Exception):
    """Base class of every error the library raises on purpose."""


class RegistryError(MirageBenchError):
    """A registry was asked for a name it does not hold, or to hold a name twice."""


class ConfigError(MirageBenchError):
    """A recipe card, protocol card or override is not valid."""


class DataError(MirageBenchError):
    """A dataset root, layout, manifest or image cannot be used as asked."""


class CheckpointError(MirageBenchError):
    """A checkpoint is missing, corrupt or does not match the detector it is loaded into."""


class WeightsError(MirageBenchError):
    """Pretrained weights were asked for and cannot be loaded."""


class TrainingError(MirageBenchError):
    """Training cannot produce a usable checkpoint (e.g. it diverged)."""


class ContractError(MirageBenchError):
    """A detector breaks the detector contract (see ``mirage_bench.detectors.base``)."""


class StorageError(MirageBenchError):
    """A file of a run cannot be written: the disk is full, the filesystem is read-only, or permission is denied."""


#: What each storage errno means to the user, and the fix that is theirs to make.
STORAGE_FAULTS = {
    errno.ENOSPC: ("the disk is full", "free space on that disk"),
    errno.EDQUOT: ("the disk quota is used up", "free space within your quota"),
    errno.EROFS: ("the filesystem is read-only", "make it writable (remount it read-write)"),
    errno.EACCES: ("permission is denied", "make that folder writable for this user"),
    errno.EPERM: ("the operation is not permitted", "make that folder writable for this user"),
}


def storage_error(path: str | Path, code: int, detail: str) -> StorageError:
    """The one message for a storage fault: the path, the cause, the fix, and that the next run resumes."""
    cause, fix = STORAGE_FAULTS[code]
    return StorageError(
        f"cannot write {path}: {cause} ({detail}). Fix: {fix}, or choose another --out; then run the same command "
        "again: results already stored are kept and only the missing work is done"
    )


@contextmanager
def storage_errors(path: str | Path) -> Iterator[None]:
    """Writes under this context raise a :class:`StorageError` naming the path and the fix for a full disk, a
    read-only filesystem or a denied permission (any other OSError is not a storage fault and keeps its type).

    Why one translation point: a run writes predictions, checkpoints, training state, run records and caches;
    each would otherwise reach the user as ``OSError: [Errno 28]`` and a traceback, at whatever write came first.
    """
    try:
        yield
    except OSError as exc:
        if exc.errno not in STORAGE_FAULTS:
            raise
        raise storage_error(path, exc.errno, exc.strerror or str(exc)) from exc


_WORKER_ERROR = re.compile(r"Caught (?P<name>\w+) in DataLoader worker process \d+\.\nOriginal Traceback")

T = TypeVar("T")


def worker_errors(batches: Iterable[T]) -> Iterator[T]:
    """Iterate a DataLoader, raising a library error from a worker process as the library error.

    Why: DataLoader re-raises a worker's exception as a RuntimeError (or as its own type rebuilt from a text
    that embeds the worker's whole traceback), so a corrupt image would reach the user as a crash report.
    The error is rebuilt as its nearest single-message class (an ``UnusableImage`` becomes a ``DataError``)
    with the original message; the DataLoader's exception stays attached as the cause for ``--debug``.
    """
    try:
        yield from batches
    except Exception as exc:
        error = _library_error_in(str(exc))
        if error is None:
            raise
        raise error from exc


def _library_error_in(text: str) -> MirageBenchError | None:
    match = _WORKER_ERROR.match(text)
    if match is None:
        return None
    cls = next((c for c in _subclasses(MirageBenchError) if c.__name__ == match["name"]), None)
    if cls is None:
        return None
    head = f"{cls.__module__}.{cls.__qualname__}: "
    at = text.rfind(head)
    if at < 0:
        return None
    simple = next(c for c in cls.__mro__ if "__init__" not in vars(c))  # constructible from one message
    return simple(text[at + len(head):].rstrip("\n"))


def _subclasses(cls: type) -> list[type]:
    return [cls, *(s for sub in cls.__subclasses__() for s in _subclasses(sub))]
