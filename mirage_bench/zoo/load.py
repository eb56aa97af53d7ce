"""Loading a published checkpoint into our detector: verified file -> tensors only -> key map -> strict load."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from mirage_bench.cards import load_recipe
from mirage_bench.config import RecipeCard
from mirage_bench.detectors import DETECTORS
from mirage_bench.detectors.base import Detector
from mirage_bench.detectors.build import build_detector
from mirage_bench.detectors.weights_file import refused_objects, unreadable
from mirage_bench.errors import WeightsError
from mirage_bench.zoo.card import PublishedCard
from mirage_bench.zoo.fetch import resolve
from mirage_bench.zoo.keymap import map_state


def published_recipe(card: PublishedCard, overrides: Sequence[str] = ()) -> RecipeCard:
    """The recipe the file loads into, with the card's backbone and test-time preprocessing, then ``overrides``.

    A detector whose state holds every backbone weight (CNNSpot) is built bare: the file supplies them all.
    """
    sets = [f"name={card.name}"]
    if card.backbone is not None:
        sets += [f"backbone.name={card.backbone.name}", f"backbone.pretrained={card.backbone.pretrained}"]
    if DETECTORS.get(card.detector).backbone_in_state:
        sets.append("backbone.pretrained=none")
    return load_recipe(card.recipe, [*sets, *card.preprocessing.set, *overrides])


def read_published_state(card: PublishedCard, path: Path) -> dict[str, Tensor]:
    """The file's state dict: tensors only (``weights_only``), on the CPU whatever device it was saved from."""
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
    local = resolve(card, weights, offline)
    state = read_published_state(card, local.path)
    detector = build_detector(published_recipe(card, overrides))
    mapped = map_state(card, state, detector.state_dict())
    if detector.backbone_in_state:
        identity = detector.backbone_identity()
        detector.restore_identity({**identity, "pretrained": f"published:{card.name}", "sha256": local.sha256, "random": False})
    detector.load_state_dict(mapped, strict=True)
    return detector.eval()
