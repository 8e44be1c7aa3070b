"""The photo index's tables in the shared SQLite file (component ``"collections"``).

Opened with :mod:`faceprint.sqlitedb` (the shared-database convention: WAL, busy timeout,
foreign keys, this component's version in ``schema_versions``). Tables owned here:

- ``photos``: one row per indexed file (``path`` absolute, ``size``, ``mtime_ns``, ``sha256``,
  ``width``, ``height``, ``error`` when the file could not be read);
- ``faces``: one row per detected face: ``photo_id``, box ``x1 y1 x2 y2`` (pixels), detector
  ``score``, ``model_id``, ``metric``, ``embedding`` (float32 bytes), ``cluster_id`` (NULL =
  noise or not clustered yet), ``clustered`` (0 = new since the last clustering) and
  ``sample_id`` (the gallery sample it was enrolled as, once its cluster was named);
- ``clusters``: ``id``, ``name`` (NULL until a person names it);
- ``face_links``: user corrections, ``kind`` ``"must"`` or ``"cannot"`` between two faces
  (``face_a < face_b``);
- ``cluster_state``: the algorithm and parameters of the last clustering (for incremental joins).

A photo's faces are written in the same transaction as its row, so an interrupted run leaves
only whole photos behind and the next run resumes with the rest.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import CollectionError
from ..sqlitedb import transaction
from ..types import Embeddings

COMPONENT = "collections"

MIGRATIONS: list[str] = [
    """
    CREATE TABLE photos (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        width INTEGER,
        height INTEGER,
        error TEXT
    );
    CREATE TABLE clusters (
        id INTEGER PRIMARY KEY,
        name TEXT
    );
    CREATE TABLE faces (
        id INTEGER PRIMARY KEY,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
        score REAL NOT NULL,
        model_id TEXT NOT NULL,
        metric TEXT NOT NULL,
        embedding BLOB NOT NULL,
        cluster_id INTEGER REFERENCES clusters(id) ON DELETE SET NULL,
        clustered INTEGER NOT NULL DEFAULT 0,
        sample_id INTEGER
    );
    CREATE INDEX faces_photo ON faces(photo_id);
    CREATE INDEX faces_cluster ON faces(cluster_id);
    CREATE TABLE face_links (
        face_a INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
        face_b INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('must', 'cannot')),
        PRIMARY KEY (face_a, face_b),
        CHECK (face_a < face_b)
    );
    CREATE TABLE cluster_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
]


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) the shared database and migrate this component's tables.

    Raises:
        GalleryError: the file is not an SQLite database or its schema is newer than this code.
        ConfigError: ``path`` is a server or milvus-lite URI (the index lives in SQLite only).
    """
    from ..dburi import sqlite_path
    from ..sqlitedb import connect as open_db
    from ..sqlitedb import migrate

    conn = open_db(sqlite_path(path, "the photo index"))
    migrate(conn, COMPONENT, MIGRATIONS)
    return conn


@dataclass(frozen=True)
class FaceRows:
    """Faces read back from the index, row for row.

    Attributes:
        face_id: ``(N,)`` int64 ids.
        photo: the source photo path of each face.
        xyxy: ``(N, 4)`` float32 boxes in pixels.
        embeddings: ``(N, D)`` embeddings of one model.
        photo_id: ``(N,)`` int64 (faces of one photo share it: the same-photo constraint).
        cluster_id: ``(N,)`` int64, ``-1`` for noise or not clustered.
        clustered: ``(N,)`` bool, False for faces added since the last clustering.
    """

    face_id: np.ndarray
    photo: list[str]
    xyxy: np.ndarray
    embeddings: Embeddings
    photo_id: np.ndarray
    cluster_id: np.ndarray
    clustered: np.ndarray

    def __len__(self) -> int:
        return len(self.face_id)

    def record(self, i: int) -> dict[str, Any]:
        """The JSON record of face ``i``: ``face_id``, ``photo``, ``box``."""
        return {"face_id": int(self.face_id[i]), "photo": self.photo[i],
                "box": [round(float(v), 2) for v in self.xyxy[i]]}


def read_faces(conn: sqlite3.Connection) -> FaceRows:
    """Every face of the index, ordered by id.

    Raises:
        CollectionError: the index holds faces of more than one model.
    """
    rows = conn.execute(
        "SELECT f.id, p.path, f.x1, f.y1, f.x2, f.y2, f.embedding, f.photo_id, f.cluster_id, f.clustered, "
        "f.model_id, f.metric FROM faces f JOIN photos p ON p.id = f.photo_id ORDER BY f.id").fetchall()
    models = {(r[10], r[11]) for r in rows}
    if len(models) > 1:
        raise CollectionError(f"the index mixes faces of several models {sorted(models)}; re-index with one model")
    model_id, metric = models.pop() if models else ("none", "euclidean")
    if not rows:
        return FaceRows(np.zeros(0, np.int64), [], np.zeros((0, 4), np.float32),
                        Embeddings(np.zeros((0, 1), np.float32), model_id, metric), np.zeros(0, np.int64),
                        np.zeros(0, np.int64), np.zeros(0, bool))
    cols = list(zip(*rows))
    blobs = cols[6]
    if len(set(map(len, blobs))) > 1:
        raise CollectionError("the index holds embeddings of different lengths; re-index with one model")
    # one join and one writable copy instead of an array per face
    vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(rows), -1).copy()
    return FaceRows(
        face_id=np.array(cols[0], dtype=np.int64),
        photo=list(cols[1]),
        xyxy=np.array(cols[2:6], dtype=np.float32).T.reshape(-1, 4),
        embeddings=Embeddings(vectors, model_id, metric),
        photo_id=np.array(cols[7], dtype=np.int64),
        cluster_id=np.array([-1 if c is None else c for c in cols[8]], dtype=np.int64),
        clustered=np.array(cols[9], dtype=bool),
    )


def read_links(conn: sqlite3.Connection) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The user's corrections as ``(must_link_pairs, cannot_link_pairs)`` of face ids."""
    must, cannot = [], []
    for a, b, kind in conn.execute("SELECT face_a, face_b, kind FROM face_links ORDER BY face_a, face_b"):
        (must if kind == "must" else cannot).append((int(a), int(b)))
    return must, cannot


