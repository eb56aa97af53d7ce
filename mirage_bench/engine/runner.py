"""Planning and running a benchmark: train what is missing, score what is missing, record the run.

The plan is a list of content-addressed cells (see :mod:`mirage_bench.engine.cells`); a cell whose output
exists is skipped, so a second run recomputes nothing and a killed run resumes where it stopped. Scores are
written to the prediction store, one file per evaluation cell, and every table is computed from there.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from mirage_bench import distributed
from mirage_bench.config import RecipeCard
from mirage_bench.detectors.base import held_bytes
from mirage_bench.detectors.infra.build import build_detector
from mirage_bench.detectors.infra.checkpoint import load_checkpoint, read_checkpoint
from mirage_bench.engine import cells
from mirage_bench.engine.benchmark import Benchmark, Cards, Subsets, load_benchmark, load_cards
from mirage_bench.engine.preflight import check_recipes, check_writable
from mirage_bench.engine.record import RunRecord, base_record
from mirage_bench.engine.store_lock import hold_store
from mirage_bench.engine.trainer import train_cell
from mirage_bench.errors import ConfigError, ContractError, DataError
from mirage_bench.hashing import frame_hash
from mirage_bench.machine import limit_cpu_threads, memory_bytes
from mirage_bench.progress import Progress, no_progress
from mirage_bench.scoring import Impl, make_scorer, resolve_impl
from mirage_bench.scoring.scores import refuse_repeated_ids
from mirage_bench.scoring.timing import cell_seconds
from mirage_bench.scoring.trunks import adopt_frozen
from mirage_bench.store import Store, write_json
from mirage_bench.zoo.load import is_published_recipe, save_published_checkpoint

#: Degradation seeds are ``image_seed(DEGRADATION_BASE_SEED, image_id)``: fixed, so cells are comparable.
DEGRADATION_BASE_SEED = 0


@dataclass
class TrainCell:
    recipe: RecipeCard
    train_generators: str
    train: pd.DataFrame
    validation: pd.DataFrame
    seed: int
    cell_id: str
    train_hash: str  # frame_hash of ``train``
    validation_hash: str  # frame_hash of ``validation``

    def steps(self) -> int:
        cfg = self.recipe.train
        return int(min(cfg.epochs * -(-len(self.train) // cfg.batch_size), cfg.max_steps or 10**12))

    def work(self) -> str:
        return f"train on {len(self.train)} images ({self.steps()} steps), validate on {len(self.validation)}"


@dataclass
class EvalJob:
    """One checkpoint on one test subset under the degradations whose cells are not done yet."""
    train_cell: TrainCell
    checkpoint_sha256: str
    generator: str
    subset: pd.DataFrame
    cell_ids: dict[str, str] = field(default_factory=dict)  # degradation spec -> eval cell id

    def work(self, degradations: Sequence[Any]) -> str:
        return f"score {len(self.subset)} images x {len(degradations)} degradations"


@dataclass
class Options:
    out: Path = Path("results/runs")
    device: str = "cpu"
    workers: int | None = None  # None: on CUDA this process's share of the cores but one (at most 16); on CPU none
    eval_batch_size: int = 64
    state_every: int = 50
    impl: Impl = "auto"
    compile: bool = False  # fast path only: torch.compile the detector for scoring
    wait: bool = False  # another run holds the output folder: wait for it (else refuse at once)

    def resolved_workers(self, device: str) -> int:
        """Data-loading workers: as given, else enough to feed a GPU (decoding is the CPU's job there) and
        none on a CPU, whose cores already run the model."""
        if self.workers is not None:
            if self.workers < 0:
                raise ConfigError(f"--workers {self.workers} is negative; give 0 (load in the main process) or more")
            return self.workers
        if not str(device).startswith("cuda"):
            return 0
        return max(1, min(16, distributed.cores_per_rank() - 1))


def preflight(cards: Benchmark | Cards, options: Options, *, writes: bool = True, device_here: bool = True) -> None:
    """Every check a run can make before it reads data or trains, none of which writes a file: the device, the
    evaluation path, the worker count, every detector built on the meta device (its weights file loaded and
    shape-checked) and, for a run that ``writes``, the output folder. The CLI calls it before the data scan;
    ``execute`` calls it unless told the caller did. ``device_here=False``: the device is another machine's (a
    Slurm job's GPU, checked by the job), not this one's."""
    if device_here:
        distributed.check_device(options.device)
    evaluation_impl(cards, options, options.device)
    options.resolved_workers(options.device)
    check_recipes(cards.recipes)
    if writes:
        check_writable(options.out)


def check_plan(bench: Benchmark) -> None:
    """Refuse a benchmark with nothing to run, naming what is empty (an empty run has no table to show)."""
    p = bench.protocol
    empty = [why for why, items in (
        ("no detectors (pass --detectors a,b or list them under the card's 'detectors')", bench.recipes),
        (f"no training sets (card {(bench.training or p).name!r}: 'train' or 'train_from')", bench.subsets.train),
        ("no seeds (pass --seeds 0,1,2)", bench.seeds),
        (f"no test subsets (card {p.name!r}: 'test')", p.test),
    ) if not items]
    if empty:
        raise ConfigError(f"protocol {p.name!r} gives nothing to run: {'; '.join(empty)}")
    # A repeat would name the same checkpoints twice, and the evaluation would score and store their cells twice.
    # Same-named recipes that differ (e.g. in an override) are distinct models, kept apart by their recipe hash.
    hashes = [cells.recipe_hash(r) for r in bench.recipes]
    repeated = sorted({r.name for r, h in zip(bench.recipes, hashes) if hashes.count(h) > 1})
    if repeated:
        raise ConfigError(f"detector(s) {repeated} listed more than once with the same recipe ({[r.name for r in bench.recipes]}); "
                          "list each once, e.g. --detectors a,b")
    seeds = sorted({s for s in bench.seeds if bench.seeds.count(s) > 1})
    if seeds:
        raise ConfigError(f"seed(s) {seeds} listed more than once ({bench.seeds}); list each once, e.g. --seeds 0,1,2")


def data_hashes(bench: Benchmark) -> dict[str, dict[str, str]]:
    """``frame_hash`` of every training, validation and test manifest, by role and name: once per plan, since
    they name every cell and the run record (a GenImage training set holds 160,000 rows, and every checkpoint
    of a run names it)."""
    s = bench.subsets
    return {role: {name: frame_hash(frame) for name, frame in frames.items()}
            for role, frames in (("train", s.train), ("validation", s.validation), ("test", s.test))}


def train_cells(bench: Benchmark, hashes: dict[str, dict[str, str]] | None = None) -> list[TrainCell]:
    """Every (recipe, training set, seed) of the plan; ``hashes``: ``data_hashes(bench)`` when the caller has them."""
    hashes = hashes or data_hashes(bench)
    out = []
    for recipe in bench.recipes:
        for name in sorted(bench.subsets.train):
            train, validation = bench.subsets.train[name], bench.subsets.validation[name]
            train_hash, validation_hash = hashes["train"][name], hashes["validation"][name]
            for seed in bench.seeds:
                cell_id = cells.train_cell_id(recipe, train_hash, validation_hash, seed)
                out.append(TrainCell(recipe, name, train, validation, seed, cell_id, train_hash, validation_hash))
    return out


def checkpoint_hash(store: Store, cell: TrainCell) -> str | None:
    """Content hash of a finished training cell's checkpoint, or None when it is not trained yet."""
    path = store.checkpoint_dir(cell.cell_id) / "model.pt"
    return cells.checkpoint_content_hash(read_checkpoint(path)) if store.has_checkpoint(cell.cell_id) else None


def eval_jobs(bench: Benchmark, cell: TrainCell, ckpt_hash: str, test_hashes: dict[str, str], impl: str = "reference") -> list[EvalJob]:
    """The checkpoint's job on each test subset (``test_hashes``: each subset's ``frame_hash``)."""
    jobs = []
    for generator in bench.protocol.test:
        ids = {d.spec: cells.eval_cell_id(ckpt_hash, test_hashes[generator], d.spec, DEGRADATION_BASE_SEED, impl)
               for d in bench.degradations}
        jobs.append(EvalJob(cell, ckpt_hash, generator, bench.subsets.test[generator], ids))
    return jobs


def describe_plan(bench: Benchmark, store: Store, impl: str = "reference") -> pd.DataFrame:
    """Every cell with its status (``done`` / ``to do``) and the work it needs (``--dry-run``)."""
    check_plan(bench)
    hashes = data_hashes(bench)
    rows = []
    for cell in train_cells(bench, hashes):
        ckpt = checkpoint_hash(store, cell)
        rows.append({"kind": "train", "cell": cell.cell_id, "detector": cell.recipe.name, "train": cell.train_generators,
                     "seed": cell.seed, "subset": "-", "degradation": "-", "status": "done" if ckpt else "to do",
                     "work": "-" if ckpt else cell.work()})
        if ckpt is None:
            rows.append({"kind": "eval", "cell": "(after training)", "detector": cell.recipe.name, "train": cell.train_generators,
                         "seed": cell.seed, "subset": ",".join(bench.protocol.test), "degradation": f"{len(bench.degradations)} specs",
                         "status": "to do", "work": f"{len(bench.protocol.test) * len(bench.degradations)} cells"})
            continue
        for job in eval_jobs(bench, cell, ckpt, hashes["test"], impl):
            for spec, cell_id in job.cell_ids.items():
                done = store.has_predictions(cell_id)
                rows.append({"kind": "eval", "cell": cell_id, "detector": cell.recipe.name, "train": cell.train_generators,
                             "seed": cell.seed, "subset": job.generator, "degradation": spec, "status": "done" if done else "to do",
                             "work": "-" if done else f"score {len(job.subset)} images"})
    return pd.DataFrame(rows)


def summarize_plan(bench: Benchmark, plan: pd.DataFrame, shown: int = 3) -> pd.DataFrame:
    """One row per model (detector, training set, seed) of ``describe_plan``'s cells: what training and
    evaluation still need. Why: a run holds hundreds of cells (6 detectors x 4 subsets x 4 degradations on the
    mini set alone); the model is the unit a user plans by."""
    grid = f"{len(bench.protocol.test)} subsets x {len(bench.degradations)} degradations"
    total = len(bench.protocol.test) * len(bench.degradations)
    rows = []
    for (detector, train, seed), part in plan.groupby(["detector", "train", "seed"], sort=False):
        trainer = part[part["kind"] == "train"].iloc[0]
        evals = part[(part["kind"] == "eval") & (part["cell"] != "(after training)")]
        todo = evals[evals["status"] == "to do"]
        if trainer["status"] == "to do":
            evaluation = f"after training: {total} cells ({grid})"
        elif todo.empty:
            evaluation = f"done: {total} cells"
        else:
            missing = [f"{subset} ({', '.join(cells['degradation'])})" for subset, cells in todo.groupby("subset", sort=False)]
            more = f"; and {len(missing) - shown} more subsets" if len(missing) > shown else ""
            evaluation = f"{len(todo)} of {total} cells to do: {'; '.join(missing[:shown])}{more}"
        rows.append({"detector": detector, "train": train, "seed": seed,
                     "training": "done" if trainer["status"] == "done" else f"to do: {trainer['work']}",
                     "evaluation": evaluation})
    return pd.DataFrame(rows, columns=["detector", "train", "seed", "training", "evaluation"])


def evaluation_impl(bench: Benchmark | Cards, options: Options, device: str) -> str:
    """The run's evaluation path, refused at the start (before any training, and in a dry run) where it cannot
    apply: nvjpeg decoding needs a CUDA device, a grid that runs entirely there and torchvision's decode_jpeg;
    resizing on a GPU as PIL does needs a Pillow release whose pass order is known."""
    impl = resolve_impl(options.impl, device)
    for note in make_scorer(impl, device).check(bench.degradations):
        warnings.warn(note, stacklevel=2)
    return impl


def execute(bench: Benchmark, options: Options, *, train: bool = True, evaluate: bool = True,
            progress: Progress = no_progress, checked: bool = False) -> RunRecord:
    """Run the plan; returns the run record (also written to ``runs/<run_id>/record.json``). Refused before
    any work: a bad plan, option or weights file (``preflight``, skipped when ``checked``: the caller ran it),
    and an output folder that another run holds (``store_lock.hold_store``, waiting with ``options.wait``)."""
    check_plan(bench)
    if not checked:
        preflight(bench, options)
    with hold_store(options.out, wait=options.wait):
        return _execute(bench, options, train, evaluate, progress)


def _execute(bench: Benchmark, options: Options, train: bool, evaluate: bool, progress: Progress) -> RunRecord:
    store = Store(options.out)
    device = distributed.init_from_env(options.device)
    impl = evaluation_impl(bench, options, device)
    options = replace(options, workers=options.resolved_workers(device))
    with cpu_threads_beside(options.workers, device):
        return _run_cells(bench, options, train, evaluate, progress, store, device, impl)


@contextmanager
def cpu_threads_beside(workers: int, device: str) -> Iterator[None]:
    """On a CPU device, torch's intra-op threads and the loader's workers share this process's cores
    (``machine.cpu_threads``: torch's default beside busy workers oversubscribes them); restored afterwards."""
    if str(device).startswith("cuda"):
        yield
        return
    previous = limit_cpu_threads(workers, distributed.cores_per_rank())
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _run_cells(bench: Benchmark, options: Options, train: bool, evaluate: bool, progress: Progress, store: Store, device: str,
               impl: str) -> RunRecord:
    rank, world = distributed.rank_and_world()
    if rank == 0:  # this process holds the store: what killed runs left is tidied before this run claims its id
        store.clean_leftovers()
    run_id = distributed.broadcast_object(store.new_run_id() if rank == 0 else None)
    hashes = data_hashes(bench)
    record = run_record(bench, options, run_id, device, world, impl, hashes)
    jobs = []
    for cell in train_cells(bench, hashes):
        ckpt = checkpoint_hash(store, cell)
        trained_now = ckpt is None
        if ckpt is None:
            if not train and not is_published_recipe(cell.recipe):  # a published card's file needs no training
                raise no_checkpoint(store, cell)
            train_into_store(cell, store, options, device, progress)
            ckpt = checkpoint_hash(store, cell)
        record["train_cells"].append(train_entry(store, cell, ckpt, trained_now))
        jobs += eval_jobs(bench, cell, ckpt, hashes["test"], impl)
    if evaluate:
        seconds = evaluate_into_store(jobs, bench, store, options, device, run_id, progress, impl)
        record["eval_cells"] += eval_entries(jobs, seconds)
    typed = RunRecord.model_validate(record)
    if rank == 0:
        write_json(store.run_dir(run_id) / "record.json", typed.json_dict())
    distributed.barrier()
    return typed


def no_checkpoint(store: Store, cell: TrainCell) -> DataError:
    """The error of an evaluate-only run whose cell has no checkpoint."""
    return DataError(f"{cell.recipe.name} (train {cell.train_generators}, seed {cell.seed}) has no checkpoint in "
                     f"{store.checkpoint_dir(cell.cell_id)}; run `mirage-bench train` or `mirage-bench run` first")


def run_record(bench: Benchmark, options: Options, run_id: str, device: str, world: int, impl: str,
               hashes: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The run record before its cells: the machine, the cards, the data (``hashes``: ``data_hashes(bench)``)."""
    record = base_record(run_id, device, world)
    record.update(protocol={"name": bench.protocol.name, "version": bench.protocol.version, "card": bench.protocol.model_dump(mode="json")},
                  recipes={r.name: r.model_dump(mode="json") for r in bench.recipes}, seeds=bench.seeds,
                  degradations=[d.spec for d in bench.degradations], degradation_impl=impl, workers=options.workers,
                  data=hashes,
                  training_protocol=_training_record(bench), data_sources=[s.record() for s in bench.sources],
                  train_cells=[], eval_cells=[])
    return record


def train_entry(store: Store, cell: TrainCell, ckpt: str, trained_now: bool) -> dict[str, Any]:
    """A training cell as the run record lists it (``ckpt``: its checkpoint's content hash)."""
    return {"cell_id": cell.cell_id, "detector": cell.recipe.name, "train_generators": cell.train_generators,
            "seed": cell.seed, "checkpoint": str(store.checkpoint_dir(cell.cell_id) / "model.pt"), "checkpoint_sha256": ckpt,
            "trained_in_this_run": trained_now, "train_manifest": cell.train_hash, "validation_manifest": cell.validation_hash}


def eval_entries(jobs: Sequence[EvalJob], seconds: dict[str, float]) -> list[dict[str, Any]]:
    """The jobs' evaluation cells as the run record lists them (``seconds``: of the cells computed in this run)."""
    return [{"cell_id": cell_id, "train_cell_id": job.train_cell.cell_id, "generator": job.generator, "degradation": spec,
             "images": len(job.subset), "computed_in_this_run": cell_id in seconds, "seconds": seconds.get(cell_id)}
            for job in jobs for spec, cell_id in job.cell_ids.items()]


def _training_record(bench: Benchmark) -> dict[str, Any]:
    """Which card's training data trained the models and how they were grouped (``mode``)."""
    card = bench.training or bench.protocol
    return {"name": card.name, "version": card.version, "via_train_from": bench.training is not None, "mode": card.mode,
            "generators": card.train, "split": card.train_split, "validation": card.validation.model_dump(mode="json"),
            "training_sets": sorted(bench.subsets.train)}


def train_into_store(cell: TrainCell, store: Store, options: Options, device: str, progress: Progress) -> None:
    """Train ``cell``'s checkpoint into the store (resuming from its state file); a published card's released
    weights are saved as the checkpoint instead."""
    if is_published_recipe(cell.recipe):  # the authors' released weights stand for this cell: nothing is trained
        save_published_checkpoint(cell.recipe, store.checkpoint_dir(cell.cell_id), {"train_cell_id": cell.cell_id})
        return
    torch.manual_seed(cell.seed)  # the initial weights are a function of the seed
    detector = build_detector(cell.recipe)
    advance = progress(f"train {cell.recipe.name} on {cell.train_generators} (seed {cell.seed})", cell.steps())
    train_cell(detector, cell.train, cell.validation, cell.seed, store.checkpoint_dir(cell.cell_id), device=device,
               workers=options.workers, state_every=options.state_every, eval_batch_size=options.eval_batch_size,
               metadata={"train_cell_id": cell.cell_id, "train_generators": cell.train_generators,
                         "train_manifest": cell.train_hash, "validation_manifest": cell.validation_hash},
               on_step=lambda step, total: advance(1))


#: Most bytes of models (``detectors.base.held_bytes``, frozen backbones included, a shared one once) the
#: evaluation holds loaded at once; a group may hold one model more while the one whose loading crossed the
#: limit opens the next group. Six ViT-L/14 image towers in fp32 (1.16 GiB each; but any number of UnivFD
#: checkpoints sharing one tower) or 91 CNNSpot ResNet-50s (90 MiB). A device with less than three times this
#: memory gets a third of its memory (``pass_model_bytes``): the rest is left for one forward at a time.
PASS_MODEL_BYTES = 8 << 30


def pass_model_bytes(device: str) -> int:
    """``PASS_MODEL_BYTES``, or a third of the device's memory where that is less (a 12 GB card: 4 GB of models)."""
    total = memory_bytes(device)
    return min(PASS_MODEL_BYTES, total // 3) if total else PASS_MODEL_BYTES


def evaluate_into_store(jobs: list[EvalJob], bench: Benchmark, store: Store, options: Options, device: str, run_id: str,
                  progress: Progress, impl: str) -> dict[str, float]:
    """Score every job's missing cells. The checkpoints with work left are loaded once each, in groups of at
    most ``pass_model_bytes(device)``. A group's models are scored in passes: one for all the test subsets where
    the same models need the same degradations (every subset, in a fresh run). A pass decodes and degrades each
    image once for all of its models and subsets (an image that several subsets list, such as reals they share,
    once), and its loader starts once, not once per subset. Returns the scoring seconds of each evaluation cell
    computed: its model's forwards and an equal share of the pass's shared work (``timing.cell_seconds``), split
    among the model's subsets by their image counts, over its cells."""
    todo = {id(job): tuple(d.spec for d in bench.degradations if not store.has_predictions(job.cell_ids[d.spec])) for job in jobs}
    pending = [job for job in jobs if todo[id(job)]]
    to_load = list({id(job.train_cell): job.train_cell for job in pending}.values())
    seconds: dict[str, float] = {}
    for loaded in _loaded_models(to_load, store, device):
        models = {id(cell): (detector, meta) for cell, detector, meta in loaded}
        passes: dict[tuple[tuple[str, ...], tuple[int, ...]], list[list[tuple[EvalJob, Any, dict[str, Any]]]]] = {}
        for generator in bench.protocol.test:
            by_todo: dict[tuple[str, ...], list[tuple[EvalJob, Any, dict[str, Any]]]] = {}
            for job in pending:
                if job.generator == generator and id(job.train_cell) in models:
                    by_todo.setdefault(todo[id(job)], []).append((job, *models[id(job.train_cell)]))
            for specs, group in by_todo.items():
                passes.setdefault((specs, tuple(id(job.train_cell) for job, _, _ in group)), []).append(group)
        for (specs, _), groups in passes.items():
            degradations = [d for d in bench.degradations if d.spec in specs]
            started = time.perf_counter()
            forward = _evaluate_pass(groups, degradations, store, options, device, run_id, progress, impl)
            per_cell = cell_seconds(time.perf_counter() - started, forward, len(degradations))
            images = [len(group[0][0].subset) for group in groups]
            total = sum(images)
            for group, count in zip(groups, images):
                seconds.update({job.cell_ids[d.spec]: own * count / total
                                for (job, _, _), own in zip(group, per_cell) for d in degradations})
    return seconds


def _loaded_models(trained: list[TrainCell], store: Store, device: str) -> Iterator[list[tuple[TrainCell, Any, dict[str, Any]]]]:
    """The ``trained`` cells' checkpoints loaded on ``device``, each once, in groups holding at most
    ``pass_model_bytes(device)`` (at least one model). A checkpoint whose frozen weights equal a loaded one's holds that copy instead of its own
    (``trunks.adopt_frozen``), so its frozen backbone counts once."""
    budget = pass_model_bytes(device)
    group: list[tuple[TrainCell, Any, dict[str, Any]]] = []
    for cell in trained:
        detector, meta = load_checkpoint(store.checkpoint_dir(cell.cell_id) / "model.pt", device)
        loaded = [d for _, d, _ in group]
        adopt_frozen(detector, loaded)
        if group and held_bytes([*loaded, detector]) > budget:
            yield group
            group = []
        group.append((cell, detector, meta))
    if group:
        yield group


def _evaluate_pass(groups: list[list[tuple[EvalJob, Any, dict[str, Any]]]], todo: list[Any], store: Store, options: Options,
                   device: str, run_id: str, progress: Progress, impl: str) -> list[float]:
    """Score the loaded checkpoints on the union of their test subsets under the ``todo`` degradations (one decode
    per image for all of them) and store each subset's cells; ``groups`` holds one list of (job, detector,
    metadata) per subset, the same checkpoints in the same order. Returns each model's forward seconds. A model
    with non-finite logits is refused after the others are stored."""
    loaded = groups[0]
    detectors = [detector for _, detector, _ in loaded]
    first = loaded[0][0].train_cell
    models = f"{first.recipe.name}/{first.train_generators}/s{first.seed}" if len(loaded) == 1 else f"{len(loaded)} models"
    generators = [group[0][0].generator for group in groups]
    subsets = [group[0][0].subset for group in groups]
    images = union_of(dict(zip(generators, subsets)))
    advance = progress(f"score {models} on {', '.join(generators)}", len(images) * len(todo) * len(loaded))
    scorer = make_scorer(impl, device, batch_size=options.eval_batch_size, workers=options.workers, compile=options.compile)
    scored = scorer.score(detectors, images, todo, base_seed=DEGRADATION_BASE_SEED, on_batch=advance)
    position = pd.Index(images["image_id"])
    refused: list[ContractError] = []
    for group, manifest in zip(groups, subsets):
        rows = position.get_indexer(manifest["image_id"])
        for (job, detector, meta), scores in zip(group, scored):
            logits, seeds = scores.logits[:, rows], scores.seeds[rows]
            try:  # on every rank (all hold the gathered scores), before any of this model's cells of the subset is written
                for d, cell_logits in zip(todo, logits):
                    refuse_non_finite(job, d.spec, manifest, cell_logits)
            except ContractError as exc:
                refused.append(exc)
                continue
            if distributed.is_main():
                for d, cell_logits, used in zip(todo, logits, scores.impls):
                    frame = _prediction_frame(job, manifest, d.spec, seeds, cell_logits, run_id, meta, detector, used)
                    store.write_predictions(job.cell_ids[d.spec], frame)
    distributed.barrier()
    if refused:
        raise refused[0] if len(refused) == 1 else ContractError("\n".join(str(exc) for exc in refused))
    return [scores.forward_seconds for scores in scored]


def union_of(subsets: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The rows of every subset, an image that several list once (first listed first). Refused: a subset that
    lists an id twice, and one id for two files in two subsets (the second file would take the first's scores)."""
    for generator, subset in subsets.items():
        refuse_repeated_ids(subset, f"test subset {generator!r}")
    rows = pd.concat([subset.assign(_subset=generator) for generator, subset in subsets.items()], ignore_index=True)
    files = rows.drop_duplicates(["image_id", "path"])
    clash = files["image_id"].duplicated(keep=False)
    if clash.any():
        shown = files.loc[clash, ["_subset", "image_id", "path"]].head(4).rename(columns={"_subset": "subset"}).to_dict("records")
        raise DataError(f"test subsets give one image id to different files ({shown}); an image id must name one file, "
                        "as the ids of the run's own scan and of `mirage-bench data index` do")
    return rows.drop_duplicates("image_id", ignore_index=True).drop(columns="_subset")


def refuse_non_finite(job: EvalJob, spec: str, manifest: pd.DataFrame, logits: np.ndarray, shown: int = 5) -> None:
    """Refuse NaN/inf logits before they are stored: a NaN score compares False with every threshold, so the
    metrics would count those images as "real" without a word."""
    bad = ~np.isfinite(np.asarray(logits, dtype=np.float64))
    if not bad.any():
        return
    cell = job.train_cell
    ids = manifest["image_id"].astype(str).to_numpy()[bad][:shown].tolist()
    raise ContractError(
        f"detector {cell.recipe.name!r} (train {cell.train_generators}, seed {cell.seed}, training cell {cell.cell_id}) "
        f"gave non-finite logits (NaN or inf) for {int(bad.sum())} of {len(bad)} images of test subset {job.generator!r} "
        f"under degradation {spec!r} (evaluation cell {job.cell_ids[spec]}); first image ids: {ids}. Nothing was stored "
        "for this cell. Check the checkpoint for diverged weights (re-train it with another seed or a lower train.lr) "
        "and the detector's forward for overflow."
    )


def _prediction_frame(job: EvalJob, manifest: pd.DataFrame, spec: str, seeds: np.ndarray, logits: np.ndarray, run_id: str,
                      meta: dict[str, Any], detector: Any, impl: str) -> pd.DataFrame:
    cell = job.train_cell
    logits = logits.astype(np.float32)
    return pd.DataFrame({
        "run_id": run_id, "cell_id": job.cell_ids[spec], "detector": cell.recipe.name, "recipe_hash": cells.recipe_hash(cell.recipe),
        "train_generators": cell.train_generators, "seed": cell.seed, "checkpoint_sha256": job.checkpoint_sha256,
        "image_id": manifest["image_id"].astype(str).to_numpy(), "path": manifest["path"].astype(str).to_numpy(),
        "rel_path": manifest["rel_path"].astype(str).to_numpy(), "sha256": manifest["sha256"].astype(str).to_numpy(),
        "generator": job.generator, "family": manifest["family"].astype(str).to_numpy(),
        "label": manifest["label"].astype(int).to_numpy(), "degradation": spec, "degradation_seed": seeds,
        "logit": logits, "p_fake": detector.p_fake(torch.from_numpy(logits)).numpy().astype(np.float32),
        "threshold": float(meta["threshold"]), "impl": impl, "random_backbone": bool(detector.random_backbone),
    })


__all__ = ["Benchmark", "Cards", "Options", "Subsets", "describe_plan", "execute", "load_benchmark", "load_cards", "preflight",
           "summarize_plan"]
