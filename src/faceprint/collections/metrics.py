"""Clustering quality against true identities: pairwise P/R/F1, BCubed, NMI.

Predicted ``-1`` (noise) counts as a singleton cluster per face, so leaving a face out is
never rewarded as a correct merge.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class ClusterScores:
    """Scores of one clustering; ``f1`` is the pairwise F1."""

    precision: float
    recall: float
    f1: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f: float
    nmi: float
    n_clusters: int
    n_people: int
    n_noise: int

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _codes(values: Sequence[Any]) -> np.ndarray:
    _, codes = np.unique(np.asarray(values), return_inverse=True)
    return codes.reshape(-1)


def _singletons(pred: np.ndarray) -> np.ndarray:
    """Give each noise face (``-1``) its own new cluster id."""
    pred = np.asarray(pred, dtype=np.int64).copy()
    noise = pred < 0
    pred[noise] = pred.max(initial=-1) + 1 + np.arange(int(noise.sum()))
    return pred


def contingency(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``(n_people, n_clusters)`` counts of faces per (person, cluster)."""
    t, p = _codes(truth), _codes(pred)
    table = np.zeros((t.max(initial=-1) + 1, p.max(initial=-1) + 1), dtype=np.int64)
    np.add.at(table, (t, p), 1)
    return table


def _pairs(x: np.ndarray) -> float:
    return float((x * (x - 1) / 2).sum())


def cluster_scores(truth: Sequence[Any], pred: Sequence[int]) -> ClusterScores:
    """Score predicted labels (``-1`` = noise) against true identities.

    Pairwise precision = same-person pairs among pairs put in one cluster; recall = pairs put
    together among same-person pairs (1.0 when a count is 0). BCubed averages per-face
    precision/recall of its cluster; NMI uses the arithmetic mean of the entropies.

    Raises:
        ConfigError: lengths differ or there are no faces.
    """
    truth_arr, pred_raw = np.asarray(truth), np.asarray(pred, dtype=np.int64)
    if len(truth_arr) != len(pred_raw) or len(truth_arr) == 0:
        raise ConfigError(f"need equal, non-zero numbers of labels, got {len(truth_arr)} and {len(pred_raw)}")
    pred_arr = _singletons(pred_raw)
    # the non-zero cells of the contingency table (a dense one is people x clusters: 10 GB at 100k faces)
    t, p = _codes(truth_arr), _codes(pred_arr)
    cells, cell_of = np.unique(t * (p.max() + 1) + p, return_inverse=True)
    count = np.bincount(cell_of).astype(np.float64)
    ci, cj = cells // (p.max() + 1), cells % (p.max() + 1)
    person, cluster = np.bincount(t).astype(np.float64), np.bincount(p).astype(np.float64)
    together, same = _pairs(cluster), _pairs(person)
    both = _pairs(count)
    precision = both / together if together else 1.0
    recall = both / same if same else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    n = float(len(truth_arr))
    # BCubed: a face in cell (i, j) has precision n_ij/|cluster j| and recall n_ij/|person i|
    bp = float((count ** 2 / cluster[cj]).sum() / n)
    br = float((count ** 2 / person[ci]).sum() / n)
    bf = 2 * bp * br / (bp + br) if bp + br else 0.0
    return ClusterScores(precision, recall, f1, bp, br, bf, _nmi(count / n, person / n, cluster / n, ci, cj),
                         int(len(np.unique(pred_raw[pred_raw >= 0]))), len(person), int((pred_raw < 0).sum()))


def _nmi(pij: np.ndarray, pi: np.ndarray, pj: np.ndarray, ci: np.ndarray, cj: np.ndarray) -> float:
    """NMI from the non-zero cells ``pij`` (at rows ``ci``, columns ``cj``) and the marginals."""
    mi = float((pij * np.log(pij / (pi[ci] * pj[cj]))).sum())
    hi = -float((pi[pi > 0] * np.log(pi[pi > 0])).sum())
    hj = -float((pj[pj > 0] * np.log(pj[pj > 0])).sum())
    if hi == 0 and hj == 0:
        return 1.0
    return max(0.0, mi / ((hi + hj) / 2)) if hi + hj > 0 else 0.0


__all__ = ["ClusterScores", "cluster_scores", "contingency"]
