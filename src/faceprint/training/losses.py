"""Metric-learning losses as small ``nn.Module``s: ``loss(embeddings (N, D), labels (N,)) -> scalar``.

Pair and triplet losses (no weights of their own):

- :class:`TripletLoss`: FaceNet's ``max(0, |a-p|^2 - |a-n|^2 + alpha)`` over the triplets an
  injected miner picks (:mod:`.miners`).
- :class:`ContrastiveLoss`: Hadsell et al.'s ``y d^2 + (1-y) max(0, m - d)^2`` on every pair
  of the batch, the positive and negative terms each averaged over their pairs (with an
  optional positive margin, as dlib's ``loss_metric``).
- :class:`SiameseLoss`: a verification head (DeepFace): a logistic unit on the element-wise
  ``|f1 - f2|`` or the chi-squared ``(f1 - f2)^2 / (|f1| + |f2|)`` of a pair, trained with
  binary cross-entropy on every pair of the batch (classes balanced).

Classification losses (a weight matrix ``W (C, D)`` over the training identities):

- :class:`SoftmaxLoss`: a linear layer and cross-entropy.
- :class:`SphereFaceLoss` (A-Softmax): ``|x| psi(theta)`` on the true class with
  ``psi = (-1)^k cos(m theta) - 2k``, ``k = floor(m theta / pi)``, unit-norm ``W``, blended
  with ``|x| cos(theta)`` by ``lambda`` as in the paper's training.
- :class:`CosFaceLoss`: ``s (cos theta - m)`` on the true class, ``s cos theta`` elsewhere.
- :class:`ArcFaceLoss`: ``s cos(theta + m)`` on the true class (with InsightFace's fallback
  ``cos theta - m sin m`` where ``theta + m`` would pass pi).

Embeddings are L2-normalised first where the loss says so (``normalize=True``: FaceNet's
hypersphere); the margin-softmax losses normalise internally as their papers do.
:class:`WeightedSum` composes several losses.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from .miners import BatchAllMiner, Triplets, squared_distances


def _pair_indices(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Every unordered pair ``i < j`` of ``n`` rows."""
    return torch.triu_indices(n, n, offset=1, device=device).unbind(0)


def _zero(embeddings: torch.Tensor) -> torch.Tensor:
    """A zero that keeps the graph (a batch without a usable triplet or pair)."""
    return embeddings.sum() * 0.0


class TripletLoss(nn.Module):
    """FaceNet's triplet loss on squared Euclidean distances.

    Args:
        margin: alpha (0.2 in FaceNet, for unit-norm embeddings).
        miner: ``miner(embeddings, labels) -> (a, p, n)``; default :class:`BatchAllMiner`.
        normalize: L2-normalise the embeddings first.
        reduction: ``"mean"`` over all mined triplets, or ``"active"``: over triplets with a
            positive loss (Hermans et al.'s batch-all averaging).
    """

    def __init__(self, margin: float = 0.2, miner: Callable[[torch.Tensor, torch.Tensor], Triplets] | None = None,
                 normalize: bool = True, reduction: str = "mean") -> None:
        super().__init__()
        if margin < 0:
            raise ConfigError(f"triplet margin must be >= 0, got {margin}")
        if reduction not in ("mean", "active"):
            raise ConfigError(f"reduction must be 'mean' or 'active', got {reduction!r}")
        self.margin, self.miner, self.normalize, self.reduction = float(margin), miner or BatchAllMiner(), normalize, reduction

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = F.normalize(embeddings, dim=1) if self.normalize else embeddings
        a, p, n = self.miner(x, labels)
        if len(a) == 0:
            return _zero(x)
        d_ap = ((x[a] - x[p]) ** 2).sum(1)
        d_an = ((x[a] - x[n]) ** 2).sum(1)
        losses = F.relu(d_ap - d_an + self.margin)
        if self.reduction == "active":
            active = losses > 0
            return losses[active].mean() if active.any() else _zero(x)
        return losses.mean()


