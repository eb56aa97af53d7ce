"""Typed configuration: recipe cards, input specs, training settings, and the override rules.

Precedence is written once, here: model defaults < YAML card (and the card it names as ``base``) <
``--set key=value`` overrides. Every model forbids unknown keys; a validation failure becomes a
:class:`ConfigError` naming the file, the dotted key, the value received and what is allowed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mirage_bench.errors import ConfigError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class StrictModel(BaseModel):
    """Base of every configuration model: unknown keys are errors, values are re-validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class InputSpec(StrictModel):
    """How an image becomes the tensor a detector reads. Stored inside every checkpoint.

    Order: (optional) resize of the shorter side -> small-image policy -> odd-size policy -> crop ->
    normalisation. Nothing is ever zero-padded: an image smaller than the crop is either upscaled
    (shorter side to ``size``, with ``interpolation``) or refused, as ``small_image`` says.
    """

    size: int = Field(224, ge=8, description="side of the square crop fed to the model")
    resize: int | None = Field(None, ge=8, description="resize the shorter side to this first; null keeps native resolution")
    eval_resize: bool = Field(True, description="apply `resize` at evaluation too; false evaluates at native resolution "
                              "(the 224 centre crop CNNSpot's and UnivFD's authors test with)")
    eval_square: int | None = Field(None, ge=8, description="evaluation: resize every image to exactly N x N first "
                                    "(bilinear, aspect not kept), as NPR's test.py does for ForenSynths, "
                                    "DiffusionForensics and UFD (Resize((256, 256))); needs no other eval resize")
    interpolation: Literal["bicubic", "bilinear", "nearest", "lanczos"] = "bicubic"
    eval_crop: Literal["center", "none"] = "center"
    train_crop: Literal["random", "random-resized", "center", "none"] = "random"
    random_resized_scale: tuple[float, float] = (0.08, 1.0)
    flip: bool = True
    small_image: Literal["upscale", "tile", "error"] = Field(
        "upscale", description="an image smaller than the crop: upscale its shorter side to `size`, tile copies of it "
        "side by side up to `size` (NPR's GenImage recipe, `translate_duplicate`), or refuse it")
    odd_size: Literal["keep", "crop-even"] = "keep"
    max_pixels: int | None = Field(None, ge=1, description="evaluation at native size (eval_crop: none): the largest "
                                   "image (width x height) scored, since memory grows with it; a larger one is refused "
                                   "naming the fix. null: no cap")
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    def resize_for(self, training: bool) -> int | None:
        """The shorter-side resize of training, or of evaluation (which ``eval_resize`` may switch off).

        A ``random-resized`` training crop is taken from the image as decoded, without the resize: Dassl
        (CoOp, CLIPping, MaPLe) builds no Resize when its transforms hold ``random_resized_crop``.
        """
        if training:
            return None if self.train_crop == "random-resized" else self.resize
        return self.resize if self.eval_resize else None

    @model_validator(mode="after")
    def _one_eval_resize(self) -> "InputSpec":
        if self.eval_square is not None and self.resize_for(training=False) is not None:
            raise ValueError(f"eval_square {self.eval_square} and resize {self.resize} (eval_resize true) both resize at "
                             "evaluation; set input.eval_resize=false or input.eval_square=null")
        return self

    @field_validator("std")
    @classmethod
    def _positive_std(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(s <= 0 for s in v):
            raise ValueError(f"every std must be > 0, got {v}")
        return v


class ScheduleConfig(StrictModel):
    """Learning-rate schedule. ``cosine`` steps per epoch after ``warmup_epochs`` (Dassl style). ``plateau`` is
    CNNDetection's loop: it watches validation accuracy (at 0.5, on the validation images prepared as
    ``train.val_augment`` says), drops the lr after ``plateau_patience`` epochs without an improvement of
    ``plateau_min_delta``, forgets the best after each drop, and stops once the lr falls below ``min_lr``; the
    checkpoint kept is the best epoch since the last drop."""

    kind: Literal["constant", "cosine", "plateau", "step"] = "constant"
    warmup_epochs: int = Field(0, ge=0)
    warmup_lr: float | None = Field(None, gt=0, description="constant warm-up lr (Dassl); null = linear warm-up")
    plateau_factor: float = Field(0.1, gt=0, lt=1)
    plateau_patience: int = Field(1, ge=1, description="plateau: epochs without improvement that drop the lr")
    plateau_min_delta: tuple[float, float] = Field(
        (0.0, 0.0), description="plateau: the rise in validation accuracy that counts as an improvement, before the "
        "first drop and after each (CNNDetection's EarlyStopping: 0.001, then 0.002)")
    min_lr: float = Field(1e-6, ge=0, description="plateau: stop training once the lr would fall below this")
    step_size: int = Field(1, ge=1, description="step: multiply the lr by step_gamma after every step_size-th epoch "
                           "(counted from 0, never after epoch 0: NPR's `epoch % delr_freq == 0 and epoch != 0`)")
    step_gamma: float = Field(0.1, gt=0, lt=1)


class TrainConfig(StrictModel):
    """Optimiser and loop settings of a recipe."""

    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(1e-4, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = Field(32, ge=1)
    epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1, description="cap on optimiser steps (tiny runs and tests)")
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    augment: list[str] = Field(default_factory=list, description="degradation specs applied at random while training, "
                               "after the resize and before the crop")
    val_augment: list[str] = Field(default_factory=list, description="plateau schedule: degradations applied at random "
                                   "to the validation images it watches (after the resize, before the centre crop)")
    grad_clip: float | None = Field(None, gt=0)
    bf16: bool = Field(True, description="bf16 autocast on CUDA (never fp16; scores stay fp32)")

    @model_validator(mode="after")
    def _val_augment_needs_plateau(self) -> "TrainConfig":
        if self.val_augment and self.schedule.kind != "plateau":
            raise ValueError(f"val_augment {self.val_augment} is read only by the plateau schedule, not by "
                             f"{self.schedule.kind!r}; set train.val_augment=[] or train.schedule.kind=plateau")
        return self


class BackboneConfig(StrictModel):
    """A pretrained backbone: an architecture name and where its weights come from."""

    name: str
    pretrained: str = Field(
        "none", description="a pretrained tag (downloaded when online), a local weights file, or 'none' for random weights"
    )
    require_pretrained: bool = Field(True, description="refuse to run when the weights cannot be loaded")

    @property
    def is_random(self) -> bool:
        return self.pretrained.strip().lower() in {"none", ""}


class RecipeCard(StrictModel):
    """A detector recipe card (``detectors/*.yaml``): which implementation, with which numbers."""

    name: str
    detector: str = Field(description="registered implementation name")
    description: str = ""
    citation: str = ""
    paper_url: str | None = None
    note: str | None = Field(None, description="e.g. 'reconstruction from the paper's description'")
    variant_of: str | None = Field(None, description="the full model this card ablates, if any")
    reconstruction: bool = Field(False, description="rebuilt from a paper's description, not its authors' code; "
                                 "marked in every table, leaderboard, report and JSON")
    deviations: list[str] = Field(default_factory=list, description="where this recipe differs on purpose from its "
                                  "authors' code, one line each; carried into the run record")
    backbone: BackboneConfig | None = None
    params: dict[str, Any] = Field(default_factory=dict, description="validated by the detector's own Params model")
    input: InputSpec = Field(default_factory=InputSpec)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tags: list[str] = Field(default_factory=list)
    source: str | None = Field(None, description="the file the card was read from (filled in by the loader)")

    @model_validator(mode="after")
    def _name_is_simple(self) -> "RecipeCard":
        if not self.name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"name {self.name!r} may hold only letters, digits, '-', '_' and '.'")
        return self


