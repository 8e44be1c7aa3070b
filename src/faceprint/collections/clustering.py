"""Face clustering algorithms behind one scikit-learn-style interface.

Every clusterer stores its parameters in the constructor; ``fit(X)`` takes ``(N, D)`` vectors
(or :class:`~faceprint.types.Embeddings`, whose metric then wins), sets ``labels_`` ``(N,)``
int64 (``-1`` = noise) and returns ``self``. Distances are in the embedding model's metric
(Euclidean, or ``1 - cos`` for cosine), so ``threshold`` uses the same units as verification.

Names become clusterers only in :func:`create_clusterer`.
"""

from __future__ import annotations

import inspect
from typing import Any, Iterable

import numpy as np

from ..errors import ConfigError, UnknownModelError
from ..types import Embeddings, distance_matrix


def as_vectors(X: Any, metric: str) -> tuple[np.ndarray, str]:
    """``(N, D)`` float64 vectors and the metric (an :class:`Embeddings` brings its own).

    Raises:
        ConfigError: ``X`` is not 2-D or holds NaN/inf, or the metric is unknown.
    """
    if isinstance(X, Embeddings):
        X, metric = X.vectors, X.metric
    v = np.asarray(X, dtype=np.float64)
    if v.ndim != 2:
        raise ConfigError(f"clustering needs (N, D) vectors, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ConfigError("clustering input contains NaN or inf")
    if metric not in ("euclidean", "cosine"):
        raise ConfigError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    if metric == "cosine":
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return v, metric


def pairwise_distances(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """``(len(a), len(b))`` distances of prepared vectors (see :func:`as_vectors`), never below 0."""
    return np.maximum(distance_matrix(a, b, metric), 0.0)


def _check_threshold(threshold: float | None) -> None:
    if threshold is not None and not threshold > 0:
        raise ConfigError(f"threshold must be > 0, got {threshold}")


class ChineseWhispers:
    """Chinese whispers (Biemann 2006) on the graph linking faces closer than ``threshold``.

    Each node starts in its own cluster; in random order, each node takes the label carried by
    most of its neighbours (itself included) until a pass changes nothing or ``max_iter``
    passes ran. Every face gets a cluster (isolated faces are singletons), as in dlib's
    ``chinese_whispers_clustering``.
    """

    def __init__(self, threshold: float = 0.5, max_iter: int = 100, seed: int = 0, metric: str = "euclidean",
                 chunk: int = 2048) -> None:
        self.threshold = threshold
        self.max_iter = max_iter
        self.seed = seed
        self.metric = metric
        self.chunk = chunk

    def fit(self, X: Any, y: Any = None) -> ChineseWhispers:
        _check_threshold(self.threshold)
        v, metric = as_vectors(X, self.metric)
        n = len(v)
        neighbours = []
        for start in range(0, n, self.chunk):  # chunks keep memory O(chunk * N)
            d = pairwise_distances(v[start:start + self.chunk], v, metric)
            neighbours.extend(np.flatnonzero(row < self.threshold) for row in d)
        labels = np.arange(n, dtype=np.int64)
        rng = np.random.default_rng(self.seed)
        for _ in range(self.max_iter):
            changed = False
            for i in rng.permutation(n):
                votes = np.bincount(labels[neighbours[i]])
                best = int(np.argmax(votes))  # ties: the smallest label, so runs are reproducible
                if best != labels[i]:
                    labels[i] = best
                    changed = True
            if not changed:
                break
        self.labels_ = _consecutive(labels)
        return self


class _Sklearn:
    """Base for scikit-learn-backed clusterers: ``_make()`` builds the estimator."""

    metric: str

    def fit(self, X: Any, y: Any = None) -> _Sklearn:
        v, metric = as_vectors(X, self.metric)
        if len(v) < 2:
            self.labels_ = np.zeros(len(v), dtype=np.int64) if self._single_is_cluster() else -np.ones(len(v), np.int64)
            return self
        self.estimator_ = self._make(metric, len(v))
        self.labels_ = np.asarray(self.estimator_.fit(v).labels_, dtype=np.int64)
        return self

    def _single_is_cluster(self) -> bool:
        return True

    def _make(self, metric: str, n: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class Dbscan(_Sklearn):
    """scikit-learn DBSCAN with ``eps = threshold``; faces with too few neighbours are noise."""

    def __init__(self, threshold: float = 0.5, min_samples: int = 2, metric: str = "euclidean") -> None:
        self.threshold = threshold
        self.min_samples = min_samples
        self.metric = metric

    def _single_is_cluster(self) -> bool:
        return self.min_samples <= 1

    def _make(self, metric: str, n: int) -> Any:
        from sklearn.cluster import DBSCAN

        _check_threshold(self.threshold)
        return DBSCAN(eps=self.threshold, min_samples=self.min_samples, metric=metric)


class Hdbscan(_Sklearn):
    """scikit-learn HDBSCAN: density clusters of at least ``min_cluster_size`` faces, the rest noise.

    HDBSCAN has no absolute scale, so on a small collection it can join two people. With
    ``threshold`` set, each cluster is then cut by average linkage at that distance (no cluster
    keeps faces whose mean distance exceeds it).

    Above ``dense_max`` faces it runs on the graph of each face's ``neighbours`` nearest faces
    (:func:`knn_graph`) instead of all pairs: with ``min_samples=1`` HDBSCAN only uses the
    minimum spanning tree, which that graph holds in practice (on LFW View 1 the labels are the
    same), so time and memory grow near-linearly.
    """

    def __init__(self, min_cluster_size: int = 2, min_samples: int | None = 1, metric: str = "euclidean",
                 threshold: float | None = None, neighbours: int = 10, dense_max: int = 2000) -> None:
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.metric = metric
        self.threshold = threshold
        self.neighbours = neighbours
        self.dense_max = dense_max

    def _single_is_cluster(self) -> bool:
        return False

    def _make(self, metric: str, n: int) -> Any:
        from sklearn.cluster import HDBSCAN

        _check_threshold(self.threshold)
        return HDBSCAN(min_cluster_size=max(2, self.min_cluster_size), min_samples=self.min_samples,
                       metric=metric, copy=True)

    def fit(self, X: Any, y: Any = None) -> Hdbscan:
        v, metric = as_vectors(X, self.metric)
        graph = None
        if len(v) > self.dense_max:
            graph = knn_graph(v, self.neighbours, metric)
            self.estimator_ = self._make("precomputed", len(v))
            self.labels_ = np.asarray(self.estimator_.fit(graph).labels_, dtype=np.int64)
        else:
            super().fit(v, y)
        if self.threshold is not None:
            merged = merge_close(v, self.labels_, self.threshold * MERGE_FRACTION, metric)
            self.labels_ = _consecutive(_cut(v, merged, self.threshold, metric, graph))
        return self


#: HDBSCAN clusters are merged when every pair of their union is within this fraction of the
#: threshold (complete linkage): excess-of-mass can keep a tight pair and the rest of one person
#: as two clusters. Chosen on LFW View 1 from 0.75-1.0 (0.8: tuning-half F1 0.8741 -> 0.8761,
#: and the person View 1 split most often is whole).
MERGE_FRACTION = 0.8


def members_by_label(labels: np.ndarray, rows: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """``{label: its rows}`` over ``rows`` (all rows by default), each in increasing row order: one
    sort instead of a scan per label. Every label present is a key, noise (``-1``) included."""
    rows = np.arange(len(labels)) if rows is None else np.asarray(rows)
    order = rows[np.argsort(labels[rows], kind="stable")]
    ids, starts = np.unique(labels[order], return_index=True)
    return dict(zip(ids.tolist(), np.split(order, starts[1:])))


def merge_close(v: np.ndarray, labels: np.ndarray, bound: float, metric: str, nearest: int = 5,
                max_size: int = 2000, seeds: Iterable[int] | None = None, frozen: Iterable[int] = (),
                cannot_link: Iterable[tuple[int, int]] = ()) -> np.ndarray:
    """Merge clusters (``labels``, ``-1`` noise) with one of their ``nearest`` clusters by centroid
    when every pair of faces of the union is within ``bound`` (closest centroids first; unions
    above ``max_size`` faces are not tried). Returns new labels (merged clusters share one).

    ``seeds``: only pairs with one of these clusters are tried (all when ``None``); clusters in
    ``frozen`` never merge; a union holding both rows of a ``cannot_link`` pair is not made.
    """
    import scipy.sparse as sp

    ids = np.unique(labels[labels >= 0])
    if len(ids) < 2:
        return labels
    members = members_by_label(labels)
    held = np.flatnonzero(labels >= 0)
    sums = sp.csr_matrix((np.ones(len(held)), (np.searchsorted(ids, labels[held]), held)),
                         shape=(len(ids), len(labels))) @ v
    centres = np.asarray(sums) / np.array([len(members[int(c)]) for c in ids])[:, None]
    stay = set(int(c) for c in frozen)
    query = np.arange(len(ids)) if seeds is None else np.flatnonzero(np.isin(ids, list(set(seeds) - stay)))
    # the farthest pair of two sets is at least as far apart as their centroids: skip the rest
    reach = np.sqrt(2 * bound) if metric == "cosine" else bound  # prepared unit vectors: 1 - cos = |a-b|^2 / 2
    near, dist = _nearest_centres(centres, query, nearest, reach)
    pairs = sorted({(float(d), min(i, int(j)), max(i, int(j))) for i, row, drow in zip(query, near, dist)
                    for j, d in zip(row, drow) if j >= 0 and d < reach and int(ids[j]) not in stay})
    conflicts: dict[int, set[int]] = {}
    for a, b in cannot_link:
        conflicts.setdefault(int(a), set()).add(int(b))
        conflicts.setdefault(int(b), set()).add(int(a))
    parent = {int(c): int(c) for c in ids}

    def root(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for _, i, j in pairs:
        a, b = root(int(ids[i])), root(int(ids[j]))
        if a == b or len(members[a]) + len(members[b]) > max_size:
            continue
        if len(members[b]) > len(members[a]):  # the larger cluster keeps its label
            a, b = b, a
        if conflicts and any(conflicts.get(int(r), set()) for r in members[b]):
            inside = set(members[a].tolist())
            if any(conflicts.get(int(r), set()) & inside for r in members[b]):
                continue
        if pairwise_distances(v[members[a]], v[members[b]], metric).max() < bound:
            parent[b] = a
            members[a] = np.concatenate([members[a], members[b]])
    to = np.array([root(int(c)) for c in ids])
    out = labels.copy()
    held = labels >= 0
    out[held] = to[np.searchsorted(ids, labels[held])]
    return out


def _nearest_centres(centres: np.ndarray, query: np.ndarray, k: int, within: float = np.inf,
                     chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Each ``query`` row's ``k`` nearest other rows of ``centres`` closer than ``within``
    (``(Q, k')`` rows and Euclidean distances, nearest first; ``-1`` / ``inf`` where fewer)."""
    from .knn import knn, nearest_hits

    if len(query) == len(centres):
        return knn(centres, k)
    k = max(0, min(k, len(centres) - 1))
    c = np.ascontiguousarray(centres, dtype=np.float32)
    sq = (c * c).sum(1)
    idx = -np.ones((len(query), k), np.int64)
    dist = np.full((len(query), k), np.inf, np.float32)
    for s in range(0, len(query), chunk):
        q = query[s:s + chunk]
        half = c[q] @ c.T
        np.subtract(sq[None, :] / 2, half, out=half)  # (|q - c|^2 - |q|^2) / 2, in place
        half[np.arange(len(q)), q] = np.inf  # not its own neighbour
        rows, cols = np.nonzero(half < (within * within - sq[q, None]) / 2)
        d = np.sqrt(np.maximum(2 * half[rows, cols] + sq[q[rows]], 0.0))
        idx[s:s + len(q)], dist[s:s + len(q)] = nearest_hits(rows, cols, d, len(q), k)
    return idx, dist


def knn_graph(v: np.ndarray, k: int, metric: str = "euclidean") -> Any:
    """Symmetric sparse ``(N, N)`` CSR graph of distances (in ``metric``) to each row's ``k`` nearest rows.

    Components the neighbours leave apart are chained by edges longer than any distance, so the
    graph is connected (HDBSCAN needs that) without those edges ever joining a cluster.
    """
    import scipy.sparse as sp
    from scipy.sparse import csgraph

    from .knn import knn

    n = len(v)
    idx, dist = knn(v, k)
    if metric == "cosine":  # unit vectors: 1 - cos = |a - b|^2 / 2
        dist = dist * dist / 2
    ok = idx >= 0
    src = np.repeat(np.arange(n), idx.shape[1]).reshape(idx.shape)[ok]
    # a zero distance would be an absent edge in a sparse matrix: nudge it
    graph = sp.csr_matrix((np.maximum(dist[ok].astype(np.float64), 1e-12), (src, idx[ok])), shape=(n, n))
    graph = graph.maximum(graph.T).tocsr()
    count, comp = csgraph.connected_components(graph, directed=False)
    if count > 1:
        first = np.unique(comp, return_index=True)[1]
        far = 4.0 * float(dist[ok].max(initial=1.0)) + 1.0
        bridge = sp.csr_matrix((np.full(count - 1, far), (first[:-1], first[1:])), shape=(n, n))
        graph = (graph + bridge).maximum((graph + bridge).T).tocsr()
    return graph


#: Clusters up to this size are cut by exact average linkage; larger ones over their neighbour graph.
CUT_DENSE_MAX = 2000


def _cut(v: np.ndarray, labels: np.ndarray, threshold: float, metric: str, graph: Any = None) -> np.ndarray:
    """Split every cluster by average linkage at ``threshold``; new parts get new labels.

    A cluster larger than :data:`CUT_DENSE_MAX` is cut by average linkage restricted to the
    edges of ``graph`` (the neighbour graph), so memory stays linear in its size.
    """
    from sklearn.cluster import AgglomerativeClustering

    out, fresh = labels.copy(), labels.max(initial=-1) + 1
    for lab in np.unique(labels[labels >= 0]):
        rows = np.flatnonzero(labels == lab)
        if len(rows) > CUT_DENSE_MAX:
            sub = (graph if graph is not None else knn_graph(v, 10, metric))[rows][:, rows]
            parts = AgglomerativeClustering(n_clusters=None, distance_threshold=threshold, linkage="average",
                                            metric=metric, connectivity=sub).fit(v[rows]).labels_
        elif len(rows) < 2 or pairwise_distances(v[rows], v[rows], metric).max() < threshold:
            continue  # every pair closer than the threshold: average linkage keeps the cluster whole
        else:
            parts = AgglomerativeClustering(n_clusters=None, distance_threshold=threshold, linkage="average",
                                            metric=metric).fit(v[rows]).labels_
        for part in np.unique(parts)[1:]:
            out[rows[parts == part]] = fresh
            fresh += 1
    return out


class Agglomerative(_Sklearn):
    """scikit-learn agglomerative clustering: cut at ``threshold`` (linkage distance) or at ``n_clusters``."""

    def __init__(self, threshold: float | None = 0.5, n_clusters: int | None = None, linkage: str = "average",
                 metric: str = "euclidean") -> None:
        self.threshold = threshold
        self.n_clusters = n_clusters
        self.linkage = linkage
        self.metric = metric

    def _make(self, metric: str, n: int) -> Any:
        from sklearn.cluster import AgglomerativeClustering

        if self.n_clusters is not None:
            return AgglomerativeClustering(n_clusters=min(self.n_clusters, n), linkage=self.linkage, metric=metric)
        _check_threshold(self.threshold)
        if self.linkage == "ward" and metric != "euclidean":
            raise ConfigError("ward linkage needs the euclidean metric")
        return AgglomerativeClustering(n_clusters=None, distance_threshold=self.threshold, linkage=self.linkage,
                                       metric=metric)


class KMeans(_Sklearn):
    """scikit-learn k-means for a known number of people ``n_clusters`` (cosine: on unit vectors)."""

    def __init__(self, n_clusters: int | None = None, seed: int = 0, metric: str = "euclidean") -> None:
        self.n_clusters = n_clusters
        self.seed = seed
        self.metric = metric

    def _make(self, metric: str, n: int) -> Any:
        from sklearn.cluster import KMeans as SkKMeans

        if self.n_clusters is None or self.n_clusters < 1:
            raise ConfigError("k-means needs the number of people: give n_clusters (--k) >= 1")
        return SkKMeans(n_clusters=min(self.n_clusters, n), n_init=10, random_state=self.seed)


def _consecutive(labels: np.ndarray) -> np.ndarray:
    """Relabel clusters ``0..k-1`` in order of first appearance; ``-1`` stays noise."""
    out = -np.ones(len(labels), dtype=np.int64)
    mapping: dict[int, int] = {}
    for i, lab in enumerate(labels):
        if lab >= 0:
            out[i] = mapping.setdefault(int(lab), len(mapping))
    return out


CLUSTERERS: dict[str, type] = {
    "chinese_whispers": ChineseWhispers,
    "agglomerative": Agglomerative,
    "dbscan": Dbscan,
    "hdbscan": Hdbscan,
    "kmeans": KMeans,
}
DEFAULT_CLUSTERER = "hdbscan"

#: Thresholds of the threshold-graph algorithms, per model: the best pairwise F1 on LFW View 1
#: people with 2 or 3 photos (985 people, 2,194 photos; mtcnn + the model), a set disjoint
#: from the people with 4 or more photos the README reports on.
TUNED_THRESHOLDS: dict[str, dict[str, float]] = {
    "dlib_resnet_v1": {"chinese_whispers": 0.45, "dbscan": 0.40, "agglomerative": 0.50},
}


def default_threshold(spec: Any, algorithm: str) -> float:
    """The distance threshold ``algorithm`` uses by default with the model of ``spec``.

    HDBSCAN cuts clusters at the model's calibrated best-accuracy threshold (where "same" and
    "different" pairs are equally likely to be wrong); the graph algorithms use
    :data:`TUNED_THRESHOLDS`, else the calibrated FAR 1e-3 threshold, else the spec's default.
    """
    tuned = TUNED_THRESHOLDS.get(spec.model_id, {})
    if algorithm in tuned:
        return tuned[algorithm]
    key = "accuracy" if algorithm == "hdbscan" else "far_1e-3"
    return float(spec.thresholds.get(key, spec.threshold))


def create_clusterer(name: str = DEFAULT_CLUSTERER, **params: Any) -> Any:
    """A clusterer by name; parameters it does not take are ignored (so one call fits all).

    Raises:
        UnknownModelError: no clusterer of that name.
    """
    if name not in CLUSTERERS:
        raise UnknownModelError(f"unknown clustering algorithm {name!r}; choose one of {sorted(CLUSTERERS)}")
    cls = CLUSTERERS[name]
    accepted = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in params.items() if k in accepted and v is not None})


__all__ = ["Agglomerative", "CLUSTERERS", "ChineseWhispers", "DEFAULT_CLUSTERER", "Dbscan", "Hdbscan", "KMeans",
           "MERGE_FRACTION", "TUNED_THRESHOLDS", "as_vectors", "create_clusterer", "default_threshold", "knn_graph",
           "members_by_label", "merge_close", "pairwise_distances"]
