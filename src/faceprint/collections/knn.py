"""k nearest neighbours of every face, in time near-linear in the number of faces.

Up to :data:`EXACT_MAX` faces the search is exact (blocked BLAS, ``O(N^2)`` time but
``O(N * chunk)`` memory). Beyond, an HNSW graph (usearch, ``pip install 'faceprint[collections]'``)
is built over the faces and searched with each of them, ``O(N log N)``; without usearch the
exact search runs (slower, same result). Distances are Euclidean on vectors prepared by
:func:`~faceprint.collections.clustering.as_vectors` (for cosine those are unit vectors, whose
Euclidean order is the cosine order).
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import ConfigError

#: Up to this many faces the search is exact.
EXACT_MAX = 8_000
#: HNSW graph degree and build / search widths (on 100k dlib-shaped faces the nearest neighbour is found for 97%).
HNSW_CONNECTIVITY = 16
HNSW_EXPANSION = 64
HNSW_SEARCH = 32


def _exact(v: np.ndarray, k: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(v)
    sq = (v * v).sum(1)
    idx = np.empty((n, k), dtype=np.int64)
    dist = np.empty((n, k), dtype=np.float32)
    for s in range(0, n, chunk):
        q = np.arange(s, min(n, s + chunk))
        d2 = sq[q, None] + sq[None, :] - 2.0 * (v[q] @ v.T)
        np.maximum(d2, 0.0, out=d2)
        d2[np.arange(len(q)), q] = np.inf  # not its own neighbour
        part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        pd = np.take_along_axis(d2, part, 1)
        order = np.argsort(pd, axis=1, kind="stable")
        idx[q] = np.take_along_axis(part, order, 1)
        dist[q] = np.sqrt(np.take_along_axis(pd, order, 1))
    return idx, dist


def _hnsw(v: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from usearch.index import Index

    threads = os.cpu_count() or 1
    index = Index(ndim=v.shape[1], metric="l2sq", dtype="f32", connectivity=HNSW_CONNECTIVITY,
                  expansion_add=HNSW_EXPANSION, expansion_search=max(HNSW_SEARCH, 2 * k))
    index.add(np.arange(len(v)), v, threads=threads)
    found = index.search(v, k + 1, threads=threads)
    keys = np.asarray(found.keys, dtype=np.int64).reshape(len(v), -1)
    d = np.sqrt(np.maximum(np.asarray(found.distances, dtype=np.float32).reshape(len(v), -1), 0.0))
    counts = np.asarray(found.counts).reshape(-1)
    valid = np.arange(keys.shape[1])[None, :] < counts[:, None]
    keep = valid & (keys != np.arange(len(v))[:, None])
    d = np.where(keep, d, np.inf)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]  # self and missing entries last
    idx, dist = np.take_along_axis(keys, order, 1), np.take_along_axis(d, order, 1)
    idx[~np.isfinite(dist)] = -1
    return idx, dist


def nearest_hits(rows: np.ndarray, cols: np.ndarray, dist: np.ndarray, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(idx (n, k) int64, dist (n, k))`` from candidate hits (query ``rows``, candidate ``cols``,
    ``dist``): each query's ``k`` nearest, nearest first (ties: lower column first), ``-1`` /
    ``inf`` where a query has fewer hits. One sort for all queries instead of a loop."""
    order = np.lexsort((cols, dist, rows))
    rows, cols, dist = rows[order], cols[order], dist[order]
    slot = np.arange(len(rows)) - np.searchsorted(rows, rows)  # rank within the query's hits
    keep = slot < k
    idx = -np.ones((n, k), np.int64)
    out = np.full((n, k), np.inf, dtype=np.result_type(dist.dtype, np.float32))
    idx[rows[keep], slot[keep]], out[rows[keep], slot[keep]] = cols[keep], dist[keep]
    return idx, out


def knn(vectors: np.ndarray, k: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """``(idx (N, k') int64, dist (N, k') float32)``, ``k' = min(k, N - 1)``: each row's nearest
    other rows, nearest first (an approximate search may leave ``-1`` / ``inf`` at the end).

    Raises:
        ConfigError: ``k < 1`` or ``vectors`` not 2-D.
    """
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise ConfigError(f"knn needs (N, D) vectors, got shape {v.shape}")
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    k = min(k, len(v) - 1)
    if k < 1:
        return np.zeros((len(v), 0), np.int64), np.zeros((len(v), 0), np.float32)
    if len(v) > EXACT_MAX:
        try:
            return _hnsw(v, k)
        except ImportError:
            pass
    return _exact(v, k, chunk)


__all__ = ["EXACT_MAX", "knn", "nearest_hits"]
