"""Vector indexes keyed by sample id: exact (BLAS) and approximate (usearch HNSW).

Both have the same verbs: ``add(ids, vectors)``, ``fits(vectors)``, ``remove(ids)``, ``search(queries, k) ->
(distances (Q, k), ids (Q, k))`` with ``inf``/``-1`` padding, ``len()``, ``ids()``. Distances
are in the metric's units (euclidean, or ``1 - cos``), so both indexes are interchangeable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, GalleryError


def _topk(dist: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise ``k`` smallest of ``dist`` ``(Q, N)``, sorted, padded with inf / -1."""
    q, n = dist.shape
    out_d = np.full((q, k), np.inf, np.float32)
    out_i = np.full((q, k), -1, np.int64)
    if n == 0:
        return out_d, out_i
    kk = min(k, n)
    part = np.argpartition(dist, kk - 1, axis=1)[:, :kk] if kk < n else np.tile(np.arange(n), (q, 1))
    pd = np.take_along_axis(dist, part, 1)
    order = np.argsort(pd, axis=1, kind="stable")
    out_d[:, :kk] = np.take_along_axis(pd, order, 1)
    out_i[:, :kk] = ids[np.take_along_axis(part, order, 1)]
    return out_d, out_i


def int8_scale(metric: str) -> float:
    """The int8 graph's scale for ``metric`` (see :class:`UsearchIndex`): 210 for dlib-sized
    euclidean components, 127 for unit-normalised cosine vectors."""
    return 210.0 if metric == "euclidean" else 127.0


