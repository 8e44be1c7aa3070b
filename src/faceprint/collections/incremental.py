"""Adding faces to a clustered library without making it worse.

Only faces added since the last run are placed, by two kinds of evidence, each at least as
strong as what holds a cluster together; faces already clustered move only when rule 3 merges
their cluster whole. (With HDBSCAN, the default, rule 1 serves only the named and corrected
clusters, and :mod:`.region` re-clusters what the other new faces touch instead of rule 2.)

1. :func:`join_new`: a new face joins a cluster when it is held to it as firmly as the
   cluster's typical member is (its *cohesion*: the median over members of the mean distance
   to their ``m = min(3, size-1)`` nearest co-members, capped by the threshold): its mean
   distance to its ``m`` nearest members is within the cohesion, two members lie within it, and
   its mean distance to *all* members is within :data:`MEAN_FRACTION` of the threshold (the
   average-linkage criterion ``--full`` cuts at; a one-face cluster is never joined). Among clusters that pass, the closest wins, so a big
   cluster does not win by size (on LFW View 1, 75% of such joins are right, where the old
   "one member within the threshold, most such members wins" rule was right 15% of the time).
   A named cluster also needs the gallery's open-set decision to say that name.
2. :func:`regroup`: the library's own algorithm re-runs on the new faces' neighbourhood (the
   clusters of their nearest clustered faces, and the noise near them); a new face left over
   goes where that run puts it: with the old cluster most of its group's clustered faces
   belong to (when its mean distance to that cluster passes the same average-linkage test), or, in a group of no old cluster, into a new cluster with the group's other new
   faces and old noise.

3. :func:`merge_touched`: an unnamed cluster holding a new face merges with one of its nearest
   clusters when every pair of faces of the union is within ``MERGE_FRACTION`` of the threshold
   (``--full``'s ``merge_close`` rule), so fragments of one person that this run touches become
   one; named clusters never merge, a cannot-link is never crossed, nothing is split.

Old noise stays noise until a new face brings evidence (it never joins an existing cluster
directly: on LFW View 1 none of the old noise faces that passed rule 1 was that cluster's
person). With nothing new, nothing is placed and nothing changes.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .clustering import MERGE_FRACTION, members_by_label, merge_close, pairwise_distances
from .constraints import units

#: Members whose mean distance measures how firmly a face is held to a cluster.
SUPPORT = 3
#: A new face joins a cluster only if its mean distance to all the cluster's members is within
#: this fraction of the threshold: the average-linkage criterion ``--full`` cuts clusters at,
#: with a margin (a face placed alone has no partner to balance it; chosen on the tuning half of
#: LFW View 1 from 1.0, 0.9, 0.8: 0.9).
MEAN_FRACTION = 0.9
#: A new face is compared with the clusters of its this many nearest clustered faces.
NEAREST = 10

Identify = Callable[[np.ndarray], list]  # rows of vectors -> the gallery's name (or None) for each


def _support(d: np.ndarray, m: int) -> np.ndarray:
    """Mean of the ``m`` smallest entries of each row of ``d``."""
    if d.shape[1] <= m:
        return d.mean(1)
    return np.partition(d, m - 1, axis=1)[:, :m].mean(1)


def cohesion(vectors: np.ndarray, metric: str, rows: np.ndarray, max_members: int = 2000) -> float:
    """How firmly cluster ``rows`` holds its members: the median over members of the mean
    distance to their ``min(3, size-1)`` nearest co-members (``inf`` for a single face).

    Clusters larger than ``max_members`` are measured on an even sample of that many members.
    """
    if len(rows) < 2:
        return float("inf")
    if len(rows) > max_members:
        rows = rows[np.linspace(0, len(rows) - 1, max_members).astype(np.int64)]
    d = pairwise_distances(vectors[rows], vectors[rows], metric)
    np.fill_diagonal(d, np.inf)
    return float(np.median(_support(d, min(SUPPORT, len(rows) - 1))))


def _nearest(vectors: np.ndarray, metric: str, queries: np.ndarray, rows: np.ndarray, k: int,
             chunk: int = 256, within: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(rows (Q, k'), distances)``: each query's ``k`` nearest of ``rows``, nearest first.

    Float32 BLAS, ranked by ``|b|^2 / 2 - q.b`` (one pass over each block; the rules
    re-measure the distances they compare). With ``within`` (a distance in ``metric``) only
    rows closer than that are ranked: the rest of a query's ``k`` slots are ``-1`` / ``inf``.
    The same as the full search filtered by ``d < within``, without selecting among all of
    ``rows`` for each query (most faces have few neighbours within the threshold).
    """
    from .knn import nearest_hits

    k = min(k, len(rows))
    out_i = np.zeros((len(queries), k), np.int64)
    out_d = np.zeros((len(queries), k))
    base = np.ascontiguousarray(vectors[rows], dtype=np.float32)
    half_sq = (base * base).sum(1) / 2
    if within is not None:  # squared Euclidean bound; unit vectors: 1 - cos = |a - b|^2 / 2
        bound = (2 * within if metric == "cosine" else within * within) * (1 + 1e-4) + 1e-6  # loose: d decides
    for s in range(0, len(queries), chunk):
        q = vectors[queries[s:s + chunk]].astype(np.float32)
        qq = (q.astype(np.float64) ** 2).sum(1)
        score = q @ base.T
        np.subtract(half_sq[None, :], score, out=score)  # |q-b|^2 / 2 - |q|^2 / 2
        if within is not None:
            hit_q, hit_r = np.nonzero(score < ((bound - qq) / 2)[:, None])
            part, d2 = nearest_hits(hit_q, hit_r, 2 * score[hit_q, hit_r].astype(np.float64) + qq[hit_q], len(q), k)
        else:
            part = np.argpartition(score, k - 1, axis=1)[:, :k] if k < len(rows) else np.tile(np.arange(len(rows)),
                                                                                               (len(score), 1))
            d2 = 2 * np.take_along_axis(score, part, 1).astype(np.float64) + qq[:, None]
            order = np.argsort(d2, axis=1)
            part, d2 = np.take_along_axis(part, order, 1), np.take_along_axis(d2, order, 1)
        d = np.sqrt(np.maximum(d2, 0.0))
        if metric == "cosine":  # prepared unit vectors: 1 - cos = |a - b|^2 / 2
            d = d * d / 2
        out_i[s:s + chunk], out_d[s:s + chunk] = np.where(part >= 0, rows[part], -1), d
    return out_i, out_d


