"""The trained part of the gate: a fresh run's metrics against the spread measured over seeds and CPU kernels.

Training on a CPU follows the kernels PyTorch picks for it (AVX-512, AVX2, the portable default), and a small
model trained on the mini set ends up at a different point for each: the same commit moves single cells by
20 points between two machines. So this part does not pin values: it checks that a run lands where the
measured samples (several seeds, several kernel settings) landed, with room in proportion to their spread.
It compares summaries, not cells: each detector's mean over the test generators under each degradation, and
each test generator on clean images; a broken training recipe moves these, a different CPU moves them less.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from mirage_bench.errors import DataError
from mirage_bench.gate.baseline import KernelSetting, Sample, TrainedPart, TrainedValue
from mirage_bench.reports.runs import Evidence
from mirage_bench.reports.tables import metric_long

#: Threshold-free metrics and accuracy at the calibrated threshold; the per-class accuracies swing with the
#: threshold far more than their mean does, and are left out.
METRICS = ("acc", "ap", "auroc")
KEYS = ["detector", "train_generators", "generator", "degradation", "metric"]
LEVEL = ("each detector and training set: the mean over test generators under every degradation, and every test "
         "generator on clean images ('none'); percent")
#: tolerance = max(FLOOR, FACTOR x the largest distance of a sample from the centre)
FACTOR = 2.0
FLOOR = 2.0
CLEAN = "none"


def summary(evidence: Evidence) -> pd.DataFrame:
    """The gate's summary values of a set of runs, one row per key and seed (``value`` in percent)."""
    long = metric_long(evidence.predictions, METRICS, n_boot=0)
    keep = (long["generator"] == "mean") | ((long["degradation"] == CLEAN) & ~long["generator"].str.startswith("family:")
                                           & (long["generator"] != "mean"))
    out = long.loc[keep, [*KEYS, "seed", "value"]].copy()
    out[KEYS] = out[KEYS].astype(str)
    out["value"] = 100 * out["value"]
    return out.reset_index(drop=True)


def samples_of(evidence: Evidence) -> list[Sample]:
    """One sample per (run, seed): the seeds a run trained, with the kernels its record names."""
    out = []
    for record in evidence.records:
        kernels = KernelSetting(**record.get("cpu_kernels") or {"capability": "unknown (run recorded before kernels were)"})
        seeds = sorted({int(c["seed"]) for c in record["train_cells"]})
        out += [Sample(run_id=record["run_id"], seed=seed, kernels=kernels) for seed in seeds]
    return out


def measure(evidences: Sequence[Evidence]) -> TrainedPart:
    """The centre and tolerance of every summary value over all the samples of ``evidences`` (each a set of runs
    made under one kernel setting). A value undefined (NaN) in every sample stays undefined; one undefined in
    only some is refused, since its centre would describe a subset of the samples."""
    values = pd.concat([summary(e) for e in evidences], ignore_index=True)  # a row per key and sample
    rows = []
    for key, group in values.groupby(KEYS, sort=True):
        v = group["value"].to_numpy(dtype=float)
        if np.isnan(v).all():
            rows.append(TrainedValue(**dict(zip(KEYS, key)), center=None, tolerance=None, low=None, high=None))
            continue
        if np.isnan(v).any():
            raise DataError(f"summary value {dict(zip(KEYS, key))} is undefined (NaN) in some samples and not in others; "
                              "a baseline cannot centre it. Check those runs' test subsets")
        center = float(v.mean())
        tolerance = max(FLOOR, FACTOR * float(np.abs(v - center).max()))
        rows.append(TrainedValue(**dict(zip(KEYS, key)), center=round(center, 4), tolerance=round(tolerance, 4),
                                 low=round(float(v.min()), 4), high=round(float(v.max()), 4)))
    samples = [s for e in evidences for s in samples_of(e)]
    rule = (f"centre: the mean of the {len(samples)} samples; tolerance: max({FLOOR:g} points, {FACTOR:g} x the largest "
            "distance of a sample from the centre)")
    return TrainedPart(level=LEVEL, rule=rule, factor=FACTOR, floor=FLOOR, samples=samples, values=rows)


@dataclass
class TrainedCheck:
    rows: pd.DataFrame  # KEYS, center, tolerance, current, delta, status

    @property
    def failures(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] != "ok"]


def compare(part: TrainedPart, evidence: Evidence) -> TrainedCheck:
    """The run's summary values (mean over its seeds) against every baseline value; missing ones fail."""
    current = summary(evidence).groupby(KEYS, sort=True)["value"].mean().rename("current").reset_index()
    expected = pd.DataFrame([v.model_dump() for v in part.values], columns=[*KEYS, "center", "tolerance", "low", "high"])
    rows = expected.merge(current, on=KEYS, how="left", indicator=True)
    rows[["center", "tolerance", "current"]] = rows[["center", "tolerance", "current"]].astype(float)
    rows["delta"] = rows["current"] - rows["center"]
    both_nan = rows["center"].isna() & rows["current"].isna()
    rows["status"] = np.select(
        [rows["_merge"] == "left_only", both_nan, rows["delta"].isna(), rows["delta"].abs() <= rows["tolerance"] + 1e-9,
         rows["delta"] < 0],
        ["missing", "ok", "nan", "ok", "worse"], "better")
    return TrainedCheck(rows.drop(columns=["_merge", "low", "high"]))