# -- overrides ----------------------------------------------------------------------------------------


def parse_overrides(pairs: Sequence[str]) -> list[tuple[list[str], Any]]:
    """Parse ``key.sub=value`` strings; values are read as YAML scalars (``1e-4``, ``true``, ``[1, 2]``)."""
    parsed = []
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
            raise ConfigError(f"override {pair!r} must look like 'key.sub=value' (e.g. --set train.lr=1e-4)")
        try:
            value = _number_or_same(yaml.safe_load(raw)) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {pair!r}: value {raw!r} is not valid YAML ({exc})") from exc
        parsed.append((key.strip().split("."), value))
    return parsed


def _number_or_same(value: Any) -> Any:
    """YAML 1.1 reads ``1e-4`` (no dot) as a string; people mean a number."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value.lower() for c in ".e") else int(value)
        except ValueError:
            return value
    return value


def apply_overrides(data: dict[str, Any], pairs: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted overrides applied (unknown keys are caught by validation)."""
    out = copy.deepcopy(data)
    for path, value in parse_overrides(pairs):
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(
                    f"override {'.'.join(path)}={value!r}: {part!r} holds {child!r}, not a section with keys"
                )
            node = child
        node[path[-1]] = value
    return out


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, recursively for nested mappings (lists are replaced, not merged)."""
    out = copy.deepcopy(dict(base))
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# -- YAML and validation ------------------------------------------------------------------------------


def read_yaml(path: Path) -> dict[str, Any]:
    """Read one YAML mapping, with errors that name the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level, got {type(data).__name__}")
    return data


def validate(model: type[StrictModel] | type[BaseModel], data: Mapping[str, Any], source: str) -> Any:
    """Validate ``data`` against ``model``; failures name the source, each key, its value and what is allowed."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, model, source)) from None


def format_validation_error(exc: ValidationError, model: type[BaseModel], source: str) -> str:
    lines = [f"{source}: invalid {model.__name__} ({exc.error_count()} problem{'s' * (exc.error_count() > 1)})"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, err["loc"][:-1])
            lines.append(
                f"  - unknown key {loc!r} (value {err['input']!r}); allowed keys here: {', '.join(allowed)}"
            )
        elif err["type"] == "missing":
            lines.append(f"  - missing required key {loc!r}")
        else:
            lines.append(f"  - {loc} = {err['input']!r}: {err['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return ["(see the documentation)"]
        annotation = fields[part].annotation
        current = next(
            (a for a in (annotation, *getattr(annotation, "__args__", ())) if isinstance(a, type) and issubclass(a, BaseModel)),
            None,
        )
        if current is None:
            return ["(see the documentation)"]
    return sorted(current.model_fields)