def nearest_clustered(vectors: np.ndarray, metric: str, labels: np.ndarray,
                      new: np.ndarray, within: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each ``new`` row's :data:`NEAREST` nearest clustered old faces, nearest first (one search
    that :func:`join_new` and :func:`neighbourhood` share): ``(rows (Q, k), distances)``;
    ``within``: only those closer than that (``-1`` / ``inf`` fill the rest; for callers that
    use no farther face)."""
    held = np.flatnonzero((labels >= 0) & ~new)
    fresh = np.flatnonzero(new)
    if len(held) == 0 or len(fresh) == 0:
        return np.zeros((len(fresh), 0), np.int64), np.zeros((len(fresh), 0))
    return _nearest(vectors, metric, fresh, held, NEAREST, within=within)


def neighbourhood(vectors: np.ndarray, metric: str, labels: np.ndarray, new: np.ndarray, threshold: float,
                  clusters: int = 3, noise: int = 5,
                  near: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``(N,)`` mask: the ``new`` rows, every member of the clusters of each new face's
    ``clusters`` nearest clustered faces, and its ``noise`` nearest noise faces within ``threshold``.

    ``near``: :func:`nearest_clustered`'s result for ``new`` (searched here when not given).
    """
    out = new.copy()
    fresh = np.flatnonzero(new)
    held = np.flatnonzero((labels >= 0) & ~new)
    loose = np.flatnonzero((labels < 0) & ~new)
    if len(fresh) and len(held) and clusters > 0:
        if near is None or near[0].shape[1] < min(clusters, len(held)):
            near = _nearest(vectors, metric, fresh, held, clusters)
        out |= np.isin(labels, np.unique(labels[near[0][:, :clusters]]))
    if len(fresh) and len(loose) and noise > 0:
        close, d = _nearest(vectors, metric, fresh, loose, noise)
        out[close[d < threshold]] = True
    return out


