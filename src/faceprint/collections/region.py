"""Re-clustering the region of a library that new faces touch.

An incremental run that only ever adds faces keeps what a smaller library got wrong: an old
cluster holding two people stays mixed when new photos of them would let ``--full`` split it.
So the part of the library the new faces reach is clustered again by the library's own
algorithm (``--full``'s HDBSCAN, merge and average-linkage cut, with the cannot-links), and the
result is mapped back onto the old cluster ids by overlap, so ids stay stable:

- :func:`frozen_clusters`: clusters no run may change: named people, and clusters holding a face
  the user corrected (a must- or cannot-link of theirs);
- :func:`touched_region`: the new faces, every face of the unfrozen clusters holding a face
  within the threshold of a new one, and the noise within the threshold of a new face;
- :func:`adopt_region`: the region's fresh labels mapped onto its old cluster ids.

Faces outside the region never change; with nothing new there is no region.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from .incremental import _nearest

#: How many of a new face's nearest clustered faces (those within the threshold) bring their
#: cluster into the region. Chosen on the tuning half of LFW View 1 (incremental minus ``--full``,
#: worst of two seeds: 2 -0.0026, 3 -0.0021, 4 -0.0018, 5 -0.0021, 10 -0.0010) among the settings
#: that keep adding 1k faces to a 100k library near its former cost (10 nearly doubles it).
TOUCH = 4


def frozen_clusters(labels: np.ndarray, names: dict[int, str | None],
                    corrected: Iterable[tuple[int, int]]) -> set[int]:
    """Cluster ids of ``labels`` that are named, or hold a row of a ``corrected`` pair (the user's links)."""
    out = {int(c) for c, name in names.items() if name}
    rows = np.array(sorted({int(r) for pair in corrected for r in pair}), dtype=np.int64)
    if len(rows):
        out |= {int(c) for c in labels[rows] if c >= 0}
    return out


def touched_region(vectors: np.ndarray, metric: str, labels: np.ndarray, new: np.ndarray, threshold: float,
                   frozen: set[int], near: tuple[np.ndarray, np.ndarray], clusters: int = TOUCH,
                   noise: int = 5) -> np.ndarray:
    """``(N,)`` mask: the ``new`` rows, every member of each unfrozen cluster holding one of a new
    face's nearest clustered faces within ``threshold`` (``near``:
    :func:`~faceprint.collections.incremental.nearest_clustered` for ``new``), and each new face's
    ``noise`` nearest noise faces within ``threshold``."""
    out = new.copy()
    rows, d = near[0][:, :clusters], near[1][:, :clusters]
    hit = labels[rows[d < threshold]] if rows.size else np.zeros(0, np.int64)
    hit = np.unique(hit[hit >= 0])
    out |= np.isin(labels, hit[~np.isin(hit, list(frozen))])
    fresh = np.flatnonzero(new)
    loose = np.flatnonzero((labels < 0) & ~new)
    if len(fresh) and len(loose) and noise > 0:
        close, dist = _nearest(vectors, metric, fresh, loose, noise, within=threshold)
        out[close[dist < threshold]] = True
    return out


def adopt_region(labels: np.ndarray, rows: np.ndarray, fresh: np.ndarray, next_id: Callable[[], int]) -> np.ndarray:
    """``labels`` with region ``rows`` relabelled by ``fresh`` (their local labels, ``-1`` noise).

    Each local cluster takes the old id it shares most faces with (greedily, the largest overlap
    first, each old id once), so a cluster the run leaves as it was keeps its id and a split
    cluster's larger part does; a local cluster with no old id left gets ``next_id()``. A face
    that had no cluster and is alone in its local cluster stays noise (one face is no evidence
    of a person; the average-linkage cut leaves such singletons).
    """
    labels = labels.copy()
    old = labels[rows]
    ids, size = np.unique(fresh, return_counts=True)
    fresh = np.where((old < 0) & np.isin(fresh, ids[size == 1]), -1, fresh)
    pairs, counts = np.unique(np.stack([fresh, old])[:, (fresh >= 0) & (old >= 0)], axis=1, return_counts=True)
    mapping: dict[int, int] = {}
    used: set[int] = set()
    for i in sorted(range(len(counts)), key=lambda i: (-counts[i], int(pairs[0, i]), int(pairs[1, i]))):
        local, was = int(pairs[0, i]), int(pairs[1, i])
        if local not in mapping and was not in used:
            mapping[local] = was
            used.add(was)
    for local in np.unique(fresh[fresh >= 0]).tolist():
        if local not in mapping:
            mapping[local] = next_id()
    labels[rows] = [mapping[int(f)] if f >= 0 else -1 for f in fresh]
    return labels


__all__ = ["adopt_region", "frozen_clusters", "touched_region"]
