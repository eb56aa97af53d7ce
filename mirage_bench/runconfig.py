"""A run's settings as one typed object, validated once: defaults < a YAML file (``--config run.yaml``) < flags.

``mirage_bench.run(RunConfig(...))`` is the library's entry point; ``mirage-bench run/train/eval`` build the same
object from their flags, so a notebook, a benchmark script and the CLI run exactly the same thing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

from pydantic import Field, field_validator, model_validator

from mirage_bench.cluster.launcher import Launcher
from mirage_bench.config import StrictModel, deep_merge, read_yaml, validate
from mirage_bench.errors import ConfigError
from mirage_bench.scoring.impl import Impl, check_impl

class RunConfig(StrictModel):
    """Everything a run is asked to do. Fields mirror ``mirage-bench run``'s flags (``--set`` is ``overrides``,
    ``--recipes``/``--protocols`` are ``recipe_dirs``/``protocol_dirs``, ``--bootstrap`` is ``bootstrap``)."""

    protocol: str = "mini"
    train_generators: Optional[list[str]] = None  # own data: build the protocol from data_root, training on these
    test_generators: Optional[list[str]] = None  # own data: test on these (default: every generator not trained on)
    detectors: Optional[list[str]] = None  # None: the protocol card's own list
    data_root: Optional[Path] = None  # None: the shipped mini set for mini protocols
    train_data_root: Optional[Path] = None  # None: data_root
    out: Path = Path("results/runs")
    seeds: list[int] = Field(default_factory=lambda: [0])
    overrides: list[str] = Field(default_factory=list)  # "train.lr=1e-4", applied to every recipe
    device: str = "cpu"
    workers: Optional[int] = Field(None, ge=0)  # None: on CUDA this process's cores but one (at most 16); on CPU none
    backbone: Optional[str] = None
    pretrained: Optional[str] = None
    recipe_dirs: list[Path] = Field(default_factory=list)
    protocol_dirs: list[Path] = Field(default_factory=list)
    bootstrap: int = Field(1000, ge=0)  # resamples for the 95% intervals (0: none)
    impl: Impl = "auto"
    compile: bool = False  # fast path: score with torch.compile
    wait: bool = False  # another run holds ``out``: wait for it (else refuse at once)
    train: bool = True  # train missing checkpoints (False: refuse a missing one)
    evaluate: bool = True  # score missing evaluation cells and compute the tables
    launcher: Launcher = Field(default_factory=Launcher)

    @field_validator("detectors", "train_generators", "test_generators", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        """``"a,b"`` (a flag's text) or a list; blanks dropped."""
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("seeds", mode="before")
    @classmethod
    def _parse_seeds(cls, value: Any) -> Any:
        """``"0,1,2"``, ``0`` or ``[0, 1, 2]``; a bad item or a repeated seed is refused by name."""
        if isinstance(value, int) and not isinstance(value, bool):
            return [value]
        if isinstance(value, str):
            items = [item.strip() for item in value.split(",")]
            bad = [item for item in items if not item.lstrip("-").isdigit()]
            if bad:
                raise ValueError(f"item {bad[0]!r} is not an integer; give comma-separated integers, e.g. --seeds 0,1,2")
            value = [int(item) for item in items]
        if isinstance(value, list):
            repeated = sorted({s for s in value if value.count(s) > 1})
            if repeated:
                raise ValueError(f"seed(s) {repeated} given twice; list each seed once, e.g. --seeds 0,1,2")
        return value

    @field_validator("impl", mode="before")
    @classmethod
    def _known_impl(cls, value: Any) -> Any:
        """An unknown path is refused with the closest known one."""
        if isinstance(value, str):
            check_impl(value)
        return value

    @field_validator("launcher", mode="after")
    @classmethod
    def _check_launcher(cls, value: Launcher) -> Launcher:
        value.check()
        return value

    @model_validator(mode="after")
    def _launcher_device(self) -> "RunConfig":
        """The jobs' GPUs fit ``device`` (checked here: the launcher alone does not know it)."""
        self.launcher.check_device(self.device)
        return self

    @model_validator(mode="after")
    def _own_data(self) -> "RunConfig":
        """Generators to train on build the protocol from ``data_root``; they exclude a protocol card."""
        if self.train_generators is None:
            if self.test_generators is not None:
                raise ConfigError("--test names the test generators of a protocol built from your folder; pass --train too "
                                  "(e.g. --data-root DIR --train A --test B,C), or pick a card's test subsets in the card")
            return self
        if "protocol" in self.model_fields_set:
            raise ConfigError(f"--train builds a protocol from --data-root, and --protocol {self.protocol} names a card: pass one "
                              "of them (to edit the built protocol, write it with `mirage-bench protocols new DIR --out card.yaml`)")
        if self.data_root is None:
            raise ConfigError("--train names generators of your own folder: pass it with --data-root DIR")
        return self

    @classmethod
    def from_sources(cls, path: Path | None = None, flags: Mapping[str, Any] | None = None) -> "RunConfig":
        """Defaults, then the YAML file at ``path`` (if any), then ``flags`` (only those the user gave; a ``launcher``
        mapping overrides the file's launcher settings one by one)."""
        data = deep_merge(read_yaml(path) if path is not None else {}, flags or {})
        return validate(cls, data, f"run configuration {path} with the flags given" if path is not None else "run options")
