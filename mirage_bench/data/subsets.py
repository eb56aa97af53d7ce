"""From a manifest to a protocol's train, validation and test subsets, exactly as its card says.

- Validation is carved only from the training generators' training split, per generator, stratified by
  label (GenImage's ``val`` is its test set, so it is never used for validation).
- Every random choice is a seeded hash of the image id, so it does not depend on row order, and adding a
  file elsewhere does not change which images are chosen.
- An image whose content hash appears in any test subset is removed from training and validation.
- Data whose generators or counts contradict the card is refused, with the differences listed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import pandas as pd

from mirage_bench.data.layouts import DEFAULT_SPLIT
from mirage_bench.errors import DataError

if TYPE_CHECKING:
    from mirage_bench.protocol import ProtocolCard

_LABELS = {0: "real", 1: "fake"}
ROLES = ("train", "test")


@dataclass
class ProtocolData:
    """A protocol's subsets: each a manifest DataFrame, keyed by generator."""

    protocol: "ProtocolCard"
    train: dict[str, pd.DataFrame]
    validation: dict[str, pd.DataFrame]
    test: dict[str, pd.DataFrame]
    notes: list[str] = field(default_factory=list)

    def counts(self) -> pd.DataFrame:
        """One row per (role, generator, label) with its image count."""
        rows = []
        for role in ("train", "validation", "test"):
            for generator, frame in getattr(self, role).items():
                for label in (0, 1):
                    rows.append({"role": role, "generator": generator, "label": label, "images": int((frame["label"] == label).sum())})
        return pd.DataFrame(rows, columns=["role", "generator", "label", "images"])

    def record(self) -> dict[str, Any]:
        """What a run stores about its data: the card, the rules that chose the images, the counts."""
        p = self.protocol
        return {
            "protocol": p.name, "version": p.version, "mode": p.mode,
            "validation": {"fraction": p.validation.fraction, "seed": p.validation.seed, "carved_from": f"{p.train_split} of {p.train}"},
            "subsample": {"per_class": p.subsample.per_class, "seed": p.subsample.seed},
            "carve": p.carve.model_dump() if p.carve is not None else None, "rows": dict(p.rows),
            "counts": self.counts().to_dict(orient="records"), "notes": list(self.notes),
        }


def seeded_order(frame: pd.DataFrame, seed: int, salt: str) -> pd.DataFrame:
    """``frame`` in a seeded pseudo-random order that depends only on each row's ``image_id``."""
    keys = frame["image_id"].map(lambda i: hashlib.sha256(f"{seed}/{salt}/{i}".encode()).hexdigest())
    return frame.assign(_key=keys).sort_values(["_key", "image_id"], kind="stable").drop(columns="_key")


def _by_rel_path(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("rel_path", kind="stable", ignore_index=True)


def subset_rows(protocol: "ProtocolCard", manifest: pd.DataFrame, generator: str, split: str) -> pd.DataFrame:
    """A generator's rows in ``split``; a fake-only subset takes its reals from the generator it pairs with."""
    rows = manifest[(manifest["generator"] == generator) & (manifest["split"] == split)]
    reals_key = protocol.generators[generator].reals
    if reals_key is not None:
        reals = manifest[(manifest["generator"] == reals_key) & (manifest["split"] == split) & (manifest["label"] == 0)]
        rows = pd.concat([rows[rows["label"] == 1], reals])
    return _by_rel_path(rows)


def carve_validation(rows: pd.DataFrame, fraction: float, seed: int, salt: str) -> pd.DataFrame:
    """A seeded ``fraction`` of each label (at least one image of a label that has two or more)."""
    parts = []
    for label in (0, 1):
        of_label = rows[rows["label"] == label]
        n = max(1, round(fraction * len(of_label))) if len(of_label) >= 2 else 0
        parts.append(seeded_order(of_label, seed, f"validation/{salt}/{label}").head(n))
    return _by_rel_path(pd.concat(parts))


def subsample(rows: pd.DataFrame, per_class: int | None, seed: int, salt: str) -> pd.DataFrame:
    """At most ``per_class`` images of each label, chosen by a seeded hash order."""
    if per_class is None:
        return rows
    parts = [seeded_order(rows[rows["label"] == label], seed, f"subsample/{salt}/{label}").head(per_class) for label in (0, 1)]
    return _by_rel_path(pd.concat(parts))


def splits_read(protocol: "ProtocolCard", roles: Sequence[str] = ROLES) -> dict[str, list[str]]:
    """Generator key -> the publisher splits that ``roles`` read of it (paired real subsets included).

    Why: a root may hold only one role's data (``--train-data-root``, ``train_from``), so it is checked
    only for what is read from it.
    """
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"roles {unknown} are not among {ROLES}")
    reads: dict[str, list[str]] = {}
    for role in roles:
        keys, split = (protocol.train, protocol.train_split) if role == "train" else (protocol.test, protocol.test_split)
        for key in keys:
            for read in (key, protocol.generators[key].reals):
                if read is not None and split not in reads.setdefault(read, []):
                    reads[read].append(split)
    return reads


