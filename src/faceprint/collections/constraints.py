"""Must-link / cannot-link constraints applied to any clusterer's labels.

Rules, in order:

1. faces joined by must-links (transitively) form a *unit* that always ends in one cluster:
   the cluster holding most of its faces (a new one when all are noise);
2. no cluster keeps two units joined by a cannot-link (two faces of one photo, or a user's
   correction): the unit farthest from the cluster's centroid leaves, repeatedly;
3. a unit that left joins the nearest cluster it conflicts with nowhere, when its average
   distance to that cluster's faces is within ``threshold`` (any distance when ``threshold``
   is ``None``); otherwise it becomes a cluster of its own.

A cannot-link inside a must-link unit is ignored (the must-link wins).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Iterable

import numpy as np

from .clustering import _consecutive, members_by_label, pairwise_distances


def units(n: int, must_link: Iterable[tuple[int, int]]) -> np.ndarray:
    """``(n,)`` unit id per row: connected components of the must-link graph (union-find)."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in must_link:
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(i) for i in range(n)], dtype=np.int64)


def same_photo_pairs(photo_id: np.ndarray) -> list[tuple[int, int]]:
    """Row pairs of faces that come from the same photo (they are different people)."""
    photo_id = np.asarray(photo_id)
    order = np.argsort(photo_id, kind="stable")
    _, starts, counts = np.unique(photo_id[order], return_index=True, return_counts=True)
    shared = counts > 1  # most photos hold one face: group only the others
    groups = [order[a:a + c].tolist() for a, c in zip(starts[shared], counts[shared])]
    groups.sort(key=lambda rows: rows[0])  # in order of first appearance, as before
    return [(a, b) for rows in groups for i, a in enumerate(rows) for b in rows[i + 1:]]


def apply_constraints(vectors: np.ndarray, metric: str, labels: np.ndarray,
                      must_link: Iterable[tuple[int, int]] = (), cannot_link: Iterable[tuple[int, int]] = (),
                      threshold: float | None = None) -> np.ndarray:
    """Labels ``(N,)`` (``-1`` = noise) changed as little as the rules above allow.

    ``vectors`` are prepared by :func:`~faceprint.collections.clustering.as_vectors`; pairs
    are row indices. Returns clusters relabelled ``0..k-1``.
    """
    labels = np.asarray(labels, dtype=np.int64).copy()
    unit = units(len(labels), must_link)
    conflicts: dict[int, set[int]] = defaultdict(set)
    for a, b in cannot_link:
        ua, ub = unit[int(a)], unit[int(b)]
        if ua != ub:
            conflicts[ua].add(ub)
            conflicts[ub].add(ua)
    members = members_by_label(unit)  # rows grouped by unit, without an O(N * units) scan
    next_label = labels.max(initial=-1) + 1
    for u, rows in members.items():  # rule 1
        if len(rows) > 1:
            found = Counter(int(x) for x in labels[rows] if x >= 0)
            if found:
                labels[rows] = min(found, key=lambda lab: (-found[lab], lab))
            else:
                labels[rows] = next_label
                next_label += 1
    if not conflicts:
        return _consecutive(labels)
    evicted: list[int] = []
    clashing = sorted({int(labels[members[u][0]]) for u, others in conflicts.items()
                       if labels[members[u][0]] >= 0 and any(labels[members[o][0]] == labels[members[u][0]]
                                                             for o in others)})
    for lab in clashing:  # rule 2 (only clusters holding both sides of a cannot-link)
        inside = {int(u) for u in unit[labels == lab]}
        while True:
            bad = [u for u in inside if conflicts[u] & inside]
            if not bad:
                break
            rows = np.flatnonzero(labels == lab)
            centroid = vectors[rows].mean(0, keepdims=True)
            far = max(bad, key=lambda u: float(pairwise_distances(vectors[members[u]], centroid, metric).mean()))
            inside.discard(far)
            labels[members[far]] = -2  # parked until rule 3
            evicted.append(far)
    for u in evicted:  # rule 3
        rows = members[u]
        d = pairwise_distances(vectors[rows], vectors, metric).mean(0)
        held = labels >= 0
        sums = np.bincount(labels[held], weights=d[held], minlength=next_label)
        counts = np.bincount(labels[held], minlength=next_label)
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)
        for o in conflicts[u]:  # clusters holding a face it cannot link with are out
            lab_o = labels[members[o][0]]
            if lab_o >= 0:
                mean[lab_o] = np.inf
        best = int(np.argmin(mean)) if len(mean) else -1
        if best >= 0 and np.isfinite(mean[best]) and (threshold is None or mean[best] <= threshold):
            labels[rows] = best
        else:
            labels[rows] = next_label
            next_label += 1
    return _consecutive(labels)


__all__ = ["apply_constraints", "same_photo_pairs", "units"]
