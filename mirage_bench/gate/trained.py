"""The trained part of the gate: a fresh run's metrics against the spread measured over CPU kernel settings.

Training on a CPU follows the kernels PyTorch picks for it (AVX-512, AVX2, the portable default), and a small
model trained on the mini set ends up at a different point for each: the same commit and seed moves single cells
by 20 points between two machines. So this part does not pin values. For each seed it keeps the centre of that
seed's runs under several kernel settings, and one tolerance per value from the largest distance of any seed's
run from its seed's centre: the kernels' spread, measured on several seeds. A run's seed is compared with that
seed's centre (seeds themselves spread far more than kernels do: npr-mini's AUROC moves by up to 78 points between
seeds on the mini set). It compares summaries, not cells: each detector's mean over the test generators under each
degradation, and each test generator on clean images. A model whose runs under different kernels land more than
CHAOS_LIMIT points apart on any value is not gated here (measured on the mini set: npr-mini's seed 2 reaches an
AUROC of 26 under one setting and 93 under another, while tinycnn's values move by at most 0.8 and mirage-mini's
not at all): no tolerance drawn from a few settings would hold on the next machine, and one wide enough to hold
would pass anything. The baseline lists such models with their spread; their code stays gated by the scored part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from mirage_bench.errors import DataError
from mirage_bench.gate.baseline import KernelSetting, Sample, TrainedPart, TrainedValue, Ungated
from mirage_bench.reports.runs import Evidence
from mirage_bench.reports.tables import metric_long

#: Threshold-free metrics and accuracy at the calibrated threshold; the per-class accuracies swing with the
#: threshold far more than their mean does, and are left out.
METRICS = ("acc", "ap", "auroc")
KEYS = ["detector", "train_generators", "generator", "degradation", "metric"]
LEVEL = ("each detector and training set: the mean over test generators under every degradation, and every test "
         "generator on clean images ('none'); percent")
#: tolerance = max(FLOOR, FACTOR x the largest distance of a run from the centre of its seed)
FACTOR = 3.0
FLOOR = 2.0
CHAOS_LIMIT = 10.0
CLEAN = "none"


def summary(evidence: Evidence) -> pd.DataFrame:
    """The gate's summary values of a set of runs, one row per key and seed (``value`` in percent)."""
    long = metric_long(evidence.cells, METRICS, n_boot=0)
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
    """Per summary value and seed, the centre of that seed's runs over ``evidences`` (each a set of runs made under
    one kernel setting); per summary value, one tolerance from the largest distance of a run from its seed's centre;
    models whose runs spread beyond CHAOS_LIMIT left ungated. A value undefined (NaN) in every run stays undefined;
    one undefined in only some is refused, since its centre would describe a subset of the runs."""
    values = pd.concat([summary(e) for e in evidences], ignore_index=True)  # a row per key, seed and kernel setting
    runs = values.groupby([*KEYS, "seed"])["value"]
    spread = (runs.transform("max") - runs.transform("min")).groupby([values["detector"], values["train_generators"]]).max()
    ungated = [Ungated(detector=d, train_generators=t, largest_spread=round(float(w), 4),
                       reason=f"one value of one seed spans {w:.1f} points over the kernel settings (limit {CHAOS_LIMIT:g})")
               for (d, t), w in spread.items() if w > CHAOS_LIMIT]
    chaotic = {(u.detector, u.train_generators) for u in ungated}
    rows = []
    for key, group in values.groupby(KEYS, sort=True):
        named = dict(zip(KEYS, key))
        if (named["detector"], named["train_generators"]) in chaotic:
            continue
        v = group["value"].to_numpy(dtype=float)
        if np.isnan(v).all():
            rows += [TrainedValue(**named, seed=int(seed), center=None, tolerance=None, low=None, high=None)
                     for seed in sorted(group["seed"].unique())]
            continue
        if np.isnan(v).any():
            raise DataError(f"summary value {named} is undefined (NaN) in some runs and not in others; a baseline cannot "
                            "centre it. Check those runs' test subsets")
        centres = group.groupby("seed")["value"].transform("mean").to_numpy(dtype=float)
        tolerance = max(FLOOR, FACTOR * float(np.abs(v - centres).max()))
        for seed, seed_runs in group.groupby("seed", sort=True):
            r = seed_runs["value"].to_numpy(dtype=float)
            rows.append(TrainedValue(**named, seed=int(seed), center=round(float(r.mean()), 4), tolerance=round(tolerance, 4),
                                     low=round(float(r.min()), 4), high=round(float(r.max()), 4)))
    samples = [s for e in evidences for s in samples_of(e)]
    settings = len({(s.kernels.capability, s.kernels.aten_cpu_capability, s.kernels.onednn_max_cpu_isa) for s in samples})
    rule = (f"per seed, centre: the mean of that seed's runs under {settings} kernel setting(s); per value, tolerance: "
            f"max({FLOOR:g} points, {FACTOR:g} x the largest distance of a run from its seed's centre), over "
            f"{len(samples)} runs; a model with a value spanning more than {CHAOS_LIMIT:g} points is not gated")
    return TrainedPart(level=LEVEL, rule=rule, factor=FACTOR, floor=FLOOR, chaos_limit=CHAOS_LIMIT, samples=samples,
                       values=rows, ungated=ungated)


@dataclass
class TrainedCheck:
    rows: pd.DataFrame  # KEYS, seed, center, tolerance, current, delta, status
    ungated: list[Ungated]  # the baseline's models left to the scored part

    @property
    def failures(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] != "ok"]


def compare(part: TrainedPart, evidence: Evidence) -> TrainedCheck:
    """Each seed of the run that the baseline holds against that seed's values; a value it lacks fails. A run with no
    seed of the baseline's cannot be checked and is refused."""
    current = summary(evidence).rename(columns={"value": "current"})
    expected = pd.DataFrame([v.model_dump() for v in part.values], columns=[*KEYS, "seed", "center", "tolerance", "low", "high"])
    seeds = sorted(set(current["seed"]) & set(expected["seed"]))
    if not seeds and not expected.empty:
        raise DataError(f"the run trained seed(s) {sorted(set(current['seed']))} and the baseline holds seed(s) "
                        f"{sorted(set(expected['seed']))}; run one of the baseline's seeds (e.g. --seeds {expected['seed'].min()})")
    rows = expected[expected["seed"].isin(seeds)].merge(current, on=[*KEYS, "seed"], how="left", indicator=True)
    rows[["center", "tolerance", "current"]] = rows[["center", "tolerance", "current"]].astype(float)
    rows["delta"] = rows["current"] - rows["center"]
    both_nan = rows["center"].isna() & rows["current"].isna()
    rows["status"] = np.select(
        [rows["_merge"] == "left_only", both_nan, rows["delta"].isna(), rows["delta"].abs() <= rows["tolerance"] + 1e-9,
         rows["delta"] < 0],
        ["missing", "ok", "nan", "ok", "worse"], "better")
    return TrainedCheck(rows.drop(columns=["_merge", "low", "high"]).reset_index(drop=True), part.ungated)
