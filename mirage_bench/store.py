"""The per-image prediction store: one Parquet file per evaluation cell, written once, atomically, durably.

Layout under the output folder (default ``results/runs/``)::

    predictions/<cell_id>.parquet     one row per (image, degradation) of one evaluation cell
    checkpoints/<train_cell_id>/      model.pt (final), state.pt (resume state while training), cell.json
    runs/<run_id>/started.json        who claimed the run id (pid, host, time, command line)
    runs/<run_id>/record.json         the run record, written when the run finishes: commit, configs, protocol, cells
    runs/<run_id>/interrupted.json    written by a later run when this one stopped before its record
    damaged/<path>.<time>             files that did not read back, moved aside (never deleted)
    image_facts.sqlite                what decoding each data file found, by file identity (a cache: data.facts_cache)

What the store guarantees:

- A file is written to a temporary name in its folder, synced to disk, then hard-linked to its final name (which
  fails if the name exists) and the folder synced: a crash or a power cut never leaves half a file under a final
  name, and nothing is ever overwritten. Run ids are claimed with an exclusive ``mkdir``.
- A cell counts as done only if its file reads back as written. Each predictions file carries, in its Parquet
  key-value metadata, its row count and a sha256 of its content as a reader gets it (column names, Arrow types,
  pandas' hash of every row). Why there and not a checksum of the file's bytes in an index beside it: the marks
  are committed with the data in one atomic link (an index would be a second file to keep in step, and to lose
  when a store is copied), and they check what every reader uses, the decoded table: an emptied or truncated
  file fails to parse, a flipped bit in the data changes the content digest or breaks decoding (measured: no
  undetected change in 3,000 random bit flips), and one in unused footer bytes changes nothing that is read.
  Files written before these marks existed carry none and count as done if they parse.
- Checkpoints (``model.pt``, ``state.pt``) are zip archives whose records each carry a CRC-32 (written by
  ``torch.save``, never checked by ``torch.load``): :func:`zip_damage` checks them all.
- A damaged file is named in one line on stderr, moved to ``damaged/`` and its cell recomputed (its model
  retrained); a reader (:meth:`Store.read_predictions`, reports) names it and the fix instead.
- A full disk, a read-only filesystem or a denied permission is a :class:`~mirage_bench.errors.StorageError`
  naming the path and the fix; the temporary file is removed and the cells already committed stay.
- :meth:`Store.clean_leftovers` tidies what killed runs left (temporary files, a ``state.pt`` beside a committed
  ``model.pt``, run folders without a record), called by a run that holds the store.

Tables are computed from the cells one at a time (:meth:`Store.cell_constants` plans them from the footers, 
:meth:`Store.read_cell` reads each checked), never from all predictions at once (``mirage_bench.reports.cells``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mirage_bench.errors import DataError, storage_errors

#: Columns of every predictions file, in order (see docs/ARCHITECTURE.md).
PREDICTION_COLUMNS = [
    "run_id", "cell_id", "detector", "recipe_hash", "train_generators", "seed", "checkpoint_sha256",
    "image_id", "path", "rel_path", "sha256", "generator", "family", "label", "degradation",
    "degradation_seed", "logit", "p_fake", "threshold", "impl", "random_backbone",
]


#: Parquet key-value metadata of every predictions file: its content digest and row count (see the module doc).
DIGEST_KEY, ROWS_KEY = b"mirage_bench.content_sha256", b"mirage_bench.rows"
MODEL_FILE, STATE_FILE = "model.pt", "state.pt"
STARTED, INTERRUPTED, RECORD = "started.json", "interrupted.json", "record.json"
DAMAGED = "damaged"
#: The names :func:`temporary_beside` gives (``mkstemp``: a dot, the final name, 8 random characters, ``.tmp``).
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def say(line: str) -> None:
    """One line on stderr about what the store did on its own (a damaged file moved aside, leftovers cleaned)."""
    print(line, file=sys.stderr, flush=True)


def fsync_path(path: Path) -> None:
    """Flush a file's bytes, or a folder's entries, to the disk (a new name survives a power cut only once its
    folder is synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_folder(folder: Path) -> None:
    """``mkdir -p`` that syncs the parent of each folder it creates, so that a committed file's folder is durable too."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        new.mkdir(exist_ok=True)
        fsync_path(new.parent)


def temporary_beside(path: Path) -> Path:
    """An empty temporary file in ``path``'s folder, readable as the umask allows (mkstemp alone gives 0600)."""
    make_folder(path.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)
    return Path(tmp_name)


def _write_durably(path: Path, write: Callable[[Path], None], commit: Callable[[Path, Path], None]) -> None:
    """``write(tmp)``, sync it, ``commit(tmp, path)``, sync the folder; the temporary file never outlives the call,
    and a full, read-only or forbidden disk is one :class:`StorageError`."""
    path = Path(path)
    with storage_errors(path):
        tmp = temporary_beside(path)
        try:
            write(tmp)
            fsync_path(tmp)
            commit(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_path(path.parent)


def replace_file(path: Path, write: Callable[[Path], None]) -> None:
    """Atomically and durably write ``path`` with ``write(tmp)``, replacing it: for files that are replaced by
    design (training state, views regenerated from the store, ``check --update``), never for results."""
    _write_durably(path, write, os.replace)


def replace_text(path: Path, text: str) -> None:
    """:func:`replace_file` with ``text``."""
    replace_file(path, lambda tmp: tmp.write_text(text))


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` then link ``tmp`` to ``path``, both synced; refuses to replace an existing ``path``."""
    _write_durably(path, write, lambda tmp, final: _commit(tmp, final))


def _commit(tmp: Path, path: Path) -> None:
    """The rename step (a hard link, so an existing result is never replaced)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise DataError(f"{path} already exists; results are never overwritten. Use a new output folder or run id.") from None


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


class Damaged(DataError):
    """A store file that does not read back as written; the message says how. The store turns it into a file moved
    aside (a run) or an error naming the file and the fix (a reader)."""


def _content_digest(schema: pa.Schema, frame: pd.DataFrame) -> bytes:
    """sha256 of the columns' names, Arrow and pandas types and of pandas' hash of every row, as a reader decodes
    them (the names a reader gets come from metadata that the Arrow schema's field names do not cover)."""
    columns = [(str(name), str(dtype), str(field.type)) for (name, dtype), field in zip(frame.dtypes.items(), schema)]
    digest = hashlib.sha256(repr([len(frame.columns), *columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest().encode()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def read_checked_parquet(path: Path) -> pd.DataFrame:
    """The predictions file at ``path``, or :class:`Damaged` when it does not read back as written."""
    try:
        table = pq.read_table(path)
        frame = table.to_pandas()
    except Exception as exc:  # a damaged file reaches pyarrow/pandas' decoders: ArrowInvalid, OSError, KeyError, JSONDecodeError, ...
        raise Damaged(f"unreadable: {_first_line(exc)}") from exc
    marks = table.schema.metadata or {}
    if DIGEST_KEY not in marks:  # written before the store marked its files: valid when it parses
        return frame
    if marks.get(ROWS_KEY) != str(len(frame)).encode():
        raise Damaged(f"{len(frame)} rows read, {marks.get(ROWS_KEY, b'?').decode(errors='replace')} written")
    if _content_digest(table.schema, frame) != marks[DIGEST_KEY]:
        raise Damaged("its content does not match the checksum written with it")
    return frame


def _constant_stats(meta: pq.FileMetaData, columns: Sequence[str]) -> dict[str, Any]:
    """The columns whose footer statistics give one value in every row group (absent: no statistics, or several)."""
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    out = {}
    for name in columns:
        if name not in names or meta.num_row_groups == 0:
            continue
        seen = set()
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(names.index(name)).statistics
            if stats is None or not stats.has_min_max or stats.min != stats.max or stats.null_count:
                seen = {object(), object()}  # unknown: read the column
                break
            seen.add(stats.min)
        if len(seen) == 1:
            out[name] = seen.pop()
    return out


def zip_damage(path: Path) -> str | None:
    """Why a checkpoint file (``torch.save`` writes a zip archive) does not read back, or None: every record's
    CRC-32 is checked, which ``torch.load`` never does (a flipped bit in a tensor would load silently)."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as exc:  # zipfile raises BadZipFile, OSError, EOFError, UnicodeDecodeError, ... on a damaged archive
        return f"unreadable: {_first_line(exc)}"
    return None if bad is None else f"record {bad} fails its CRC-32 check"


def set_aside(path: Path, root: Path) -> Path:
    """Move a damaged file to ``root/damaged/<its path under root>.<time>`` and return where: never deleted (it
    may be wanted as evidence), and out of the way of the file that replaces it."""
    base = root / DAMAGED / f"{Path(path).relative_to(root)}.{time.strftime('%Y%m%d-%H%M%S')}"
    with storage_errors(base):
        make_folder(base.parent)
        dest, n = base, 0
        while dest.exists():
            n += 1
            dest = base.with_name(f"{base.name}.{n}")
        os.rename(path, dest)
        fsync_path(dest.parent)
        fsync_path(Path(path).parent)
    return dest


class Store:
    """The output folder of one or many runs.

    ``repair=False`` (a dry run, which changes no file): a damaged file is named and counted as not done, but
    left where it is; the next run moves it aside.
    """

    def __init__(self, root: str | Path, repair: bool = True) -> None:
        self.root = Path(root)
        self.repair = repair

    # -- paths ----------------------------------------------------------------------------------------
    def prediction_path(self, cell_id: str) -> Path:
        return self.root / "predictions" / f"{cell_id}.parquet"

    def facts_path(self) -> Path:
        """The cache of decoded-file facts that runs into this store share (deleting it only costs a re-scan)."""
        return self.root / "image_facts.sqlite"

    def checkpoint_dir(self, train_cell_id: str) -> Path:
        return self.root / "checkpoints" / train_cell_id

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    # -- damage -----------------------------------------------------------------------------------------
    def _found_damaged(self, path: Path, why: str, then: str) -> None:
        """Name a damaged file in one line and, unless this is a dry run, move it aside."""
        if not self.repair:
            say(f"damaged: {path} ({why}); counted as not done (a run moves it aside and {then})")
            return
        say(f"damaged: {path} ({why}); moved aside to {set_aside(path, self.root)}; {then}")

    def _damaged_error(self, path: Path, why: str) -> DataError:
        return DataError(f"{path} is damaged ({why}). Run `mirage-bench run` again on this --out ({self.root}) with the same "
                         f"options: it moves the file aside to {self.root / DAMAGED} and recomputes it")

    # -- predictions ----------------------------------------------------------------------------------
    def has_predictions(self, cell_id: str) -> bool:
        """Whether the cell is done: its file exists and reads back as written (a damaged one is moved aside)."""
        path = self.prediction_path(cell_id)
        if not path.is_file():
            return False
        try:
            read_checked_parquet(path)
        except Damaged as exc:
            self._found_damaged(path, str(exc), "the cell is computed again")
            return False
        return True

    def write_predictions(self, cell_id: str, frame: pd.DataFrame) -> Path:
        missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
        if missing:
            raise DataError(f"predictions for cell {cell_id} lack columns {missing}; expected {PREDICTION_COLUMNS}")
        if set(frame["cell_id"]) != {cell_id}:
            raise DataError(f"predictions written to cell {cell_id} name cells {sorted(set(frame['cell_id']))}")
        table = pa.Table.from_pandas(frame[PREDICTION_COLUMNS], preserve_index=False)  # as DataFrame.to_parquet does
        marks = {DIGEST_KEY: _content_digest(table.schema, table.to_pandas()), ROWS_KEY: str(table.num_rows).encode()}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **marks})
        path = self.prediction_path(cell_id)
        atomic_write(path, lambda tmp: pq.write_table(table, tmp))
        return path

    def read_predictions(self, cell_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Predictions of the given cells (all cells when ``None``), in cell-id order; a damaged file is named
        with the fix."""
        if cell_ids is None:
            paths = sorted((self.root / "predictions").glob("*.parquet"))
        else:
            paths = [self.prediction_path(c) for c in sorted(set(cell_ids))]
            absent = [p.stem for p in paths if not p.is_file()]
            if absent:
                raise DataError(f"no predictions stored in {self.root} for cells {absent}; run `mirage-bench eval` first")
        if not paths:
            return pd.DataFrame(columns=PREDICTION_COLUMNS)
        return pd.concat([self._read_checked(path) for path in paths], ignore_index=True)

    def _read_checked(self, path: Path) -> pd.DataFrame:
        try:
            return read_checked_parquet(path)
        except Damaged as exc:
            raise self._damaged_error(path, str(exc)) from exc

    def read_cell(self, cell_id: str) -> pd.DataFrame:
        """One cell's predictions, checked against the marks written with them (a damaged file is named with the
        fix). The check decodes every column of the file, so a reader that wants two columns pays for all of them:
        measured in benchmarks/RESULTS.md (report_scaling)."""
        path = self.prediction_path(cell_id)
        if not path.is_file():
            raise DataError(f"no predictions stored in {self.root} for cell {cell_id}; run `mirage-bench eval` first")
        return self._read_checked(path)

    def cell_constants(self, cell_id: str, columns: Sequence[str]) -> tuple[int, dict[str, Any]]:
        """A cell's row count and the value of each of ``columns`` that is constant in it (its key: detector,
        generator, ...), from the file's footer alone when its statistics say min == max (pyarrow writes them),
        else from those columns; a column holding several values is an error. Nothing here is checked against
        the file's content digest: :meth:`read_cell` does that when the cell's rows are read."""
        path = self.prediction_path(cell_id)
        if not path.is_file():
            raise DataError(f"no predictions stored in {self.root} for cell {cell_id}; run `mirage-bench eval` first")
        try:
            meta = pq.ParquetFile(path).metadata
            values = _constant_stats(meta, columns)
            unknown = [c for c in columns if c not in values]
            if unknown:
                table = pq.read_table(path, columns=unknown)
                for name in unknown:
                    distinct = table.column(name).unique().to_pylist()
                    if len(distinct) != 1:
                        raise DataError(f"{path} holds {len(distinct)} values of {name!r}; a predictions file holds one "
                                        "evaluation cell (one detector, seed, test generator and degradation)")
                    values[name] = distinct[0]
        except DataError:
            raise
        except Exception as exc:  # a damaged footer reaches pyarrow's decoders: ArrowInvalid, OSError, ...
            raise self._damaged_error(path, f"unreadable: {_first_line(exc)}") from exc
        return meta.num_rows, values

    # -- checkpoints ----------------------------------------------------------------------------------
    def has_checkpoint(self, train_cell_id: str) -> bool:
        """Whether the training cell is done: its ``model.pt`` exists and every record passes its CRC-32 check
        (a damaged one is moved aside, and the model is trained again, from its ``state.pt`` where one is left)."""
        path = self.checkpoint_dir(train_cell_id) / MODEL_FILE
        if not path.is_file():
            return False
        why = zip_damage(path)
        if why is not None:
            self._found_damaged(path, why, "the model is trained again")
            return False
        return True

    # -- runs -----------------------------------------------------------------------------------------
    def new_run_id(self) -> str:
        """Claim a fresh run id (``YYYYmmdd-HHMMSS-NNN``, sortable) with an exclusive mkdir, and write its
        ``started.json``: the predictions a killed run stored then name a run whose start is on record."""
        runs = self.root / "runs"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        with storage_errors(runs):
            make_folder(runs)
            for n in range(1000):
                run_id = f"{stamp}-{n:03d}"
                try:
                    self.run_dir(run_id).mkdir()
                except FileExistsError:
                    continue
                fsync_path(runs)
                break
            else:
                raise DataError(f"could not claim a run id under {runs} (1000 runs started in one second?)")
        write_json(self.run_dir(run_id) / STARTED, {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
                                                     "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv})
        return run_id

    def run_ids(self) -> list[str]:
        """The finished runs (those with a record), oldest first."""
        return sorted(p.name for p in (self.root / "runs").glob("*") if (p / RECORD).is_file())

    def latest_run_id(self) -> str:
        ids = self.run_ids()
        if not ids:
            raise DataError(f"no finished run in {self.root / 'runs'}; start one with `mirage-bench run`")
        return ids[-1]

    def run_record(self, run_id: str) -> dict[str, Any]:
        path = self.run_dir(run_id) / RECORD
        try:
            return read_json(path)
        except (OSError, ValueError) as exc:  # ValueError: JSONDecodeError and UnicodeDecodeError
            raise DataError(f"run record {path} is damaged ({_first_line(exc)}). Run `mirage-bench run` again on this --out "
                            f"({self.root}) with that run's options for a new record of the same cells (nothing that reads "
                            "back is recomputed), and report that run") from exc

    # -- leftovers ------------------------------------------------------------------------------------
    def clean_leftovers(self) -> list[str]:
        """Tidy what killed runs left; returns (and prints) one line per thing done.

        Call it only while holding the store (no other run writes here meanwhile). Removed: temporary files of
        the store's own naming, and a ``state.pt`` beside a ``model.pt`` that reads back (the run was killed
        between committing the model and removing its training state). A run folder without a record: removed
        when truly empty, otherwise marked with ``interrupted.json`` (its ``started.json`` says who started it;
        predictions it stored stay valid and name it). Nothing that holds results is deleted.
        """
        done: list[str] = []
        with storage_errors(self.root):
            folders = [self.root, self.root / "predictions", *self.root.glob("checkpoints/*"), *self.root.glob("runs/*")]
            for tmp in sorted(f for folder in folders if folder.is_dir() for f in folder.iterdir()):
                if _TEMPORARY.match(tmp.name) and tmp.is_file():
                    tmp.unlink()
                    done.append(f"removed the temporary file {tmp} of a stopped run")
            for model in sorted(self.root.glob(f"checkpoints/*/{MODEL_FILE}")):
                state = model.with_name(STATE_FILE)
                if state.is_file() and zip_damage(model) is None:
                    state.unlink()
                    done.append(f"removed {state}: its model.pt is committed")
            for run in sorted(p for p in self.root.glob("runs/*") if p.is_dir() and not (p / RECORD).is_file()):
                if not any(run.iterdir()):
                    run.rmdir()
                    done.append(f"removed the empty run folder {run}")
                elif not (run / INTERRUPTED).is_file():
                    write_json(run / INTERRUPTED, {"found": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "found_by_pid": os.getpid(),
                                                   "why": "no record.json: the run stopped (killed or failed) before it finished"})
                    done.append(f"marked run {run.name} as interrupted (it has no record)")
        for line in done:
            say(line)
        return done
