"""The scored part of the gate: committed checkpoints re-scored on the baseline's test images, logit by logit.

Scoring a fixed checkpoint is deterministic up to float rounding on any CPU (the kernels PyTorch picks change the
last bits of a logit, measured below 1e-5 on the mini set; training turns those bits into different models, scoring
does not). So this part is tight: a change in decoding, a degradation, preprocessing or a model's forward moves
logits far beyond the tolerance and fails. The metrics are checked apart, on the stored logits themselves, so a
change in the metric code fails too, without a logit near a threshold making the check depend on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mirage_bench.degradations.base import parse
from mirage_bench.detectors.infra.checkpoint import load_checkpoint, sha256_file
from mirage_bench.errors import DataError
from mirage_bench.gate.baseline import ScoredCheckpoint, ScoredMetric, ScoredPart
from mirage_bench.mini import default_root
from mirage_bench.reports.runs import Evidence
from mirage_bench.reports.tables import metric_long
from mirage_bench.scoring import ReferenceScorer
from mirage_bench.store import Store

LOGIT_ATOL = 1e-4
LOGIT_RTOL = 1e-4
METRIC_ATOL = 1e-6  # points: the same metric code on the same stored scores gives the same value
METRICS = ("acc", "real_acc", "fake_acc", "ap", "auroc")
SCORE_COLUMNS = ["detector", "recipe_hash", "impl", "checkpoint_sha256", "train_generators", "seed", "image_id", "rel_path", "sha256", "generator", "family", "label",
                 "degradation", "degradation_seed", "logit", "p_fake", "threshold", "random_backbone"]
MODEL = ["detector", "train_generators", "seed"]
RULE = ("every logit within LOGIT_ATOL + LOGIT_RTOL x |baseline logit| (numpy.isclose) of the baseline's; every metric of "
        "the stored scores within METRIC_ATOL points")


def collect(store: Store, evidence: Evidence, base_seed: int) -> tuple[ScoredPart, dict[str, Path], pd.DataFrame]:
    """From the anchor runs: one checkpoint per detector and training set (its lowest seed), its stored scores and
    their metrics. Returns the part, the checkpoint files to copy (name in the baseline -> file) and the scores."""
    cells = pd.DataFrame([c for r in evidence.records for c in r["train_cells"]]).drop_duplicates("cell_id")
    chosen = cells.sort_values("seed").drop_duplicates(["detector", "train_generators"]).sort_values(["detector", "train_generators"])
    catalogue = evidence.cells.catalogue
    checkpoints, files, frames = [], {}, []
    for cell in chosen.itertuples(index=False):
        rows = evidence.cells.rows(catalogue.index[catalogue["checkpoint_sha256"] == cell.checkpoint_sha256], SCORE_COLUMNS)
        if rows.empty:
            raise DataError(f"the runs {evidence.run_ids} name checkpoint {cell.cell_id} ({cell.detector}) but hold no scores of it; "
                            "write the baseline from runs that evaluated their models (`mirage-bench run`, not `train`)")
        name = f"checkpoints/{cell.detector}-{cell.train_generators}-s{cell.seed}.pt"
        source = store.checkpoint_dir(cell.cell_id) / "model.pt"
        files[name] = source
        checkpoints.append(ScoredCheckpoint(detector=rows["detector"].iloc[0], train_generators=cell.train_generators, seed=int(cell.seed),
                                            file=name, sha256=sha256_file(source), random_backbone=bool(rows["random_backbone"].iloc[0])))
        frames.append(rows[SCORE_COLUMNS])
    scores = pd.concat(frames, ignore_index=True).sort_values([*MODEL, "degradation", "image_id"], ignore_index=True)
    degradations = list(dict.fromkeys(catalogue["degradation"]))
    part = ScoredPart(rule=RULE, logit_atol=LOGIT_ATOL, logit_rtol=LOGIT_RTOL, metric_atol=METRIC_ATOL, base_seed=base_seed,
                      degradations=degradations, checkpoints=checkpoints, scores_file="scores.parquet", scores_sha256="",
                      metrics=metrics_of(scores))
    return part, files, scores


def metrics_of(scores: pd.DataFrame) -> list[ScoredMetric]:
    """Every metric of every (model, test subset, degradation) of the stored scores, unrounded."""
    long = metric_long(scores, METRICS, n_boot=0)
    per_subset = long[(long["generator"] != "mean") & ~long["generator"].astype(str).str.startswith("family:")]
    return [ScoredMetric(detector=str(r.detector), train_generators=str(r.train_generators), generator=str(r.generator),
                         degradation=str(r.degradation), metric=str(r.metric), value=None if np.isnan(r.value) else 100 * float(r.value))
            for r in per_subset.itertuples(index=False)]


@dataclass
class ScoredCheck:
    logits: pd.DataFrame  # per checkpoint: detector, train_generators, seed, compared, beyond, max_abs_diff, status
    metrics: pd.DataFrame  # every stored metric: keys, baseline, current, status

    @property
    def failures(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return self.logits[self.logits["status"] != "ok"], self.metrics[self.metrics["status"] != "ok"]

    @property
    def passed(self) -> bool:
        return all(f.empty for f in self.failures)


def verified_images(scores: pd.DataFrame, data_root: Path) -> pd.DataFrame:
    """The baseline's test images under ``data_root``, each checked against its sha256 before anything is scored."""
    images = scores.drop_duplicates("image_id")[["image_id", "rel_path", "sha256"]].reset_index(drop=True)
    paths = [data_root / rel for rel in images["rel_path"]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"the baseline's test images are not under {data_root}: {len(missing)} of {len(paths)} missing "
                        f"(e.g. {missing[0]}); pass the data the baseline was written on with --data-root")
    changed = [str(p) for p, digest in zip(paths, images["sha256"]) if sha256_file(p) != digest]
    if changed:
        raise DataError(f"{len(changed)} of the baseline's test images under {data_root} differ from the files it was written on "
                        f"(sha256; e.g. {changed[0]}); the gate compares logits of the same files: restore them or write the "
                        "baseline again with --update")
    return images.assign(path=[str(p) for p in paths])