class ContrastiveLoss(nn.Module):
    """``mean_pos(max(0, d - pos_margin)^2) + mean_neg(max(0, margin - d)^2)`` over all pairs,
    ``d`` Euclidean. ``pos_margin=0`` is Hadsell et al.'s loss; ``pos_margin`` just under and
    ``margin`` just over a decision threshold is dlib's ``loss_metric`` (0.56 / 0.64 around its
    0.6), which leaves pairs already on the right side alone.

    Args:
        margin: distance beyond which different identities cost nothing.
        pos_margin: distance below which same identities cost nothing.
        normalize: L2-normalise the embeddings first.
    """

    def __init__(self, margin: float = 1.0, pos_margin: float = 0.0, normalize: bool = True) -> None:
        super().__init__()
        if not 0 <= pos_margin <= margin:
            raise ConfigError(f"contrastive margins need 0 <= pos_margin <= margin, got {pos_margin}, {margin}")
        self.margin, self.pos_margin, self.normalize = float(margin), float(pos_margin), normalize

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = F.normalize(embeddings, dim=1) if self.normalize else embeddings
        i, j = _pair_indices(len(x), x.device)
        d = (squared_distances(x)[i, j] + 1e-12).sqrt()
        same = labels[i] == labels[j]
        loss = _zero(x)
        if same.any():
            loss = loss + F.relu(d[same] - self.pos_margin).pow(2).mean()
        if (~same).any():
            loss = loss + F.relu(self.margin - d[~same]).pow(2).mean()
        return loss