def check_counts(protocol: "ProtocolCard", manifest: pd.DataFrame, exclusions: pd.DataFrame | None = None,
                 roles: Sequence[str] = ROLES) -> list[str]:
    """Raise DataError listing every way the data ``roles`` read contradicts the card; return notes that are
    not errors.

    Published counts are of files as distributed, so excluded files of a subset count towards them.
    """
    found = set(manifest["generator"]) | set(manifest.attrs.get("unread", {}).get("generators", []))  # read or not
    problems: list[str] = []
    reads = splits_read(protocol, roles)
    for key, splits in reads.items():
        entry = protocol.generators[key]
        if key not in found:
            problems.append(
                f"generator {key!r} (folder {entry.folder!r}, aliases {entry.aliases}) has no images; "
                f"generators found: {sorted(found)}"
            )
            continue
        for split in splits:
            if entry.role == "real":  # a pool of reals that fake-only subsets pair with
                labels, wanted = set(manifest[(manifest["generator"] == key) & (manifest["split"] == split)]["label"]), {0}
            else:
                labels, wanted = set(subset_rows(protocol, manifest, key, split)["label"]), {0, 1}
            missing = sorted(wanted - labels)
            if missing:
                problems.append(f"{key}/{split}: no {' or '.join(_LABELS[m] for m in missing)} images "
                                f"({_where_files_lie(manifest, key)})")
    all_files = manifest[["generator", "split", "label"]]
    if exclusions is not None and len(exclusions):
        all_files = pd.concat([all_files, exclusions[["generator", "split", "label"]].dropna()])
    for key, splits in reads.items():
        for split, counts in protocol.generators[key].expected.items():
            for label, expected in ((0, counts.real), (1, counts.fake)):
                if expected is None or split not in splits:
                    continue
                have = int(((all_files["generator"] == key) & (all_files["split"] == split) & (all_files["label"] == label)).sum())
                if have != expected:
                    problems.append(f"{key}/{split} {_LABELS[label]}: card expects {expected} images, found {have} (excluded files included)")
    if problems:
        raise DataError(
            f"the data contradicts protocol {protocol.name!r} v{protocol.version} ({protocol.source}):\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\nCheck the data root and its folder names against the card (`mirage-bench protocols show "
            f"{protocol.name}`); `mirage-bench data verify` lists excluded files."
        )
    unknown = sorted(found - set(protocol.generators))
    return [f"folders not in protocol {protocol.name!r}, ignored: {unknown}"] if unknown else []


def _where_files_lie(manifest: pd.DataFrame, key: str) -> str:
    """The splits ``key``'s files lie in (read or not), and the fix when they all lie in a flat folder's ``test``."""
    splits = set(manifest.loc[manifest["generator"] == key, "split"])
    splits |= set(manifest.attrs.get("unread", {}).get("splits", {}).get(key, []))
    if splits == {DEFAULT_SPLIT}:
        return (f"every file of it lies in split {DEFAULT_SPLIT!r}, where a folder without split folders puts them; to train on "
                "it, carve a train/test split ('carve:' in the card; `mirage-bench protocols new` writes one)")
    return f"split folder missing? its files lie in split(s) {', '.join(sorted(splits)) or '(none)'}"


