"""Building the manifest of a data root: every usable image, fully decoded, hashed and named.

A file that cannot be used is never a row: it becomes an exclusion with its kind and reason, and
``strict=True`` turns any exclusion into an error. Folder names become generator keys through the
protocol card's folder names and aliases; the publisher's known-corrupt files are excluded by name.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import pandas as pd

from mirage_bench.data.facts_cache import FactsCache, Result, identity
from mirage_bench.data.images import MAX_PIXELS, UnusableImage, decode_file
from mirage_bench.data.carve import carve_records
from mirage_bench.data.layouts import DEFAULT_SPLIT, LAYOUTS, Record, detect_layout
from mirage_bench.data.subsets import splits_read
from mirage_bench.errors import DataError
from mirage_bench.progress import Progress, no_progress, step

if TYPE_CHECKING:
    from mirage_bench.protocol import ProtocolCard

MANIFEST_COLUMNS = [
    "image_id", "path", "rel_path", "label", "generator", "family", "split", "source",
    "width", "height", "format", "mode", "bytes", "sha256",
]
EXCLUSION_COLUMNS = ["rel_path", "kind", "reason", "generator", "split", "label"]
#: Exclusion kind of a file that its protocol card names as shipped beside the data (``not_data``): not a problem.
NOT_DATA = "not-data"
UNKNOWN_FAMILY = "unknown"
#: Files to decode at or above which a process pool pays for its start-up (a small root decodes in this process).
PARALLEL_FROM = 512


def image_id(generator: str, split: str, label: int, rel_path: str) -> str:
    """Stable id of one image in one role: 16 hex digits of sha1("generator/split/label/rel_path")."""
    return hashlib.sha1(f"{generator}/{split}/{label}/{rel_path}".encode()).hexdigest()[:16]


def build_manifest(
    root: str | Path,
    layout: str = "auto",
    protocol: "ProtocolCard | None" = None,
    strict: bool = False,
    max_pixels: int = MAX_PIXELS,
    workers: int = 1,
    roles: Sequence[str] | None = None,
    facts: FactsCache | None = None,
    progress: Progress = no_progress,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(manifest, exclusions) of ``root``; ``manifest.attrs`` records the layout and how it was chosen.

    ``roles`` (with a ``protocol``): decode only the generators and splits those roles read. Why: GenImage's
    protocol reads one generator's training split and the eight val splits; decoding the seven other training
    splits (most of its files) on every run cost hours. The others are counted in ``manifest.attrs["unread"]``;
    ``data verify`` reads all. ``facts``: what earlier scans found about unchanged files (:mod:`.facts_cache`);
    only the others are decoded. ``progress`` shows the listing and the decoding (:mod:`mirage_bench.progress`).
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"data root {root} does not exist")
    name, how = _choose_layout(root, layout, protocol)
    with step(progress, f"list the files under {root}"):  # the layouts walk without counting
        records = LAYOUTS.get(name)().scan(root, protocol)
    key_of = functools.cache(lambda names: _generator_key(names, protocol))  # one answer per folder, not per file
    records = carve_records([_not_data(_resolve(r, protocol, key_of), protocol) for r in records], protocol)
    usable = [r for r in records if r.problem is None]
    reads = splits_read(protocol, roles) if roles is not None and protocol is not None else None
    wanted = [reads is None or r.split in reads.get(r.generator, ()) for r in usable]
    candidates = [r for r, read in zip(usable, wanted) if read]
    unread = [r for r, read in zip(usable, wanted) if not read]
    results = examine_files([r.path for r in candidates], max_pixels, workers, facts, progress)
    tabled = progress("build the manifest table", 1)  # a step: about 2 s per 100,000 files
    rows, excluded = [], [r for r in records if r.problem is not None]
    for record, result in zip(candidates, results):
        if isinstance(result, tuple):
            excluded.append(replace(record, problem=result))
        else:
            rows.append(_row(record, result))
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS).sort_values("rel_path", kind="stable", ignore_index=True)
    manifest = manifest.astype({"label": "int64", "width": "int64", "height": "int64", "bytes": "int64"})
    exclusions = pd.DataFrame(
        [[r.rel_path, *r.problem, r.generator, r.split, r.label] for r in excluded], columns=EXCLUSION_COLUMNS
    ).sort_values("rel_path", kind="stable", ignore_index=True)
    exclusions["label"] = exclusions["label"].astype("Int64")
    tabled(1)
    manifest.attrs.update({"root": str(root.absolute()), "layout": name, "layout_reason": how,
                           "unread": {"files": len(unread), "generators": sorted(splits_of(unread)), "splits": splits_of(unread)}})
    unusable = problems(exclusions)
    if strict and len(unusable):
        raise DataError(
            f"{root}: {len(unusable)} file(s) cannot be used and --strict forbids exclusions:\n"
            + "\n".join(f"  {r.rel_path} ({r.kind}): {r.reason}" for r in unusable.head(20).itertuples())
            + ("\n  ..." if len(unusable) > 20 else "")
            + "\nRun `mirage-bench data verify` for the full list, then repair or remove those files."
        )
    if manifest.empty:
        raise DataError(f"{root}: no usable images found with layout {name!r} ({len(exclusions)} file(s) excluded). "
                        + _why_empty(root, name, how, records, unread, reads, protocol))
    return manifest, exclusions


def splits_of(records: Sequence[Record]) -> dict[str, list[str]]:
    """Generator -> the sorted splits ``records`` place its files in."""
    found: dict[str, set[str]] = {}
    for r in records:
        if r.generator is not None:
            found.setdefault(r.generator, set()).add(str(r.split))
    return {generator: sorted(found[generator]) for generator in sorted(found)}


def layout_hint(root: Path, name: str, named_by: str = "as given") -> str:
    """For a layout that placed no file under ``root``: the sentence naming the layout the folder looks like and
    the fix, or "" when detection finds that same layout, none or several."""
    try:
        looks, evidence = detect_layout(root)
    except DataError:
        return ""
    if looks == name:
        return ""
    return (f"No file lies where layout {name!r}, {named_by}, expects one ({LAYOUTS.get(name).description}), and the "
            f"folder looks like layout {looks!r} (found {evidence}). Set `layout: {looks}` in the card, or pass --layout {looks}.")


def _why_empty(root: Path, name: str, how: str, records: list[Record], unread: list[Record],
               reads: dict[str, list[str]] | None, protocol: "ProtocolCard | None") -> str:
    """The cause of an empty manifest: files in no split or generator the card reads, a layout the folder does not
    have (naming the one it looks like), or files that do not decode."""
    if unread:
        found = "; ".join(f"{g}: {', '.join(s)}" for g, s in splits_of(unread).items())
        reads_text = "; ".join(f"{g}: {', '.join(s)}" for g, s in (reads or {}).items())
        flat = (f" A folder without split folders puts every file in split {DEFAULT_SPLIT!r}, so it cannot train as it "
                "is: `mirage-bench protocols new ROOT --train GEN` writes a card that carves a train/test split "
                "('carve:').") if all(s == [DEFAULT_SPLIT] for s in splits_of(unread).values()) else ""
        return (f"{len(unread)} usable file(s) lie in generators or splits that protocol {protocol.name!r} does not "
                f"read: it reads (generator: splits) {reads_text}; the folder holds {found}.{flat}")
    if how == "given" and all(r.label is None for r in records):  # the layout placed no file
        named_by = f"named by protocol {protocol.name!r} in {protocol.source}" if protocol is not None and protocol.layout == name else "as given"
        hint = layout_hint(root, name, named_by)
        if hint:
            return hint
    return ("Check the root and the layout (`--layout` of the `mirage-bench data` commands, `layout:` in a protocol "
            "card); `mirage-bench data verify` lists every excluded file.")


def problems(exclusions: pd.DataFrame) -> pd.DataFrame:
    """The exclusions that are problems: every one but the files the card names as not data."""
    return exclusions[exclusions["kind"] != NOT_DATA]


def excluded_phrase(exclusions: pd.DataFrame) -> str:
    """'N file(s) excluded', plus how many the card names as not data when there are any (runs and data commands)."""
    unusable = len(problems(exclusions))
    shipped = len(exclusions) - unusable
    return f"{unusable} file(s) excluded" + (f", {shipped} not data (the card's not_data)" if shipped else "")


def _not_data(record: Record, protocol: "ProtocolCard | None") -> Record:
    """A file the layout cannot use that the card names in ``not_data`` (an image it can use stays data)."""
    if record.problem is None or protocol is None:
        return record
    pattern = next((p for p in protocol.not_data if fnmatch.fnmatchcase(record.rel_path, p)), None)
    if pattern is None:
        return record
    return replace(record, problem=(NOT_DATA, f"shipped beside the data; protocol {protocol.name!r} names it in "
                                              f"not_data ({pattern!r})"))


def _choose_layout(root: Path, layout: str, protocol: "ProtocolCard | None") -> tuple[str, str]:
    if layout != "auto":
        LAYOUTS.get(layout)  # unknown names fail here with "did you mean"
        return layout, "given"
    name, evidence = detect_layout(root)
    if protocol is not None and protocol.layout not in ("auto", name):
        raise DataError(
            f"{root} looks like layout {name!r} (found {evidence}), but protocol {protocol.name!r} expects "
            f"{protocol.layout!r}. Point at the right root, or pass --layout {protocol.layout} if the detection is wrong."
        )
    return name, f"detected: found {evidence}"


def _generator_key(names: tuple[str, ...], protocol: "ProtocolCard") -> str | None:
    """The card's key for the first of a file's folder names that names one of its generators."""
    return next((k for k in map(protocol.generator_for_folder, names) if k is not None), None)


def _resolve(record: Record, protocol: "ProtocolCard | None", key_of: Callable[[tuple[str, ...]], str | None]) -> Record:
    """Folder names -> the card's generator key and family; the publisher's known-corrupt files excluded."""
    if record.generator is None or protocol is None:
        return record
    key = key_of(record.names)
    if key is None:
        return record
    entry = protocol.generators[key]
    problem = record.problem
    if problem is None and any(record.rel_path == c or record.rel_path.endswith("/" + c.lstrip("/")) for c in entry.known_corrupt):
        problem = ("known-corrupt", f"listed as corrupt by the publisher (protocol {protocol.name!r} v{protocol.version})")
    return replace(record, generator=key, family=entry.family, problem=problem)


def examine_files(paths: list[str], max_pixels: int, workers: int, facts: FactsCache | None,
                  progress: Progress = no_progress) -> list[Result]:
    """Each file's facts or (kind, reason), in order: remembered ones from ``facts``, the others decoded (in a
    process pool when there are enough of them, shown as one ``progress`` task) and then remembered."""
    known = facts.lookup(paths) if facts is not None else {}
    todo = [path for path in paths if path not in known]
    identities = [identity(path) for path in todo] if facts is not None else []  # before decoding, see remember()
    advance = progress(f"decode and hash {len(todo):,} images" + (f" ({len(known):,} known)" if known else ""), len(todo))
    fresh = []
    with _pool(workers if len(todo) >= PARALLEL_FROM else 1) as pool:
        for result in pool.map(_examine, [(path, max_pixels) for path in todo], chunksize=32):
            fresh.append(result)
            advance(1)
    if facts is not None:
        facts.remember(todo, identities, fresh)
    found = {**known, **dict(zip(todo, fresh))}
    return [found[path] for path in paths]


def _examine(job: tuple[str, int]):
    """Decode one file: its facts, or (kind, reason). Runs in worker processes, so it returns plain data."""
    path, max_pixels = job
    try:
        decoded = decode_file(path, max_pixels)
    except UnusableImage as exc:
        return (exc.kind, exc.reason)
    return {k: getattr(decoded, k) for k in ("width", "height", "format", "mode", "bytes", "sha256")}


def _row(record: Record, facts: dict) -> dict:
    return {
        "image_id": image_id(record.generator, record.split, record.label, record.rel_path),
        "path": record.path, "rel_path": record.rel_path, "label": record.label, "generator": record.generator,
        "family": record.family or UNKNOWN_FAMILY, "split": record.split, "source": record.source, **facts,
    }


class _Serial:
    """The ``Executor.map`` interface, in this process (workers=1 keeps tests and small roots simple)."""

    def map(self, fn: Callable, items, chunksize: int = 1):
        return map(fn, items)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def _pool(workers: int):
    if workers < 1:
        raise DataError(f"workers must be >= 1, got {workers}")
    return _Serial() if workers == 1 else ProcessPoolExecutor(max_workers=workers)


def write_manifest(manifest: pd.DataFrame, path: str | Path) -> Path:
    """Write a manifest as Parquet; an existing file is never overwritten."""
    path = Path(path)
    if path.exists():
        raise DataError(f"{path} already exists; refusing to overwrite it. Remove it or choose another --out.")
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest.to_parquet(path, index=False)
    return path


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a Parquet manifest and check that it has every manifest column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest {path} does not exist; write one with `mirage-bench data index ROOT --out {path}`")
    manifest = pd.read_parquet(path)
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise DataError(f"{path} is not a mirage-bench manifest: missing columns {missing}")
    return manifest


def exclusion_summary(exclusions: pd.DataFrame, first: int = 3) -> dict[str, dict]:
    """Kind -> count and the first ``first`` paths: what a run prints and records (``data verify`` lists all)."""
    return {str(kind): {"count": int(len(rows)), "first": rows["rel_path"].head(first).tolist()}
            for kind, rows in exclusions.groupby("kind", sort=True)}
