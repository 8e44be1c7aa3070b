"""Naming a cluster enrolls its faces into the gallery kept in the same database file."""

from __future__ import annotations

import sqlite3
from typing import Any

import numpy as np

from ..sqlitedb import transaction
from ..types import Embeddings
from .store import read_faces, set_cluster_name


def name_cluster(conn: sqlite3.Connection, gallery: Any, cluster_id: int, name: str) -> dict[str, Any]:
    """Name cluster ``cluster_id`` and add its faces not enrolled yet as samples of ``name``.

    Each sample's source is ``"<photo>#face<face_id>"``. Naming again (after new faces joined)
    enrolls only the new faces. Returns ``{"cluster", "name", "enrolled", "already"}``.

    Raises:
        UnknownClusterError: no such cluster.
        ConfigError: empty name.
        ModelMismatchError: the gallery holds another model's vectors.
    """
    from ..errors import ConfigError

    if not name.strip():
        raise ConfigError("a person's name must not be empty")
    set_cluster_name(conn, cluster_id, name)
    faces = read_faces(conn)
    rows = np.flatnonzero(faces.cluster_id == cluster_id)
    done = {int(f) for (f,) in conn.execute(
        "SELECT id FROM faces WHERE cluster_id = ? AND sample_id IS NOT NULL", (cluster_id,))}
    todo = [int(r) for r in rows if int(faces.face_id[r]) not in done]
    enrolled: list[int] = []
    if todo:
        emb = Embeddings(faces.embeddings.vectors[todo], faces.embeddings.model_id, faces.embeddings.metric)
        sources = [f"{faces.photo[r]}#face{int(faces.face_id[r])}" for r in todo]
        enrolled = gallery.add_faces(name, emb, sources=sources)
        with transaction(conn):
            conn.executemany("UPDATE faces SET sample_id = ? WHERE id = ?",
                             [(int(s), int(faces.face_id[r])) for s, r in zip(enrolled, todo)])
    return {"cluster": cluster_id, "name": name, "enrolled": len(enrolled), "already": len(done)}


def gallery_decision(db: str) -> Any:
    """The open-set decision of the gallery in ``db`` as ``identify(vectors) -> [name or None]``
    (clustering lets a face join a named cluster only when it agrees), or ``None`` when the
    database holds no enrolled person."""
    from ..gallery import open_gallery
    gallery = open_gallery(str(db))
    if not gallery.people():
        return None

    def identify(vectors: Any) -> list[Any]:
        emb = Embeddings(vectors.astype("float32"), gallery.model_id, gallery.metric)
        return [hit.name for hit in gallery.identify(emb)]

    return identify


__all__ = ["gallery_decision", "name_cluster"]