def regroup(labels: np.ndarray, new: np.ndarray, rows: np.ndarray, fresh: np.ndarray,
            cannot_link: list[tuple[int, int]], next_id: Callable[[], int],
            vectors: np.ndarray | None = None, metric: str = "euclidean", threshold: float | None = None,
            names: dict[int, str | None] | None = None, identify: Identify | None = None) -> np.ndarray:
    """Place the unplaced new faces by a re-clustering ``fresh`` (local labels, ``-1`` noise)
    of the neighbourhood ``rows``; returns the labels.

    A group's new faces still without a cluster join the old cluster most of the group's
    clustered old faces belong to (unless one cannot link with a member, or, given ``vectors``
    and ``threshold``, its mean distance to the members exceeds ``MEAN_FRACTION * threshold``:
    it then stays noise, as it does when the target is a named cluster and ``identify``, the
    gallery's open-set decision, does not say that name); in a group without
    old clustered faces they and the group's old noise become a new cluster (``next_id()``).
    """
    labels = labels.copy()
    placed = labels >= 0
    conflicts: dict[int, set[int]] = {}
    for a, b in cannot_link:
        conflicts.setdefault(int(a), set()).add(int(b))
        conflicts.setdefault(int(b), set()).add(int(a))
    for group in np.unique(fresh[fresh >= 0]):
        members = rows[fresh == group]
        olds = labels[members[~new[members] & placed[members]]]
        todo = members[new[members] & ~placed[members]]
        if len(todo) == 0:
            continue
        if len(olds):
            values, counts = np.unique(olds, return_counts=True)
            target = int(values[np.argmax(counts)])
            inside_rows = np.flatnonzero(labels == target)
            inside = set(inside_rows.tolist())
            if vectors is not None and threshold is not None:  # as close on average as a join needs
                mean = pairwise_distances(vectors[todo], vectors[inside_rows], metric).mean(1)
                todo = todo[mean <= threshold * MEAN_FRACTION]
            name = (names or {}).get(target)
            if name and identify is not None and vectors is not None and len(todo):
                todo = todo[np.array([who == name for who in identify(vectors[todo])], dtype=bool)]
            for r in todo:
                if not conflicts.get(int(r), set()) & inside:
                    labels[r] = target
                    inside.add(int(r))
        else:
            labels[members[new[members] | (labels[members] < 0)]] = next_id()
    return labels


