"""What a report reads: the predictions of one or more runs from the store, with where they came from.

Runs are only put side by side when they were made under the same protocol version on the same data
(the data manifest hash over the train, validation and test manifests); otherwise the numbers are not
comparable and :func:`check_comparable` says which runs differ in what. Runs of one recipe card under two
recipes (``--set``) or two evaluation implementations are put side by side as separate rows
(:func:`label_variants`), never pooled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from mirage_bench.errors import DataError
from mirage_bench.protocol import HEADLINE_METRICS

RANDOM_BACKBONE_NOTE = "random backbone weights: not a pretrained result"
RECONSTRUCTION_NOTE = "reconstruction from the paper's description, not its authors' code"


@dataclass
class Evidence:
    """Predictions (store rows) plus the provenance every output prints."""

    predictions: pd.DataFrame
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


def data_hash(record: dict[str, Any]) -> str:
    """One hash of a run's train, validation and test manifests (as the engine hashed them)."""
    from mirage_bench.engine.cells import digest

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


def label_variants(predictions: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``detector`` renamed where one card appears under several recipe hashes or implementations, plus notes.

    Why: tables, figures and leaderboards key rows by detector name; ``tinycnn`` and ``tinycnn --set train.lr=0.01``
    (or the reference and the fast evaluation path) are different results, so they become the rows
    ``tinycnn (recipe 40494a21)`` / ``tinycnn (impl fast)``, named only by what differs.
    """
    keys = predictions[["detector", "recipe_hash", "impl"]].astype(str)
    variants = keys.drop_duplicates()  # in order of first appearance, as ngroup numbers them below
    names: dict[tuple[str, str, str], str] = {}
    notes = []
    for detector, part in variants.groupby("detector", sort=True):
        recipes = _distinct(sorted(set(part["recipe_hash"])), _RECIPE_FORMS)
        impls = _distinct(sorted(set(part["impl"])), _IMPL_FORMS)
        for recipe, impl in zip(part["recipe_hash"], part["impl"]):
            tags = [f"recipe {recipes[recipe]}"] * (len(recipes) > 1) + [f"impl {impls[impl]}"] * (len(impls) > 1)
            names[(detector, recipe, impl)] = f"{detector} ({', '.join(tags)})" if tags else detector
        if len(part) > 1:
            notes.append(f"{detector} appears under {_count(len(recipes), 'recipe hash', 'es')} and "
                         f"{_count(len(impls), 'evaluation implementation', 's')}: its rows are named apart by recipe hash "
                         "prefix and impl and never pooled (full values in metrics.csv).")
    variant = keys.groupby(list(keys.columns), sort=False).ngroup().to_numpy()  # each row's variant, without a row loop
    renamed = np.array([names[tuple(k)] for k in variants.itertuples(index=False)])
    return predictions.assign(detector=renamed[variant]), notes


def reconstructions(records: Sequence[dict[str, Any]]) -> set[str]:
    """The detectors whose recipe, as the runs recorded it, says ``reconstruction: true`` (records written before
    the field existed: the card's ``reconstruction`` tag, which the reconstructed cards carried)."""
    return {name for record in records for name, recipe in record["recipes"].items()
            if recipe.get("reconstruction", "reconstruction" in recipe.get("tags", []))}


def load_runs(root: str | Path, run_ids: Sequence[str]) -> Evidence:
    """The predictions of the given runs (cells shared by several runs counted once; variants named apart)."""
    from mirage_bench.engine.runner import run_predictions
    from mirage_bench.store import Store

    store = Store(root)
    ids = resolve_run_ids(store, run_ids or ["latest"])
    records = [store.run_record(run_id) for run_id in ids]
    check_comparable(records)
    frames = [run_predictions(store, record) for record in records]
    predictions = pd.concat(frames, ignore_index=True)
    predictions = predictions[~predictions.duplicated(["cell_id", "image_id"])].reset_index(drop=True)
    predictions["reconstruction"] = predictions["detector"].isin(reconstructions(records))
    predictions, notes = label_variants(predictions)
    name, version, digest = comparability(records[0])
    card = records[0]["protocol"]["card"]
    return Evidence(predictions, name, version, digest, ids, records, list(card["test"]), notes, list(card["metrics"]))