def protocol_subsets(protocol: "ProtocolCard", manifest: pd.DataFrame, exclusions: pd.DataFrame | None = None,
                     roles: Sequence[str] = ROLES, test_sha256: Iterable[str] = ()) -> ProtocolData:
    """The protocol's subsets of ``manifest`` for ``roles`` (checked against the card first).

    ``test_sha256``: content hashes of test images read from another root; like this root's own test
    images, they are removed from training and validation.
    """
    notes = check_counts(protocol, manifest, exclusions, roles)
    test = _test_subsets(protocol, manifest, notes) if "test" in roles else {}
    avoid = set(test_sha256) | content_hashes(test)
    train, validation = _training_subsets(protocol, manifest, avoid, notes) if "train" in roles else ({}, {})
    return ProtocolData(protocol, train, validation, test, notes)


def content_hashes(subsets: dict[str, pd.DataFrame]) -> set[str]:
    """The sha256 of every image in ``subsets``: test images, which training and validation must not hold."""
    return set().union(*(set(frame["sha256"]) for frame in subsets.values()))


def _test_subsets(protocol: "ProtocolCard", manifest: pd.DataFrame, notes: list[str]) -> dict[str, pd.DataFrame]:
    test = {}
    for key in protocol.test:
        rows = subset_rows(protocol, manifest, key, protocol.test_split)
        per_class = protocol.subsample.per_class
        short = {_LABELS[l]: int((rows["label"] == l).sum()) for l in (0, 1) if per_class and (rows["label"] == l).sum() < per_class}
        if short:
            notes.append(f"test {key}: fewer images than subsample.per_class={per_class}, all kept: {short}")
        test[key] = subsample(rows, per_class, protocol.subsample.seed, key)
    return test


def _training_subsets(protocol: "ProtocolCard", manifest: pd.DataFrame, test_hashes: set[str],
                      notes: list[str]) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    train, validation = {}, {}
    for key in protocol.train:
        rows = subset_rows(protocol, manifest, key, protocol.train_split)
        leaked = rows["sha256"].isin(test_hashes)
        if leaked.any():
            notes.append(f"train {key}: {int(leaked.sum())} image(s) identical to a test image removed from training and validation")
            rows = rows[~leaked]
        if set(rows["label"]) != {0, 1}:
            raise DataError(
                f"train {key}: after removing images identical to test images, {len(rows)} training image(s) remain "
                f"with labels {sorted(set(rows['label']))}; training needs reals and fakes. Check that the "
                f"{protocol.train_split!r} and {protocol.test_split!r} folders are not copies of each other."
            )
        validation[key] = carve_validation(rows, protocol.validation.fraction, protocol.validation.seed, key)
        train[key] = _by_rel_path(rows[~rows["image_id"].isin(set(validation[key]["image_id"]))])
    return train, validation


def training_sets(data: ProtocolData) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Name -> (train, validation) of each model the card's ``mode`` asks for.

    ``matrix``: one per training generator. ``single``: one on the union of the training generators, named
    ``a+b``, its validation the union of theirs (an image shared through a paired real subset is kept once,
    and never in training when it validates).
    """
    protocol = data.protocol
    if protocol.mode == "matrix":
        return {key: (data.train[key], data.validation[key]) for key in protocol.train}
    validation = pd.concat([data.validation[k] for k in protocol.train]).drop_duplicates("image_id")
    train = pd.concat([data.train[k] for k in protocol.train]).drop_duplicates("image_id")
    train = train[~train["image_id"].isin(set(validation["image_id"]))]
    return {"+".join(protocol.train): (_by_rel_path(train), _by_rel_path(validation))}
