"""``mirage-bench check``: compare a run's metrics with a committed baseline, for CI.

A baseline is a small JSON file: the protocol, its version, the data manifest hash and one value (percent,
mean over seeds) per (detector, training set, test generator or ``mean``, degradation, metric). A run
passes when every baseline value is present and within tolerance (absolute percentage points, per metric
overridable); changes in either direction fail, since a regression baseline pins results, and a real
improvement is recorded with ``--update``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mirage_bench import metrics as M
from mirage_bench.store import replace_text
from mirage_bench.errors import ConfigError, DataError
from mirage_bench.reports.runs import Evidence
from mirage_bench.reports.tables import metric_long

FORMAT = "mirage-bench/baseline-v1"
BASELINE_METRICS = ("acc", "real_acc", "fake_acc", "ap", "auroc")
KEYS = ["detector", "train_generators", "generator", "degradation", "metric"]
DEFAULT_TOLERANCE = 1.0


def parse_tolerances(values: Sequence[str]) -> tuple[float, dict[str, float]]:
    """``["0.5", "ap=2"]`` -> default 0.5 points, AP 2 points (metric names checked against METRICS)."""
    default, per_metric = DEFAULT_TOLERANCE, {}
    for value in values:
        name, sep, number = value.rpartition("=")
        try:
            points = float(number)
        except ValueError:
            raise ConfigError(f"--tolerance {value!r}: expected points like 1.0 or METRIC=POINTS like ap=2") from None
        if points < 0:
            raise ConfigError(f"--tolerance {value!r}: points must be >= 0")
        if sep:
            M.METRICS.get(name.strip())
            per_metric[name.strip()] = points
        else:
            default = points
    return default, per_metric


def _values(evidence: Evidence, metrics: Sequence[str]) -> pd.DataFrame:
    seeds = M.over_seeds(metric_long(evidence.predictions, metrics, n_boot=0))
    out = seeds[KEYS].astype(str).assign(value=100 * seeds["mean"])
    return out.sort_values(KEYS, ignore_index=True)


def make_baseline(evidence: Evidence, metrics: Sequence[str] = BASELINE_METRICS) -> dict[str, Any]:
    values = _values(evidence, metrics)
    return {"format": FORMAT, "protocol": evidence.protocol, "protocol_version": evidence.protocol_version,
            "data_hash": evidence.data_hash, "runs": evidence.run_ids, "unit": "percent (mean over seeds)",
            "metrics": [{**{k: r[k] for k in KEYS}, "value": None if np.isnan(r["value"]) else round(float(r["value"]), 4)}
                        for r in values.to_dict("records")]}


def write_baseline(path: str | Path, baseline: dict[str, Any]) -> None:
    """Write (or replace, on purpose: ``--update``) a baseline file atomically."""
    replace_text(Path(path), json.dumps(baseline, indent=1) + "\n")


def read_baseline(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"baseline {path} does not exist; create it with `mirage-bench check RUN --baseline {path} --update`")
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise DataError(f"baseline {path} has format {data.get('format')!r}; expected {FORMAT!r}")
    return data


@dataclass
class CheckResult:
    rows: pd.DataFrame  # every compared value: KEYS, baseline, current, delta, tolerance, status
    new: int  # values in the run that the baseline does not hold

    @property
    def failures(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] != "ok"]

    @property
    def passed(self) -> bool:
        return self.failures.empty


def compare(baseline: dict[str, Any], evidence: Evidence, tolerance: float = DEFAULT_TOLERANCE,
            per_metric: dict[str, float] | None = None) -> CheckResult:
    """Every baseline value against the run's; a different protocol or data set is an error, not a diff."""
    mine = (evidence.protocol, evidence.protocol_version, evidence.data_hash)
    theirs = (baseline["protocol"], baseline["protocol_version"], baseline["data_hash"])
    if mine != theirs:
        raise DataError(f"the run (protocol {mine[0]} v{mine[1]}, data {mine[2]}) is not comparable with the baseline "
                        f"(protocol {theirs[0]} v{theirs[1]}, data {theirs[2]}); check a run of the baseline's protocol "
                        "and data, or write a new baseline with --update")
    per_metric = per_metric or {}
    expected = pd.DataFrame(baseline["metrics"], columns=[*KEYS, "value"]).astype({k: str for k in KEYS})
    current = _values(evidence, sorted(set(expected["metric"])))
    rows = expected.merge(current, on=KEYS, how="left", suffixes=("_baseline", "_current"), indicator=True)
    rows = rows.rename(columns={"value_baseline": "baseline", "value_current": "current"})
    rows["baseline"] = rows["baseline"].astype(float)
    rows["delta"] = rows["current"] - rows["baseline"]
    rows["tolerance"] = [per_metric.get(m, tolerance) for m in rows["metric"]]
    both_nan = rows["baseline"].isna() & rows["current"].isna()
    rows["status"] = np.select(
        [rows["_merge"] == "left_only", both_nan, rows["delta"].isna(), rows["delta"].abs() <= rows["tolerance"] + 1e-9,
         rows["delta"] < 0],
        ["missing", "ok", "nan", "ok", "worse"], "better")
    new = len(current.merge(expected[KEYS], on=KEYS, how="left", indicator=True).query("_merge == 'left_only'"))
    return CheckResult(rows.drop(columns="_merge"), new)
