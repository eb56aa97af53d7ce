"""The per-image prediction store: one Parquet file per evaluation cell, written once, atomically.

Layout under the output folder (default ``results/runs/``)::

    predictions/<cell_id>.parquet     one row per (image, degradation) of one evaluation cell
    checkpoints/<train_cell_id>/      model.pt (final), state.pt (resume state while training), cell.json
    runs/<run_id>/record.json         the run record: commit, configs, protocol, versions, device, cells
    image_facts.sqlite                what decoding each data file found, by file identity (a cache: data.facts_cache)

A file is written to a temporary name in its folder and then hard-linked to its final name, which fails
if the name exists: a crash never leaves half a file, and nothing is ever overwritten. Run ids are
claimed with an exclusive ``mkdir``, so a new run never reuses an old id. Tables are computed from
:func:`read_predictions`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from mirage_bench.errors import DataError

#: Columns of every predictions file, in order (see docs/ARCHITECTURE.md).
PREDICTION_COLUMNS = [
    "run_id", "cell_id", "detector", "recipe_hash", "train_generators", "seed", "checkpoint_sha256",
    "image_id", "path", "rel_path", "sha256", "generator", "family", "label", "degradation",
    "degradation_seed", "logit", "p_fake", "threshold", "impl", "random_backbone",
]


def temporary_beside(path: Path) -> Path:
    """An empty temporary file in ``path``'s folder, readable as the umask allows (mkstemp alone gives 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)
    return Path(tmp_name)


def replace_text(path: Path, text: str) -> None:
    """Atomically write ``text`` to ``path``, replacing it: only for files that are views regenerated from the
    store (leaderboards) or replaced on explicit request (``check --update``), never for results."""
    tmp = temporary_beside(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` then link ``tmp`` to ``path``; refuses to replace an existing ``path``."""
    tmp = temporary_beside(path)
    try:
        write(tmp)
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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


class Store:
    """The output folder of one or many runs."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

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

    # -- predictions ----------------------------------------------------------------------------------
    def has_predictions(self, cell_id: str) -> bool:
        return self.prediction_path(cell_id).is_file()

    def write_predictions(self, cell_id: str, frame: pd.DataFrame) -> Path:
        missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
        if missing:
            raise DataError(f"predictions for cell {cell_id} lack columns {missing}; expected {PREDICTION_COLUMNS}")
        if set(frame["cell_id"]) != {cell_id}:
            raise DataError(f"predictions written to cell {cell_id} name cells {sorted(set(frame['cell_id']))}")
        path = self.prediction_path(cell_id)
        atomic_write(path, lambda tmp: frame[PREDICTION_COLUMNS].to_parquet(tmp, index=False))
        return path

    def read_predictions(self, cell_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Predictions of the given cells (all cells when ``None``), in cell-id order."""
        if cell_ids is None:
            paths = sorted((self.root / "predictions").glob("*.parquet"))
        else:
            paths = [self.prediction_path(c) for c in sorted(set(cell_ids))]
            absent = [p.stem for p in paths if not p.is_file()]
            if absent:
                raise DataError(f"no predictions stored in {self.root} for cells {absent}; run `mirage-bench eval` first")
        if not paths:
            return pd.DataFrame(columns=PREDICTION_COLUMNS)
        return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)

    # -- runs -----------------------------------------------------------------------------------------
    def new_run_id(self) -> str:
        """Claim a fresh run id (``YYYYmmdd-HHMMSS-NNN``, sortable) with an exclusive mkdir."""
        (self.root / "runs").mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for n in range(1000):
            run_id = f"{stamp}-{n:03d}"
            try:
                self.run_dir(run_id).mkdir()
                return run_id
            except FileExistsError:
                continue
        raise DataError(f"could not claim a run id under {self.root / 'runs'} (1000 runs started in one second?)")

    def run_ids(self) -> list[str]:
        return sorted(p.name for p in (self.root / "runs").glob("*") if (p / "record.json").is_file())

    def latest_run_id(self) -> str:
        ids = self.run_ids()
        if not ids:
            raise DataError(f"no finished run in {self.root / 'runs'}; start one with `mirage-bench run`")
        return ids[-1]

    def run_record(self, run_id: str) -> dict[str, Any]:
        return read_json(self.run_dir(run_id) / "record.json")
