"""Validation on held-out identities: embed their chips, score every pair.

Genuine pairs are all pairs of images of one identity; impostor pairs are all pairs across
identities (a seeded sample of ``max_impostors`` when there are more). TAR at FAR uses every
impostor pair; the pair accuracy uses a balanced set (every genuine pair and as many impostor
pairs, drawn with the seed) at its best threshold, as LFW View 1 reports it. The metric math
is :mod:`faceprint.evaluation.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..evaluation import metrics
from ..types import Embeddings

#: FARs reported per epoch and calibrated into the exported spec.
VAL_FARS: tuple[float, ...] = (1e-2, 1e-3)


def embed_chips(model: Any, chips: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...],
                device: Any = "cpu", batch_size: int = 128) -> np.ndarray:
    """``(N, dim)`` float32 raw outputs of ``model`` (in eval mode) for uint8 chips ``(N, S, S, 3)``."""
    import torch

    was_training = model.training
    model.eval()
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for start in range(0, len(chips), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(chips[start:start + batch_size])).to(device)
            x = (x.permute(0, 3, 1, 2).float() - mean_t) / std_t
            out.append(model(x).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def validation_pairs(labels: np.ndarray, max_impostors: int = 500_000,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row pairs ``(a, b, same)``: every genuine pair, then the impostor pairs (all, or a seeded
    sample of ``max_impostors``)."""
    labels = np.asarray(labels)
    a, b = np.triu_indices(len(labels), k=1)
    same = labels[a] == labels[b]
    imp = np.flatnonzero(~same)
    if len(imp) > max_impostors:
        imp = np.sort(np.random.default_rng(seed).choice(imp, size=max_impostors, replace=False))
    keep = np.concatenate([np.flatnonzero(same), imp])
    return a[keep], b[keep], same[keep]


@dataclass
class ValidationResult:
    """Scores of one validation pass.

    Attributes:
        pair_accuracy: accuracy on the balanced pair set at its best threshold.
        tar: ``{"1e-2": TAR, ...}`` at each FAR of :data:`VAL_FARS`, over all impostor pairs.
        auc: area under the ROC.
        thresholds: calibrated distances for the model spec (``"accuracy"``, ``"far_1e-2"``, ...).
        n_genuine, n_impostor: pair counts behind the numbers.
    """

    pair_accuracy: float
    tar: dict[str, float]
    auc: float
    thresholds: dict[str, float] = field(default_factory=dict)
    n_genuine: int = 0
    n_impostor: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"pair_accuracy": self.pair_accuracy, **{f"tar_far_{k}": v for k, v in self.tar.items()},
                "auc": self.auc, "thresholds": self.thresholds, "n_genuine": self.n_genuine,
                "n_impostor": self.n_impostor}


def score_embeddings(vectors: np.ndarray, labels: np.ndarray, metric: str, normalize: bool,
                     seed: int = 0) -> ValidationResult:
    """Score held-out embeddings ``(N, D)`` with identity ``labels`` ``(N,)``.

    ``normalize`` L2-normalises the vectors first (as the exported spec will); ``metric`` is
    ``"euclidean"`` or ``"cosine"``.

    Raises:
        ConfigError: no genuine or no impostor pair.
    """
    v = np.asarray(vectors, np.float64)
    if normalize:
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    emb = Embeddings(v.astype(np.float32), "validation", metric)
    a, b, same = validation_pairs(labels, seed=seed)
    d = emb[a].paired_distance(emb[b])
    genuine = np.flatnonzero(same)
    rng = np.random.default_rng(seed + 1)
    impostors = rng.choice(np.flatnonzero(~same), size=min(len(genuine), int((~same).sum())), replace=False)
    balanced = np.concatenate([genuine, impostors])
    t_acc, acc = metrics.best_threshold(d[balanced], same[balanced])
    tar, thresholds = {}, {"accuracy": float(t_acc)}
    for far in VAL_FARS:
        t, _, rate = metrics.threshold_at_far(d, same, far)
        tar[metrics.far_key(far)] = rate
        thresholds[f"far_{metrics.far_key(far)}"] = float(t)
    return ValidationResult(acc, tar, metrics.auc(d, same), thresholds, int(same.sum()), int((~same).sum()))


__all__ = ["VAL_FARS", "ValidationResult", "embed_chips", "score_embeddings", "validation_pairs"]