def rerank(queries: np.ndarray, shortlist: np.ndarray, known_ids: np.ndarray, known_vectors: np.ndarray, k: int,
           metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact distances from each query to its shortlisted ids, best ``k`` first.

    Args:
        queries: ``(Q, D)``; shortlist: ``(Q, S)`` candidate ids, ``-1`` padded.
        known_ids: sorted ids whose vectors ``known_vectors`` ``(n, D)`` holds, row for row; a
            shortlisted id not among them (deleted since the graph saw it) is dropped.

    Returns:
        distances ``(Q, k)`` (``inf`` padded) and ids ``(Q, k)`` (``-1`` padded).
    """
    from .scoring import distances

    q = np.asarray(queries, np.float32).reshape(len(shortlist), -1)
    out_d = np.full((len(shortlist), k), np.inf, np.float32)
    out_i = np.full((len(shortlist), k), -1, np.int64)
    if not len(known_ids):
        return out_d, out_i
    for r, row in enumerate(shortlist):
        pos = np.searchsorted(known_ids, row).clip(0, len(known_ids) - 1)
        keep = (row >= 0) & (known_ids[pos] == row)
        if not keep.any():
            continue
        d = distances(q[r:r + 1], known_vectors[pos[keep]], metric)[0]
        order = np.argsort(d, kind="stable")[:k]
        out_d[r, :len(order)], out_i[r, :len(order)] = d[order], row[keep][order]
    return out_d, out_i


class ExactIndex:
    """Brute-force search with one matrix product per query batch (float32 in memory)."""

    def __init__(self, dim: int, metric: str = "euclidean") -> None:
        self.dim, self.metric = int(dim), metric
        self._vectors = np.zeros((0, self.dim), np.float32)
        self._sq = np.zeros(0, np.float32)
        self._ids = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self) -> np.ndarray:
        return self._ids.copy()

    def _prepare(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, np.float32).reshape(-1, self.dim)
        if self.metric == "cosine":
            v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        return v

    def fits(self, vectors: np.ndarray, slack: float = 1.0) -> bool:
        """float32 in memory: every vector fits."""
        return True

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        v = self._prepare(vectors)
        self._vectors = np.concatenate([self._vectors, v])
        self._sq = np.concatenate([self._sq, (v * v).sum(1)])
        self._ids = np.concatenate([self._ids, np.asarray(ids, np.int64).reshape(-1)])

    def remove(self, ids: np.ndarray) -> None:
        keep = ~np.isin(self._ids, np.asarray(ids, np.int64))
        self._vectors, self._sq, self._ids = self._vectors[keep], self._sq[keep], self._ids[keep]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rank by ``|v|^2 - 2 q.v`` (one matrix product), then compute true distances for the top ``k``."""
        if len(self._ids) == 0:  # nothing to rank (people without samples yet)
            n_queries = len(np.atleast_2d(queries))
            return np.full((n_queries, k), np.inf, np.float32), np.full((n_queries, k), -1, np.int64)
        q = self._prepare(queries)
        rank = (-q @ self._vectors.T) if self.metric == "cosine" else (self._sq[None, :] - 2.0 * (q @ self._vectors.T))
        score, ids = _topk(rank, np.arange(len(self._ids)), k)
        found = ids >= 0
        if self.metric == "cosine":
            dist = 1.0 + score
        else:
            dist = np.sqrt(np.clip(score + (q * q).sum(1)[:, None], 0.0, None))
        dist = np.where(found, dist, np.inf).astype(np.float32)
        return dist, np.where(found, self._ids[ids.clip(0)], -1)


class UsearchIndex:
    """HNSW graph from usearch (``pip install usearch``), optionally int8/float16 inside.

    Args:
        dim, metric: as the gallery.
        dtype: ``"f32"``, ``"f16"`` or ``"i8"`` storage inside the index.
        connectivity, expansion_add, expansion_search: HNSW parameters (M, efConstruction, ef).
        int8_scale: with ``dtype="i8"`` vectors are stored as ``round(v * int8_scale)`` clipped
            to [-127, 127] (faceprint quantises, usearch gets int8); dlib components stay below
            0.6 (LFW View 1 max 0.575), so 210 keeps them in range with a step of 0.005. Cosine
            vectors are unit-normalised first (use 127).

    Raises:
        GalleryError: usearch is not installed.
    """

    def __init__(self, dim: int, metric: str = "euclidean", dtype: str = "f32", connectivity: int = 16,
                 expansion_add: int = 128, expansion_search: int = 128, int8_scale: float = 210.0) -> None:
        try:
            from usearch.index import Index
        except ImportError as exc:
            raise GalleryError("the ANN index needs usearch: pip install 'faceprint[scale]' (or usearch)") from exc
        if dtype not in ("f32", "f16", "i8"):
            raise ConfigError(f"usearch dtype must be f32, f16 or i8, got {dtype!r}")
        self.dim, self.metric, self.dtype = int(dim), metric, dtype
        self._int8_scale = float(int8_scale)
        self.scale = self._int8_scale if dtype == "i8" else 1.0
        self._index = Index(ndim=self.dim, metric="cos" if metric == "cosine" else "l2sq", dtype=dtype,
                            connectivity=connectivity, expansion_add=expansion_add,
                            expansion_search=expansion_search)

    def __len__(self) -> int:
        return len(self._index)

    def ids(self) -> np.ndarray:
        return np.asarray(self._index.keys, np.int64) if len(self._index) else np.zeros(0, np.int64)

    def _encode(self, vectors: np.ndarray) -> np.ndarray:
        v = np.asarray(vectors, np.float32).reshape(-1, self.dim)
        if self.dtype != "i8":
            return v
        if self.metric == "cosine":
            v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        return np.clip(np.rint(v * self.scale), -127, 127).astype(np.int8)

    def fits(self, vectors: np.ndarray, slack: float = 1.0) -> bool:
        """Whether ``vectors`` are stored with no component clipped by more than ``slack`` times
        int8's range (always true unless int8 euclidean)."""
        if self.dtype != "i8" or self.metric == "cosine" or not len(vectors):
            return True
        return float(np.abs(np.asarray(vectors, np.float32)).max()) * self.scale <= 127.0 * slack

    def add(self, ids: np.ndarray, vectors: np.ndarray, threads: int | None = None) -> None:
        """Insert vectors; ``threads=None`` builds small batches (< 10,000) on one thread, so the
        graph (and every search result) is reproducible, and large ones on all cores (0)."""
        ids = np.asarray(ids, np.uint64).reshape(-1)
        if threads is None:
            threads = 1 if len(ids) < 10_000 else 0
        if len(ids):
            self._index.add(ids, self._encode(vectors), threads=threads)

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, np.uint64).reshape(-1)
        if len(ids):
            self._index.remove(ids)

    @property
    def expansion_search(self) -> int:
        """HNSW search width (ef): larger is slower and finds the true neighbours more often."""
        return int(self._index.expansion_search)

    @expansion_search.setter
    def expansion_search(self, ef: int) -> None:
        self._index.expansion_search = int(ef)

    def search(self, queries: np.ndarray, k: int, threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(queries, np.float32).reshape(-1, self.dim)
        out_d = np.full((len(q), k), np.inf, np.float32)
        out_i = np.full((len(q), k), -1, np.int64)
        if len(self._index) == 0 or len(q) == 0:
            return out_d, out_i
        res = self._index.search(self._encode(q), k, threads=threads)
        keys = np.asarray(res.keys).reshape(len(q), -1)
        dist = np.asarray(res.distances, np.float32).reshape(len(q), -1)
        counts = np.asarray(getattr(res, "counts", [keys.shape[1]])).reshape(len(q))  # one query: Matches
        for r in range(len(q)):
            c = int(counts[r])
            out_i[r, :c] = keys[r, :c].astype(np.int64)
            d = dist[r, :c]
            out_d[r, :c] = np.sqrt(np.clip(d, 0, None)) / self.scale if self.metric != "cosine" else d
        return out_d, out_i

    def save(self, path: str | Path) -> None:
        self._index.save(str(path))

    def load(self, path: str | Path) -> None:
        """Load a saved index; its storage type (``dtype``) is the file's, the search width ours."""
        ef = self.expansion_search
        self._index.load(str(path))
        self.expansion_search = ef
        self.dtype = {"F32": "f32", "F16": "f16", "I8": "i8"}.get(getattr(self._index.dtype, "name", ""), self.dtype)
        self.scale = self._int8_scale if self.dtype == "i8" else 1.0

    @property
    def serialized_bytes(self) -> int:
        """Bytes of the saved index (vectors + graph + keys): the per-face footprint measure."""
        try:
            return int(self._index.serialized_length)
        except TypeError:  # some usearch releases break the property; measure a saved copy
            import os
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                self._index.save(os.path.join(tmp, "i.usearch"))
                return os.path.getsize(os.path.join(tmp, "i.usearch"))
