"""A train/test split for folders that ship none, by the protocol card's ``carve`` rule (:class:`CarveRule`).

Layouts put a file that lies in no split folder in split ``test`` (ForenSynths' flat ``{gen}/{0_real,1_fake}``),
so such a folder cannot train. The rule splits the files of the generators training reads by a seeded hash of
each file's path under the root: the same folder and seed give the same split on any file system, and adding a
file moves no other file.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import TYPE_CHECKING

from mirage_bench.data.layouts import DEFAULT_SPLIT, Record
from mirage_bench.data.subsets import splits_read
from mirage_bench.errors import DataError

if TYPE_CHECKING:
    from mirage_bench.protocol import CarveRule, ProtocolCard


def carved_split(rel_path: str, rule: "CarveRule") -> str:
    """``test`` or ``train`` for the file at ``rel_path`` (POSIX, under the root), as :class:`CarveRule` documents."""
    digest = hashlib.sha256(f"{rule.seed}/carve/{rel_path}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") < rule.test_fraction * 2**64 else "train"


def carve_records(records: list[Record], protocol: "ProtocolCard | None") -> list[Record]:
    """``records`` with the files of the generators training reads split by the card's ``carve`` rule (records
    already carry the card's generator keys); without a rule, unchanged.

    A folder that has split folders of its own is refused: carving it would mix the publisher's splits."""
    if protocol is None or protocol.carve is None:
        return records
    split_folders = sorted({r.split for r in records if r.split not in (None, DEFAULT_SPLIT)})
    if split_folders:
        raise DataError(
            f"protocol {protocol.name!r} ({protocol.source}) carves a train/test split ('carve:'), but the data has "
            f"split folders of its own ({', '.join(split_folders)}). Remove 'carve' from the card and set train_split "
            "and test_split to the folders' splits (or rebuild the card with `mirage-bench protocols new`)."
        )
    carved = set(splits_read(protocol, ("train",)))
    return [replace(r, split=carved_split(r.rel_path, protocol.carve)) if r.generator in carved else r for r in records]