def rescore(part: ScoredPart, folder: Path, data_root: Path, device: str = "cpu") -> ScoredCheck:
    """Score the baseline's checkpoints on its images under its degradations and compare with its stored scores."""
    stored = pd.read_parquet(folder / part.scores_file)
    images = verified_images(stored, data_root)
    degradations = [parse(spec) for spec in part.degradations]
    detectors = [load_checkpoint(folder / c.file, device)[0] for c in part.checkpoints]
    scored = ReferenceScorer(device).score(detectors, images, degradations, base_seed=part.base_seed)
    rows = []
    for checkpoint, scores in zip(part.checkpoints, scored):
        current = pd.DataFrame(scores.logits.T, columns=part.degradations).assign(image_id=images["image_id"].to_numpy())
        current = current.melt(id_vars="image_id", var_name="degradation", value_name="current")
        mine = stored[(stored["detector"] == checkpoint.detector) & (stored["train_generators"] == checkpoint.train_generators)
                      & (stored["seed"] == checkpoint.seed)].drop_duplicates(["image_id", "degradation"])
        both = mine.merge(current, on=["image_id", "degradation"], how="left")
        close = np.isclose(both["current"].to_numpy(np.float64), both["logit"].to_numpy(np.float64),
                           rtol=part.logit_rtol, atol=part.logit_atol)
        diff = np.abs(both["current"].to_numpy(np.float64) - both["logit"].to_numpy(np.float64))
        rows.append({"detector": checkpoint.detector, "train_generators": checkpoint.train_generators, "seed": checkpoint.seed,
                     "compared": len(both), "beyond": int((~close).sum()), "max_abs_diff": float(np.nanmax(diff, initial=0.0)),
                     "status": "ok" if close.all() else "changed"})
    return ScoredCheck(pd.DataFrame(rows), compare_metrics(part, stored))


def compare_metrics(part: ScoredPart, stored: pd.DataFrame) -> pd.DataFrame:
    """The metric code on the stored scores against the values it gave when the baseline was written."""
    keys = ["detector", "train_generators", "generator", "degradation", "metric"]
    expected = pd.DataFrame([m.model_dump() for m in part.metrics], columns=[*keys, "value"]).rename(columns={"value": "baseline"})
    current = pd.DataFrame([m.model_dump() for m in metrics_of(stored)], columns=[*keys, "value"]).rename(columns={"value": "current"})
    rows = expected.merge(current, on=keys, how="left")
    base, now = rows["baseline"].astype(float), rows["current"].astype(float)
    same = (base.isna() & now.isna()) | ((base - now).abs() <= part.metric_atol)
    rows["status"] = np.where(same, "ok", "changed")
    return rows


def default_data_root(protocol: str) -> Path | None:
    """The shipped data of the built-in mini protocols; other protocols need --data-root."""
    if not protocol.startswith("mini"):
        return None

    return Path(default_root())
