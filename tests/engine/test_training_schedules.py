"""The schedules and optimiser groups of the baselines, against small references written from their authors'
training loops (issue 28):

- CNNDetection@ea0b562 ``train.py`` + ``earlystop.py`` + ``networks/trainer.py`` (UnivFD@1abc486 reuses them):
  ``EarlyStopping(patience=5, delta=-0.001)`` fed the validation accuracy each epoch; on ``early_stop`` the lr is
  divided by 10 (training stops when it falls below 1e-6), and a new ``EarlyStopping(patience=5, delta=-0.002)``
  starts; ``save_checkpoint`` ('best') runs on each call that sets the best.
- NPR@73cde1c ``train.py``: after epoch ``e``, ``if e % delr_freq == 0 and e != 0: lr *= 0.9`` (delr_freq 10).
- Dassl@c61a1b5 ``build_optimizer`` as CLIPping@3298cae's CoOp calls it: ``SGD(prompt_learner.parameters(),
  lr, momentum=0.9, weight_decay=5e-4, dampening=0, nesterov=False)``, one group.
"""

from __future__ import annotations

import helpers
import numpy as np
import pytest
import torch

from mirage_bench.cards import load_recipe
from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.engine.trainer import LRSchedule, build_optimizer


class _EarlyStopping:
    """CNNDetection's ``EarlyStopping``, with the checkpoint saves recorded instead of written."""

    def __init__(self, patience: int, delta: float) -> None:
        self.patience, self.delta, self.counter, self.best_score, self.early_stop = patience, delta, 0, None, False

    def __call__(self, score: float) -> bool:
        """True when this call saves the 'best' checkpoint."""
        if self.best_score is None:
            self.best_score = score
            return True
        if score < self.best_score - self.delta:
            self.counter += 1
            self.early_stop = self.counter >= self.patience
            return False
        self.best_score, self.counter = score, 0
        return True


def _cnndetection(accuracies: list[float], lr: float = 1e-4) -> tuple[list[float], list[int], int | None]:
    """CNNDetection's epoch loop on a given accuracy curve: (lr of each epoch trained, epochs saved as 'best',
    the epoch after which training stopped, or None)."""
    lrs, saved = [], []
    stopping = _EarlyStopping(patience=5, delta=-0.001)
    for epoch, accuracy in enumerate(accuracies):
        lrs.append(lr)
        if stopping(accuracy):
            saved.append(epoch)
        if stopping.early_stop:
            lr /= 10.0
            if lr < 1e-6:
                return lrs, saved, epoch
            stopping = _EarlyStopping(patience=5, delta=-0.002)
    return lrs, saved, None


def _ours(card: str, accuracies: list[float]) -> tuple[list[float], list[int], int | None]:
    schedule = LRSchedule(load_recipe(card).train)
    lrs, saved = [], []
    for epoch, accuracy in enumerate(accuracies):
        lrs.append(schedule.lr(epoch))
        improved, keep_going = schedule.observe(accuracy)
        if improved:
            saved.append(epoch)
        if not keep_going:
            return lrs, saved, epoch
    return lrs, saved, None


def _curves() -> list[list[float]]:
    rng = np.random.default_rng(0)
    flat = [0.5] * 40
    # +0.0015 an epoch: an improvement before the first drop (needs +0.001), not after it (needs +0.002)
    slow = [0.5 + 0.0015 * e for e in range(10)] + [0.5135] * 6 + [0.5135 + 0.0015 * e for e in range(1, 30)]
    noisy = [[float(v) for v in np.clip(0.6 + np.cumsum(rng.normal(0.0, 0.004, 60)), 0, 1)] for _ in range(6)]
    quantised = [[round(float(v) * 200) / 200 for v in curve] for curve in noisy]  # ties at exactly best + delta
    return [flat, slow, *noisy, *quantised]


@pytest.mark.parametrize("card", ["cnnspot", "univfd"])
@pytest.mark.parametrize("curve", range(14))
def test_plateau_follows_cnndetections_early_stopping_loop(card, curve):
    accuracies = _curves()[curve]
    expected_lrs, expected_saved, expected_stop = _cnndetection(accuracies)
    lrs, saved, stop = _ours(card, accuracies)
    assert (saved, stop) == (expected_saved, expected_stop)
    assert lrs == pytest.approx(expected_lrs, rel=1e-12)


def test_a_flat_curve_drops_after_the_6th_and_12th_epochs_and_stops_after_the_18th():
    lrs, saved, stop = _ours("cnnspot", [0.5] * 40)
    assert stop == 17 and saved == [0, 6, 12]  # the best is forgotten at each drop
    assert lrs[:6] == [1e-4] * 6 and lrs[6:12] == pytest.approx([1e-5] * 6) and lrs[12:] == pytest.approx([1e-6] * 6)


