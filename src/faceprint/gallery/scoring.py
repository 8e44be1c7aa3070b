"""Open-set identification: per-identity aggregation, the accept/reject decision, the margin test.

For each query the gallery returns its nearest samples (a shortlist); the identities among
them are scored by :attr:`OpenSetPolicy.aggregation`:

- ``"nearest"``: the distance to the person's closest sample;
- ``"centroid"``: the distance to the mean of the person's samples;
- ``"knn"``: identities ordered by votes among the ``knn`` nearest samples (ties: distance);
  the reported distance is still the nearest sample's.

The decision (:attr:`OpenSetPolicy.normalize`) compares a *score* with a threshold:

- ``"symmetric"`` (the default when no threshold is given): adaptive symmetric cohort
  normalisation. An *impostor mean* of a face is the mean distance to its ``cohort_k`` nearest
  impostors: the gallery's other identities plus its cohort (faces of people who are not
  enrolled, :meth:`add_cohort`), padded with ``pad`` when there are fewer than ``cohort_k``.
  The score is the best identity's distance divided by the geometric mean of two impostor
  means: the query's, and that of the enrolled face it matched (its nearest sample, or the
  centroid with ``aggregation="centroid"``). A stranger sits about as close to its best match
  as to everyone else (score near 1); an enrolled person's photo sits much closer to them than
  to the rest. The second factor corrects for enrolled faces that lie close to many people
  (a blurred or poorly lit enrollment photo), which otherwise attract strangers. Accept when
  score <= ``ratio_threshold``.
- ``"ratio"``: the same with the query's impostor mean alone (query-side normalisation).
- ``"none"``: the score is the distance; accept when it is <= ``threshold`` (a user threshold
  passed to ``identify(threshold=...)`` always means this).

**Phantoms and the gallery's size.** A stranger's best match gets closer as the gallery grows
(more chances), so one fixed threshold accepts more strangers in larger galleries; and a small
gallery knows too few impostors to normalise with. Both are handled with model-level
statistics that ship with the model's spec (:attr:`~faceprint.spec.ModelSpec.openset`; no
face image, no real person's template): a Gaussian of the model's embeddings (mean, covariance
of identity centres, within-identity covariance) from which :func:`phantom_faces` draws a
fixed, seeded set of synthetic impostor faces that join every impostor pool (besides the
gallery's own cohort, which can only add impostors); and a threshold by gallery size
(:func:`ratio_threshold`: the spec's ``[[people, threshold], ...]`` table, interpolated in
log(people), flat past its ends). Where fewer than ``cohort_k`` impostors are known the pool is
padded with ``pad`` (the spec's, else the model's FAR 1e-3 verification threshold divided by
the threshold, so a one-person gallery without phantoms or cohort falls back to that
verification threshold). The margin test then rejects when the second-best identity is closer
than ``best + margin``.

The statistics, the size table and ``cohort_k`` were fitted and chosen on one part of LFW View
1's people (one photo enrolled per person, gallery sizes 10 to 1,035); the other part reports
the result (``benchmarks/bench_gallery.py openset``, README).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from importlib import import_module, resources
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from ..types import Embeddings
from .results import Candidate, Identification

AGGREGATIONS = ("nearest", "centroid", "knn")
NORMALIZATIONS = ("symmetric", "ratio", "none")


@dataclass(frozen=True)
class OpenSetPolicy:
    """How a gallery turns nearest samples into an identity or "unknown".

    Attributes:
        aggregation: ``"nearest"``, ``"centroid"`` or ``"knn"`` (see the module docstring).
        normalize: ``"symmetric"`` or ``"ratio"`` (cohort normalisation) or ``"none"`` (plain
            distance); see the module docstring.
        ratio_threshold: accept when the normalised score <= this (``"symmetric"``, ``"ratio"``);
            ``None`` = the model's threshold for the gallery's size (:func:`ratio_threshold`).
        cohort_k: impostor distances averaged in each impostor mean.
        phantoms: synthetic impostor faces from the model's statistics in every impostor pool
            (:func:`phantom_faces`); ``None`` = the model's spec, 0 = none.
        threshold: with ``normalize="none"``, accept when the distance <= this (model metric
            units); ``None`` = :func:`default_threshold` for the gallery's model.
        margin: reject when the second-best identity is closer than ``best + margin``.
        knn: neighbours voting with ``aggregation="knn"``.
        shortlist: nearest samples fetched per query before aggregation (at least ``top_k``).
    """

    aggregation: str = "nearest"
    normalize: str = "symmetric"
    ratio_threshold: float | None = None
    cohort_k: int = 5
    phantoms: int | None = None
    threshold: float | None = None
    margin: float = 0.0
    knn: int = 5
    shortlist: int = 64

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if self.normalize not in NORMALIZATIONS:
            raise ConfigError(f"normalize must be one of {NORMALIZATIONS}, got {self.normalize!r}")
        if self.margin < 0 or self.knn < 1 or self.shortlist < 1 or self.cohort_k < 1 or \
                (self.ratio_threshold is not None and self.ratio_threshold <= 0) or \
                (self.phantoms is not None and self.phantoms < 0):
            raise ConfigError("margin and phantoms must be >= 0, knn, shortlist and cohort_k >= 1, ratio_threshold > 0")


def _registered_module(model_id: str) -> Any:
    """The module of the registered embedder whose ``SPEC.model_id`` is ``model_id``, or ``None``."""
    from ..registry import EMBEDDERS

    for entry in EMBEDDERS.values():
        module = import_module(entry.target.split(":")[0], "faceprint")
        if getattr(getattr(module, "SPEC", None), "model_id", None) == model_id:
            return module
    return None


def model_spec(model_id: str) -> Any:
    """The registered embedder spec whose ``model_id`` is ``model_id``, or ``None``."""
    module = _registered_module(model_id)
    return None if module is None else module.SPEC


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


#: The normalised-score threshold of registered models whose spec has no size table.
FALLBACK_RATIO_THRESHOLD = 0.86


def _openset_stats(model_id: str | None) -> dict[str, Any]:
    spec = model_spec(model_id) if model_id else None
    return dict(getattr(spec, "openset", {}) or {}) if spec is not None else {}


def ratio_threshold(policy: OpenSetPolicy, model_id: str | None, people: int) -> float:
    """The normalised-score threshold for a gallery of ``people`` identities: the policy's when
    set, else the model's size table (linear in log(people) between its rows, flat past its
    ends), else :data:`FALLBACK_RATIO_THRESHOLD`."""
    if policy.ratio_threshold is not None:
        return float(policy.ratio_threshold)
    table = sorted(_openset_stats(model_id).get("ratio_thresholds", []))
    if not table:
        return FALLBACK_RATIO_THRESHOLD
    sizes = [math.log(max(float(n), 1.0)) for n, _t in table]
    return float(np.interp(math.log(max(people, 1)), sizes, [float(t) for _n, t in table]))


def _pad(model_id: str | None, thr: float) -> float:
    stats = _openset_stats(model_id)
    return float(stats["pad"]) if "pad" in stats else default_threshold(model_id) / thr


@functools.lru_cache(maxsize=4)
def phantom_faces(model_id: str, n: int) -> np.ndarray:
    """``(n, D)`` float32 synthetic impostor faces of a model: one photo each of ``n`` phantom
    people drawn (seed 0) from the Gaussian in the model's ``openset["stats"]`` file (``mean +
    between @ z1 + within @ z2``). Deterministic; ``(0, D)`` when the model ships no statistics."""
    stats = _openset_stats(model_id)
    module = _registered_module(model_id)
    if n <= 0 or "stats" not in stats or module is None:
        return np.zeros((0, module.SPEC.dim if module is not None else 0), np.float32)
    package = module.__name__.rsplit(".", 1)[0]  # the statistics file lies beside the model's module
    with resources.files(package).joinpath(stats["stats"]).open("rb") as fh, np.load(fh) as data:
        mean, between, within = (np.asarray(data[k], np.float64) for k in ("mean", "between", "within"))
    rng = np.random.default_rng(0)
    centres = mean + rng.standard_normal((n, len(mean))) @ between.T
    return (centres + rng.standard_normal((n, len(mean))) @ within.T).astype(np.float32)


def _policy_phantoms(gallery: Any, policy: OpenSetPolicy) -> np.ndarray:
    """The phantom faces ``policy`` puts in the impostor pools of ``gallery`` (maybe none)."""
    n = policy.phantoms if policy.phantoms is not None else int(_openset_stats(gallery.model_id).get("phantoms", 0))
    return phantom_faces(gallery.model_id, n) if n and gallery.model_id else np.zeros((0, 0), np.float32)


def _impostor_pool(gallery: Any, vectors: np.ndarray, k: int, phantoms: np.ndarray) -> np.ndarray:
    """``(Q, <=2k)`` distances to the ``k`` nearest cohort faces and ``phantoms`` of each row of ``vectors``."""
    cohort = gallery._cohort_neighbours(vectors, k)
    if not len(phantoms):
        return cohort
    d = distances(vectors.astype(np.float32), phantoms, gallery.metric)
    near = np.partition(d, min(k, d.shape[1]) - 1, axis=1)[:, :k]
    return np.concatenate([np.asarray(cohort, np.float32).reshape(len(vectors), -1), near], axis=1)


def distances(queries: np.ndarray, base: np.ndarray, metric: str) -> np.ndarray:
    """``(Q, N)`` float32 distances (euclidean, or ``1 - cos``)."""
    return Embeddings(queries, "m", metric).distance(Embeddings(base, "m", metric))


def identify_rows(gallery: Any, emb: Embeddings, policy: OpenSetPolicy, threshold: float | None,
                  top_k: int) -> list[Identification]:
    """Run ``policy`` for every row of ``emb`` against ``gallery`` (see the module docstring)."""
    if len(emb) == 0:
        return []
    norm = policy.normalize if threshold is None else "none"
    people = len(gallery)
    if norm != "none":
        thr = ratio_threshold(policy, gallery.model_id, people)
        pad = _pad(gallery.model_id, thr)
    else:
        thr = threshold if threshold is not None else policy.threshold
        thr = float(thr) if thr is not None else default_threshold(gallery.model_id)
    if people == 0:
        return [Identification(None, float("inf"), [], float("nan"), float(thr)) for _ in range(len(emb))]
    k = max(policy.shortlist, top_k + 1, policy.knn, policy.cohort_k + 1)
    dist, _ids, names = gallery._neighbours(emb.vectors, k)
    cands = [_aggregate(gallery, emb.vectors[q], dist[q], names[q], policy) for q in range(len(emb))]
    scores = np.array([c[0].distance if c else np.inf for c in cands])
    if norm != "none":
        phantoms = _policy_phantoms(gallery, policy)
        cohort = _impostor_pool(gallery, emb.vectors, policy.cohort_k, phantoms)
        query_side = np.array([_impostor_mean([x.distance for x in c[1:]], cohort[q], pad, policy.cohort_k)
                               for q, c in enumerate(cands)])
        other_side = _owner_impostors(gallery, emb.vectors, cands, policy, pad, phantoms) \
            if norm == "symmetric" else query_side
        scores = scores / np.sqrt(query_side * other_side)
    out = []
    for c, score in zip(cands, scores):
        if not c:
            out.append(Identification(None, float("inf"), [], float("nan"), float(thr)))
            continue
        accept = score <= thr
        if accept and policy.margin > 0 and len(c) > 1:
            accept = c[1].distance - c[0].distance >= policy.margin
        out.append(Identification(c[0].name if accept else None, c[0].distance, c[:top_k], float(score), float(thr)))
    return out


def _impostor_mean(impostors: Sequence[float], cohort: np.ndarray, pad: float, k: int) -> float:
    """Mean of the ``k`` smallest of ``impostors`` and ``cohort`` distances, padded with ``pad``."""
    pool = np.concatenate([np.asarray(impostors, float), np.asarray(cohort, float), np.full(k, pad)])
    return float(np.mean(np.partition(pool, k - 1)[:k]))


def _owner_impostors(gallery: Any, queries: np.ndarray, cands: list[list[Candidate]], policy: OpenSetPolicy,
                     pad: float, phantoms: np.ndarray) -> np.ndarray:
    """For each query, the impostor mean of its best identity's own vector (the sample that
    matched, or the centroid with ``aggregation="centroid"``): how close that enrolled face
    sits to the *other* identities and to the cohort. ``nan`` for queries without candidates."""
    rows = [q for q, c in enumerate(cands) if c]
    out = np.full(len(cands), np.nan)
    if not rows:
        return out
    owners = [cands[q][0].name for q in rows]
    vectors = gallery._person_vectors(sorted(set(owners)))
    metric = gallery.metric
    own = np.stack([vectors[n].mean(0) if policy.aggregation == "centroid"
                    else vectors[n][int(np.argmin(distances(queries[q][None], vectors[n], metric)[0]))]
                    for q, n in zip(rows, owners)]).astype(np.float32)
    k = max(policy.shortlist, policy.cohort_k + 1)
    dist, _ids, names = gallery._neighbours(own, k)
    cohort = _impostor_pool(gallery, own, policy.cohort_k, phantoms)
    for r, (q, owner) in enumerate(zip(rows, owners)):
        others = [d for n, d in _nearest_per_identity(dist[r], names[r]).items() if n != owner]
        out[q] = _impostor_mean(others, cohort[r], pad, policy.cohort_k)
    return out


def _nearest_per_identity(dist: np.ndarray, names: list[str]) -> dict[str, float]:
    """``{name: distance to that identity's nearest sample}`` from one row of nearest samples
    (sorted by distance), nearest identity first; padding (``inf``) skipped."""
    nearest: dict[str, float] = {}
    for d, n in zip(dist, names):
        if np.isfinite(d) and n not in nearest:
            nearest[n] = float(d)
    return nearest


def _aggregate(gallery: Any, query: np.ndarray, dist: np.ndarray, names: list[str],
               policy: OpenSetPolicy) -> list[Candidate]:
    """Identities among one query's nearest samples, best first."""
    nearest = _nearest_per_identity(dist, names)
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
