"""What a run is about: the protocol card, its data on disk, the recipes, degradations and seeds.

Training data are the training generators of the training card (the protocol itself, or the card its
``train_from`` names), read from the training data root; test subsets are the protocol's own, read from the
data root. The two roots are the same folder unless ``--train-data-root`` says otherwise. What reading the
data noted or excluded travels with the benchmark, so a run can print and record it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from mirage_bench import distributed
from mirage_bench.config import RecipeCard
from mirage_bench.data import build_manifest, protocol_subsets
from mirage_bench.data.facts_cache import FactsCache
from mirage_bench.data.layouts import LAYOUTS
from mirage_bench.data.manifest import NOT_DATA, excluded_phrase, exclusion_summary, problems
from mirage_bench.data.stats import conversions, data_stats
from mirage_bench.data.subsets import ROLES, content_hashes, training_sets
from mirage_bench.degradations import Degradation, expand
from mirage_bench.errors import DataError
from mirage_bench.mini import default_root
from mirage_bench.progress import Progress, no_progress
from mirage_bench.preprocess import check_pixel_cap, eval_upscale_side
from mirage_bench.protocol import ProtocolCard, load_protocol, training_protocol
from mirage_bench.runconfig import RunConfig
from mirage_bench.zoo.load import recipe_by_name


@dataclass
class Subsets:
    """``train``/``validation``: training-set name -> manifest (one entry per model the mode asks for);
    ``test``: test generator -> manifest."""

    train: dict[str, pd.DataFrame]
    validation: dict[str, pd.DataFrame]
    test: dict[str, pd.DataFrame]


@dataclass
class DataSource:
    """One data root as a run read it: with which card, for which roles, and what was noted or excluded."""

    root: str
    protocol: str
    roles: str  # "train and test", "train" or "test"
    notes: list[str]
    exclusions: pd.DataFrame
    decoded: int  # images read and checked
    unread: int  # image files of generators or splits these roles do not read: not decoded
    warnings: list[str] = field(default_factory=list)  # what `mirage-bench data stats` warns about these images
    converted: dict[str, int] = field(default_factory=dict)  # images decoding converted to RGB, by kind
    upscaled: dict[str, int] = field(default_factory=dict)  # recipe -> test images its evaluation upscales

    @classmethod
    def of(cls, root: Path, protocol: str, roles: str, notes: list[str], manifest: pd.DataFrame,
           exclusions: pd.DataFrame) -> "DataSource":
        return cls(str(root.absolute()), protocol, roles, notes, exclusions, len(manifest), manifest.attrs["unread"]["files"],
                   warnings=data_stats(manifest).warnings, converted=conversions(manifest))

    def record(self) -> dict[str, Any]:
        return {"root": self.root, "protocol": self.protocol, "roles": self.roles, "notes": list(self.notes),
                "decoded": self.decoded, "unread": self.unread, "excluded": exclusion_summary(self.exclusions),
                "warnings": list(self.warnings), "converted": dict(self.converted), "upscaled": dict(self.upscaled)}

    def lines(self) -> list[str]:
        """The console report: notes, data warnings, conversions, then excluded files counted per kind with the first
        few paths.

        Files the card names as not data (its metadata, the publisher's READMEs) are counted, not listed.
        """
        unread = f" ({self.unread} more in generators or splits not read here)" if self.unread else ""
        out = [f"data for {self.roles}: {self.root} (protocol {self.protocol}): {self.decoded} images{unread}, "
               f"{excluded_phrase(self.exclusions)}"]
        out += [f"  note: {note}" for note in self.notes]
        out += [f"  warning: {warning}" for warning in self.warnings]
        if self.converted:
            out.append("  converted to RGB: " + ", ".join(f"{count} x {kind}" for kind, count in self.converted.items()))
        if self.upscaled:
            out.append("  test images upscaled at evaluation (smaller than the detector's input): "
                       + ", ".join(f"{count} for {name}" for name, count in self.upscaled.items()))
        for kind, info in self.record()["excluded"].items():
            more = ", ..." if info["count"] > len(info["first"]) else ""
            if kind != NOT_DATA:
                out.append(f"  excluded {info['count']} x {kind}: {', '.join(info['first'])}{more}")
        if len(problems(self.exclusions)):
            out.append(f"  (`mirage-bench data verify {self.root}` lists every excluded file with its reason)")
        return out


@dataclass
class Benchmark:
    protocol: ProtocolCard
    subsets: Subsets
    recipes: list[RecipeCard]
    degradations: list[Degradation]
    seeds: list[int]
    training: ProtocolCard | None = None  # the card whose training data train the models, when not ``protocol``
    sources: list[DataSource] = field(default_factory=list)


@dataclass
class Cards:
    """What a run is asked for, resolved from its cards before any data is read: enough to check every option
    (:func:`mirage_bench.engine.runner.preflight`) before the scan."""

    protocol: ProtocolCard
    training: ProtocolCard  # the card whose training data train the models (``protocol`` itself, or its train_from)
    recipes: list[RecipeCard]
    degradations: list[Degradation]
    seeds: list[int]
    data_root: Path


def load_cards(config: RunConfig, protocol: str | Path | None = None) -> Cards:
    """The protocol (``config.protocol``, or the card at ``protocol``), its training card, the recipes (with
    ``config.overrides`` applied to all) and the degradations; a protocol that ships no data needs ``data_root``.
    Reads no data file."""
    card = load_protocol(str(protocol or config.protocol), (), config.protocol_dirs)
    trainer = training_protocol(card, config.protocol_dirs)
    detectors = config.detectors
    if detectors is None:
        if not card.detectors:
            raise DataError(f"protocol {card.name!r} names no default detectors; pass --detectors a,b (see `mirage-bench detectors list`)")
        detectors = card.detectors
    data_root = config.data_root
    if data_root is None:
        if not card.name.startswith("mini"):
            raise DataError(f"protocol {card.name!r} needs its data: pass --data-root DIR (only the built-in mini protocols ship data)")
        data_root = default_root()
    swap = [f"backbone.name={config.backbone}"] * bool(config.backbone) + [f"backbone.pretrained={config.pretrained}"] * bool(config.pretrained)
    recipes = []
    for name in detectors:
        recipe = recipe_by_name(name, config.overrides, config.recipe_dirs)
        if swap and recipe.backbone is not None:  # recipes without a backbone (e.g. a CNN from scratch) are unaffected
            recipe = recipe_by_name(name, [*config.overrides, *swap], config.recipe_dirs)
        recipes.append(recipe)
    return Cards(card, trainer, recipes, expand(list(card.degradations) or ["none"]), list(config.seeds), Path(data_root))


def load_benchmark(config: RunConfig, *, protocol: str | Path | None = None, scan_workers: int | None = None,
                   facts: FactsCache | None = None, check: Callable[[Cards], None] | None = None,
                   progress: Progress = no_progress) -> Benchmark:
    """Resolve cards and data: the protocol (``config``'s, or the card at ``protocol``), its subsets on disk, the
    recipes. ``scan_workers``: processes decoding the data roots (default: every core this process may use, at most
    16); ``facts``: what earlier scans found about unchanged files, so that only new or changed files are decoded;
    ``check``: called with the resolved cards before any data file is read (the pre-flight and the lock);
    ``progress``: shows the scan (listing, decoding)."""
    cards = load_cards(config, protocol)
    if check is not None:
        check(cards)
    scan = {"workers": scan_workers or min(16, distributed.cores_per_rank()), "facts": facts, "progress": progress}
    subsets, found = _read_data(cards.protocol, cards.training, cards.data_root, Path(config.train_data_root or cards.data_root), scan)
    found[0].upscaled = check_test_images(subsets.test, cards.recipes)  # found[0] read the test images
    return Benchmark(cards.protocol, subsets, cards.recipes, cards.degradations, cards.seeds,
                     None if cards.training is cards.protocol else cards.training, found)


def check_test_images(test: dict[str, pd.DataFrame], recipes: list[RecipeCard]) -> dict[str, int]:
    """Before any training: refuse a test image above a recipe's pixel cap (``input.max_pixels``), naming it; and
    per recipe, how many test images its evaluation upscales (shorter side below its resize or crop)."""
    if not test:
        return {}
    images = pd.concat(list(test.values()), ignore_index=True).drop_duplicates("path")  # reals shared by several test generators count once
    largest = images.loc[(images["width"] * images["height"]).idxmax()]
    upscaled = {}
    for recipe in recipes:
        check_pixel_cap(int(largest["width"]), int(largest["height"]), recipe.input, f"{largest['path']} (test images of {recipe.name})")
        side = eval_upscale_side(recipe.input)
        count = 0 if side is None else int((images[["width", "height"]].min(axis=1) < side).sum())
        if count:
            upscaled[recipe.name] = count
    return upscaled


def _read_data(card: ProtocolCard, trainer: ProtocolCard, root: Path, train_root: Path, scan: dict[str, Any]
               ) -> tuple[Subsets, list[DataSource]]:
    """Test subsets from ``root`` under ``card``; training sets from ``train_root`` under ``trainer`` (one scan
    when both are the same), decoding only what each reads (``scan``: build_manifest's workers and facts)."""
    together = trainer is card and train_root.resolve() == root.resolve()
    manifest, exclusions = build_manifest(root, card.layout, card, roles=ROLES if together else ("test",), **scan)
    if together:
        data = protocol_subsets(card, manifest, exclusions)
        found = [DataSource.of(root, card.name, "train and test", data.notes, manifest, exclusions)]
        test, train_data = data.test, data
    else:
        tested = protocol_subsets(card, manifest, exclusions, roles=("test",))
        found = [DataSource.of(root, card.name, "test", tested.notes, manifest, exclusions)]
        try:
            train_manifest, train_exclusions = build_manifest(train_root, trainer.layout, trainer, roles=("train",), **scan)
            train_data = protocol_subsets(trainer, train_manifest, train_exclusions, roles=("train",),
                                          test_sha256=content_hashes(tested.test))
        except DataError as exc:
            raise DataError(_training_data_help(card, trainer, train_root, exc)) from exc
        found.append(DataSource.of(train_root, trainer.name, "train", train_data.notes, train_manifest, train_exclusions))
        test = tested.test
    sets = training_sets(train_data)
    return Subsets({k: t for k, (t, _) in sets.items()}, {k: v for k, (_, v) in sets.items()}, test), found


def _training_data_help(card: ProtocolCard, trainer: ProtocolCard, root: Path, exc: DataError) -> str:
    """What a missing training root needs: whose data, where it looked, which folders in which layout, which option."""
    whose = f"the training data of protocol {trainer.name!r} (its train_from)" if trainer is not card else "its training data"
    shape = "detected" if trainer.layout == "auto" else f"{trainer.layout!r}: {LAYOUTS.get(trainer.layout).description}"
    folders = ", ".join(f"{k} (folder {trainer.generators[k].folder!r})" for k in trainer.train)
    return (f"protocol {card.name!r} reads {whose} from {root}, and it is not usable there: {exc}\n"
            f"Expected in {root}: {trainer.name}'s training generator(s) {folders}, split {trainer.train_split!r}, "
            f"layout {shape}. Point --train-data-root at that data (default: the --data-root).")
