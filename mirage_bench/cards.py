"""Finding and loading YAML cards: detector recipes (``detectors/``) and protocols (``datasets/``).

Built-in cards live at the repository's top level and are shipped inside the wheel under
``mirage_bench/_cards``; users add directories with ``--recipes DIR`` / ``--protocols DIR``. A card name
defined twice is an error (never a silent shadow), and a card may name a ``base`` card whose keys it
overrides, which is how ablation variants are written.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Sequence

from mirage_bench.config import RecipeCard, apply_overrides, deep_merge, read_yaml, validate
from mirage_bench.errors import ConfigError

CardKind = Literal["detectors", "datasets"]
_PACKAGE_DIR = Path(__file__).resolve().parent


def builtin_card_dir(kind: CardKind) -> Path:
    """The directory of built-in cards: inside the installed wheel, or the source checkout's top level."""
    packaged = _PACKAGE_DIR / "_cards" / kind
    if packaged.is_dir():
        return packaged
    source = _PACKAGE_DIR.parent / kind
    if source.is_dir() and (_PACKAGE_DIR.parent / "pyproject.toml").is_file():
        return source
    raise ConfigError(
        f"built-in {kind} cards not found (looked in {packaged} and {source}); reinstall mirage-bench"
    )


def card_paths(kind: CardKind, extra_dirs: Iterable[Path | str] = ()) -> dict[str, Path]:
    """Every card name -> file, built-ins first, then each extra directory; duplicates are refused."""
    found: dict[str, Path] = {}
    for directory in [builtin_card_dir(kind), *map(Path, extra_dirs)]:
        if not directory.is_dir():
            raise ConfigError(f"card directory {directory} does not exist (expected a folder of *.yaml {kind} cards)")
        for path in sorted(directory.glob("*.yaml")):
            name = path.stem
            if name in found and found[name].resolve() != path.resolve():
                raise ConfigError(
                    f"{kind} card {name!r} is defined twice: {found[name]} and {path}. Rename one of them."
                )
            found[name] = path
    return found


def find_card(kind: CardKind, name_or_path: str, extra_dirs: Iterable[Path | str] = ()) -> Path:
    """A card by name, or a path to a YAML file."""
    flag = "--recipes" if kind == "detectors" else "--protocols"
    return pick_card(name_or_path, lambda: card_paths(kind, extra_dirs), f"{kind[:-1]} card",
                     f" Add a directory of cards with {flag} DIR.")


def pick_card(name_or_path: str, paths: Callable[[], dict[str, Path]], what: str, more: str = "") -> Path:
    """A YAML path as given (it must exist), else the card ``paths()`` (name -> file) holds under that name; an
    unknown name raises naming ``what``, the closest names, every available one and ``more``."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"}:
        if not candidate.is_file():
            raise ConfigError(f"card file {candidate} does not exist")
        return candidate
    known = paths()
    if name_or_path in known:
        return known[name_or_path]
    close = difflib.get_close_matches(name_or_path, list(known), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise ConfigError(f"unknown {what} {name_or_path!r}.{hint} Available: {', '.join(sorted(known)) or '(none)'}.{more}")


def read_card_data(kind: CardKind, name_or_path: str, extra_dirs: Sequence[Path | str] = (), _seen: tuple[str, ...] = ()) -> tuple[dict[str, Any], Path]:
    """A card's raw mapping with its ``base`` chain merged in (base first, card on top)."""
    path = find_card(kind, name_or_path, extra_dirs)
    data = read_yaml(path)
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: 'base' must name another card, got {base!r}")
        if base in _seen:
            raise ConfigError(f"{path}: card inheritance loops: {' -> '.join((*_seen, base))}")
        base_data, _ = read_card_data(kind, base, extra_dirs, (*_seen, path.stem))
        base_data.pop("source", None)
        base_data.pop("name", None)  # a variant is its own card, named after its file unless it says otherwise
        data = deep_merge(base_data, data)
    data.setdefault("name", path.stem)
    return data, path


def load_recipe(name_or_path: str, overrides: Sequence[str] = (), extra_dirs: Sequence[Path | str] = ()) -> RecipeCard:
    """Resolve a recipe card: defaults < card (over its base) < ``--set`` overrides, then validate it all.

    The detector's own ``Params`` model validates ``params``, so an unknown or mistyped detector
    parameter fails here, naming the file and the key, before anything is built.
    """
    data, path = read_card_data("detectors", name_or_path, extra_dirs)
    data = apply_overrides(data, overrides)
    data["source"] = str(path)
    source = f"{path}" + (f" with --set {' '.join(overrides)}" if overrides else "")
    recipe: RecipeCard = validate(RecipeCard, data, source)
    from mirage_bench.detectors import DETECTORS  # local import: the registry imports this module's users

    detector_cls = DETECTORS.get(recipe.detector)
    params = validate(detector_cls.Params, recipe.params, f"{source} (section 'params' of detector {recipe.detector!r})")
    recipe.params = params.model_dump(mode="json")
    return recipe


def list_recipes(extra_dirs: Sequence[Path | str] = ()) -> list[RecipeCard]:
    """Every recipe card, resolved with no overrides, sorted by name."""
    return [load_recipe(name, (), extra_dirs) for name in sorted(card_paths("detectors", extra_dirs))]
