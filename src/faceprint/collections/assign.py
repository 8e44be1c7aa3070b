"""Cluster the faces of a photo index and keep the assignment in it.

``cluster_index`` re-clusters everything (names follow their faces: a new cluster inherits the
id, and so the name, of the old cluster it overlaps most; faces of a named cluster stay in it),
or, after a clustering with the same settings, places only what is new: with HDBSCAN (the
default) the region the new faces touch is clustered again and mapped back onto its old ids
(:mod:`.region`), other algorithms join new faces by :mod:`.incremental`'s rules; the rest of
the library is not touched, and a run with nothing new changes nothing. Both respect the
same-photo cannot-link and the user's corrections stored in ``face_links``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

import numpy as np

from .clustering import DEFAULT_CLUSTERER, as_vectors, create_clusterer, default_threshold
from .constraints import apply_constraints, same_photo_pairs
from .incremental import Identify, join_new, merge_touched, nearest_clustered, neighbourhood, regroup
from .region import adopt_region, frozen_clusters, touched_region
from ..sqlitedb import transaction
from .store import FaceRows, cluster_names, get_state, read_faces, read_links, set_state


@dataclass
class Clustering:
    """The index's clusters after a run: ``faces`` and their ``cluster_id`` (``-1`` = noise)."""

    faces: FaceRows
    cluster_id: np.ndarray
    names: dict[int, str | None]
    incremental: bool

    def to_dict(self) -> dict[str, Any]:
        """``{"clusters": [{"id", "name", "faces": [...]}], "noise": [...]}``; biggest cluster first."""
        groups: dict[int, list[int]] = {}
        for row, cid in enumerate(self.cluster_id):
            if cid >= 0:
                groups.setdefault(int(cid), []).append(row)
        order = sorted(groups, key=lambda c: (-len(groups[c]), c))
        return {
            "clusters": [{"id": c, "name": self.names.get(c), "faces": [self.faces.record(r) for r in groups[c]]}
                         for c in order],
            "noise": [self.faces.record(r) for r in np.flatnonzero(self.cluster_id < 0)],
        }


