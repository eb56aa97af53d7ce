"""MiraGe's loss against an independent plain-Python/numpy computation, and the FIFO memory bank."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.detectors.clip.supcon import MemoryBank, supcon_loss
from mirage_bench.errors import ContractError


def reference_supcon(feats, labels, ids, bank, bank_labels, bank_ids, anchors, tau, anchor_weight):
    """Written from the formula, one element at a time (float64)."""
    elements = [(f, y, "batch", k, 1.0) for k, (f, y) in enumerate(zip(feats, labels))]
    elements += [(f, y, "bank", i, 1.0) for f, y, i in zip(bank, bank_labels, bank_ids)]
    elements += [(f, y, "anchor", None, anchor_weight) for y, f in enumerate(anchors)]
    losses = []
    for i, (fi, yi) in enumerate(zip(feats, labels)):
        members = []
        for z, y, kind, key, w in elements:
            if kind == "batch" and key == i:
                continue  # f_i itself
            if kind == "bank" and key == ids[i]:
                continue  # an earlier copy of the same image
            if w == 0:
                continue
            members.append((float(np.dot(fi, z)) / tau, y, w))
        denominator = sum(w * math.exp(s) for s, _, w in members)
        positives = [(s, w) for s, y, w in members if y == yi]
        total = sum(w for _, w in positives)
        if total == 0:
            continue
        losses.append(-sum(w * math.log(math.exp(s) / denominator) for s, w in positives) / total)
    return sum(losses) / len(losses) if losses else 0.0


def unit(rng, n, d):
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("anchor_weight", [1.0, 0.5, 0.0])
def test_supcon_matches_the_reference_with_bank_and_own_copies(anchor_weight):
    rng = np.random.default_rng(0)
    feats, bank, anchors = unit(rng, 5, 8), unit(rng, 6, 8), unit(rng, 2, 8)
    labels, ids = [0, 1, 1, 0, 1], [10, 11, 12, 13, 14]
    bank_labels, bank_ids = [0, 1, 1, 0, 0, 1], [10, 20, 12, 21, 22, 12]  # images 10 and 12 have earlier copies
    t = lambda a, dtype=torch.float32: torch.tensor(np.asarray(a), dtype=dtype)  # noqa: E731
    got = supcon_loss(
        t(feats), t(labels, torch.long), t(ids, torch.long), t(bank), t(bank_labels, torch.long), t(bank_ids, torch.long),
        t(anchors), torch.tensor([0, 1]), 0.1, anchor_weight,
    )
    expected = reference_supcon(feats, labels, ids, bank, bank_labels, bank_ids, anchors, 0.1, anchor_weight)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_items_without_positives_are_left_out_of_the_mean():
    rng = np.random.default_rng(1)
    feats, anchors = unit(rng, 3, 4), unit(rng, 2, 4)
    labels = [0, 0, 1]  # the fake image has no positive once the anchors weigh 0
    got = supcon_loss(
        torch.tensor(feats, dtype=torch.float32), torch.tensor(labels), torch.arange(3), torch.zeros(0, 4),
        torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), torch.tensor(anchors, dtype=torch.float32),
        torch.tensor([0, 1]), 0.2, 0.0,
    )
    expected = reference_supcon(feats, labels, [0, 1, 2], [], [], [], anchors, 0.2, 0.0)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_bank_keeps_the_last_k_entries_in_order():
    bank = MemoryBank(size=4, dim=3)
    for start in (0, 3, 6):
        feats = torch.randn(3, 3, requires_grad=True)
        bank.enqueue(feats * 2, torch.tensor([start % 2] * 3), torch.arange(start, start + 3))
    assert bank.ids.tolist() == [5, 6, 7, 8]
    assert bank.labels.tolist() == [1, 0, 0, 0]
    assert not bank.feats.requires_grad
    assert torch.allclose(bank.feats.norm(dim=1), torch.ones(4))
    assert "feats" not in bank.state_dict()


@pytest.fixture()
def mirage():
    torch.manual_seed(0)
    return build_tiny("mirage", ["params.bank_size=6", "params.lambda_disc=0.7", "params.anchor_weight=0.5", "params.temperature=0.2"])


def test_training_loss_is_ce_plus_lambda_times_the_reference(mirage):
    images, labels, ids = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 1, 0]), torch.tensor([1, 2, 3, 4])
    mirage.train()
    mirage.training_loss(images, labels, ids)  # fills the bank with copies of images 1..4
    images2, ids2 = torch.randn(4, 3, 32, 32), torch.tensor([3, 5, 6, 7])  # image 3 has a copy in the bank
    bank = [t.clone() for t in (mirage.bank.feats, mirage.bank.labels, mirage.bank.ids)]
    loss, stats = mirage.training_loss(images2, labels, ids2)
    with torch.no_grad():
        feats, anchors = mirage.features(images2)
    scale = float(mirage.clip.logit_scale.exp())
    f, a = feats.double().numpy(), anchors.double().numpy()
    logits = scale * f @ a.T
    ce = np.mean([np.log(np.exp(row).sum()) - row[y] for row, y in zip(logits, labels.tolist())])
    disc = reference_supcon(f, labels.tolist(), ids2.tolist(), bank[0].double().numpy(), bank[1].tolist(), bank[2].tolist(), a, 0.2, 0.5)
    assert loss.item() == pytest.approx(ce + 0.7 * disc, rel=1e-4)
    assert stats["loss_disc"] == pytest.approx(disc, rel=1e-4)
    assert mirage.bank.ids.tolist() == [3, 4, 3, 5, 6, 7]


def test_backward_works_after_the_bank_update_and_eval_calls_leave_the_bank_alone(mirage):
    images, labels, ids = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 1, 0]), torch.arange(4)
    mirage.train()
    mirage.training_loss(images, labels, ids)
    loss, _ = mirage.training_loss(images, labels, ids)  # reads the bank, then replaces it
    loss.backward()
    assert mirage.prompts.text_prompts[0].grad is not None
    before = mirage.bank.ids.clone()
    mirage.eval()
    mirage.training_loss(images, labels, ids + 100)
    assert torch.equal(mirage.bank.ids, before)


def test_the_bank_needs_image_ids(mirage):
    with pytest.raises(ContractError, match="image_ids"):
        mirage.training_loss(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]), None)


def test_the_loss_is_fp32_under_bf16_autocast(mirage):
    mirage.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = mirage(torch.randn(2, 3, 32, 32))
        loss, _ = mirage.training_loss(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]), torch.arange(2))
    assert logits.dtype == torch.float32 and loss.dtype == torch.float32
    assert F.sigmoid(logits).isfinite().all()