def test_npr_multiplies_the_lr_by_0_9_after_every_10th_epoch():
    lr, expected = 2e-4, []
    for epoch in range(50):
        expected.append(lr)
        if epoch % 10 == 0 and epoch != 0:
            lr *= 0.9
    schedule = LRSchedule(load_recipe("npr").train)
    assert [schedule.lr(e) for e in range(50)] == pytest.approx(expected, rel=1e-12)


def test_coop_optimiser_is_dassls_sgd_over_the_prompt_learner():
    torch.manual_seed(0)
    detector = build_tiny("coop")
    optimizer = build_optimizer(detector, detector.recipe.train)
    assert isinstance(optimizer, torch.optim.SGD) and len(optimizer.param_groups) == 1
    group = optimizer.param_groups[0]
    assert {k: group[k] for k in ("lr", "momentum", "weight_decay", "dampening", "nesterov")} == {
        "lr": 0.002, "momentum": 0.9, "weight_decay": 5e-4, "dampening": 0, "nesterov": False}
    dassl = [p for p in detector.prompts.parameters() if p.requires_grad]
    assert [id(p) for p in group["params"]] == [id(p) for p in dassl]


def test_coop_card_shows_dassls_weight_decay():
    from typer.testing import CliRunner

    from mirage_bench.cli import app

    result = CliRunner().invoke(app, ["detectors", "show", "coop"])
    assert result.exit_code == 0 and "  weight_decay: 0.0005\n" in result.output


@pytest.mark.parametrize("epochs", [3, 6])
def test_a_plateau_run_keeps_the_best_epoch_since_the_last_drop(tmp_path, epochs):
    """Through train_cell: each epoch's validation accuracy is recorded, the lr follows CNNDetection's loop on
    those accuracies, and the checkpoint is the epoch it last saved as 'best' (with 3 epochs here: the first
    epoch after a drop, worse than the best before it)."""
    from mirage_bench.detectors.infra.build import build_detector
    from mirage_bench.detectors.infra.checkpoint import read_checkpoint
    from mirage_bench.engine.trainer import train_cell

    bench = helpers.benchmark(tmp_path / "data")
    recipe = helpers.recipe(f"train.epochs={epochs}", "train.lr=0.01", "train.val_augment=[cnnspot-val(p=0.5)]",
                            "train.schedule={kind: plateau, plateau_patience: 1, plateau_min_delta: [0.001, 0.002], min_lr: 1.0e-9}")
    torch.manual_seed(0)
    workdir = tmp_path / "cell"
    workdir.mkdir()
    result = train_cell(build_detector(recipe), bench.subsets.train["g1"], bench.subsets.validation["g1"], 0, workdir)
    history = read_checkpoint(result.checkpoint)["metadata"]["history"]
    accuracies = [row["val_accuracy"] for row in history]
    lrs, saved, stop = [], [], None
    stopping, lr = _EarlyStopping(patience=1, delta=-0.001), 0.01
    for epoch, accuracy in enumerate(accuracies):
        lrs.append(lr)
        if stopping(accuracy):
            saved.append(epoch)
        if stopping.early_stop:
            lr, stopping = lr / 10.0, _EarlyStopping(patience=1, delta=-0.002)
    assert [row["lr"] for row in history] == pytest.approx(lrs, rel=1e-12)
    assert result.best_epoch == saved[-1]


class _Killed(BaseException):
    """Stands in for SIGKILL (no except clause catches it)."""


def test_a_killed_plateau_run_resumes_to_the_same_weights_and_schedule(tmp_path, monkeypatch):
    """The plateau's state (lr, best since the last drop, bad epochs, drops) is part of state.pt."""
    from mirage_bench.detectors.infra.build import build_detector
    from mirage_bench.detectors.infra.checkpoint import read_checkpoint
    from mirage_bench.engine import trainer

    bench = helpers.benchmark(tmp_path / "data")
    recipe = helpers.recipe("train.epochs=5", "train.lr=0.01", "train.val_augment=[cnnspot-val(p=0.5)]",
                            "train.schedule={kind: plateau, plateau_patience: 1, plateau_min_delta: [0.001, 0.002], min_lr: 1.0e-9}")
    train, validation = bench.subsets.train["g1"], bench.subsets.validation["g1"]

    def run(workdir):
        torch.manual_seed(0)
        workdir.mkdir(exist_ok=True)
        return read_checkpoint(trainer.train_cell(build_detector(recipe), train, validation, 0, workdir).checkpoint)

    reference = run(tmp_path / "reference")
    original, calls = trainer._accuracy, {"n": 0}

    def dies_on_the_second_epoch(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise _Killed()
        return original(*args)

    monkeypatch.setattr(trainer, "_accuracy", dies_on_the_second_epoch)
    with pytest.raises(_Killed):
        run(tmp_path / "killed")
    monkeypatch.setattr(trainer, "_accuracy", original)
    resumed = run(tmp_path / "killed")
    assert resumed["metadata"]["history"] == reference["metadata"]["history"]
    assert resumed["metadata"]["best_epoch"] == reference["metadata"]["best_epoch"]
    assert all(torch.equal(resumed["state"][k], reference["state"][k]) for k in reference["state"])
