"""``check`` and ``check --update``: the two parts of the gate over a store of runs and a baseline folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from mirage_bench.detectors.infra.checkpoint import sha256_file
from mirage_bench.errors import ConfigError, DataError
from mirage_bench.gate import scored, trained
from mirage_bench.gate.baseline import FORMAT, Baseline, read_baseline, write_baseline
from mirage_bench.reports.runs import Evidence, load_runs
from mirage_bench.store import Store


@dataclass
class GateResult:
    trained: trained.TrainedCheck
    scored: scored.ScoredCheck

    @property
    def passed(self) -> bool:
        return self.trained.failures.empty and self.scored.passed


def _identity(runs: Baseline | Evidence) -> tuple[str, int | None, str | None]:
    """What makes two sets of numbers comparable: the protocol, its version and the data manifest hash."""
    return runs.protocol, runs.protocol_version, runs.data_hash


def _require_comparable(expected: Baseline | Evidence, runs: Evidence, what: str, fix: str) -> None:
    if _identity(runs) != _identity(expected):
        (p, v, d), (ep, ev, ed) = _identity(runs), _identity(expected)
        raise DataError(f"{what} (protocol {p} v{v}, data {d}) is not comparable with (protocol {ep} v{ev}, data {ed}); {fix}")


def _data_root(protocol: str, data_root: str | Path | None) -> Path:
    root = Path(data_root) if data_root is not None else scored.default_data_root(protocol)
    if root is None:
        raise ConfigError(f"the baseline's scored part re-reads the test images of protocol {protocol!r}: pass their folder "
                          "with --data-root (only the built-in mini protocols ship data)")
    return root


def check_gate(store: str | Path, run_ids: Sequence[str], baseline_folder: str | Path,
               data_root: str | Path | None = None) -> GateResult:
    """Both parts: the runs' trained metrics within the measured spread, the baseline's checkpoints' logits unchanged."""
    baseline = read_baseline(baseline_folder)
    root = _data_root(baseline.protocol, data_root)  # refused before the runs are read
    evidence = load_runs(store, run_ids)
    _require_comparable(baseline, evidence, "the run", "check a run of the baseline's protocol and data, or write a new baseline with --update")
    return GateResult(trained.compare(baseline.trained, evidence), scored.rescore(baseline.scored, Path(baseline_folder), root))


def update_baseline(store: str | Path, run_ids: Sequence[str], baseline_folder: str | Path,
                    spread_stores: Sequence[str | Path] = ()) -> Baseline:
    """Write the baseline: the scored part from the anchor runs' checkpoints (one per detector and training set),
    the trained part's tolerances from every seed of the anchor runs and of the latest run of each spread store
    (runs of the same protocol and data made under other CPU kernel settings)."""
    from mirage_bench.engine.runner import DEGRADATION_BASE_SEED

    anchor = load_runs(store, run_ids)
    spread = [load_runs(s, []) for s in spread_stores]
    for other, where in zip(spread, spread_stores):
        _require_comparable(anchor, other, f"the latest run in spread store {where}", "spread runs repeat the anchor runs' command")
        missing = sorted(set(anchor.cells.catalogue["detector"]) - set(other.cells.catalogue["detector"]))
        if missing:
            raise DataError(f"the latest run in spread store {where} lacks detector(s) {missing}; spread runs repeat the anchor's command")
    part, files, scores = scored.collect(Store(store), anchor, DEGRADATION_BASE_SEED)
    folder = Path(baseline_folder)
    scores_file = folder / ".scores.parquet.new"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        scores.to_parquet(scores_file, index=False)
        part = part.model_copy(update={"scores_sha256": sha256_file(scores_file)})
        baseline = Baseline(format=FORMAT, protocol=anchor.protocol, protocol_version=int(anchor.protocol_version),
                            data_hash=str(anchor.data_hash), runs=[*anchor.run_ids, *(i for s in spread for i in s.run_ids)],
                            trained=trained.measure([anchor, *spread]), scored=part)
        write_baseline(folder, baseline, {**files, part.scores_file: scores_file})
    finally:
        scores_file.unlink(missing_ok=True)
    return baseline


def failures_frame(result: GateResult) -> dict[str, pd.DataFrame]:
    """The failing rows of each part, by name, for printing."""
    logits, metrics = result.scored.failures
    return {"trained metrics beyond the measured spread (points)": result.trained.failures,
            "scored checkpoints whose logits changed": logits, "metrics of the stored scores that changed": metrics}
