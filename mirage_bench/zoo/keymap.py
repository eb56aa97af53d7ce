"""Mapping a published state dict onto our detector's, strictly: every key used, every shape checked.

A mismatch is one :class:`CheckpointError` naming each offending key by its published name and ours, so a
renamed layer or a file for another architecture is caught before any number is computed.
"""

from __future__ import annotations

from torch import Tensor

from mirage_bench.errors import CheckpointError
from mirage_bench.zoo.card import PublishedCard


def map_state(card: PublishedCard, published: dict[str, Tensor], expected: dict[str, Tensor]) -> dict[str, Tensor]:
    """``published`` renamed by the card's key map; refused unless it is exactly ``expected``'s keys and shapes."""
    mapped: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    problems: list[str] = []
    for key, value in published.items():
        target = card.key_map.target(key)
        if target is None:
            continue
        if target in origin:
            problems.append(f"published keys {origin[target]!r} and {key!r} both map to {target!r}")
        mapped[target], origin[target] = value, key
    absent_ignored = sorted(k for k in card.key_map.ignore if k not in published
                            and not (k.endswith(".") and any(p.startswith(k) for p in published)))
    if absent_ignored:
        problems.append(f"keys the card ignores are not in the file: {', '.join(absent_ignored)}")
    unexpected = sorted(set(mapped) - set(expected))
    if unexpected:
        problems.append("unexpected keys (published -> ours): " + ", ".join(f"{origin[k]} -> {k}" for k in unexpected))
    missing = sorted(set(expected) - set(mapped))
    if missing:
        problems.append(f"missing keys (ours): {', '.join(missing)}")
    problems += [
        f"shape mismatch: published {origin[k]} {list(mapped[k].shape)} vs ours {k} {list(expected[k].shape)}"
        for k in sorted(set(mapped) & set(expected)) if mapped[k].shape != expected[k].shape
    ]
    if problems:
        raise CheckpointError(
            f"the weights of published card {card.name!r} do not match detector {card.detector!r} (recipe {card.recipe!r}): "
            + "; ".join(problems) + ". The file is not the one the card describes, or the card's key_map is wrong."
        )
    return mapped
