"""What a degradation is, the registry of kinds, and the two structural kinds: ``none`` and ``chain``.

A :class:`Degradation` maps an RGB PIL image and a per-image seed to an RGB PIL image, at the image's
native resolution (before any detector preprocessing). Its ``spec`` is canonical: equal specs mean equal
functions, so the spec is what cache keys and stored predictions carry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Literal, NamedTuple

from PIL import Image
from pydantic import BaseModel, ConfigDict, ValidationError

from mirage_bench.config import format_validation_error
from mirage_bench.degradations.seeds import step_seed
from mirage_bench.degradations.spec import Call, format_value, read
from mirage_bench.errors import ConfigError, DataError
from mirage_bench.registry import Registry


class DeviceStep(NamedTuple):
    """One step of a degradation's batched form on uint8 tensors, as its kind declares it (``device_steps``): the
    batched operation ``op`` and its arguments. A scorer that runs it (the fast scorer's ``scoring.device_plan``)
    must give ``apply``'s bytes."""

    op: Literal["blur", "resize"]
    sigma: float = 0.0  # blur
    target_size: Callable[[tuple[int, int]], tuple[int, int]] | None = None  # resize: (width, height) -> (width, height)
    interp: str = ""  # resize


class Degradation(ABC):
    """An image degradation with a canonical spec. Subclasses implement ``_apply`` and ``spec``."""

    @property
    @abstractmethod
    def spec(self) -> str:
        """The canonical spec string: ``parse(d.spec).spec == d.spec``."""

    @property
    def is_random(self) -> bool:
        """Whether ``apply`` uses its seed (deterministic kinds ignore it)."""
        return False

    @abstractmethod
    def _apply(self, img: Image.Image, seed: int) -> Image.Image: ...

    @classmethod
    @abstractmethod
    def from_call(cls, call: Call) -> "Degradation":
        """Build from a parsed spec."""

    def apply(self, img: Image.Image, seed: int) -> Image.Image:
        """Degrade an RGB image; ``seed`` should come from :func:`image_seed`."""
        if not isinstance(img, Image.Image) or img.mode != "RGB":
            got = f"a {img.mode} PIL image" if isinstance(img, Image.Image) else type(img).__name__
            raise DataError(
                f"degradation {self.spec} expects an RGB PIL image, got {got}. "
                "Open images with mirage_bench.data.images.open_rgb (or .convert('RGB'))."
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int (see image_seed), got {seed!r}")
        return self._apply(img, seed)

    def device_steps(self) -> tuple[DeviceStep, ...] | None:
        """This degradation as batched steps that give ``apply``'s bytes, or None where only ``apply`` is exact
        (codecs, seeded noise): the fast scorer runs those in its CPU workers."""
        return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Degradation) and other.spec == self.spec

    def __hash__(self) -> int:
        return hash(self.spec)

    def __repr__(self) -> str:
        return f"<degradation {self.spec}>"

    def __str__(self) -> str:
        return self.spec


DEGRADATIONS: Registry[type[Degradation]] = Registry("degradation")


def register(name: str) -> Callable[[type], type]:
    """Class decorator registering a degradation kind under ``name`` (its spec's function name)."""

    def decorator(cls: type) -> type:
        cls.kind = name
        DEGRADATIONS.register(name, cls)
        return cls

    return decorator


def parse(spec: str) -> Degradation:
    """Read a spec string (``jpeg(quality=65)``) into its degradation (whose ``spec`` is ``jpeg(q=65)``)."""
    return build(read(spec))


def build(call: Call) -> Degradation:
    return DEGRADATIONS.get(call.name).from_call(call)


class SpecModel(BaseModel):
    """A kind with named, validated parameters; its spec lists every parameter, in field order.

    ``aliases`` maps accepted alternative keys to field names (``quality`` -> ``q``). Positional arguments
    fill the fields in order. Parameters set to None are left out of the spec.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[str]
    aliases: ClassVar[dict[str, str]] = {}

    @classmethod
    def from_call(cls, call: Call) -> Any:
        fields = list(cls.model_fields)
        if len(call.args) > len(fields):
            raise ConfigError(
                f"{call.name}(...) takes at most {len(fields)} positional value(s) ({', '.join(fields)}), "
                f"got {len(call.args)}: {call.args!r}"
            )
        data: dict[str, Any] = dict(zip(fields, call.args))
        for key, value in call.kwargs:
            name = cls.aliases.get(key, key)
            if name in data:
                raise ConfigError(f"{call.name}(...) got {name!r} twice (as {key!r}); give each parameter once")
            data[name] = value
        if any(isinstance(v, Call) for v in data.values()):
            raise ConfigError(f"{call.name}(...) takes numbers or names as values, not nested degradations: {data!r}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(
                format_validation_error(exc, cls, f"degradation {call.name}(...)")
                + (f"\n  aliases: {', '.join(f'{a} -> {n}' for a, n in cls.aliases.items())}" if cls.aliases else "")
            ) from None

    @property
    def spec(self) -> str:
        args = ",".join(f"{k}={format_value(v)}" for k, v in self.model_dump().items() if v is not None)
        return f"{self.kind}({args})"


class Primitive(SpecModel, Degradation):
    """Base of the registered image operations (jpeg, blur, ...)."""

    __eq__ = Degradation.__eq__
    __hash__ = Degradation.__hash__
    __repr__ = Degradation.__repr__
    __str__ = Degradation.__str__


@register("none")
class Identity(Degradation):
    """``none``: the clean image, unchanged (the same object is returned)."""

    @property
    def spec(self) -> str:
        return "none"

    @classmethod
    def from_call(cls, call: Call) -> "Identity":
        if call.args or call.kwargs:
            raise ConfigError(f"'none' takes no arguments, got {call.args + call.kwargs!r}; write just 'none'")
        return cls()

    def _apply(self, img: Image.Image, seed: int) -> Image.Image:
        return img

    def device_steps(self) -> tuple[DeviceStep, ...]:
        return ()


@register("chain")
class Chain(Degradation):
    """``chain(a,b,...)``: the steps in order (the field blurs before JPEG). Nested chains are flattened
    and ``none`` steps dropped, so a chain of one step is that step and an empty chain is ``none``.
    Step ``i`` gets its own seed derived from the image's seed and ``i``.
    """

    def __init__(self, steps: tuple[Degradation, ...]) -> None:
        self.steps = steps

    @classmethod
    def of(cls, steps: list[Degradation]) -> Degradation:
        flat: list[Degradation] = []
        for step in steps:
            flat.extend(step.steps if isinstance(step, Chain) else [] if isinstance(step, Identity) else [step])
        if not flat:
            return Identity()
        return flat[0] if len(flat) == 1 else cls(tuple(flat))

    @classmethod
    def from_call(cls, call: Call) -> Degradation:
        if call.kwargs:
            raise ConfigError(f"chain(...) takes degradations in order, not keywords: got {call.kwargs!r}")
        steps = []
        for arg in call.args:
            if isinstance(arg, (int, float)):
                raise ConfigError(f"chain(...) takes degradations such as jpeg(q=50), got the number {arg!r}")
            steps.append(build(arg if isinstance(arg, Call) else Call(arg)))
        return cls.of(steps)

    @property
    def spec(self) -> str:
        return f"chain({','.join(step.spec for step in self.steps)})"

    @property
    def is_random(self) -> bool:
        return any(step.is_random for step in self.steps)

    def _apply(self, img: Image.Image, seed: int) -> Image.Image:
        for index, step in enumerate(self.steps):
            img = step.apply(img, step_seed(seed, index))
        return img

    def device_steps(self) -> tuple[DeviceStep, ...] | None:
        """The steps' batched forms in order (none are seeded), or None if any step has none."""
        steps = [step.device_steps() for step in self.steps]
        return None if any(s is None for s in steps) else tuple(part for s in steps for part in s)
