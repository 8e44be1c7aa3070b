"""Reviewing a clustered library: suggested merges, a person's close faces, merging clusters.

- :func:`suggest_merges`: pairs of clusters that may be one person (average distance between
  their faces within the threshold), found among each cluster's nearest clusters by centroid
  (:func:`~faceprint.collections.knn.knn`), so the cost grows with the number of clusters, not
  its square;
- :func:`close_to`: the unclustered faces and the other clusters (fragments) close to one
  cluster, offered when a person is named;
- :func:`merge_clusters` / :func:`adopt_faces`: the user's decisions, stored as must-links so
  a later ``cluster --full`` keeps them; the stored clustering stays valid, so the next plain
  ``cluster`` run stays incremental.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import numpy as np

from ..errors import CollectionError, UnknownClusterError
from ..sqlitedb import transaction
from .clustering import as_vectors, members_by_label, pairwise_distances
from .incremental import _support, cohesion
from .store import FaceRows, add_links, cluster_names, read_faces


def _groups(labels: np.ndarray) -> dict[int, np.ndarray]:
    return {c: rows for c, rows in members_by_label(labels).items() if c >= 0}


def _linkage(v: np.ndarray, metric: str, a: np.ndarray, b: np.ndarray, cap: int = 200) -> float:
    """Average distance between the faces of ``a`` and ``b`` (evenly sampled to ``cap`` faces each)."""
    a = a[np.linspace(0, len(a) - 1, min(cap, len(a))).astype(np.int64)]
    b = b[np.linspace(0, len(b) - 1, min(cap, len(b))).astype(np.int64)]
    return float(pairwise_distances(v[a], v[b], metric).mean())


def suggest_merges(faces: FaceRows, labels: np.ndarray, threshold: float, neighbours: int = 5,
                   limit: int = 500) -> list[dict[str, Any]]:
    """``[{"a", "b", "distance"}]``: cluster pairs whose average face distance is below ``threshold``,
    closest first (at most ``limit``); two clusters holding faces of one photo are never suggested."""
    from .knn import knn

    v, metric = as_vectors(faces.embeddings, faces.embeddings.metric)
    groups = _groups(labels)
    ids = sorted(groups)
    if len(ids) < 2:
        return []
    centres = np.stack([v[groups[c]].mean(0) for c in ids])
    near, _ = knn(centres, neighbours)
    photos = {c: set(faces.photo_id[groups[c]].tolist()) for c in ids}
    seen: set[tuple[int, int]] = set()
    out = []
    for i, row in enumerate(near):
        for j in row[row >= 0]:
            a, b = sorted((ids[i], ids[int(j)]))
            if (a, b) in seen or photos[a] & photos[b]:
                continue
            seen.add((a, b))
            d = _linkage(v, metric, groups[a], groups[b])
            if d < threshold:
                out.append({"a": a, "b": b, "distance": round(d, 4)})
    return sorted(out, key=lambda s: (s["distance"], s["a"], s["b"]))[:limit]


def close_to(faces: FaceRows, labels: np.ndarray, cluster_id: int, threshold: float) -> dict[str, Any]:
    """What may also be cluster ``cluster_id``'s person: ``{"faces": [face ids], "clusters": [ids]}``.

    Unclustered faces held to it as firmly as a new face must be to join it
    (:func:`~faceprint.collections.incremental.join_new`'s cohesion rule), and clusters whose
    average distance to it is below ``threshold`` (as the average-linkage cut allows within
    one cluster); nearest first.

    Raises:
        UnknownClusterError: the cluster has no faces.
    """
    v, metric = as_vectors(faces.embeddings, faces.embeddings.metric)
    rows = np.flatnonzero(labels == cluster_id)
    if len(rows) == 0:
        raise UnknownClusterError(f"cluster {cluster_id} has no faces; run `faceprint cluster` first")
    mine = set(faces.photo_id[rows].tolist())
    loose = np.flatnonzero((labels < 0) & ~np.isin(faces.photo_id, list(mine)))
    bound = min(threshold, cohesion(v, metric, rows)) if len(rows) > 1 else threshold
    found = []
    for s in range(0, len(loose), 2048):
        part = loose[s:s + 2048]
        d = pairwise_distances(v[part], v[rows], metric)
        sup, close = _support(d, max(1, min(3, len(rows) - 1))), (d <= bound).sum(1)
        found += [(float(x), int(faces.face_id[r])) for r, x, c in zip(part, sup, close)
                  if x <= bound and c >= min(2, len(rows))]
    fragments = []
    for c, other in _groups(labels).items():
        if c != cluster_id and not mine & set(faces.photo_id[other].tolist()):
            d = _linkage(v, metric, rows, other)
            if d < threshold:
                fragments.append((d, c))
    return {"faces": [f for _, f in sorted(found)], "clusters": [c for _, c in sorted(fragments)]}


def _refresh_state(conn: sqlite3.Connection) -> None:
    """The stored clustering still holds after a user decision: record the new corrections in it."""
    from .assign import links_digest
    from .store import get_state, read_links, set_state

    state = get_state(conn)
    if state is not None:
        state["links"] = links_digest(list(read_links(conn)))
        with transaction(conn):
            set_state(conn, state)


def merge_clusters(conn: sqlite3.Connection, target: int, others: list[int]) -> dict[str, Any]:
    """Move every face of ``others`` into cluster ``target`` (kept as must-links for later runs).

    A name carries over when only one side has one. Returns ``{"cluster", "name", "moved"}``.

    Raises:
        UnknownClusterError: a cluster id does not exist or has no faces.
        CollectionError: two of the clusters carry different names, or they share a photo.
    """
    faces = read_faces(conn)
    names = cluster_names(conn)
    groups = _groups(np.where(faces.clustered, faces.cluster_id, -1))
    ids = [target] + [o for o in others if o != target]
    for c in ids:
        if c not in groups:
            raise UnknownClusterError(f"no cluster with id {c} (or it has no faces); use an id from "
                                      f"`faceprint cluster --json`")
    named = {names[c] for c in ids if names.get(c)}
    if len(named) > 1:
        raise CollectionError(f"clusters {ids} carry different names {sorted(named)}; rename one first")
    photos = [set(faces.photo_id[groups[c]].tolist()) for c in ids]
    if len(set().union(*photos)) < sum(len(p) for p in photos):
        raise CollectionError(f"clusters {ids} hold two faces of one photo: they are not one person")
    anchor = int(faces.face_id[groups[target][0]])
    moved = [int(faces.face_id[r]) for c in ids[1:] for r in groups[c]]
    add_links(conn, [(anchor, f) for f in moved], "must")
    name = named.pop() if named else None
    with transaction(conn):
        conn.executemany("UPDATE faces SET cluster_id = ? WHERE id = ?", [(target, f) for f in moved])
        if name is not None:
            conn.execute("UPDATE clusters SET name = ? WHERE id = ?", (name, target))
        conn.executemany("DELETE FROM clusters WHERE id = ?", [(c,) for c in ids[1:]])
    _refresh_state(conn)
    return {"cluster": target, "name": name, "moved": len(moved)}


def adopt_faces(conn: sqlite3.Connection, cluster_id: int, face_ids: list[int]) -> int:
    """Put unclustered faces ``face_ids`` into cluster ``cluster_id`` (as must-links); returns how many.

    Raises:
        UnknownClusterError: the cluster has no faces.
        CollectionError: a face is unknown or already in a cluster.
    """
    row = conn.execute("SELECT min(id) FROM faces WHERE cluster_id = ?", (cluster_id,)).fetchone()
    if row is None or row[0] is None:
        raise UnknownClusterError(f"cluster {cluster_id} has no faces")
    for f in face_ids:
        got = conn.execute("SELECT cluster_id FROM faces WHERE id = ?", (f,)).fetchone()
        if got is None or got[0] is not None:
            raise CollectionError(f"face {f} is not an unclustered face of the index")
    add_links(conn, [(int(row[0]), f) for f in face_ids], "must")
    with transaction(conn):
        conn.executemany("UPDATE faces SET cluster_id = ?, clustered = 1 WHERE id = ?",
                         [(cluster_id, f) for f in face_ids])
    _refresh_state(conn)
    return len(face_ids)


def merge_threshold(faces: FaceRows) -> float:
    """Suggestions use the model's calibrated best-accuracy threshold (its default when uncalibrated)."""
    from .assign import spec_for
    from .clustering import default_threshold

    spec = spec_for(faces.embeddings.model_id)
    return default_threshold(spec, "hdbscan") if spec is not None else 0.6


__all__ = ["adopt_faces", "close_to", "merge_clusters", "merge_threshold", "suggest_merges"]
