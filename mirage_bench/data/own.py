"""A protocol built from a folder of one's own data, with no card to write: :func:`protocol_from_folder`.

The folder is listed, not decoded: the layout is detected (or given), its generators are the folders the layout
finds, and its splits are read from the layout's split folders or, for a folder without any (ForenSynths'
``{gen}/{0_real,1_fake}``, which layouts read as split ``test``), carved by the card's seeded ``carve`` rule.
Every choice is returned as a sentence, so that a command can print it and a run can record it.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import yaml

from mirage_bench.config import validate
from mirage_bench.data.carve import carved_split
from mirage_bench.data.layouts import DEFAULT_SPLIT, LAYOUTS, ManifestFileLayout, Record, detect_layout
from mirage_bench.data.manifest import UNKNOWN_FAMILY, layout_hint
from mirage_bench.errors import DataError
from mirage_bench.progress import Progress, no_progress, step
from mirage_bench.protocol import CarveRule, ProtocolCard

_LABELS = {0: "real", 1: "fake"}
#: Test splits a layout's folders may name, in the order they are preferred (GenImage tests on ``val``).
TEST_SPLITS = ("test", "val")


class BuiltProtocol(NamedTuple):
    """A protocol card built from a folder, and every choice made building it (one sentence each)."""

    card: ProtocolCard
    choices: list[str]


def protocol_from_folder(
    root: str | Path, train: Sequence[str], test: Sequence[str] | None = None, layout: str | None = None, *,
    split_seed: int = 0, test_fraction: float = 0.2, val_fraction: float = 0.1,
    rows: Mapping[str, Sequence[str]] | None = None, name: str | None = None, progress: Progress = no_progress,
) -> BuiltProtocol:
    """The protocol that trains on the ``train`` generators of the folder ``root`` and tests on ``test``.

    ``train``/``test``: generator folder names as the layout finds them (case-blind). ``test`` defaults to every
    generator not trained on: the unseen generators, the field's question. A trained generator named in ``test``
    is tested on its own held-out split. ``layout``: a registered layout name, or None/"auto" to detect it.
    ``split_seed`` and ``test_fraction``: the ``carve`` rule, used only when the folder has no split folders;
    ``split_seed`` and ``val_fraction``: the validation carved from training. ``rows``: for a manifest list, the
    rows to read (column -> values). ``name``: the card's name (default ``ROOTNAME-train-A+B``). ``progress`` shows
    the listing (1.3M files take about 40 s).
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"data root {root} does not exist")
    layout_name, how = _layout(root, layout)
    choices = [f"layout {layout_name} ({how})"]
    with step(progress, f"list the files under {root}"):
        files = _usable(root, layout_name, rows or {})
    found = _generators(files)
    choices.append("generators found (real/fake files, before decoding): "
                   + "; ".join(f"{g} {c[0]}/{c[1]}" for g, c in found.items()))
    train = _pick(train, found, "--train")
    entries, pairing = _entries(found)
    choices += pairing
    real_only = [g for g in train if entries[g]["role"] == "real"]
    if real_only:
        raise DataError(f"training generator(s) {real_only} hold only real images; train on generators with fakes: "
                        f"{[g for g in found if entries[g]['role'] != 'real']}")
    if test is None:
        test = [g for g in found if g not in train and entries[g]["role"] != "real"]
        if not test:
            raise DataError(f"every generator with fakes in {root} is trained on ({', '.join(train)}), so none is left "
                            "to test as unseen; pass --test with the generators to test (a trained generator is tested "
                            "on its held-out split)")
        choices.append(f"test: every generator not trained on (the unseen generators): {', '.join(test)}")
    else:
        test = _pick(test, found, "--test")
        choices.append(f"test: as given: {', '.join(test)}")
    data = {
        "name": name or f"{_slug(root.stem if root.is_file() else root.name)}-train-{'+'.join(train)}",
        "version": 1,
        "description": f"Own data (folder {root.name!r}): train on {', '.join(train)}; test on {', '.join(test)}.",
        "layout": layout_name, "generators": entries, "train": train, "test": test,
        "validation": {"fraction": val_fraction, "seed": split_seed}, "rows": {k: list(v) for k, v in (rows or {}).items()},
    }
    rule = validate(CarveRule, {"test_fraction": test_fraction, "seed": split_seed}, "the carve rule (test fraction, split seed)")
    data.update(_splits(files, data, rule, choices))
    choices.append(f"validation: {val_fraction:g} of each training generator's train split, per label, seeded hash "
                   f"(seed {split_seed}); test images never validate")
    choices.append(f"family of every generator: {UNKNOWN_FAMILY} (set `family:` in a card for family averages)")
    card = validate(ProtocolCard, data, f"protocol built from {root}")
    return BuiltProtocol(card, choices)


def protocol_yaml(built: BuiltProtocol) -> str:
    """The card as YAML to edit, headed by the choices as comments; loading it back gives the same card."""
    card = built.card
    data = card.model_dump(mode="json", exclude={"source", "generators"})
    data["generators"] = {k: g.model_dump(mode="json", exclude_defaults=True) for k, g in card.generators.items()}
    head = ["Built by `mirage-bench protocols new` (mirage_bench.data.own.protocol_from_folder). Choices made:",
            *(f"- {c}" for c in built.choices), "Edit freely; raise `version` when the data or the rules change."]
    return "".join(f"# {line}\n" for line in head) + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)


def _layout(root: Path, layout: str | None) -> tuple[str, str]:
    if layout in (None, "auto"):
        name, evidence = detect_layout(root)
        return name, f"detected: found {evidence}"
    LAYOUTS.get(layout)  # an unknown name fails here with "did you mean"
    return layout, "given"