def _row_pairs(faces: FaceRows, pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    if not pairs:
        return []
    row = {int(f): i for i, f in enumerate(faces.face_id)}
    return [(row[a], row[b]) for a, b in pairs if a in row and b in row]


def links_digest(links: Any) -> str:
    """A short digest of the corrections ``[must_pairs, cannot_pairs]`` (stored with the settings)."""
    return hashlib.sha256(json.dumps([[list(p) for p in side] for side in links]).encode()).hexdigest()[:16]


def _settings(algorithm: str, params: dict[str, Any], faces: FaceRows, links: Any) -> dict[str, Any]:
    return {"algorithm": algorithm, "params": params, "model_id": faces.embeddings.model_id,
            "links": links_digest(links)}


def stored_clustering(conn: sqlite3.Connection) -> Clustering:
    """The clusters as the last run (and the user's merges) left them; nothing is re-computed."""
    faces = read_faces(conn)
    return Clustering(faces, np.where(faces.clustered, faces.cluster_id, -1), cluster_names(conn), True)


def cluster_index(conn: sqlite3.Connection, algorithm: str = DEFAULT_CLUSTERER, full: bool = False,
                  threshold: float | None = None, identify: Identify | None = None, **params: Any) -> Clustering:
    """Cluster the index's faces and store the result; incremental when possible.

    Incremental (unless ``full``) when the previous run used the same algorithm, parameters,
    model and corrections: named clusters and clusters holding a user's correction take new faces
    only by :func:`.incremental.join_new` (``identify``, the gallery's open-set decision on
    vectors, must agree for named clusters) and never change otherwise. With HDBSCAN the other
    new faces, the unnamed, uncorrected clusters they touch and the noise near them are clustered
    again by ``--full``'s algorithm (:mod:`.region`: ids stay with the largest overlap), then an
    unnamed cluster this run touched may merge whole with a near one (``--full``'s ``merge_close``
    rule); other algorithms place the new faces by :mod:`.incremental`'s rules without moving
    clustered faces.

    Raises:
        UnknownModelError: unknown algorithm.
        ConfigError: bad parameters (e.g. k-means without ``n_clusters``).
        CollectionError: the index mixes models.
    """
    faces = read_faces(conn)
    must_ids, cannot_ids = read_links(conn)
    spec = spec_for(faces.embeddings.model_id)
    if threshold is None and spec is not None:
        threshold = default_threshold(spec, algorithm)
    params = {**params, "threshold": threshold}
    settings = _settings(algorithm, params, faces, [must_ids, cannot_ids])
    vectors, metric = as_vectors(faces.embeddings, faces.embeddings.metric)
    must = _row_pairs(faces, must_ids)
    cannot = _row_pairs(faces, cannot_ids) + same_photo_pairs(faces.photo_id)
    incremental = not full and get_state(conn) == settings and bool(faces.clustered.any())
    old_ids = np.where(faces.clustered, faces.cluster_id, -1)
    names = cluster_names(conn)
    if incremental:
        new = ~faces.clustered
        if not new.any():  # nothing new: nothing to decide
            return Clustering(faces, old_ids, names, True)
        region = algorithm == "hdbscan" and bool(threshold)
        # the region's rules use no face beyond the threshold: search only within it
        near = nearest_clustered(vectors, metric, old_ids, new, within=threshold if region else None)
        if region:
            frozen = frozen_clusters(old_ids, names, must + _row_pairs(faces, cannot_ids))
            labels = _recluster_touched(conn, vectors, metric, old_ids, new, near, frozen, params, must, cannot,
                                        names, identify)
            # the rule --full applies before its cut, on what this run touched
            labels = merge_touched(vectors, metric, labels, new, threshold, names, cannot)
        else:
            labels = join_new(vectors, metric, old_ids, new, threshold or 0.0, cannot, must, names, identify, near)
            # then the rest of the new faces, by the library's algorithm re-run on their neighbourhood
            rows = np.flatnonzero(neighbourhood(vectors, metric, old_ids, new, threshold or 0.0, near=near))
            fresh = _fit(algorithm, params, vectors[rows], metric, must, cannot, rows, threshold)
            with transaction(conn):
                labels = regroup(labels, new, rows, fresh, cannot, lambda: _new_cluster(conn), vectors, metric,
                                 threshold, names, identify)
    else:
        labels = _fit(algorithm, params, vectors, metric, must, cannot, np.arange(len(faces)), threshold)
        labels = _carry_ids(conn, old_ids, labels)
        named = np.array([old >= 0 and names.get(int(old)) is not None for old in old_ids], dtype=bool)
        labels[named] = old_ids[named]  # a named person keeps every face it had
    _save(conn, faces, labels, settings)
    return Clustering(faces, labels, cluster_names(conn), incremental)


def _recluster_touched(conn: sqlite3.Connection, vectors: np.ndarray, metric: str, labels: np.ndarray, new: np.ndarray,
                       near: tuple[np.ndarray, np.ndarray], frozen: set[int], params: dict[str, Any],
                       must: list[tuple[int, int]], cannot: list[tuple[int, int]], names: dict[int, str | None],
                       identify: Identify | None) -> np.ndarray:
    """The incremental HDBSCAN run: new faces join ``frozen`` clusters (named, corrected) only by
    the join rule; the rest and the unfrozen part of the library they touch are clustered again
    (:mod:`.region`) and mapped back onto their old ids."""
    threshold = params["threshold"]
    hidden = ~np.isin(labels[near[0]], list(frozen)) if near[0].size else np.zeros(near[0].shape, bool)
    labels = join_new(vectors, metric, labels, new, threshold, cannot, must, names, identify,
                      (near[0], np.where(hidden, np.inf, near[1])))
    left = new & (labels < 0)
    keep = left[np.flatnonzero(new)]
    region = touched_region(vectors, metric, labels, left, threshold, frozen, (near[0][keep], near[1][keep]))
    rows = np.flatnonzero(region)
    fresh = _fit("hdbscan", params, vectors[rows], metric, must, cannot, rows, threshold)
    with transaction(conn):
        return adopt_region(labels, rows, fresh, lambda: _new_cluster(conn))


def spec_for(model_id: str) -> Any:
    """The registered embedder spec with ``model_id`` (``None`` for a model loaded from a path)."""
    from ..registry import EMBEDDERS, create_embedder

    for name in EMBEDDERS:
        spec = create_embedder(name).spec
        if spec.model_id == model_id:
            return spec
    return None


def _fit(algorithm: str, params: dict[str, Any], vectors: np.ndarray, metric: str, must: list[tuple[int, int]],
         cannot: list[tuple[int, int]], rows: np.ndarray, threshold: float | None) -> np.ndarray:
    """Cluster ``vectors`` (the index's ``rows``) and apply the constraints among those rows."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    local = {int(r): i for i, r in enumerate(rows)}
    keep = lambda pairs: [(local[a], local[b]) for a, b in pairs if a in local and b in local]  # noqa: E731
    labels = create_clusterer(algorithm, metric=metric, **params).fit(vectors).labels_
    return apply_constraints(vectors, metric, labels, keep(must), keep(cannot), threshold)


def _new_cluster(conn: sqlite3.Connection) -> int:
    return int(conn.execute("INSERT INTO clusters (name) VALUES (NULL)").lastrowid)


def _carry_ids(conn: sqlite3.Connection, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Map fresh labels onto stored cluster ids: greedily by overlap, largest first; others get new ids."""
    pairs: dict[tuple[int, int], int] = {}
    for o, n in zip(old, new):
        if o >= 0 and n >= 0:
            pairs[(int(n), int(o))] = pairs.get((int(n), int(o)), 0) + 1
    mapping: dict[int, int] = {}
    used: set[int] = set()
    for (n, o), _count in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0])):
        if n not in mapping and o not in used:
            mapping[n] = o
            used.add(o)
    with transaction(conn):
        for n in np.unique(new[new >= 0]):
            if int(n) not in mapping:
                mapping[int(n)] = _new_cluster(conn)
    return np.array([mapping[int(n)] if n >= 0 else -1 for n in new], dtype=np.int64)


def _save(conn: sqlite3.Connection, faces: FaceRows, labels: np.ndarray, settings: dict[str, Any]) -> None:
    """Store the labels of the faces that are new or changed, and the settings."""
    old = np.where(faces.clustered, faces.cluster_id, -2)
    rows = np.flatnonzero(old != labels)
    with transaction(conn):
        conn.executemany("UPDATE faces SET cluster_id = ?, clustered = 1 WHERE id = ?",
                         [(None if labels[r] < 0 else int(labels[r]), int(faces.face_id[r])) for r in rows])
        conn.execute("DELETE FROM clusters WHERE name IS NULL AND id NOT IN "
                     "(SELECT cluster_id FROM faces WHERE cluster_id IS NOT NULL)")
        set_state(conn, settings)


__all__ = ["Clustering", "cluster_index", "links_digest", "spec_for", "stored_clustering"]
