"""Training one cell: a loop that reads top to bottom, resumable exactly from its last full state.

Everything random is a function of (seed, epoch, position): the epoch's order is a permutation seeded by
(seed, epoch), and each sample's crop/flip/augmentation draws from a generator seeded by (seed, epoch,
index). The full state (model, optimiser, schedule, torch RNG, data position, best-so-far) is saved every
``state_every`` steps and after each epoch, so a killed run resumes to bit-identical weights on CPU.

The checkpoint is chosen, and the threshold calibrated, on validation data carved from the training
generators only; the threshold is stored in the checkpoint's metadata.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from mirage_bench import distributed
from mirage_bench.config import InputSpec, TrainConfig
from mirage_bench.data.images import open_rgb
from mirage_bench.degradations import expand, training_augmentation
from mirage_bench.detectors.base import Detector
from mirage_bench.detectors.infra.checkpoint import atomic_torch_save, save_checkpoint
from mirage_bench.errors import DataError, TrainingError, worker_errors
from mirage_bench.features.cache import FeatureCache
from mirage_bench.features.encode import encode_with_cache, feature_keys
from mirage_bench.preprocess import eval_transform, train_transform, validation_transform
from mirage_bench.scoring import ReferenceScorer
from mirage_bench.store import MODEL_FILE, STATE_FILE, say, set_aside, zip_damage


def _seed_of(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes, unlike ``hash``)."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value * 6364136223846793005 + int(part) + 1442695040888963407) % (1 << 63)
    return value


class _TrainImages(Dataset):
    """Item ``i`` of epoch ``e``: the training transform of image ``i`` with its own seeded generator."""
    def __init__(self, manifest: pd.DataFrame, spec: InputSpec, augment: Any, seed: int) -> None:
        self.paths = manifest["path"].tolist()
        self.labels = manifest["label"].astype(int).tolist()
        self.spec, self.augment, self.seed = spec, augment, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        generator = torch.Generator().manual_seed(_seed_of(self.seed, self.epoch, i))

        image = train_transform(open_rgb(self.paths[i]), self.spec, generator, self.paths[i], self.augment)
        return image, self.labels[i], i


class _PlateauImages(_TrainImages):
    """Item ``i`` of epoch ``e``: validation image ``i`` as the plateau schedule watches it (the training resize,
    ``train.val_augment`` drawn afresh each epoch as CNNDetection's unseeded loader does, a centre crop)."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        generator = torch.Generator().manual_seed(_seed_of(self.seed, self.epoch, i, 3))

        image = validation_transform(open_rgb(self.paths[i]), self.spec, generator, self.augment, self.paths[i])
        return image, self.labels[i], i


class _CachedFeatures(Dataset):
    """Item ``i``: the frozen encoder's cached feature of training image ``i`` (no augmentation) and its label.

    For detectors that declare ``trains_on_cached_features`` (the labelled fast variant of UnivFD): the
    features of the evaluation transform are computed once through the feature cache and reused by every
    epoch, seed and later run; only the head trains.
    """

    def __init__(self, detector: Detector, manifest: pd.DataFrame, cache_root: Path, device: str) -> None:
        paths = manifest["path"].tolist()
        keys = feature_keys(detector, manifest["sha256"].astype(str).tolist())
        with FeatureCache(cache_root) as cache:
            self.features = encode_with_cache(
                detector, cache, keys, lambda i: eval_transform(open_rgb(paths[i]), detector.input_spec, paths[i]), device=device
            )
        self.labels = manifest["label"].astype(int).tolist()
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        return self.features[i], self.labels[i], i


class LRSchedule:
    """Per-epoch learning rate: warm-up, then constant, cosine (to 0 at the last epoch), step or plateau.

    ``plateau`` is CNNDetection's ``EarlyStopping`` and ``adjust_learning_rate`` loop (UnivFD reuses it): the
    first epoch (and the first after each drop) sets the best accuracy; an epoch improves on it when its
    accuracy reaches ``best + plateau_min_delta``; ``plateau_patience`` epochs in a row without improving
    divide the lr by ``1 / plateau_factor`` and forget the best; training stops once the lr is below ``min_lr``.
    """

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.plateau_lr = cfg.lr
        self.plateau_best: float | None = None
        self.plateau_bad = 0
        self.plateau_drops = 0

    def lr(self, epoch: int) -> float:
        s, base = self.cfg.schedule, self.cfg.lr
        if epoch < s.warmup_epochs:
            return s.warmup_lr if s.warmup_lr is not None else base * (epoch + 1) / (s.warmup_epochs + 1)
        if s.kind == "cosine":
            span = max(1, self.cfg.epochs - s.warmup_epochs)
            return 0.5 * base * (1 + math.cos(math.pi * (epoch - s.warmup_epochs) / span))
        if s.kind == "step":  # dropped at the end of epochs step_size, 2 * step_size, ... (never after epoch 0)
            return base * s.step_gamma ** max(0, math.ceil(epoch / s.step_size) - 1)
        if s.kind == "plateau":
            return self.plateau_lr
        return base

    def observe(self, val_accuracy: float) -> tuple[bool, bool]:
        """Feed a plateau schedule the epoch's validation accuracy: (a new best since the last drop, keep training)."""
        s = self.cfg.schedule
        delta = s.plateau_min_delta[min(self.plateau_drops, 1)]
        if self.plateau_best is None or val_accuracy >= self.plateau_best + delta:
            self.plateau_best, self.plateau_bad = val_accuracy, 0
            return True, True
        self.plateau_bad += 1
        if self.plateau_bad < s.plateau_patience:
            return False, True
        self.plateau_lr *= s.plateau_factor
        self.plateau_best, self.plateau_bad, self.plateau_drops = None, 0, self.plateau_drops + 1
        return False, self.plateau_lr >= s.min_lr

    def state_dict(self) -> dict[str, Any]:
        return {"plateau_lr": self.plateau_lr, "plateau_best": self.plateau_best, "plateau_bad": self.plateau_bad,
                "plateau_drops": self.plateau_drops}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau_lr, self.plateau_best = state["plateau_lr"], state["plateau_best"]
        self.plateau_bad, self.plateau_drops = int(state["plateau_bad"]), int(state["plateau_drops"])


def build_optimizer(detector: Detector, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for _, p in detector.trainable_parameters()]
    if not params:
        raise DataError(f"detector {detector.recipe.name!r} has no trainable parameters; nothing to train")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def calibrate_threshold(labels: np.ndarray, p_fake: np.ndarray) -> float:
    """The ``p_fake`` threshold with the best balanced accuracy on validation (ties: closest to 0.5)."""
    labels = np.asarray(labels, dtype=int)
    if len(np.unique(labels)) < 2:
        raise DataError(f"validation holds only class {labels[0] if len(labels) else '-'}; cannot calibrate a threshold")
    values = np.unique(np.asarray(p_fake, dtype=np.float64))
    candidates = np.r_[0.0 if values[0] > 0 else -1.0, (values[:-1] + values[1:]) / 2, values[-1]]
    predicted = np.asarray(p_fake)[None, :] > candidates[:, None]  # [T, N]
    balanced = (predicted[:, labels == 1].mean(axis=1) + (~predicted[:, labels == 0]).mean(axis=1)) / 2
    best = np.flatnonzero(balanced == balanced.max())
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])


