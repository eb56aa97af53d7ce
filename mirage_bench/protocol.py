"""Protocol cards (``datasets/*.yaml``): which generators train, which test, on which split, how many.

A protocol is versioned; results of different versions are never ranked together. Validation is carved
only from the training generators' training split (GenImage's ``val`` is its test set).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

from pydantic import Field, field_validator, model_validator

from mirage_bench.cards import card_paths, read_card_data
from mirage_bench.config import StrictModel, apply_overrides, validate
from mirage_bench.errors import ConfigError

#: A protocol card's headline metrics when it names none: the field's "Acc / AP" cells.
HEADLINE_METRICS = ("acc", "ap")


class SplitCounts(StrictModel):
    real: int | None = Field(None, ge=0)
    fake: int | None = Field(None, ge=0)


class GeneratorEntry(StrictModel):
    """One generator subset as its publisher names it."""

    folder: str = Field(description="the publisher's folder name")
    aliases: list[str] = Field(default_factory=list, description="other folder names seen in the wild")
    family: str = Field(description="gan, diffusion, autoregressive, vae, real, ...")
    display: str | None = None
    role: Literal["both", "fake", "real"] = Field(
        "both", description="both: the folder holds reals and fakes; fake/real: only one class (its label comes from here)"
    )
    reals: str | None = Field(None, description="pairing: the generator key whose real images are this subset's reals")
    expected: dict[str, SplitCounts] = Field(default_factory=dict, description="split -> published image counts")
    known_corrupt: list[str] = Field(default_factory=list, description="relative paths the publisher lists as corrupt")

    def names(self) -> list[str]:
        """Every folder name that identifies this generator: the publisher's, then its aliases."""
        return [self.folder, *self.aliases]


class ValidationRule(StrictModel):
    fraction: float = Field(0.1, gt=0, lt=1)
    seed: int = 0


class CarveRule(StrictModel):
    """Splits a folder that has no split folders (every file read as split ``test``) into ``train`` and ``test``.

    Only the generators that training reads (and the reals they pair with) are split; the other generators keep
    every image in ``test``. A file goes to ``test`` when the first 8 bytes of
    ``sha256(f"{seed}/carve/{rel_path}")``, read as an unsigned big-endian integer, fall below
    ``test_fraction * 2**64``, else to ``train``. Why a hash of the path under the root rather than a shuffle: the
    split does not depend on file-system order, and adding or removing a file moves no other file.
    """

    test_fraction: float = Field(0.2, gt=0, lt=1, description="share of each split generator's files held out for test")
    seed: int = 0


class SubsampleRule(StrictModel):
    """Caps the *test* subsets (papers report on fixed-size test sets); training always reads every image it is given."""

    per_class: int | None = Field(None, ge=1, description="keep at most this many test images per subset and class "
                                  "(seeded); training sets are never subsampled")
    seed: int = 0