def _usable(root: Path, layout: str, rows: Mapping[str, Sequence[str]]) -> list[Record]:
    """The files the layout places (listed, not decoded); none is an error naming the likely cause."""
    reader = LAYOUTS.get(layout)()
    if rows and not isinstance(reader, ManifestFileLayout):
        raise DataError(f"rows {dict(rows)} pick rows of a manifest list, but layout {layout!r} reads folders; drop --rows")
    records = reader.read(root, rows) if isinstance(reader, ManifestFileLayout) else reader.scan(root)
    usable = [r for r in records if r.problem is None and r.generator is not None]
    if not usable:
        raise DataError(f"{root}: no usable file in layout {layout!r} ({len(records)} file(s) found). "
                        + (layout_hint(root, layout) or "`mirage-bench data verify ROOT` lists every file and its problem."))
    return usable


def _generators(files: list[Record]) -> dict[str, Counter]:
    """Generator folder -> Counter of labels, in sorted order (never the file system's)."""
    found: dict[str, Counter] = {}
    for r in files:
        found.setdefault(r.generator, Counter())[r.label] += 1
    return {g: found[g] for g in sorted(found)}


def _pick(wanted: Sequence[str], found: Mapping[str, Counter], option: str) -> list[str]:
    """The generator folders ``wanted`` names (exact, else the one case-blind match), in order, once each."""
    if not wanted:
        raise DataError(f"{option} names no generator; generators found: {', '.join(found)}")
    picked: list[str] = []
    for name in wanted:
        matches = [name] if name in found else [g for g in found if g.lower() == name.lower()]
        if len(matches) != 1:
            close = difflib.get_close_matches(name, list(found), n=3, cutoff=0.5)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise DataError(f"{option}: no generator folder {name!r} in the data.{hint} Generators found: {', '.join(found)}")
        if matches[0] not in picked:
            picked.append(matches[0])
    return picked


def _entries(found: Mapping[str, Counter]) -> tuple[dict[str, dict], list[str]]:
    """Card entries of the generators, and the pairing choices: a folder of fakes only takes its reals from the
    one folder of reals only (Synthbuster's RAISE, a ``real/`` root); more than one such folder is ambiguous."""
    roles = {g: "both" if set(c) == {0, 1} else _LABELS[next(iter(c))] for g, c in found.items()}
    reals = [g for g, role in roles.items() if role == "real"]
    fakes = [g for g, role in roles.items() if role == "fake"]
    entries = {g: {"folder": g, "family": UNKNOWN_FAMILY, "role": role} for g, role in roles.items()}
    if not fakes:
        return entries, []
    if len(reals) != 1:
        raise DataError(f"generator folder(s) {fakes} hold only fake images, and the reals to pair them with are "
                        f"ambiguous: folders of reals only: {reals or 'none'}. Write the pairing in a card "
                        "(`reals:` of each generator; start from `mirage-bench protocols new` on a folder without them).")
    for g in fakes:
        entries[g]["reals"] = reals[0]
    return entries, [f"reals: {', '.join(fakes)} hold only fakes; paired with the reals of {reals[0]}"]


def _splits(files: list[Record], data: dict, rule: CarveRule, choices: list[str]) -> dict:
    """train_split, test_split and carve of the card: read from the layout's split folders, or carved when the folder
    has none; a training or test generator without the split it needs is an error."""
    splits: dict[str, set[str]] = {}
    for r in files:
        splits.setdefault(r.generator, set()).add(r.split)
    reals = {g: e.get("reals") for g, e in data["generators"].items()}
    read_by_train = {k for g in data["train"] for k in (g, reals[g]) if k is not None}
    if set().union(*splits.values()) == {DEFAULT_SPLIT}:
        carved = Counter((r.generator, carved_split(r.rel_path, rule), r.label) for r in files if r.generator in read_by_train)
        for g in sorted(read_by_train):
            for split in ("train", "test"):
                if not any(carved[(g, split, label)] for label in (0, 1)):
                    raise DataError(f"generator {g!r}: carving {rule.test_fraction:g} for test (seed {rule.seed}) leaves "
                                    f"its {split} split empty; use more images or another --test-fraction")
        choices.append(
            f"splits: no split folders, so the files of {', '.join(sorted(read_by_train))} are carved into train and test "
            f"by sha256('{rule.seed}/carve/<path under the root>') (test_fraction {rule.test_fraction:g}, seed {rule.seed}: "
            + "; ".join(f"{g} train {carved[(g, 'train', 0)]}/{carved[(g, 'train', 1)]}, test "
                        f"{carved[(g, 'test', 0)]}/{carved[(g, 'test', 1)]} real/fake" for g in sorted(read_by_train))
            + f"); the other generators are tested on all their files")
        return {"train_split": "train", "test_split": "test", "carve": rule.model_dump()}
    lacking = {g: sorted(splits[g]) for g in sorted(read_by_train) if "train" not in splits[g]}
    if lacking:
        raise DataError(f"training generator(s) lack a 'train' split folder: {lacking}. Train on generators that have "
                        "one, or use a folder without split folders (its train/test split is then carved)")
    tested = {k for g in data["test"] for k in (g, reals[g]) if k is not None}
    usable = [s for s in TEST_SPLITS if all(s in splits[g] for g in tested)]
    if not usable:
        raise DataError(f"the test generators share no test split ({' or '.join(TEST_SPLITS)}): "
                        f"{ {g: sorted(splits[g]) for g in sorted(tested)} }")
    choices.append(f"splits: read from the folders: train from 'train', test from {usable[0]!r}"
                   + (" (as GenImage, whose val folder is its test set)" if usable[0] == "val" else ""))
    return {"train_split": "train", "test_split": usable[0]}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", text).strip("-") or "own"