@dataclass
class TrainResult:
    checkpoint: Path
    threshold: float
    best_epoch: int


def train_cell(
    detector: Detector,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    seed: int,
    workdir: Path,
    *,
    device: str = "cpu",
    workers: int = 0,
    state_every: int = 50,
    eval_batch_size: int = 64,
    metadata: dict[str, Any] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train ``detector`` (built under ``torch.manual_seed(seed)``) and write ``workdir/model.pt``."""
    cfg = detector.recipe.train
    rank, world = distributed.rank_and_world()
    detector.to(device)
    distributed.sync_module(detector)
    optimizer = build_optimizer(detector, cfg)
    schedule = LRSchedule(cfg)
    cached = bool(getattr(detector, "trains_on_cached_features", False))
    if cached:
        if cfg.augment:
            raise DataError(f"{detector.recipe.name}: training on cached features cannot apply train.augment {cfg.augment}; set train.augment=[]")
        dataset: Dataset = _CachedFeatures(detector, train.reset_index(drop=True), workdir.parent.parent / "features", device)
    else:
        dataset = _TrainImages(train.reset_index(drop=True), detector.input_spec, training_augmentation(cfg.augment), seed)
    steps_per_epoch = math.ceil(len(dataset) / cfg.batch_size)
    total_steps = min(cfg.epochs * steps_per_epoch, cfg.max_steps or math.inf)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cfg.bf16 and str(device).startswith("cuda") else nullcontext()
    none = expand(["none"])
    plateau = cfg.schedule.kind == "plateau"
    if plateau:
        plateau_images = _PlateauImages(validation.reset_index(drop=True), detector.input_spec,
                                        training_augmentation(cfg.val_augment), seed)

    # Position and best-so-far; replaced by the saved state when resuming.
    pos = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "epoch_done": False}
    best: dict[str, Any] = {"val_loss": math.inf, "epoch": -1, "model": None, "threshold": None}
    history: list[dict[str, float]] = []
    torch.manual_seed(_seed_of(seed, 1))  # model-side randomness (dropout) starts from a known state
    state_path = workdir / STATE_FILE
    damage = zip_damage(state_path) if state_path.is_file() else None
    if damage is not None and rank == 0:  # moved aside, never deleted; training starts again from the beginning
        say(f"damaged: {state_path} ({damage}); moved aside to {set_aside(state_path, workdir.parent.parent)}; "
            "the model is trained from the start")
    if damage is None and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        detector.load_state_dict(state["model"], strict=True)
        detector.load_training_state(state["detector_training_state"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["rng"])
        pos, best, history = state["position"], state["best"], state["history"]
        if pos["epoch_done"]:
            pos = {"epoch": pos["epoch"] + 1, "step_in_epoch": 0, "global_step": pos["global_step"], "epoch_done": False}

    def save_state() -> None:
        if rank == 0:
            atomic_torch_save(
                {"model": detector.state_dict(), "detector_training_state": detector.training_state(),
                 "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                 "scaler": None,  # bf16 autocast needs no gradient scaler
                 "rng": torch.get_rng_state(), "position": dict(pos), "best": best, "history": history},
                state_path,
            )
        distributed.barrier()

    keep_going = pos["global_step"] < total_steps
    while keep_going and pos["epoch"] < cfg.epochs:
        epoch = pos["epoch"]
        dataset.epoch = epoch
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr(epoch)
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(_seed_of(seed, epoch, 7))).tolist()
        batches = [order[i : i + cfg.batch_size][rank::world] for i in range(0, len(order), cfg.batch_size)]
        remaining = batches[pos["step_in_epoch"] :][: int(total_steps - pos["global_step"])]
        loader = DataLoader(dataset, batch_sampler=[b for b in remaining if b], num_workers=workers)
        detector.train()
        for images, labels, image_ids in _with_empty_batches(loader, remaining):  # image_ids: row indices
            optimizer.zero_grad(set_to_none=False)
            if images is not None:
                with autocast:
                    if cached:  # the head alone, on the frozen encoder's cached features
                        logits = detector.head(images.to(device).float()).float()
                        loss = F.binary_cross_entropy_with_logits(logits, labels.to(device).float())
                    else:
                        loss, _ = detector.training_loss(images.to(device), labels.to(device), image_ids.to(device))
                loss.backward()
            params = [p for _, p in detector.trainable_parameters()]
            distributed.average_gradients(params)
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            distributed.sync_module(detector)
            pos["step_in_epoch"] += 1
            pos["global_step"] += 1
            if on_step:
                on_step(pos["global_step"], int(total_steps))
            if pos["global_step"] % state_every == 0 and pos["step_in_epoch"] < len(batches):
                save_state()

        # End of the epoch (or of max_steps): validation picks the checkpoint and the threshold.
        scores = ReferenceScorer(device, batch_size=eval_batch_size, workers=workers).score_one(detector, validation, none)
        logits = torch.from_numpy(scores.logits[0])
        labels = torch.tensor(validation["label"].astype(int).to_numpy(), dtype=torch.float32)
        val_loss = float(F.binary_cross_entropy_with_logits(logits, labels))
        if not math.isfinite(val_loss):
            # Diverged: every later epoch starts from these weights, and no checkpoint choice is honest now.
            raise TrainingError(
                f"{detector.recipe.name}: training diverged, the validation loss after epoch {epoch} is {val_loss} "
                f"({int((~torch.isfinite(logits)).sum())} of {len(logits)} validation logits are not finite); lower "
                f"train.lr (now {cfg.lr}) or set train.grad_clip (now {cfg.grad_clip}) and run again (a changed "
                "recipe is a new training cell, trained from the start)"
            )
        record = {"epoch": epoch, "step": pos["global_step"], "val_loss": val_loss, "lr": schedule.lr(epoch)}
        if plateau:  # CNNDetection's loop: accuracy picks the checkpoint and moves the lr
            plateau_images.epoch = epoch
            record["val_accuracy"] = _accuracy(detector, plateau_images, eval_batch_size, device, workers)
            improved, keep_going = schedule.observe(record["val_accuracy"])
        else:
            improved, keep_going = val_loss < best["val_loss"], True
        history.append(record)
        if improved:
            threshold = calibrate_threshold(labels.numpy(), torch.sigmoid(logits).numpy())
            best = {"val_loss": val_loss, "epoch": epoch, "threshold": threshold,
                    "model": {k: v.detach().cpu().clone() for k, v in detector.state_dict().items()}}
        keep_going = keep_going and pos["global_step"] < total_steps
        pos["epoch_done"] = True
        save_state()
        pos = {"epoch": epoch + 1, "step_in_epoch": 0, "global_step": pos["global_step"], "epoch_done": False}

    detector.load_state_dict(best["model"], strict=True)
    meta = {**(metadata or {}), "threshold": best["threshold"], "best_epoch": best["epoch"],
            "best_val_loss": best["val_loss"], "history": history, "seed": seed}
    checkpoint = workdir / MODEL_FILE
    if rank == 0:
        save_checkpoint(detector, checkpoint, meta)
        state_path.unlink(missing_ok=True)
    distributed.barrier()
    return TrainResult(checkpoint, float(best["threshold"]), int(best["epoch"]))


@torch.no_grad()
def _accuracy(detector: Detector, images: Dataset, batch_size: int, device: str, workers: int) -> float:
    """The share of ``images`` whose p_fake is on the right side of 0.5 (CNNDetection's validation accuracy)."""
    detector.eval()
    correct = 0
    for batch, labels, _ in worker_errors(DataLoader(images, batch_size=batch_size, num_workers=workers)):
        predicted = detector.p_fake(detector(batch.to(device))).cpu() > 0.5
        correct += int((predicted == labels.bool()).sum())
    return correct / len(images)


def _with_empty_batches(loader: DataLoader, batches: list[list[int]]):
    """The loader's batches, with ``(None, None)`` where this rank's share of a global batch is empty."""
    produced = iter(worker_errors(loader))
    for batch in batches:
        yield next(produced) if batch else (None, None, None)
