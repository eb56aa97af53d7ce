"""One run per output folder: an advisory lock on ``<out>/.run.lock`` that dies with its process.

Why: two runs on one ``--out`` both train and score every missing cell, and the second finds out at its first
write, minutes or hours later ("already exists; results are never overwritten"). The lock is ``flock`` on an
open file: the kernel drops it when the holder exits, however it exits (``kill -9`` included), so a lock is
never stale and nothing has to be cleaned up by hand. The holder writes its pid, host and start time into the
file, for the message a second run gives. The file itself stays (removing it while another process waits on
it would let two processes hold two different files). Readers (``report``, ``leaderboard``, ``check``) take no
lock: they read only runs that have a record, which is written last.

Under torchrun the rank-0 process holds the lock for the job; the other ranks write nothing (rank 0 writes
every file) and, when rank 0 refuses, torchrun stops them with it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from mirage_bench import distributed
from mirage_bench.errors import MirageBenchError, storage_errors

LOCK_NAME = ".run.lock"

#: Folders (resolved) whose lock this process holds, with how many ``hold_store`` contexts hold it: the CLI takes
#: it before it reads the data and ``execute`` again, which must not wait for its own process.
_held: dict[Path, int] = {}


class StoreInUse(MirageBenchError):
    """Another process runs on this output folder."""


def _stderr_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextmanager
def hold_store(out: str | Path, *, wait: bool = False, notify: Callable[[str], None] = _stderr_line) -> Iterator[bool]:
    """Hold ``out``'s run lock for the block; yields whether this process holds it (False on torchrun ranks
    other than 0). Another holder: :class:`StoreInUse` at once naming it, or with ``wait`` one line through
    ``notify`` and a wait until it exits. Creates ``out`` (the pre-flight checked it can)."""
    if not distributed.is_main():
        yield False
        return
    key = Path(out).resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield True
        finally:
            _held[key] -= 1
        return
    with storage_errors(key):
        key.mkdir(parents=True, exist_ok=True)
        fd = os.open(key / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _acquire(fd, key, wait, notify)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder_info()).encode(), 0)
        _held[key] = 1
        try:
            yield True
        finally:
            del _held[key]
    finally:
        os.close(fd)  # releases the lock


def _acquire(fd: int, out: Path, wait: bool, notify: Callable[[str], None]) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        holder = describe_holder(read_holder(fd))
    if not wait:
        raise StoreInUse(f"--out {out} is in use by another mirage-bench run ({holder}); one run at a time may write an "
                         "output folder. Wait for it to finish, pass --wait to start when it does, or give this run another --out")
    notify(f"waiting for the other run on {out} to finish ({holder})")
    fcntl.flock(fd, fcntl.LOCK_EX)


def holder_info() -> dict[str, object]:
    """What a holder writes into its lock file (also the cell locks': ``cluster.cell_lock``)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def read_holder(fd: int) -> dict[str, object]:
    """What the holder wrote; empty in the moment between its lock and its write."""
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}


def describe_holder(holder: dict[str, object]) -> str:
    """The holder as a message names it."""
    if not holder.get("pid"):
        return "it has just started and has not written its pid yet"
    return f"pid {holder['pid']} on host {holder.get('host', '?')}, started {holder.get('started', '?')}"