def join_new(vectors: np.ndarray, metric: str, labels: np.ndarray, pool: np.ndarray, threshold: float,
             cannot_link: list[tuple[int, int]], must_link: list[tuple[int, int]],
             names: dict[int, str | None] | None = None, identify: Identify | None = None,
             near: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Assign ``pool`` rows (the new faces) to existing clusters by rule 1; returns the new labels.

    ``labels`` ``(N,)``: the stored clusters (``-1`` noise); pool rows that join nothing get
    ``-1``; other rows keep their label. Must-linked pool faces move as one unit (a unit
    linked to a clustered face goes where that face is); a cluster holding a face a candidate
    cannot link with is skipped. ``identify`` (the gallery's open-set decision) is asked for
    candidates of named clusters. ``near``: :func:`nearest_clustered` for ``pool`` (searched
    here when not given).
    """
    labels = labels.copy()
    names = names or {}
    fixed = (labels >= 0) & ~pool
    unit = units(len(labels), must_link)
    for u in np.unique(unit[pool]):  # must-linked to a clustered face: goes with it
        rows = np.flatnonzero(unit == u)
        linked = {int(x) for x in labels[rows[fixed[rows]]]}
        if linked:
            labels[rows[pool[rows]]] = min(linked)
    todo = np.flatnonzero(pool & ~np.isin(unit, unit[fixed]))
    labels[todo] = -1
    if len(todo) == 0 or not fixed.any():
        return labels
    old = np.flatnonzero(fixed)
    conflicts: dict[int, set[int]] = {}
    for a, b in cannot_link:
        conflicts.setdefault(int(a), set()).add(int(b))
        conflicts.setdefault(int(b), set()).add(int(a))
    best_lab = -np.ones(len(todo), dtype=np.int64)
    best_s = np.full(len(todo), np.inf)
    touched: dict[int, list[int]] = {}
    if near is None:  # the closest cluster is among the clusters of the NEAREST nearest members
        near, d = _nearest(vectors, metric, todo, old, NEAREST)
    else:  # nearest_clustered's rows for every pool face: keep todo's
        at_pool = np.searchsorted(np.flatnonzero(pool), todo)
        near, d = near[0][at_pool], near[1][at_pool]
    for i in range(len(todo)):
        for lab in set(labels[near[i][d[i] < threshold]].tolist()):
            touched.setdefault(int(lab), []).append(i)
    members_of = members_by_label(labels, old)
    for lab, hits in touched.items():
        rows = members_of[lab]
        if len(rows) < 2:  # a lone face shows no spread to compare with
            continue
        bound = min(threshold, cohesion(vectors, metric, rows))
        cand = np.array(hits)
        m = max(1, min(SUPPORT, len(rows) - 1))
        dist = pairwise_distances(vectors[todo[cand]], vectors[rows], metric)
        sup, close = _support(dist, m), (dist <= bound).sum(1)
        sup = np.where(dist.mean(1) <= threshold * MEAN_FRACTION, sup, np.inf)  # and close to all on average
        member_set = set(int(r) for r in rows)
        for i, si, ci in zip(cand, sup, close):
            if (si <= bound and ci >= 2 and si < best_s[i]
                    and not (conflicts.get(int(todo[i]), set()) & member_set)):
                best_lab[i], best_s[i] = lab, si
    if identify is not None:
        ask = np.flatnonzero(np.array([best_lab[i] >= 0 and names.get(int(best_lab[i])) for i in range(len(todo))],
                                      dtype=bool))
        if len(ask):
            said = identify(vectors[todo[ask]])
            for i, who in zip(ask, said):
                if who != names[int(best_lab[i])]:
                    best_lab[i] = -1
    at = {int(r): i for i, r in enumerate(todo)}
    for a, b in cannot_link:  # two candidates that cannot link (e.g. one photo) never join one cluster
        i, j = at.get(int(a)), at.get(int(b))
        if i is not None and j is not None and best_lab[i] >= 0 and best_lab[i] == best_lab[j]:
            best_lab[j if best_s[j] > best_s[i] else i] = -1
    for u in np.unique(unit[todo]):  # a must-linked unit goes where most of its faces would
        members = np.flatnonzero(unit[todo] == u)
        votes = [int(x) for x in best_lab[members] if x >= 0]
        labels[todo[members]] = max(set(votes), key=votes.count) if votes else -1
    return labels


def merge_touched(vectors: np.ndarray, metric: str, labels: np.ndarray, new: np.ndarray, threshold: float | None,
                  names: dict[int, str | None] | None = None, cannot_link: list[tuple[int, int]] = (),
                  fraction: float = MERGE_FRACTION) -> np.ndarray:
    """Rule 3: the unnamed clusters holding a ``new`` face merge with one of their nearest
    clusters (:func:`~faceprint.collections.clustering.merge_close`, the rule ``--full`` applies
    before its cut) when every pair of faces of the union is within ``fraction * threshold``.

    Named clusters never merge (with each other or with anything), nor does a union holding a
    ``cannot_link`` pair; nothing is split. Returns the labels (a merged cluster takes the
    larger one's label).
    """
    if not threshold:
        return labels
    seeds = set(np.unique(labels[new & (labels >= 0)]).tolist())
    named = {int(c) for c, name in (names or {}).items() if name}
    if not seeds - named:
        return labels
    return merge_close(vectors, labels, threshold * fraction, metric, seeds=seeds, frozen=named,
                       cannot_link=cannot_link)


__all__ = ["MEAN_FRACTION", "NEAREST", "SUPPORT", "cohesion", "join_new", "merge_touched", "nearest_clustered",
           "neighbourhood", "regroup"]