class ProtocolCard(StrictModel):
    name: str
    version: int = Field(ge=1)
    description: str = ""
    citation: str = ""
    layout: str = Field(description="registered data layout name, or 'auto'")
    split_generator: dict[str, str] = Field(
        default_factory=dict,
        description="layout hint: folders under these publisher splits are object classes of this one generator "
        "(ForenSynths' train/{class}/ is ProGAN; WildRF's train/ is Reddit)",
    )
    generators: dict[str, GeneratorEntry]
    train: list[str] = Field(description="generator keys used for training (and validation); empty with train_from")
    train_from: str | None = Field(None, description="the protocol card whose training data this protocol trains on")
    train_split: str = "train"
    test: list[str]
    test_split: str = "val"
    mode: Literal["single", "matrix"] = Field("single", description="matrix: train on each train generator in turn")
    validation: ValidationRule = Field(default_factory=ValidationRule)
    carve: CarveRule | None = Field(None, description="a folder without split folders: split the training generators' "
                                    "files into train and test by a seeded hash of their paths (CarveRule)")
    rows: dict[str, list[str]] = Field(default_factory=dict, description="manifest lists only: keep the rows whose "
                                       "column holds one of these values, e.g. {layout: [genimage]}")
    subsample: SubsampleRule = Field(default_factory=SubsampleRule)
    degradations: list[str] = Field(default_factory=list, description="degradation specs or preset names")
    not_data: list[str] = Field(default_factory=list, description="files shipped beside the images that are not data "
                                "(README, metadata, prompts): shell patterns on the path under the root, e.g. "
                                "'card.json' or '*/prompts.csv'; listed as not-data rather than as problems")
    metrics: list[str] = Field(default_factory=lambda: list(HEADLINE_METRICS),
                               description="the headline metrics, in table order; the first ranks leaderboards")
    detectors: list[str] = Field(default_factory=list, description="recipe cards a run uses when --detectors is not given")
    source: str | None = None

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, names: list[str]) -> list[str]:
        from mirage_bench.errors import RegistryError
        from mirage_bench.metrics import METRICS  # "unknown metric 'x'. Did you mean ...? Available: ..."

        for name in names:
            try:
                METRICS.get(name)
            except RegistryError as exc:
                raise ValueError(str(exc)) from None
        return names

    @model_validator(mode="after")
    def _known_generators(self) -> "ProtocolCard":
        paired = [g.reals for g in self.generators.values() if g.reals is not None]
        unknown = sorted(set(self.train + self.test + paired) - set(self.generators))
        if unknown:
            raise ValueError(
                f"train/test/reals name generators {unknown} not listed under 'generators' ({sorted(self.generators)})"
            )
        if self.carve is not None and (self.train_split, self.test_split) != ("train", "test"):
            raise ValueError(f"'carve' splits files into 'train' and 'test', so train_split and test_split must be "
                             f"those (got {self.train_split!r}, {self.test_split!r})")
        if not self.train and self.train_from is None:
            raise ValueError("'train' is empty: list training generators, or name the card they come from in 'train_from'")
        owners: dict[str, str] = {}
        for key, entry in self.generators.items():
            for folder in entry.names():
                other = owners.setdefault(folder.lower(), key)
                if other != key:
                    raise ValueError(f"folder name {folder!r} is claimed by generators {other!r} and {key!r}")
        return self

    def generator_for_folder(self, folder: str) -> str | None:
        """The generator key a publisher folder name (or alias) stands for; folder names compare case-blind."""
        wanted = folder.lower()
        for key, entry in self.generators.items():
            if wanted in (name.lower() for name in entry.names()):
                return key
        return None


def load_protocol(name_or_path: str, overrides: Sequence[str] = (), extra_dirs: Sequence[str | Path] = ()) -> ProtocolCard:
    data, path = read_card_data("datasets", name_or_path, extra_dirs)
    data = apply_overrides(data, overrides)
    data["source"] = str(path)
    source = f"{path}" + (f" with --set {' '.join(overrides)}" if overrides else "")
    card: ProtocolCard = validate(ProtocolCard, data, source)
    from mirage_bench.degradations import expand  # a typo in a degradation spec fails here, naming the card

    try:
        expand(card.degradations)
    except ConfigError as exc:
        raise ConfigError(f"{source}: 'degradations' holds an invalid entry: {exc}") from None
    return card


def list_protocols(extra_dirs: Sequence[str | Path] = ()) -> list[ProtocolCard]:
    return [load_protocol(name, (), extra_dirs) for name in sorted(card_paths("datasets", extra_dirs))]


def training_protocol(card: ProtocolCard, extra_dirs: Sequence[str | Path] = ()) -> ProtocolCard:
    """The card whose training generators, split, validation rule and mode train ``card``'s models: the card
    itself, or the one its ``train_from`` names.

    Why one level only: a test-only card borrows a benchmark's training data as that benchmark defines it;
    a chain would hide which card that is.
    """
    if card.train_from is None:
        return card
    where = f"protocol {card.name!r} ({card.source})"
    if card.train:
        raise ConfigError(f"{where} sets both 'train' {card.train} and 'train_from: {card.train_from}'; keep one: "
                          "'train' lists this card's own training generators, 'train_from' names the card whose training data it uses")
    try:
        source = load_protocol(card.train_from, (), extra_dirs)
    except ConfigError as exc:
        raise ConfigError(f"{where} has 'train_from: {card.train_from}', which is not a usable protocol card: {exc}") from exc
    if source.train_from is not None:
        raise ConfigError(f"{where} has 'train_from: {source.name}', but {source.name!r} itself trains on "
                          f"'train_from: {source.train_from}'; chains are not followed. Name the card that lists the "
                          f"training generators (e.g. 'train_from: {source.train_from}').")
    return source
