"""The baseline folder: what ``check --update`` writes and ``check`` reads.

::

    <baseline>/baseline.json       this model, as JSON
    <baseline>/checkpoints/*.pt    the scored part's checkpoints (one per detector and training set)
    <baseline>/scores.parquet      their per-image logits on the test images under every degradation

Every file the JSON names carries its sha256, so an edited or damaged baseline is refused by name instead of
passing or failing for the wrong reason.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, ValidationError

from mirage_bench.detectors.infra.checkpoint import sha256_file
from mirage_bench.errors import ConfigError, DataError
from mirage_bench.store import replace_text, temporary_beside

FORMAT = "mirage-bench/baseline-v2"
FILE = "baseline.json"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KernelSetting(_Model):
    """The CPU kernels a run's training used: PyTorch's dispatch level and the variables that move it."""

    capability: str
    aten_cpu_capability: Optional[str] = None
    onednn_max_cpu_isa: Optional[str] = None
    cpu: str = "unknown"


class Sample(_Model):
    """One trained model whose metrics set the tolerances: a run, its seed and its kernels."""

    run_id: str
    seed: int
    kernels: KernelSetting


class TrainedValue(_Model):
    """One summary value of one seed: the centre of that seed's runs and the allowed distance from it (percent)."""

    detector: str
    train_generators: str
    generator: str  # a test generator, or "mean" over them
    degradation: str
    metric: str
    seed: int
    center: Optional[float]  # None: undefined (NaN) in every run
    tolerance: Optional[float]
    low: Optional[float]
    high: Optional[float]


class Ungated(_Model):
    """A model whose training lands too far apart under different kernels to be pinned: scored part only."""

    detector: str
    train_generators: str
    largest_spread: float  # points: the widest range of one value of one seed over the kernel settings
    reason: str


class TrainedPart(_Model):
    level: str
    rule: str
    factor: float
    floor: float
    chaos_limit: float
    samples: list[Sample]
    values: list[TrainedValue]
    ungated: list[Ungated]


class ScoredCheckpoint(_Model):
    detector: str
    train_generators: str
    seed: int
    file: str  # relative to the baseline folder
    sha256: str
    random_backbone: bool


class ScoredMetric(_Model):
    detector: str
    train_generators: str
    generator: str
    degradation: str
    metric: str
    value: Optional[float]


class ScoredPart(_Model):
    rule: str
    logit_atol: float
    logit_rtol: float
    metric_atol: float
    base_seed: int
    degradations: list[str]
    checkpoints: list[ScoredCheckpoint]
    scores_file: str
    scores_sha256: str
    metrics: list[ScoredMetric]


class Baseline(_Model):
    format: str
    protocol: str
    protocol_version: int
    data_hash: str
    runs: list[str]
    unit: str = "percent"
    trained: TrainedPart
    scored: ScoredPart


def baseline_file(folder: Path) -> Path:
    return Path(folder) / FILE


def read_baseline(folder: str | Path) -> Baseline:
    """The baseline in ``folder``, with every file it names present and unchanged."""
    folder = Path(folder)
    if folder.suffix == ".json" and folder.is_file():
        raise DataError(f"{folder} is a baseline of the old single-file format, which compared trained metrics with one "
                        "fixed tolerance and failed on other CPUs; a baseline is now a folder. Write one with "
                        f"`mirage-bench check --update --store RUNS --baseline {folder.with_suffix('')}`")
    path = baseline_file(folder)
    if not path.is_file():
        raise DataError(f"no baseline in {folder} (expected {path}); write one with "
                        f"`mirage-bench check --update --store RUNS --baseline {folder}`")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"baseline {path} is not valid JSON ({exc}); restore it from version control or write it again with --update") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise DataError(f"baseline {path} has format {found!r}; expected {FORMAT!r}. Write it again with --update")
    try:
        baseline = Baseline.model_validate(data)
    except ValidationError as exc:
        raise DataError(f"baseline {path} does not match its format {FORMAT}: {exc}") from None
    named = [(c.file, c.sha256) for c in baseline.scored.checkpoints] + [(baseline.scored.scores_file, baseline.scored.scores_sha256)]
    for name, expected in named:
        file = folder / name
        if not file.is_file():
            raise DataError(f"baseline {path} names {file}, which does not exist; restore the baseline folder or write it again with --update")
        if sha256_file(file) != expected:
            raise DataError(f"baseline file {file} has changed since the baseline was written (sha256 differs from the one in "
                            f"{path}); restore it from version control or write the baseline again with --update")
    return baseline


def write_baseline(folder: str | Path, baseline: Baseline, files: dict[str, Path]) -> None:
    """Write (or replace, on purpose: ``--update``) the baseline: ``files`` maps names inside the folder to the
    files to copy there. Each file is replaced atomically, the JSON last, so a reader never sees a JSON that
    names files it does not hold."""
    folder = Path(folder)
    if folder.suffix == ".json":
        raise ConfigError(f"--baseline {folder}: a baseline is a folder (baseline.json, checkpoints, scores); give a folder path")
    for name, source in files.items():
        target = folder / name
        tmp = temporary_beside(target)
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    replace_text(baseline_file(folder), json.dumps(baseline.model_dump(mode="json"), indent=1) + "\n")