def add_links(conn: sqlite3.Connection, pairs: Iterable[tuple[int, int]], kind: str) -> int:
    """Store corrections between face ids (a later correction of a pair replaces an earlier one).

    Raises:
        CollectionError: a face id does not exist, or a pair links a face with itself.
    """
    count = 0
    with transaction(conn):
        for a, b in pairs:
            a, b = sorted((int(a), int(b)))
            if a == b:
                raise CollectionError(f"a {kind}-link needs two different faces, got {a} twice")
            for face in (a, b):
                if conn.execute("SELECT 1 FROM faces WHERE id = ?", (face,)).fetchone() is None:
                    raise CollectionError(f"no face with id {face} in the index")
            conn.execute("INSERT OR REPLACE INTO face_links VALUES (?, ?, ?)", (a, b, kind))
            count += 1
    return count


def get_state(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The parameters of the last clustering, or ``None`` before the first."""
    row = conn.execute("SELECT value FROM cluster_state WHERE key = 'last'").fetchone()
    return None if row is None else json.loads(row[0])


def set_state(conn: sqlite3.Connection, state: dict[str, Any]) -> None:
    conn.execute("INSERT OR REPLACE INTO cluster_state VALUES ('last', ?)", (json.dumps(state, sort_keys=True),))


def cluster_names(conn: sqlite3.Connection) -> dict[int, str | None]:
    """``{cluster id: name or None}`` of every stored cluster."""
    return {int(i): n for i, n in conn.execute("SELECT id, name FROM clusters")}


def set_cluster_name(conn: sqlite3.Connection, cluster_id: int, name: str) -> None:
    """Name a cluster.

    Raises:
        UnknownClusterError: no cluster has that id.
    """
    from ..errors import UnknownClusterError

    if conn.execute("SELECT 1 FROM clusters WHERE id = ?", (cluster_id,)).fetchone() is None:
        raise UnknownClusterError(f"no cluster with id {cluster_id}; run `faceprint cluster` and use an id "
                                  f"from its JSON")
    with transaction(conn):
        conn.execute("UPDATE clusters SET name = ? WHERE id = ?", (name, cluster_id))


def indexed_faces(db: str | Path, paths: Iterable[str | Path], model_id: str) -> dict[str, tuple[np.ndarray, ...]]:
    """Faces the photo index in ``db`` already holds for ``paths``: ``{path as given: (xyxy (N, 4),
    score (N,), vectors (N, D))}`` for each photo indexed unchanged (same size and mtime) with
    ``model_id``. Reads only; a database without a photo index gives ``{}``."""
    import os
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{Path(db).resolve()}?mode=ro", uri=True)
    except sqlite3.Error:
        return {}
    out: dict[str, tuple[np.ndarray, ...]] = {}
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'photos'").fetchone() is None:
            return {}
        for given in paths:
            path = Path(given).resolve()
            try:
                st = os.stat(path)
            except OSError:
                continue
            photo = conn.execute("SELECT id FROM photos WHERE path = ? AND size = ? AND mtime_ns = ? AND error IS NULL",
                                 (str(path), st.st_size, st.st_mtime_ns)).fetchone()
            if photo is None:
                continue
            rows = conn.execute("SELECT x1, y1, x2, y2, score, embedding, model_id FROM faces WHERE photo_id = ? "
                                "ORDER BY id", photo).fetchall()
            if any(r[6] != model_id for r in rows):
                continue
            out[str(given)] = (np.array([r[:4] for r in rows], np.float32).reshape(-1, 4),
                               np.array([r[4] for r in rows], np.float32),
                               np.stack([np.frombuffer(r[5], np.float32) for r in rows]) if rows else
                               np.zeros((0, 0), np.float32))
    finally:
        conn.close()
    return out


__all__ = ["COMPONENT", "FaceRows", "add_links", "indexed_faces", "cluster_names", "connect", "get_state", "read_faces",
           "read_links", "set_cluster_name", "set_state"]


def indexed_results(db: str, images: Iterable[str | Path], spec: Any) -> dict[str, tuple[Any, Any]]:
    """``{image: (Faces, Embeddings)}`` for the photos the photo index in the SQLite database
    ``db`` (a ``--db`` string) holds unchanged and embedded by ``spec``'s model, so that
    identification reuses them instead of detecting again; ``{}`` for a server database, a
    missing file or one without a photo index. Landmarks are not stored: they come back as zeros."""
    from ..dburi import parse_db
    from ..types import Embeddings, Faces

    target = parse_db(db)
    if target.kind != "sqlite" or target.path is None or not target.path.is_file():
        return {}
    out = {}
    for image, (xyxy, score, vectors) in indexed_faces(target.path, images, spec.model_id).items():
        faces = Faces(xyxy, score, np.zeros((len(xyxy), 5, 2), np.float32))
        out[image] = (faces, Embeddings(vectors.reshape(len(xyxy), -1), spec.model_id, spec.metric))
    return out