def chi2_features(f1: torch.Tensor, f2: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """DeepFace's chi-squared pair features ``(f1 - f2)^2 / (|f1| + |f2| + eps)``, element-wise."""
    return (f1 - f2) ** 2 / (f1.abs() + f2.abs() + eps)


class SiameseLoss(nn.Module):
    """A logistic verification unit on pair features, with balanced binary cross-entropy.

    ``P(same) = sigmoid(w . phi(f1, f2) + b)`` with ``phi = |f1 - f2|`` (``form="l1"``) or
    :func:`chi2_features` (``form="chi2"``). The loss is the mean BCE over same pairs plus the
    mean over different pairs, halved, over every pair of the batch.

    Args:
        dim: embedding size.
        form: ``"l1"`` or ``"chi2"``.
        normalize: L2-normalise the embeddings first.
    """

    def __init__(self, dim: int, form: str = "l1", normalize: bool = True) -> None:
        super().__init__()
        if form not in ("l1", "chi2"):
            raise ConfigError(f"Siamese form must be 'l1' or 'chi2', got {form!r}")
        self.form, self.normalize = form, normalize
        self.weight = nn.Parameter(torch.full((dim,), -1.0))
        self.bias = nn.Parameter(torch.tensor(1.0))

    def features(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        return (f1 - f2).abs() if self.form == "l1" else chi2_features(f1, f2)

    def logits(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        """``(P,)`` logits of ``P(same)`` for row pairs of ``f1``, ``f2`` ``(P, D)`` (already normalised)."""
        return self.features(f1, f2) @ self.weight + self.bias

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = F.normalize(embeddings, dim=1) if self.normalize else embeddings
        i, j = _pair_indices(len(x), x.device)
        same = (labels[i] == labels[j]).to(x.dtype)
        bce = F.binary_cross_entropy_with_logits(self.logits(x[i], x[j]), same, reduction="none")
        parts = [bce[same > 0].mean()] if (same > 0).any() else []
        parts += [bce[same == 0].mean()] if (same == 0).any() else []
        return torch.stack(parts).mean()


class _ClassHead(nn.Module):
    """A ``(C, D)`` class weight matrix for the softmax-family losses."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        if num_classes < 2:
            raise ConfigError(f"a classification loss needs >= 2 classes, got {num_classes}")
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.xavier_uniform_(self.weight)

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``(N, C)`` cosines between embeddings and class weights."""
        return F.normalize(embeddings, dim=1) @ F.normalize(self.weight, dim=1).T


class SoftmaxLoss(_ClassHead):
    """Plain softmax cross-entropy over a linear layer (with bias)."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__(dim, num_classes)
        self.bias = nn.Parameter(torch.zeros(num_classes))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(embeddings @ self.weight.T + self.bias, labels)


class CosFaceLoss(_ClassHead):
    """CosFace / large-margin cosine loss: ``s (cos theta_y - m)``.

    Args:
        scale: s. margin: m (cosine units).
    """

    def __init__(self, dim: int, num_classes: int, scale: float = 30.0, margin: float = 0.35) -> None:
        super().__init__(dim, num_classes)
        self.scale, self.margin = float(scale), float(margin)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(embeddings)
        onehot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        return F.cross_entropy(self.scale * (cos - self.margin * onehot), labels)


class ArcFaceLoss(_ClassHead):
    """ArcFace / additive angular margin: ``s cos(theta_y + m)``.

    Args:
        scale: s. margin: m (radians).
    """

    def __init__(self, dim: int, num_classes: int, scale: float = 30.0, margin: float = 0.5) -> None:
        super().__init__(dim, num_classes)
        self.scale, self.margin = float(scale), float(margin)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(embeddings).clamp(-1 + 1e-7, 1 - 1e-7)
        sin = (1.0 - cos * cos).sqrt()
        phi = cos * math.cos(self.margin) - sin * math.sin(self.margin)
        # where theta + m > pi, cos(theta + m) stops decreasing: use a linear penalty instead
        phi = torch.where(cos > math.cos(math.pi - self.margin), phi, cos - math.sin(math.pi - self.margin) * self.margin)
        onehot = F.one_hot(labels, cos.shape[1]).bool()
        return F.cross_entropy(self.scale * torch.where(onehot, phi, cos), labels)


class SphereFaceLoss(_ClassHead):
    """A-Softmax (SphereFace): multiplicative angular margin ``m`` on unit-norm class weights.

    Args:
        margin: the integer m (4 in the paper).
        lambda_: blend ``(lambda |x| cos theta + |x| psi(theta)) / (1 + lambda)`` for the
            true class; the paper anneals it from 1000 down to about 5 (set it between epochs).
    """

    def __init__(self, dim: int, num_classes: int, margin: int = 4, lambda_: float = 5.0) -> None:
        super().__init__(dim, num_classes)
        if int(margin) != margin or margin < 1:
            raise ConfigError(f"A-Softmax margin must be a positive integer, got {margin}")
        self.margin, self.lambda_ = int(margin), float(lambda_)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        norm = embeddings.norm(dim=1, keepdim=True)
        cos = self.cosine(embeddings).clamp(-1 + 1e-7, 1 - 1e-7)
        cos_y = cos.gather(1, labels[:, None])
        theta = torch.acos(cos_y)
        k = torch.floor(self.margin * theta / math.pi).detach()
        sign = 1.0 - 2.0 * torch.remainder(k, 2.0)
        psi = sign * torch.cos(self.margin * theta) - 2.0 * k
        target = (self.lambda_ * cos_y + psi) / (1.0 + self.lambda_)
        logits = (norm * cos).scatter(1, labels[:, None], norm * target)
        return F.cross_entropy(logits, labels)


class WeightedSum(nn.Module):
    """``sum_i w_i loss_i(embeddings, labels)``, e.g. triplet plus softmax."""

    def __init__(self, *terms: tuple[float, nn.Module]) -> None:
        super().__init__()
        if not terms:
            raise ConfigError("WeightedSum needs at least one (weight, loss) term")
        self.weights = [float(w) for w, _ in terms]
        self.losses = nn.ModuleList([loss for _, loss in terms])

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Any:
        return sum(w * loss(embeddings, labels) for w, loss in zip(self.weights, self.losses))


__all__ = [
    "ArcFaceLoss",
    "ContrastiveLoss",
    "CosFaceLoss",
    "SiameseLoss",
    "SoftmaxLoss",
    "SphereFaceLoss",
    "TripletLoss",
    "WeightedSum",
    "chi2_features",
]
