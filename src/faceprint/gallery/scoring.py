"""Open-set identification: per-identity aggregation, the accept/reject decision, the margin test.

For each query the gallery returns its nearest samples (a shortlist); the identities among
them are scored by :attr:`OpenSetPolicy.aggregation`:

- ``"nearest"``: the distance to the person's closest sample;
- ``"centroid"``: the distance to the mean of the person's samples;
- ``"knn"``: identities ordered by votes among the ``knn`` nearest samples (ties: distance);
  the reported distance is still the nearest sample's.

The decision (:attr:`OpenSetPolicy.normalize`):

- ``"ratio"`` (the default when no threshold is given): cohort score normalisation. The score
  is the best identity's distance divided by the mean distance to the query's ``cohort_k``
  nearest *impostors*: the other identities in the gallery plus the gallery's cohort (faces of
  people who are not enrolled, :meth:`add_cohort`), padded with ``pad`` when there are fewer
  than ``cohort_k``. A stranger sits about as close to its best match as to everyone else
  (ratio near 1); an enrolled person's photo sits much closer to them than to the rest. The
  pad is the model's FAR 1e-3 verification threshold divided by the ratio threshold, so a
  gallery with few people and no cohort falls back to that verification threshold, and larger
  galleries become stricter in absolute distance (gallery-size aware). Accept when score <=
  ``ratio_threshold``.
- ``"none"``: the score is the distance; accept when it is <= ``threshold`` (a user threshold
  passed to ``identify(threshold=...)`` always means this).

Either way the margin test then rejects when the second-best identity is closer than
``best + margin``.

On LFW View 1 (one enrolled photo per person, half the people used to choose
``ratio_threshold = 0.86`` and ``cohort_k = 5``; see the README (Galleries)), plain
thresholding at 0.6 accepts ~79% of strangers, and a distance threshold holding strangers
to 2% identifies only ~64%; the ratio identifies ~83% at 2%.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..types import Embeddings
from .base import Candidate, Identification

AGGREGATIONS = ("nearest", "centroid", "knn")


@dataclass(frozen=True)
class OpenSetPolicy:
    """How a gallery turns nearest samples into an identity or "unknown".

    Attributes:
        aggregation: ``"nearest"``, ``"centroid"`` or ``"knn"`` (see the module docstring).
        normalize: ``"ratio"`` (cohort normalisation) or ``"none"`` (plain distance).
        ratio_threshold: accept when the ratio score <= this (``normalize="ratio"``).
        cohort_k: impostor distances averaged in the ratio's denominator.
        threshold: with ``normalize="none"``, accept when the distance <= this (model metric
            units); ``None`` = :func:`default_threshold` for the gallery's model.
        margin: reject when the second-best identity is closer than ``best + margin``.
        knn: neighbours voting with ``aggregation="knn"``.
        shortlist: nearest samples fetched per query before aggregation (at least ``top_k``).
    """

    aggregation: str = "nearest"
    normalize: str = "ratio"
    ratio_threshold: float = 0.86
    cohort_k: int = 5
    threshold: float | None = None
    margin: float = 0.0
    knn: int = 5
    shortlist: int = 64

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if self.normalize not in ("ratio", "none"):
            raise ConfigError(f"normalize must be 'ratio' or 'none', got {self.normalize!r}")
        if self.margin < 0 or self.knn < 1 or self.shortlist < 1 or self.cohort_k < 1 or self.ratio_threshold <= 0:
            raise ConfigError("margin must be >= 0, knn, shortlist and cohort_k >= 1, ratio_threshold > 0")


def model_spec(model_id: str) -> Any:
    """The registered embedder spec whose ``model_id`` is ``model_id``, or ``None``."""
    from ..registry import EMBEDDERS

    for entry in EMBEDDERS.values():
        spec = getattr(import_module(entry.target.split(":")[0], "faceprint"), "SPEC", None)
        if spec is not None and spec.model_id == model_id:
            return spec
    return None


def default_threshold(model_id: str | None) -> float:
    """A model's strict distance threshold: its spec's calibrated FAR 1e-3 threshold when it
    has one, else its decision threshold.

    Raises:
        ConfigError: the model is not registered (pass a threshold explicitly).
    """
    spec = model_spec(model_id) if model_id else None
    if spec is None:
        raise ConfigError(f"no default threshold for model {model_id!r}: pass threshold=")
    return float(spec.thresholds.get("far_1e-3", spec.threshold))


def distances(queries: np.ndarray, base: np.ndarray, metric: str) -> np.ndarray:
    """``(Q, N)`` float32 distances (euclidean, or ``1 - cos``)."""
    return Embeddings(queries, "m", metric).distance(Embeddings(base, "m", metric))


def identify_rows(gallery: Any, emb: Embeddings, policy: OpenSetPolicy, threshold: float | None,
                  top_k: int) -> list[Identification]:
    """Run ``policy`` for every row of ``emb`` against ``gallery`` (see the module docstring)."""
    if len(emb) == 0:
        return []
    if len(gallery) == 0:
        return [Identification(None, float("inf"), [], float("nan")) for _ in range(len(emb))]
    ratio = threshold is None and policy.normalize == "ratio"
    if ratio:
        thr = policy.ratio_threshold
        pad = default_threshold(gallery.model_id) / policy.ratio_threshold
    else:
        thr = threshold if threshold is not None else policy.threshold
        thr = float(thr) if thr is not None else default_threshold(gallery.model_id)
    k = max(policy.shortlist, top_k + 1, policy.knn, policy.cohort_k + 1)
    dist, _ids, names = gallery._neighbours(emb.vectors, k)
    cohort = gallery._cohort_neighbours(emb.vectors, policy.cohort_k) if ratio else None
    out = []
    for q in range(len(emb)):
        cands = _aggregate(gallery, emb.vectors[q], dist[q], names[q], policy)
        if not cands:
            out.append(Identification(None, float("inf"), [], float("nan")))
            continue
        best = cands[0]
        score = best.distance
        if ratio:
            impostors = [c.distance for c in cands[1:]] + list(cohort[q]) + [pad] * policy.cohort_k
            score = best.distance / float(np.mean(np.sort(impostors)[: policy.cohort_k]))
        accept = score <= thr
        if accept and policy.margin > 0 and len(cands) > 1:
            accept = cands[1].distance - best.distance >= policy.margin
        out.append(Identification(best.name if accept else None, best.distance, cands[:top_k], score))
    return out


def _aggregate(gallery: Any, query: np.ndarray, dist: np.ndarray, names: list[str],
               policy: OpenSetPolicy) -> list[Candidate]:
    """Identities among one query's nearest samples, best first."""
    nearest: dict[str, float] = {}
    for d, n in zip(dist, names):
        if np.isfinite(d) and n not in nearest:
            nearest[n] = float(d)
    if policy.aggregation == "nearest" or not nearest:
        return [Candidate(n, d) for n, d in nearest.items()]
    if policy.aggregation == "centroid":
        vectors = gallery._person_vectors(list(nearest))
        cents = np.stack([vectors[n].mean(0) for n in nearest])
        d = distances(query[None, :], cents, gallery.metric)[0]
        order = np.argsort(d, kind="stable")
        return [Candidate(list(nearest)[i], float(d[i])) for i in order]
    votes: dict[str, int] = {}
    for d, n in list(zip(dist, names))[: policy.knn]:
        if np.isfinite(d):
            votes[n] = votes.get(n, 0) + 1
    ranked = sorted(nearest, key=lambda n: (-votes.get(n, 0), nearest[n]))
    return [Candidate(n, nearest[n]) for n in ranked]
