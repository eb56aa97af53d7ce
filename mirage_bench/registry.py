"""One small generic registry for detectors, data layouts, degradations and metrics.

Modelled on timm's and lm-evaluation-harness's registries: a duplicate name is refused, an unknown name
answers with "did you mean" and the full list, entries may be lazy (``"module:attr"``) so that importing
the package stays cheap, and third-party packages add entries through an entry-point group. A plugin whose
own import fails raises that ImportError (with a note naming the entry), never "not found".
"""

from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points
from typing import Callable, Generic, Iterator, TypeVar

from mirage_bench.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object mapping with lazy entries and entry-point discovery."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._objects: dict[str, T] = {}
        self._lazy: dict[str, str] = {}
        self._origins: dict[str, str] = {}
        self._entry_points_loaded = entry_point_group is None

    # -- registration -------------------------------------------------------------------------------
    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; usable as ``@registry.register("name")``."""
        if obj is None:

            def decorator(o: T) -> T:
                self._add(name, o, origin=_describe(o))
                return o

            return decorator
        self._add(name, obj, origin=_describe(obj))
        return obj

    def register_lazy(self, name: str, target: str, origin: str | None = None) -> None:
        """Register ``"package.module:attribute"``, imported only when ``name`` is first used."""
        if ":" not in target:
            raise RegistryError(
                f"lazy {self.kind} target {target!r} for {name!r} must look like 'package.module:attribute'"
            )
        self._check_free(name, origin or target)
        self._lazy[name] = target
        self._origins[name] = origin or target

    def _add(self, name: str, obj: T, origin: str) -> None:
        if self._lazy.get(name) == f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', '')}":
            # The lazy entry's own module is being imported and registers the same object: resolve it.
            del self._lazy[name]
        else:
            self._check_free(name, origin)
        self._objects[name] = obj
        self._origins[name] = origin

    def _check_free(self, name: str, origin: str) -> None:
        if not name or not isinstance(name, str):
            raise RegistryError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._objects or name in self._lazy:
            raise RegistryError(
                f"{self.kind} {name!r} is already registered (by {self._origins[name]}); "
                f"refusing a second registration from {origin}. Pick another name."
            )

    # -- lookup -------------------------------------------------------------------------------------
    def get(self, name: str) -> T:
        """The object registered as ``name``; an unknown name raises with suggestions."""
        self._load_entry_points()
        if name in self._objects:
            return self._objects[name]
        if name in self._lazy:
            return self._resolve(name)
        suggestions = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        raise RegistryError(
            f"unknown {self.kind} {name!r}.{hint} Available: {', '.join(self.names()) or '(none)'}."
        )

    def _resolve(self, name: str) -> T:
        target = self._lazy[name]
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            exc.add_note(f"while importing {self.kind} {name!r} from {target!r} ({self._origins[name]})")
            raise
        if name in self._objects:  # the import registered it through the decorator
            return self._objects[name]
        try:
            obj = getattr(module, attr)
        except AttributeError as exc:
            raise RegistryError(
                f"{self.kind} {name!r} points to {target!r}, but module {module_name!r} has no {attr!r}"
            ) from exc
        del self._lazy[name]
        self._objects[name] = obj
        return obj

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in sorted(entry_points(group=self.entry_point_group), key=lambda e: e.name):
            dist = getattr(ep.dist, "name", "?")
            self.register_lazy(ep.name, ep.value, origin=f"entry point {ep.name!r} of distribution {dist!r}")

    def names(self) -> list[str]:
        """All registered names, sorted (so listings never depend on import order)."""
        self._load_entry_points()
        return sorted({*self._objects, *self._lazy})

    def origin(self, name: str) -> str:
        self.get(name)
        return self._origins[name]

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._objects or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


def _describe(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', type(obj).__name__)}"
