"""The published-checkpoint card: an eval-only card naming a released file and how it maps onto our detector.

Cards live in ``detectors/published/`` (shipped in the wheel with the recipe cards). Nothing in them is
trained here; their numbers are the authors' weights scored by our implementation, so tables keep them apart
from the recipes trained here (``univfd (published)`` vs ``univfd (trained here)``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mirage_bench.cards import builtin_card_dir, load_recipe, pick_card
from mirage_bench.config import StrictModel, read_yaml, validate
from mirage_bench.errors import ConfigError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class WeightsFile(StrictModel):
    """Where the released file is and what it must be."""

    url: str = Field(description="https://... (fetched with torch.hub), or hf-hub:ORG/REPO/PATH (huggingface_hub)")
    manual: bool = Field(False, description="the url is a page (a Drive folder, a link to an archive): the file is "
                         "downloaded by hand and put where the error message says")
    filename: str = Field(description="the file's name in the cache")
    sha256: str | None = Field(description="null: unpinned, verify on first download (never guessed)")
    size: int | None = Field(None, ge=1, description="bytes, where known")
    state_dict_key: str | None = Field(None, description="the file holds {key: state_dict, ...} (CNNDetection: model)")
    note: str | None = None

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is not None and not _SHA256.match(v):
            raise ValueError(f"sha256 must be 64 lower-case hex digits (or null: unpinned), got {v!r}")
        return v

    @model_validator(mode="after")
    def _pinned_or_noted(self) -> "WeightsFile":
        if self.sha256 is None and not (self.note and "unpinned" in self.note):
            raise ValueError("an unpinned file (sha256: null) needs a note saying so ('unpinned: verify on first download')")
        if not (self.url.startswith(("https://", "hf-hub:"))):
            raise ValueError(f"url must start with https:// or hf-hub:, got {self.url!r}")
        return self


class KeyMap(StrictModel):
    """Published key names -> ours. Every published key is renamed (first matching prefix) or ignored with a reason;
    an unmatched key keeps its name. An ignored whole key wins over the renames; an ignored prefix (ending in '.',
    e.g. a frozen backbone the file carries whole) takes only the keys that no rename matches. The result must be
    exactly our detector's state dict, shape for shape."""

    rename: dict[str, str] = Field(default_factory=dict, description="published prefix -> our prefix; a prefix is "
                                   "'' (every key), ends with '.', or is a whole key")
    ignore: dict[str, str] = Field(default_factory=dict, description="published key, or a prefix ending in '.' for "
                                   "the keys under it that no rename matches -> why it is not loaded")
    shapes: dict[str, list[int]] = Field(default_factory=dict, description="the published file's shapes, as the "
                                         "authors' model code gives them (documentation; the load checks ours)")

    def target(self, key: str) -> str | None:
        """Our name for published ``key``, or None when the card ignores it."""
        if key in self.ignore:
            return None
        for old, new in self.rename.items():
            if key == old:
                return new
            if (old == "" or old.endswith(".")) and key.startswith(old):
                return new + key[len(old):]
        if any(prefix.endswith(".") and key.startswith(prefix) for prefix in self.ignore):
            return None
        return key


class Preprocessing(StrictModel):
    """The authors' test-time preprocessing, and how our recipe reproduces it."""

    authors: str = Field(description="what the authors' own test script does, with the file it is in")
    set: list[str] = Field(default_factory=list, description="--set overrides on the recipe to match it")
    deviations: list[str] = Field(default_factory=list)


class Backbone(StrictModel):
    """Frozen weights the file needs and does not hold, by open_clip tag."""

    name: str
    pretrained: str


class PublishedScore(StrictModel):
    """One number the paper (or the authors' README) reports: never asserted, printed beside ours."""

    subset: str
    acc: float | None = Field(None, ge=0, le=100)
    ap: float | None = Field(None, ge=0, le=100)


class Reproduction(StrictModel):
    """The authors' numbers on one of our protocols, with where they come from."""

    protocol: str
    source: str = Field(description="the table (paper or README, with commit) the numbers are copied from")
    tolerance: float = Field(2.0, gt=0, description="points of acc/AP beyond which a difference is flagged")
    scores: list[PublishedScore]


class PublishedCard(StrictModel):
    """An eval-only card: the authors' released checkpoint, loaded into one of our recipes."""

    name: str
    kind: Literal["published"] = "published"
    recipe: str = Field(description="the recipe card (detectors/*.yaml) whose detector the file loads into")
    detector: str = Field(description="the registered implementation; must be the recipe's")
    description: str = ""
    weights: WeightsFile
    backbone: Backbone | None = None
    key_map: KeyMap = Field(default_factory=KeyMap)
    preprocessing: Preprocessing
    licence: str = Field(description="short: an SPDX identifier, or 'none stated'")
    licence_note: str | None = Field(None, description="who holds it, where it is stated, what it allows")
    citation: str
    paper_url: str | None = None
    source: str = Field(description="the authors' repository and the commit read for this card")
    reproduction: list[Reproduction] = Field(default_factory=list)
    path: str | None = Field(None, description="the card file (filled in when read)")

    @property
    def source_short(self) -> str:
        """``owner/repo@commit7`` of a GitHub ``/tree/COMMIT`` source, else the source as written."""
        found = re.match(r"https://github.com/([^/]+/[^/]+)/tree/([0-9a-f]{7})", self.source)
        return f"{found[1]}@{found[2]}" if found else self.source

    @property
    def label(self) -> str:
        """``univfd (published)``: the recipe, marked as the authors' weights (a run's rows carry the card's own name)."""
        return f"{self.recipe} (published)"


def published_dir() -> Path:
    """The built-in published cards: ``detectors/published`` (inside the wheel or the checkout)."""
    return builtin_card_dir("detectors") / "published"


def published_paths() -> dict[str, Path]:
    directory = published_dir()
    return {p.stem: p for p in sorted(directory.glob("*.yaml"))} if directory.is_dir() else {}


def load_published(name_or_path: str) -> PublishedCard:
    """A published card by name or path, validated; its recipe and detector are checked to agree."""
    path = pick_card(name_or_path, published_paths, "published card")
    data = read_yaml(path)
    data.setdefault("name", path.stem)
    data["path"] = str(path)
    card: PublishedCard = validate(PublishedCard, data, str(path))
    recipe = load_recipe(card.recipe)
    if recipe.detector != card.detector:
        raise ConfigError(f"{path}: detector {card.detector!r} is not the one recipe {card.recipe!r} uses ({recipe.detector!r})")
    return card


def list_published() -> list[PublishedCard]:
    return [load_published(name) for name in published_paths()]

