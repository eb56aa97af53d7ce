"""MiraGe's discriminative loss: supervised contrastive loss over batch, memory bank and text anchors.

Reconstruction from the paper's description (MiraGe, arXiv 2508.01525; see shared/reference/mirage.md).
For each batch feature f_i, the contrast set U(i) is every batch feature except f_i, every bank entry not
of the same image (an earlier copy of f_i), and the two text anchors. Each element a carries a weight w_a:
1 for image features, ``anchor_weight`` for the anchors (an element of weight w counts as w copies of
itself, so ``anchor_weight = 1`` is plain supervised contrastive loss and 0 removes the anchors)::

    L_i = -1/W_P(i) * sum_{p in P(i)} w_p * log( exp(f_i.z_p/tau) / sum_{a in U(i)} w_a exp(f_i.z_a/tau) )

with P(i) the elements of U(i) with f_i's label and W_P(i) their total weight; L = mean of L_i over the
i with W_P(i) > 0 (0 when there is none). All in fp32.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def supcon_loss(
    feats: Tensor,
    labels: Tensor,
    ids: Tensor,
    bank_feats: Tensor,
    bank_labels: Tensor,
    bank_ids: Tensor,
    anchors: Tensor,
    anchor_labels: Tensor,
    temperature: float,
    anchor_weight: float = 1.0,
) -> Tensor:
    """The loss above for normalised ``feats`` ``[B, D]``, ``bank_feats`` ``[M, D]``, ``anchors`` ``[A, D]``."""
    feats, bank_feats, anchors = feats.float(), bank_feats.float(), anchors.float()
    batch, n_bank, n_anchor = feats.shape[0], bank_feats.shape[0], anchors.shape[0]
    device = feats.device
    z = torch.cat([feats, bank_feats, anchors], dim=0)  # [N, D], N = B + M + A
    z_labels = torch.cat([labels, bank_labels, anchor_labels]).to(device)
    weights = torch.cat(
        [torch.ones(batch + n_bank, device=device), torch.full((n_anchor,), float(anchor_weight), device=device)]
    )  # [N]
    sim = feats @ z.T / temperature  # [B, N]

    not_self = torch.ones(batch, batch + n_bank + n_anchor, dtype=torch.bool, device=device)
    not_self[:, :batch] = ~torch.eye(batch, dtype=torch.bool, device=device)
    not_self[:, batch : batch + n_bank] = ids.to(device).unsqueeze(1) != bank_ids.to(device).unsqueeze(0)
    member = not_self & (weights > 0).unsqueeze(0)  # [B, N]: elements of U(i)
    positive = member & (labels.to(device).unsqueeze(1) == z_labels.unsqueeze(0))  # [B, N]: P(i)

    # log w_a: -inf for weight 0 (never reached: those are masked out of U(i) anyway)
    log_denominator = torch.logsumexp((sim + weights.log()).masked_fill(~member, float("-inf")), dim=1, keepdim=True)  # [B, 1]
    log_prob = sim - log_denominator  # [B, N]
    pos_weight = positive * weights.unsqueeze(0)  # [B, N]
    total = pos_weight.sum(dim=1)  # [B]
    has_positive = total > 0
    if not has_positive.any():
        return sim.sum() * 0.0  # keeps the graph; no anchor has a positive to pull towards
    per_item = -(pos_weight * log_prob).sum(dim=1)[has_positive] / total[has_positive]
    return per_item.mean()


class MemoryBank(nn.Module):
    """FIFO queue of the last ``size`` detached, normalised image features with labels and image ids.

    Entries are kept oldest first. The buffers are not persistent: the bank is training state, never part
    of an inference checkpoint. ``enqueue`` builds new tensors instead of writing in place, so a loss that
    read the bank before the update still backpropagates through exactly the tensors it used.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("feats", torch.empty(0, dim), persistent=False)  # [M, D], M <= size
        self.register_buffer("labels", torch.empty(0, dtype=torch.long), persistent=False)  # [M]
        self.register_buffer("ids", torch.empty(0, dtype=torch.long), persistent=False)  # [M]

    def __len__(self) -> int:
        return self.feats.shape[0]

    @torch.no_grad()
    def enqueue(self, feats: Tensor, labels: Tensor, ids: Tensor) -> None:
        """Append a batch (detached, L2-normalised, fp32) and drop the oldest entries beyond ``size``."""
        new = nn.functional.normalize(feats.detach().float(), dim=-1).to(self.feats.device)
        self.feats = torch.cat([self.feats, new])[-self.size :]
        self.labels = torch.cat([self.labels, labels.detach().long().to(self.labels.device)])[-self.size :]
        self.ids = torch.cat([self.ids, ids.detach().long().to(self.ids.device)])[-self.size :]

    def reset(self) -> None:
        """Empty the bank (the start of a training run)."""
        self.feats, self.labels, self.ids = self.feats[:0], self.labels[:0], self.ids[:0]
