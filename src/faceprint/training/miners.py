"""Online triplet miners: ``miner(embeddings, labels) -> (anchor, positive, negative)`` indices.

Distances are squared Euclidean, as in FaceNet. Every miner returns three ``(T,)`` int64
tensors on the embeddings' device; ``T`` may be 0 (no valid triplet in the batch).

- :class:`BatchAllMiner`: every valid triplet ``(a, p, n)``: ``label[a] == label[p]``,
  ``a != p``, ``label[n] != label[a]``.
- :class:`BatchHardMiner` (Hermans et al. 2017): for each anchor with a positive and a negative,
  its farthest positive and its nearest negative.
- :class:`SemiHardMiner` (FaceNet, Schroff et al. 2015): for each anchor-positive pair, the
  nearest negative that is still farther than the positive (``d_an > d_ap``); when none is,
  the farthest negative (TensorFlow Addons' ``triplet_semihard_loss`` does the same).
"""

from __future__ import annotations

import torch

Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def squared_distances(x: torch.Tensor) -> torch.Tensor:
    """``(N, N)`` squared Euclidean distances of the rows of ``x`` ``(N, D)`` (>= 0, exact 0 diagonal)."""
    sq = (x * x).sum(1)
    d = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    d = d.clamp_min(0.0)
    return d * (1.0 - torch.eye(len(x), device=x.device, dtype=x.dtype))


def _masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, N)`` bool: positive pairs (same label, not the diagonal) and negative pairs."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


class BatchAllMiner:
    """Every valid triplet of the batch."""

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        pos, neg = _masks(labels)
        valid = pos[:, :, None] & neg[:, None, :]
        a, p, n = torch.nonzero(valid, as_tuple=True)
        return a, p, n


class BatchHardMiner:
    """Per anchor: its hardest (farthest) positive and hardest (nearest) negative."""

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        with torch.no_grad():
            d = squared_distances(embeddings)
            pos, neg = _masks(labels)
            anchors = torch.nonzero(pos.any(1) & neg.any(1), as_tuple=True)[0]
            d_pos = torch.where(pos, d, torch.full_like(d, -1.0))
            d_neg = torch.where(neg, d, torch.full_like(d, float("inf")))
            p = d_pos[anchors].argmax(1)
            n = d_neg[anchors].argmin(1)
        return anchors, p, n


class SemiHardMiner:
    """Per anchor-positive pair: the nearest negative farther than the positive, else the
    farthest negative."""

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        with torch.no_grad():
            d = squared_distances(embeddings)
            pos, neg = _masks(labels)
            a, p = torch.nonzero(pos & neg.any(1, keepdim=True), as_tuple=True)
            d_ap = d[a, p][:, None]
            d_an = d[a]  # (T, N)
            is_neg = neg[a]
            inf = torch.full_like(d_an, float("inf"))
            semi = is_neg & (d_an > d_ap)
            nearest_semi = torch.where(semi, d_an, inf).argmin(1)
            farthest = torch.where(is_neg, d_an, -inf).argmax(1)
            n = torch.where(semi.any(1), nearest_semi, farthest)
        return a, p, n


__all__ = ["BatchAllMiner", "BatchHardMiner", "SemiHardMiner", "Triplets", "squared_distances"]
