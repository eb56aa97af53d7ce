"""What a report reads: the predictions of one or more runs from the store, with where they came from.

Runs are only put side by side when they were made under the same protocol version on the same data
(the data manifest hash over the train, validation and test manifests); otherwise the numbers are not
comparable and :func:`check_comparable` says which runs differ in what. Runs of one recipe card under two
recipes (``--set``) or two evaluation implementations are put side by side as separate rows
(:func:`label_variants`, which names a ``--set`` variant by the recipe values that differ), never pooled.
Predictions stay in the store: an :class:`Evidence` holds a catalogue of its cells
(:mod:`mirage_bench.reports.cells`), read a few at a time by whatever computes from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from mirage_bench.errors import DataError
from mirage_bench.hashing import digest
from mirage_bench.protocol import HEADLINE_METRICS
from mirage_bench.reports.cells import Cells, store_cells
from mirage_bench.store import Store

RANDOM_BACKBONE_NOTE = "random backbone weights: not a pretrained result"
RECONSTRUCTION_NOTE = "reconstruction from the paper's description, not its authors' code"


@dataclass
class Evidence:
    """The cells of predictions (store rows, read on demand) plus the provenance every output prints."""
    cells: Cells
    protocol: str
    protocol_version: int | None
    data_hash: str | None
    run_ids: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    generator_order: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=lambda: list(HEADLINE_METRICS))  # the protocol card's, in table order

    @property
    def title(self) -> str:
        version = f" v{self.protocol_version}" if self.protocol_version is not None else ""
        runs = f" (runs {', '.join(self.run_ids)})" if self.run_ids else ""
        return f"{self.protocol}{version}{runs}"

    @property
    def predictions(self) -> pd.DataFrame:
        """Every row of every cell in memory: for small evidence and tests; reports read cells a few at a time."""
        return self.cells.rows()


def data_hash(record: dict[str, Any]) -> str:
    """One hash of a run's train, validation and test manifests (as the engine hashed them)."""
    return digest(record["data"])[:16]


def comparability(record: dict[str, Any]) -> tuple[str, int, str]:
    return record["protocol"]["name"], int(record["protocol"]["version"]), data_hash(record)


def check_comparable(records: Sequence[dict[str, Any]]) -> None:
    """Refuse to put runs together whose protocol, protocol version or data manifest hash differ."""
    keys = {r["run_id"]: comparability(r) for r in records}
    if len(set(keys.values())) <= 1:
        return
    first_id, first = next(iter(keys.items()))
    parts = []
    for run_id, key in keys.items():
        diffs = [f"{what} {theirs!r} (run {first_id}: {ours!r})" for what, theirs, ours in
                 zip(("protocol", "protocol version", "data manifest hash"), key, first) if theirs != ours]
        if diffs:
            parts.append(f"run {run_id} has " + ", ".join(diffs))
    raise DataError("these runs are not comparable and are never ranked together: " + "; ".join(parts)
                    + ". Report them separately, or re-run them on the same protocol version and data.")


def resolve_run_ids(store: Any, run_ids: Sequence[str]) -> list[str]:
    """Run ids as given, with ``latest`` meaning the newest finished run; every id must exist."""
    known = store.run_ids()
    out = []
    for run_id in run_ids:
        run_id = store.latest_run_id() if run_id == "latest" else run_id
        if run_id not in known:
            raise DataError(f"no run {run_id!r} in {store.root / 'runs'}; finished runs: {', '.join(known) or '(none)'}")
        out.append(run_id)
    return out


def _distinct(values: Sequence[str], forms: Sequence[Callable[[str], str]]) -> dict[str, str]:
    """Each value's first short form that keeps all of them apart (the last form should be the value itself)."""
    for form in forms:
        short = {v: form(v) for v in values}
        if len(set(short.values())) == len(short):
            return short
    return {v: v for v in values}


def _count(n: int, noun: str, plural: str) -> str:
    return f"{n} {noun}{plural * (n != 1)}"


