"""Loading a published checkpoint into our detector: verified file -> tensors only -> key map -> strict load."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from mirage_bench.cards import card_paths, load_recipe
from mirage_bench.config import RecipeCard
from mirage_bench.detectors import DETECTORS
from mirage_bench.detectors.base import Detector
from mirage_bench.detectors.infra.build import build_detector
from mirage_bench.detectors.infra.weights_file import refused_objects, unreadable
from mirage_bench.errors import ConfigError, WeightsError
from mirage_bench.zoo.card import PublishedCard, load_published, published_paths
from mirage_bench.zoo.fetch import cache_path, missing_message, resolve
from mirage_bench.zoo.keymap import map_state


def published_recipe(card: PublishedCard, overrides: Sequence[str] = ()) -> RecipeCard:
    """The recipe the file loads into, with the card's backbone and test-time preprocessing, then ``overrides``.

    A detector whose state holds every backbone weight (CNNSpot) is built bare: the file supplies them all.
    """
    sets = []
    if card.backbone is not None:
        sets += [f"backbone.name={card.backbone.name}", f"backbone.pretrained={card.backbone.pretrained}"]
    if DETECTORS.get(card.detector).backbone_in_state:
        sets.append("backbone.pretrained=none")
    recipe = load_recipe(card.recipe, [*sets, *card.preprocessing.set, *overrides])
    recipe.name = card.name  # its rows are its own: never pooled with the recipe trained here
    recipe.note = f"published checkpoint: the authors' weights ({card.source_short}), scored here, never trained here"
    return recipe


def read_published_state(card: PublishedCard, path: Path) -> dict[str, Tensor]:
    """The file's state dict: tensors only (``weights_only``), on the CPU whatever device it was saved from. An
    unpinned file (no sha256 to check) in torch's zip format has its records' CRC-32 checked first, which
    ``torch.load`` never does."""
    from mirage_bench.store import zip_damage

    damage = zip_damage(path) if card.weights.sha256 is None and zipfile.is_zipfile(path) else None
    if damage is not None:
        raise WeightsError(f"published weights {path} of {card.name!r} are damaged ({damage}); download them again "
                           f"from {card.weights.url}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError/RuntimeError/EOFError for refused or damaged files
        raise WeightsError(refused_objects(path, exc) or (
            f"published weights {path} of {card.name!r} cannot be read ({unreadable(exc)}): a damaged or truncated "
            f"file, or a web page saved in its place. Download it again from {card.weights.url}."
        )) from exc
    key = card.weights.state_dict_key
    if key is not None:
        if not isinstance(payload, dict) or key not in payload:
            found = sorted(payload)[:10] if isinstance(payload, dict) else type(payload).__name__
            raise WeightsError(f"published weights {path} of {card.name!r} should hold its state dict under {key!r}; "
                               f"found {found}")
        payload = payload[key]
    if not isinstance(payload, dict) or not all(isinstance(v, Tensor) for v in payload.values()):
        raise WeightsError(f"published weights {path} of {card.name!r} hold a {type(payload).__name__} that is not a "
                           "state dict of tensors")
    return payload


def load_published_detector(card: PublishedCard, weights: str | Path | None = None, offline: bool = False,
                            overrides: Sequence[str] = ()) -> Detector:
    """Our detector (eval mode, CPU) holding the card's published weights, loaded strictly."""
    return load_into(card, build_detector(published_recipe(card, overrides)), weights, offline)


def load_into(card: PublishedCard, detector: Detector, weights: str | Path | None = None, offline: bool = False) -> Detector:
    """``detector`` (built from the card's recipe) holding the card's verified file, mapped and loaded strictly."""
    local = resolve(card, weights, offline)
    state = read_published_state(card, local.path)
    mapped = map_state(card, state, detector.state_dict())
    if detector.backbone_in_state:
        identity = detector.backbone_identity()
        detector.restore_identity({**identity, "pretrained": f"published:{card.name}", "sha256": local.sha256, "random": False})
    detector.load_state_dict(mapped, strict=True)
    return detector.eval()


def recipe_by_name(name: str, overrides: Sequence[str] = (), recipe_dirs: Sequence[str | Path] = ()) -> RecipeCard:
    """A recipe card, or a published card as the recipe its file loads into (named after the published card)."""
    if name not in published_paths():
        return load_recipe(name, overrides, recipe_dirs)
    if name in card_paths("detectors", recipe_dirs):
        raise ConfigError(f"{name!r} names both a recipe card and a published card; rename the recipe")
    card = load_published(name)
    if card.weights.manual and not cache_path(card).is_file():  # nothing can fetch it later: say so before any work
        raise WeightsError(missing_message(card, cache_path(card), "it is downloaded by hand"))
    return published_recipe(card, overrides)


def is_published_recipe(recipe: RecipeCard) -> bool:
    return recipe.name in published_paths()


def save_published_checkpoint(recipe: RecipeCard, folder: Path, metadata: dict[str, object]) -> None:
    """A training cell's checkpoint made from the published file instead of training: the run then scores it like
    any other. The threshold is the authors' 0.5 (nothing here calibrates it)."""
    from mirage_bench.detectors.infra.checkpoint import save_checkpoint
    from mirage_bench.store import MODEL_FILE

    card = load_published(recipe.name)
    detector = load_into(card, build_detector(recipe))
    save_checkpoint(detector, folder / MODEL_FILE, {**metadata, "threshold": 0.5, "published": card.name})
