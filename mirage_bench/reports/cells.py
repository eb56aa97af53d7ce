"""The predictions a report reads, as cells read one group at a time: never the whole store in memory.

A predictions file holds one evaluation cell: one checkpoint's scores of one test generator under one
degradation, so the columns that name a subset (detector, recipe, seed, generator, degradation, ...) are
constant in it. :class:`Cells` keeps one row per cell with those values (its *catalogue*, planned from the
files' footers, :meth:`~mirage_bench.store.Store.cell_constants`) and reads the rows of a few cells when a
computation needs them (:meth:`Cells.rows`): a subset's metrics need its one cell, a leaderboard row's interval
the clean cells of one model. Each read checks the file against the checksum written with it and the values
the catalogue planned with. Memory grows with the number of cells in the catalogue, not with their rows.

An in-memory frame (a submission, a test) is wrapped the same way (:func:`frame_cells`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import pandas as pd

from mirage_bench import metrics as M
from mirage_bench.errors import DataError

#: Columns constant in a cell: the subset it scores, and what the tables mark or group by.
CONSTANT_COLUMNS = [*M.SUBSET_KEYS, "family", "checkpoint_sha256", "random_backbone", "run_id"]
#: Catalogue columns set by the reader rather than read from the cell (names told apart, reconstructions).
RELABELLED = ("detector", "reconstruction")


@dataclass
class Cells:
    """``catalogue``: one row per cell (``cell_id`` where known, :data:`CONSTANT_COLUMNS`, ``reconstruction``,
    ``rows``); ``read(i)``: the rows of the cell at catalogue index ``i``, checked."""

    catalogue: pd.DataFrame
    read: Callable[[int], pd.DataFrame]

    def where(self, mask: pd.Series | Sequence[bool]) -> "Cells":
        """The cells where ``mask`` holds (catalogue index kept, so reads still find their files)."""
        return Cells(self.catalogue[mask], self.read)

    def relabel(self, catalogue: pd.DataFrame) -> "Cells":
        """The same cells under a catalogue with other names (same index)."""
        return Cells(catalogue, self.read)

    def rows(self, index: Sequence[int] | None = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The rows of the cells at ``index`` (every cell by default), in catalogue order, with the catalogue's
        names (``detector``, ``reconstruction``); ``columns`` keeps only those (of the ones the cells have)."""
        index = list(self.catalogue.index if index is None else index)
        frames = []
        for i in index:
            frame = self.read(i)
            entry = self.catalogue.loc[i]
            frame = frame.assign(**{c: entry[c] for c in RELABELLED if c in entry.index})
            frames.append(frame if columns is None else frame[[c for c in columns if c in frame.columns]])
        if not frames:
            return pd.DataFrame(columns=list(columns) if columns is not None else list(self.catalogue.columns))
        return pd.concat(frames, ignore_index=True)


def frame_cells(frame: pd.DataFrame) -> Cells:
    """An in-memory predictions frame as cells: its rows grouped by ``cell_id`` (where present) and every
    constant column it has."""
    keys = [c for c in ["cell_id", *CONSTANT_COLUMNS, "reconstruction"] if c in frame.columns]
    missing = sorted(set(M.SUBSET_KEYS) - set(keys))
    if missing:
        raise DataError(f"the predictions frame lacks the columns {missing} that name its subsets (it has "
                        f"{sorted(frame.columns)}); pass store rows (mirage_bench.store.PREDICTION_COLUMNS)")
    groups = frame.groupby(keys, sort=True, dropna=False).indices
    catalogue = pd.DataFrame(list(groups), columns=keys)
    catalogue["rows"] = [len(rows) for rows in groups.values()]
    positions = list(groups.values())
    return Cells(catalogue, lambda i: frame.iloc[positions[i]].reset_index(drop=True))


def as_cells(predictions: pd.DataFrame | Cells) -> Cells:
    return predictions if isinstance(predictions, Cells) else frame_cells(predictions)


def store_cells(store, entries: Sequence[dict]) -> Cells:
    """The cells a run record lists (``entries``: its ``eval_cells``; a cell listed twice is read once), planned
    from their files' footers; each read checks the file's checksum, that it scores every image once, and that
    it holds what the catalogue planned (``mirage_bench.store.Store``)."""
    expected: dict[str, dict] = {}
    for entry in entries:
        expected.setdefault(entry["cell_id"], entry)
    rows = []
    for cell_id in sorted(expected):
        n, values = store.cell_constants(cell_id, CONSTANT_COLUMNS)
        entry = expected[cell_id]
        if n != entry["images"]:
            raise DataError(f"cell {cell_id} ({entry['generator']}, {entry['degradation']}) holds {n} predictions; its manifest "
                            f"counts {entry['images']}. The store is inconsistent; re-run into a new --out folder")
        rows.append({"cell_id": cell_id, **values, "rows": n})
    catalogue = pd.DataFrame(rows, columns=["cell_id", *CONSTANT_COLUMNS, "rows"])
    planned = catalogue.copy()

    def read(i: int) -> pd.DataFrame:
        plan = planned.loc[i]
        frame = store.read_cell(plan["cell_id"])
        distinct = frame["image_id"].nunique()
        if len(frame) != plan["rows"] or distinct != len(frame):
            raise DataError(f"cell {plan['cell_id']} holds {len(frame)} predictions of {distinct} images; its file's footer "
                            f"counts {plan['rows']}. The store is inconsistent; re-run into a new --out folder")
        for column in CONSTANT_COLUMNS:
            if frame[column].nunique(dropna=False) != 1 or frame[column].iloc[0] != plan[column]:
                raise DataError(f"cell {plan['cell_id']}: column {column!r} holds {sorted(map(str, set(frame[column])))}, its "
                                f"file's footer says {plan[column]!r}. The file is damaged; re-run into a new --out folder")
        return frame

    return Cells(catalogue, read)