_RECIPE_FORMS = (lambda h: h[:8], lambda h: h[:16], str)
_IMPL_FORMS = (lambda i: i.partition(":")[0], str)  # "fast:pil+cpu-degrade+cpu-preprocess" -> "fast"
#: At most this many differing recipe values name a variant (the rest: "+N more"; metrics.csv keeps the hash).
SHOWN_OVERRIDES = 3


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def _overrides(recipes: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Per recipe hash, the recipe values in which it differs from the detector's other recipes (``train.lr=0.003``)."""
    flat = {h: _flat(recipe) for h, recipe in recipes.items()}
    keys = sorted({k for values in flat.values() for k in values})
    differ = [k for k in keys if len({repr(values.get(k, "–")) for values in flat.values()}) > 1]
    out = {}
    for h, values in flat.items():
        parts = [f"{k}={values.get(k, '–')}" for k in differ]
        more = f", +{len(parts) - SHOWN_OVERRIDES} more" if len(parts) > SHOWN_OVERRIDES else ""
        out[h] = ", ".join(parts[:SHOWN_OVERRIDES]) + more
    return out


def recipes_by_hash(catalogue: pd.DataFrame, records: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(detector, recipe hash) -> the recipe as the runs recorded it, where the records tell it unambiguously (a
    record keeps one recipe per detector name; a hash seen with two recorded recipes is left out)."""
    hashes = catalogue.set_index("cell_id")[["detector", "recipe_hash"]]
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        ids = [c["cell_id"] for c in record.get("eval_cells", []) if c["cell_id"] in hashes.index]
        for detector, recipe_hash in set(map(tuple, hashes.loc[ids].astype(str).to_numpy())):
            recipe = record.get("recipes", {}).get(detector)
            if recipe is not None:
                found.setdefault((detector, recipe_hash), []).append(recipe)
    return {key: seen[0] for key, seen in found.items() if all(r == seen[0] for r in seen)}


def label_variants(predictions: pd.DataFrame, recipes: dict[tuple[str, str], dict[str, Any]] | None = None
                   ) -> tuple[pd.DataFrame, list[str]]:
    """``detector`` renamed where one card appears under several recipe hashes or implementations, plus notes.

    Why: tables, figures and leaderboards key rows by detector name; ``tinycnn`` and ``tinycnn --set train.lr=0.01``
    (or the reference and the fast evaluation path) are different results, so they become the rows
    ``tinycnn (train.lr=0.01, recipe 40494a21)`` / ``tinycnn (impl fast)``, named only by what differs: a recipe by
    the values that differ between the detector's recipes (``recipes``: (detector, hash) -> recorded recipe, where
    known) and its hash prefix.
    """
    recipes = recipes or {}
    keys = predictions[["detector", "recipe_hash", "impl"]].astype(str)
    variants = keys.drop_duplicates()  # in order of first appearance, as ngroup numbers them below
    names: dict[tuple[str, str, str], str] = {}
    notes = []
    for detector, part in variants.groupby("detector", sort=True):
        hashes = sorted(set(part["recipe_hash"]))
        recipe_tags = {h: f"recipe {short}" for h, short in _distinct(hashes, _RECIPE_FORMS).items()}
        if len(hashes) > 1 and all((detector, h) in recipes for h in hashes):
            overrides = _overrides({h: recipes[(detector, h)] for h in hashes})
            recipe_tags = {h: f"{overrides[h]}, {tag}" if overrides[h] else tag for h, tag in recipe_tags.items()}
        impls = _distinct(sorted(set(part["impl"])), _IMPL_FORMS)
        for recipe, impl in zip(part["recipe_hash"], part["impl"]):
            tags = [recipe_tags[recipe]] * (len(hashes) > 1) + [f"impl {impls[impl]}"] * (len(impls) > 1)
            names[(detector, recipe, impl)] = f"{detector} ({', '.join(tags)})" if tags else detector
        if len(part) > 1:
            notes.append(f"{detector} appears under {_count(len(hashes), 'recipe hash', 'es')} and "
                         f"{_count(len(impls), 'evaluation implementation', 's')}: its rows are named apart by the recipe "
                         "values that differ (where the run records tell them), recipe hash prefix and impl, and never pooled "
                         "(full values in metrics.csv).")
    variant = keys.groupby(list(keys.columns), sort=False).ngroup().to_numpy()  # each row's variant, without a row loop
    renamed = np.array([names[tuple(k)] for k in variants.itertuples(index=False)])
    return predictions.assign(detector=renamed[variant]), notes


def reconstructions(records: Sequence[dict[str, Any]]) -> set[str]:
    """The detectors whose recipe, as the runs recorded it, says ``reconstruction: true`` (records written before
    the field existed: the card's ``reconstruction`` tag, which the reconstructed cards carried)."""
    return {name for record in records for name, recipe in record["recipes"].items()
            if recipe.get("reconstruction", "reconstruction" in recipe.get("tags", []))}


def load_runs(root: str | Path, run_ids: Sequence[str]) -> Evidence:
    """The cells of the given runs (cells shared by several runs counted once; variants named apart), planned from
    their files' footers; no prediction is read here."""
    store = Store(root)
    ids = resolve_run_ids(store, run_ids or ["latest"])
    records = [store.run_record(run_id) for run_id in ids]
    check_comparable(records)
    cells = store_cells(store, [c for record in records for c in record["eval_cells"]])
    catalogue = cells.catalogue.assign(reconstruction=cells.catalogue["detector"].isin(reconstructions(records)))
    catalogue, notes = label_variants(catalogue, recipes_by_hash(catalogue, records))
    name, version, digest = comparability(records[0])
    card = records[0]["protocol"]["card"]
    return Evidence(cells.relabel(catalogue), name, version, digest, ids, records, list(card["test"]), notes, list(card["metrics"]))
