"""One computation per cell: a job claims a cell with an advisory lock on ``<out>/locks/<name>.lock`` before work.

Why: on a cluster the run's jobs write the store from other processes and other hosts, without the run lock
(``store_lock``: held by the driver, one run per store). A job can outlive its driver: a driver killed on the
login node leaves its jobs queued or running, and a rerun submits the same cells again; Slurm may also start a
requeued job while an old attempt is still being killed. Each job therefore takes the cell's lock, then looks
whether the cell is done (another job finished it meanwhile) before it computes anything: two jobs on one cell
compute it once, the second waits and finds it done.

The lock is ``flock`` on an open file, released by the kernel when its holder exits however it exits (``kill -9``
included), so it is never stale. ``flock`` works on local filesystems and on NFS v4 (Linux emulates it with NFS
byte-range locks, which the server holds under a lease: a crashed client's locks expire with its lease); it does
not work on NFS v3 without lockd nor on some FUSE filesystems, where a store must not be shared by jobs. The
holder writes its pid, host and Slurm job id into the file for the message a waiting job gives; the file stays.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from mirage_bench.engine.store_lock import describe_holder, holder_info, read_holder
from mirage_bench.errors import storage_errors
from mirage_bench.store import make_folder, say

LOCKS = "locks"


def lock_path(out: str | Path, name: str) -> Path:
    return Path(out) / LOCKS / f"{name}.lock"


@contextmanager
def claim_cell(out: str | Path, name: str, job: str | None = None, notify: Callable[[str], None] = say) -> Iterator[None]:
    """Hold cell ``name``'s lock for the block, waiting (one line through ``notify``) while another job holds it;
    ``job``: the holder's scheduler job id, written for the message of a driver that finds the lock held."""
    path = lock_path(out, name)
    with storage_errors(path):
        make_folder(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            notify(f"cell {name} is being computed by another job ({describe_holder(read_holder(fd))}); waiting for it")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({**holder_info(), "job": job}).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def held_cells(out: str | Path) -> dict[str, str]:
    """The cells whose lock another process holds now (a job still computing them), each with its holder."""
    held = {}
    for path in sorted((Path(out) / LOCKS).glob("*.lock")):
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_holder(fd)
            held[path.stem] = describe_holder(holder) + (f", job {holder['job']}" if holder.get("job") else "")
        finally:
            os.close(fd)
    return held
