"""The SQLite gallery: one file, WAL, all-or-nothing writes, an in-memory search index.

Tables (component ``"gallery"`` in ``schema_versions``): ``gallery_meta`` (model id, metric,
dim, storage dtype), ``people``, ``samples`` (one vector each, ``ON DELETE CASCADE`` from
people; ids never reused), ``crops`` (optional aligned chips as PNG) and ``cohort``
(non-enrolled faces for score normalisation, version 2).

Search runs on an in-memory index loaded on first use and kept in sync incrementally: when
this or another process changed the file (``PRAGMA data_version``), only the added and
removed sample ids are applied. Exact search (:class:`~faceprint.gallery.index.ExactIndex`)
is the default; with ``ann="on"``, or ``"auto"`` above ``ann_threshold`` samples, a usearch
HNSW index is used and persisted beside the file as ``<db>.usearch``. The graph holds int8
vectors by default and only proposes a shortlist (at least :data:`RESCORE_MIN`), which is
re-ranked with the stored vectors, so the returned neighbours and distances are those of
exact search whenever the graph found the true neighbour.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError, GalleryError, PersonExistsError, PersonNotFoundError
from ..sqlitedb import connect, migrate, transaction
from ..types import Embeddings
from . import codec
from .base import Gallery, check_sample_rows
from .index import ExactIndex
from .names import check_metadata, check_name, lookup_name, stored_metadata
from .results import Person

COMPONENT = "gallery"
#: An int8 HNSW search fetches at least this many candidates and re-ranks them exactly.
RESCORE_MIN = 16
#: ``ann_dtype="auto"`` keeps the int8 graph while no component exceeds int8's range (0.6 for
#: euclidean) by more than this factor: a rare clipped component only moves a vector in the
#: graph a little (re-ranking is exact), a model with larger components needs float32.
INT8_SLACK = 1.5
MIGRATIONS: list[str] = [
    """
    CREATE TABLE gallery_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE people (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL);
    CREATE TABLE samples (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        model_id TEXT NOT NULL,
        vector BLOB NOT NULL,
        scale REAL NOT NULL DEFAULT 1.0,
        source TEXT,
        photo_sha256 TEXT,
        created_at REAL NOT NULL);
    CREATE INDEX samples_person ON samples(person_id);
    CREATE INDEX samples_photo ON samples(photo_sha256);
    CREATE TABLE crops (
        sample_id INTEGER PRIMARY KEY REFERENCES samples(id) ON DELETE CASCADE,
        template TEXT NOT NULL,
        png BLOB NOT NULL)
    """,
    """
    CREATE TABLE cohort (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        model_id TEXT NOT NULL,
        vector BLOB NOT NULL,
        scale REAL NOT NULL DEFAULT 1.0)
    """,
]

#: ``ann="auto"`` switches to HNSW at this many samples.
ANN_THRESHOLD = 50_000
#: HNSW build and search widths (efConstruction, ef): with the int8 graph and re-ranking,
#: recall@1 0.992 at 1M dlib-shaped faces, search p50 1.7 ms (README, Search at scale).
ANN_EF_ADD = 256
ANN_EF = 320


class SqliteGallery(Gallery):
    """A :class:`~faceprint.gallery.base.Gallery` in one SQLite file (created when missing).

    Args:
        path: the database file (shared with other components' tables).
        model_id, metric: fix the gallery's model now (else the first ``add_faces`` does);
            a file made for another model raises ModelMismatchError.
        dtype: vector storage for a new gallery: ``"float32"``, ``"float16"`` or ``"int8"``.
        ann: ``"auto"`` (HNSW above ``ann_threshold`` samples), ``"on"`` or ``"off"`` (exact).
        ann_threshold: see ``ann``.
        ann_dtype: the HNSW graph's vectors: ``"auto"`` (int8, about 280 bytes per face in
            memory, unless a stored vector has a component far beyond int8's range, see
            :data:`INT8_SLACK`, then float32),
            ``"i8"`` or ``"f32"`` (about 660 bytes per face). An int8 graph proposes a shortlist
            that is re-ranked with the stored vectors, so results are those of exact search
            whenever the graph finds the true neighbour. int8 galleries always use int8.
        policy: default :class:`~faceprint.gallery.scoring.OpenSetPolicy` for :meth:`identify`.

    Raises:
        GalleryError: the file is not a SQLite database or has a newer schema.
        ModelMismatchError: ``model_id`` differs from the stored model.
    """

    def __init__(self, path: str | Path, *, model_id: str | None = None, metric: str | None = None,
                 dtype: str = "float32", ann: str = "auto", ann_threshold: int = ANN_THRESHOLD,
                 ann_dtype: str = "auto", policy: Any = None) -> None:
        if ann not in ("auto", "on", "off"):
            raise ConfigError(f"ann must be 'auto', 'on' or 'off', got {ann!r}")
        if ann_dtype not in ("auto", "i8", "f32"):
            raise ConfigError(f"ann_dtype must be 'auto', 'i8' or 'f32', got {ann_dtype!r}")
        self.path = Path(path)
        self.ann, self.ann_threshold, self.ann_dtype, self.policy = ann, int(ann_threshold), ann_dtype, policy
        self._lock = threading.RLock()
        self._conn = connect(self.path)
        try:
            migrate(self._conn, COMPONENT, MIGRATIONS)
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{self.path}: cannot set up gallery tables ({exc})") from exc
        meta = self._meta()
        self.dtype = meta.get("dtype") or codec.check_dtype(dtype)
        self.model_id, self.metric = meta.get("model_id"), meta.get("metric")
        self.dim = int(meta["dim"]) if "dim" in meta else None
        if model_id is not None:
            self._bind(Embeddings(np.zeros((0, self.dim or 1)), model_id, metric or self.metric or "euclidean"),
                       check_dim=False)
        self._index: Any = None
        self._owner_ids = np.zeros(0, np.int64)   # sorted sample ids in the index
        self._owner_pid = np.zeros(0, np.int64)   # their person ids
        self._names: dict[int, str] = {}
        self._cohort = ExactIndex(1)
        self._seen_version: int | None = None
        self._index_dirty = False
        self._seen_layout: str | None = None  # gallery_meta 'layout' at the last full sync
        self._ann_changed = False  # the ANN index differs from its saved file
        self._ann_f32 = ann_dtype == "f32"  # float32 graph (asked for, or vectors beyond int8's range)

    # ---- meta / model binding --------------------------------------------------------------
    def _meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM gallery_meta").fetchall())

    def _bind(self, emb: Embeddings, check_dim: bool = True) -> None:
        """Fix the model on first use; otherwise check ``emb`` against it."""
        if self.model_id is None:
            with self._lock, transaction(self._conn):
                meta = self._meta()
                if "model_id" not in meta:
                    rows = {"model_id": emb.model_id, "metric": emb.metric, "dtype": self.dtype}
                    if check_dim:
                        rows["dim"] = str(emb.dim)
                    self._conn.executemany("INSERT OR REPLACE INTO gallery_meta VALUES (?, ?)", rows.items())
                    meta.update(rows)
            self.model_id, self.metric = meta["model_id"], meta["metric"]
            self.dtype = meta.get("dtype", self.dtype)  # another process may have bound the file first
            self.dim = int(meta["dim"]) if "dim" in meta else None
        if self.dim is None and check_dim:
            with self._lock, transaction(self._conn):
                self._conn.execute("INSERT OR REPLACE INTO gallery_meta VALUES ('dim', ?)", (str(emb.dim),))
            self.dim = emb.dim
        if check_dim or emb.model_id != self.model_id or emb.metric != self.metric:
            self.check_model(emb)

    # ---- writes ----------------------------------------------------------------------------------
    def _person_id(self, name: str) -> int:
        row = self._conn.execute("SELECT id FROM people WHERE name = ?", (lookup_name(name),)).fetchone()
        if row is None:
            raise PersonNotFoundError(f"no person named {name!r} in {self.path}")
        return int(row[0])

    def _insert_person(self, name: str, metadata: dict[str, Any] | None) -> int:
        try:
            cur = self._conn.execute("INSERT INTO people (name, metadata, created_at) VALUES (?, ?, ?)",
                                     (check_name(name), json.dumps(check_metadata(metadata)), time.time()))
        except sqlite3.IntegrityError:
            raise PersonExistsError(f"a person named {name!r} already exists in {self.path}") from None
        return int(cur.lastrowid)

    def add_person(self, name: str, metadata: dict[str, Any] | None = None) -> None:
        name, metadata = check_name(name), check_metadata(metadata)
        with self._lock, transaction(self._conn):
            self._insert_person(name, metadata)

    def add_faces(self, name: str, embeddings: Embeddings, *, sources: Sequence[str | None] | None = None,
                  crops: np.ndarray | None = None, create: bool = True, hashes: Sequence[str | None] | None = None,
                  metadata: dict[str, Any] | None = None, template: str = "") -> list[int]:
        return self._add_faces(name, embeddings, sources=sources, crops=crops, create=create, hashes=hashes,
                               metadata=metadata, template=template)[0]

    def add_new_faces(self, name: str, embeddings: Embeddings, *, hashes: Sequence[str | None],
                      **kwargs: Any) -> tuple[list[int], dict[int, str]]:
        """:meth:`add_faces` for the rows whose photo hash no sample holds yet, checked inside the
        write transaction (so two enrollers of one photo store it once)."""
        return self._add_faces(name, embeddings, hashes=hashes, skip_known=True, **kwargs)

    def _add_faces(self, name: str, embeddings: Embeddings, *, sources: Sequence[str | None] | None = None,
                   crops: np.ndarray | None = None, create: bool = True, hashes: Sequence[str | None] | None = None,
                   metadata: dict[str, Any] | None = None, template: str = "",
                   skip_known: bool = False) -> tuple[list[int], dict[int, str]]:
        name, metadata = check_name(name), check_metadata(metadata)
        n = check_sample_rows(len(embeddings), sources, crops, hashes)
        self._bind(embeddings)
        blobs, scales = codec.encode(embeddings.vectors, self.dtype)
        pngs = [_png(c) for c in crops] if crops is not None else None
        now = time.time()
        with self._lock, transaction(self._conn):
            row = self._conn.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None and not create:
                raise PersonNotFoundError(f"no person named {name!r} in {self.path}")
            pid = int(row[0]) if row is not None else self._insert_person(name, metadata)
            ids, known = [], {}
            for i in range(n):
                if skip_known and hashes is not None and hashes[i] is not None:
                    owner = self._conn.execute("SELECT p.name FROM samples s JOIN people p ON p.id = s.person_id "
                                               "WHERE s.photo_sha256 = ? LIMIT 1", (hashes[i],)).fetchone()
                    if owner is not None:
                        known[i] = str(owner[0])
                        continue
                cur = self._conn.execute(
                    "INSERT INTO samples (person_id, model_id, vector, scale, source, photo_sha256, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (pid, self.model_id, blobs[i], float(scales[i]), None if sources is None else sources[i],
                     None if hashes is None else hashes[i], now))
                ids.append(int(cur.lastrowid))
                if pngs is not None:
                    self._conn.execute("INSERT INTO crops VALUES (?, ?, ?)", (ids[-1], template, pngs[i]))
        self._index_dirty = True
        return ids, known

    def rename(self, old: str, new: str) -> None:
        new = check_name(new)
        with self._lock, transaction(self._conn):
            pid = self._person_id(old)
            try:
                self._conn.execute("UPDATE people SET name = ? WHERE id = ?", (new, pid))
                self._bump_layout()
            except sqlite3.IntegrityError:
                raise PersonExistsError(f"cannot rename {old!r}: a person named {new!r} already exists") from None
        self._index_dirty = True

    def merge(self, src: str, dst: str) -> int:
        if lookup_name(src) == lookup_name(dst):
            raise ConfigError(f"cannot merge {src!r} into itself")
        with self._lock, transaction(self._conn):
            s, d = self._person_id(src), self._person_id(dst)
            moved = self._conn.execute("UPDATE samples SET person_id = ? WHERE person_id = ?", (d, s)).rowcount
            self._conn.execute("DELETE FROM people WHERE id = ?", (s,))
            self._bump_layout()
        self._index_dirty = True
        return int(moved)

    def remove(self, name: str) -> int:
        with self._lock, transaction(self._conn):
            pid = self._person_id(name)
            n = self._conn.execute("SELECT count(*) FROM samples WHERE person_id = ?", (pid,)).fetchone()[0]
            self._conn.execute("DELETE FROM people WHERE id = ?", (pid,))  # cascades to samples, crops
            self._bump_layout()
        self._index_dirty = True
        return int(n)

    def add_cohort(self, embeddings: Embeddings) -> int:
        """Store non-enrolled faces used to normalise scores (see :mod:`faceprint.gallery.scoring`)."""
        self._bind(embeddings)
        blobs, scales = codec.encode(embeddings.vectors, self.dtype)
        with self._lock, transaction(self._conn):
            self._conn.executemany("INSERT INTO cohort (model_id, vector, scale) VALUES (?, ?, ?)",
                                   [(self.model_id, b, float(c)) for b, c in zip(blobs, scales)])
            self._bump_layout()
        self._index_dirty = True
        return len(blobs)

    def clear_cohort(self) -> int:
        """Delete every cohort face; returns how many there were."""
        with self._lock, transaction(self._conn):
            n = self._conn.execute("DELETE FROM cohort").rowcount
            self._bump_layout()
        self._index_dirty = True
        return int(n)

    def remove_samples(self, sample_ids: Sequence[int]) -> int:
        """Delete individual samples (and their crops); returns how many existed."""
        with self._lock, transaction(self._conn):
            n = self._conn.executemany("DELETE FROM samples WHERE id = ?", [(int(i),) for i in sample_ids]).rowcount
            self._bump_layout()
        self._index_dirty = True
        return int(n)

    def _import_rows(self, people: list[dict[str, Any]], emb: Embeddings, names: list[str],
                     sources: list[str | None]) -> int:
        self._bind(emb) if len(emb) else None
        blobs, scales = codec.encode(emb.vectors, self.dtype)
        now = time.time()
        with self._lock, transaction(self._conn):
            pids = {p["name"]: self._insert_person(p["name"], p.get("metadata")) for p in people}
            for i, name in enumerate(names):
                self._conn.execute(
                    "INSERT INTO samples (person_id, model_id, vector, scale, source, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (pids[name], self.model_id, blobs[i], float(scales[i]), sources[i], now))
        self._index_dirty = True
        return len(names)

    # ---- reads ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM people").fetchone()[0])

    def sample_count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM samples").fetchone()[0])

    def people(self) -> list[Person]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT p.name, p.metadata, count(s.id) FROM people p LEFT JOIN samples s ON s.person_id = p.id "
                "GROUP BY p.id ORDER BY p.name").fetchall()
        return [Person(n, int(c), stored_metadata(m)) for n, m, c in rows]

    def person(self, name: str) -> Person:
        name = lookup_name(name)
        with self._lock:
            pid = self._person_id(name)
            meta = self._conn.execute("SELECT metadata FROM people WHERE id = ?", (pid,)).fetchone()[0]
            rows = self._conn.execute("SELECT source FROM samples WHERE person_id = ? ORDER BY id", (pid,)).fetchall()
        return Person(name, len(rows), stored_metadata(meta), [r[0] for r in rows if r[0]])

    def samples(self, name: str | None = None) -> tuple[Embeddings, list[str], list[int]]:
        sql = ("SELECT s.id, p.name, s.vector, s.scale FROM samples s JOIN people p ON p.id = s.person_id")
        with self._lock, self._snapshot():
            if self.dim is None:  # another process may have stored the first vectors since we opened
                self._bind_from_file()
            if name is None:
                rows = self._conn.execute(sql + " ORDER BY s.id").fetchall()
            else:
                pid = self._person_id(name)
                rows = self._conn.execute(sql + " WHERE s.person_id = ? ORDER BY s.id", (pid,)).fetchall()
        vectors = codec.decode([r[2] for r in rows], np.array([r[3] for r in rows], np.float32), self.dtype,
                               self.dim or 0)
        return (Embeddings(vectors.reshape(len(rows), self.dim or 0), self.model_id or "", self.metric or "euclidean"),
                [r[1] for r in rows], [int(r[0]) for r in rows])

    @contextlib.contextmanager
    def _snapshot(self) -> Any:
        """A read transaction: the statements inside see one state of the file."""
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            self._conn.execute("COMMIT")

    def _sources_for(self, sample_ids: Sequence[int]) -> list[str]:
        with self._lock:
            src = dict(self._conn.execute("SELECT id, source FROM samples").fetchall())
        return [src.get(i) or "" for i in sample_ids]

    def find_photo(self, sha256: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT p.name FROM samples s JOIN people p ON p.id = s.person_id "
                                     "WHERE s.photo_sha256 = ? LIMIT 1", (sha256,)).fetchone()
        return None if row is None else str(row[0])

    def crops(self, name: str) -> tuple[np.ndarray, list[int]]:
        """A person's stored aligned crops ``(N, H, W, 3)`` uint8 and their sample ids."""
        from ..image import load_image

        with self._lock:
            pid = self._person_id(name)
            rows = self._conn.execute("SELECT c.sample_id, c.png FROM crops c JOIN samples s ON s.id = c.sample_id "
                                      "WHERE s.person_id = ? ORDER BY c.sample_id", (pid,)).fetchall()
        if not rows:
            return np.zeros((0, 0, 0, 3), np.uint8), []
        return np.stack([load_image(bytes(r[1])) for r in rows]), [int(r[0]) for r in rows]

    # ---- search index ---------------------------------------------------------------------------------------
    @property
    def ann_path(self) -> Path:
        return self.path.with_name(self.path.name + ".usearch")

    def _want_ann(self, n_samples: int) -> bool:
        return self.ann == "on" or (self.ann == "auto" and n_samples >= self.ann_threshold)

    def _bump_layout(self) -> None:
        """Count a write that is not a pure append (a rename, merge, removal or cohort change):
        other processes' indexes then reload instead of applying only the new samples."""
        self._conn.execute("INSERT INTO gallery_meta VALUES ('layout', '1') ON CONFLICT(key) DO UPDATE "
                           "SET value = CAST(value AS INTEGER) + 1")

    def _layout(self) -> str:
        row = self._conn.execute("SELECT value FROM gallery_meta WHERE key = 'layout'").fetchone()
        return row[0] if row else "0"

    def _sync(self) -> None:
        """Bring the in-memory index up to date with the file (incrementally)."""
        version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        if self._index is not None and not self._index_dirty and version == self._seen_version:
            return
        if self.dim is None:
            self._bind_from_file()
        layout = self._layout()
        if (self._index is not None and self._index.dim == (self.dim or 1) and layout == self._seen_layout
                and self._append_only(version)):
            return
        rows = np.array(self._conn.execute("SELECT id, person_id FROM samples ORDER BY id").fetchall(),
                        np.int64).reshape(-1, 2)
        self._names = dict(self._conn.execute("SELECT id, name FROM people").fetchall())
        want_ann = self._want_ann(len(rows))
        # a new index also when the dimension became known (people were created before any face)
        if (self._index is None or self._index.dim != (self.dim or 1)
                or want_ann != self._is_ann()):
            self._index = self._new_index(want_ann)
        have = np.sort(self._index.ids())
        to_add = np.setdiff1d(rows[:, 0], have, assume_unique=True)
        to_remove = np.setdiff1d(have, rows[:, 0], assume_unique=True)
        if len(to_remove):
            self._index.remove(to_remove)
        for ids, vecs in self._stored_chunks(to_add):
            if self._needs_f32(vecs):
                self._ann_f32, self._index = True, None  # another model's scale: a float32 graph
                return self._sync()
            self._index.add(ids, vecs)
        self._owner_ids, self._owner_pid = rows[:, 0].copy(), rows[:, 1].copy()
        got = self._conn.execute("SELECT id, vector, scale FROM cohort").fetchall()
        self._cohort = ExactIndex(self.dim or 1, self.metric or "euclidean")
        self._cohort.add(np.array([g[0] for g in got], np.int64),
                         codec.decode([g[1] for g in got], np.array([g[2] for g in got], np.float32), self.dtype,
                                      self.dim or 1))
        self._seen_version, self._index_dirty, self._seen_layout = version, False, layout
        self._ann_changed = self._ann_changed or bool(len(to_add) or len(to_remove))

    def _append_only(self, version: int) -> bool:
        """Apply only the samples and people added since the last sync, when nothing else changed
        (the layout counter is unchanged and the sample count adds up); False when a full reload
        is needed. At 1M faces this is milliseconds where a reload reads every row (~0.85 s)."""
        last_sample = int(self._owner_ids[-1]) if len(self._owner_ids) else 0
        new = np.array(self._conn.execute("SELECT id, person_id FROM samples WHERE id > ? ORDER BY id",
                                          (last_sample,)).fetchall(), np.int64).reshape(-1, 2)
        total = int(self._conn.execute("SELECT count(*) FROM samples").fetchone()[0])
        if total != len(self._owner_ids) + len(new) or self._want_ann(total) != self._is_ann():
            return False
        last_person = max(self._names, default=0)
        self._names.update(self._conn.execute("SELECT id, name FROM people WHERE id > ?", (last_person,)).fetchall())
        for ids, vecs in self._stored_chunks(new[:, 0]):
            if self._needs_f32(vecs):
                return False  # the full reload switches to a float32 graph
            self._index.add(ids, vecs)
        self._owner_ids = np.concatenate([self._owner_ids, new[:, 0]])
        self._owner_pid = np.concatenate([self._owner_pid, new[:, 1]])
        self._seen_version, self._index_dirty = version, False
        self._ann_changed = self._ann_changed or bool(len(new))
        return True

    def _is_ann(self) -> bool:
        """Whether the in-memory index is the usearch HNSW graph (not exact search, not unloaded)."""
        return type(self._index).__name__ == "UsearchIndex"

    def _needs_f32(self, vecs: np.ndarray) -> bool:
        """Vectors an automatic int8 graph cannot hold (another model's scale): a float32 graph is due."""
        return self.ann_dtype == "auto" and self.dtype != "int8" and not self._index.fits(vecs, INT8_SLACK)

    def _stored_chunks(self, ids: np.ndarray) -> Any:
        """``(ids, decoded vectors)`` of stored samples ``ids``, 50,000 at a time (rows come back
        in the database's order)."""
        for start in range(0, len(ids), 50_000):
            chunk = [int(i) for i in ids[start:start + 50_000]]
            got = self._conn.execute(f"SELECT id, vector, scale FROM samples WHERE id IN ({','.join('?' * len(chunk))})",
                                     chunk).fetchall()
            yield (np.array([g[0] for g in got], np.int64),
                   codec.decode([g[1] for g in got], np.array([g[2] for g in got], np.float32), self.dtype,
                                self.dim or 1))

    def _bind_from_file(self) -> None:
        meta = self._meta()
        self.model_id, self.metric = meta.get("model_id"), meta.get("metric")
        self.dim = int(meta["dim"]) if "dim" in meta else None

    def _new_index(self, ann: bool) -> Any:
        dim = self.dim or 1
        if not ann:
            return ExactIndex(dim, self.metric or "euclidean")
        from .index import UsearchIndex, int8_scale

        int8 = self.dtype == "int8" or not self._ann_f32

        def fresh() -> Any:
            return UsearchIndex(dim, self.metric or "euclidean", dtype="i8" if int8 else "f32",
                                expansion_add=ANN_EF_ADD, expansion_search=ANN_EF,
                                int8_scale=int8_scale(self.metric or "euclidean"))

        idx = fresh()
        if self.ann_path.is_file():
            try:
                idx.load(self.ann_path)
            except Exception:  # a torn or foreign file: rebuild from the database
                idx = fresh()
            if idx.dtype == "i8" and not int8:  # a float32 graph is wanted (asked for, or int8 overflowed)
                idx = fresh()
        return idx

    def save_index(self) -> None:
        """Persist the ANN index beside the file (atomically); a no-op for exact search."""
        with self._lock:
            if not self._is_ann():
                return
            tmp = self.ann_path.with_name(self.ann_path.name + ".tmp")
            self._index.save(tmp)
            os.replace(tmp, self.ann_path)
            self._ann_changed = False

    def _neighbours(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        with self._lock:
            self._sync()
            if self._rescored():
                dist, ids = self._rescore(vectors, self._index.search(vectors, max(k, RESCORE_MIN))[1], k)
            else:
                dist, ids = self._index.search(vectors, k)
            pos = np.searchsorted(self._owner_ids, ids.clip(0))
            pos = pos.clip(0, max(len(self._owner_ids) - 1, 0))
            names = [[self._names.get(int(self._owner_pid[p]), "") if i >= 0 and len(self._owner_ids) else ""
                      for i, p in zip(ri, rp)] for ri, rp in zip(ids, pos)]
        return dist, ids, names

    def _rescored(self) -> bool:
        """Whether searches re-rank the index's shortlist with the stored vectors (int8 HNSW)."""
        return self._is_ann() and self._index.dtype == "i8"

    def _rescore(self, vectors: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Distances from ``vectors`` to the stored vectors of their shortlists ``ids`` (-1 =
        none), best ``k`` first: the int8 graph only proposes candidates, so results and
        distances equal exact search over the stored vectors whenever the true neighbour is in
        the shortlist."""
        from .index import rerank

        wanted = np.unique(ids[ids >= 0])
        stored = np.zeros((len(wanted), self.dim or 1), np.float32)
        for got, vecs in self._stored_chunks(wanted):
            stored[np.searchsorted(wanted, got)] = vecs
        return rerank(vectors, ids, wanted, stored, k, self.metric or "euclidean")

    def _cohort_neighbours(self, vectors: np.ndarray, k: int) -> np.ndarray:
        with self._lock:
            self._sync()
            if len(self._cohort) == 0:
                return np.zeros((len(vectors), 0), np.float32)
            return self._cohort.search(vectors, min(k, len(self._cohort)))[0]

    def close(self) -> None:
        with self._lock:
            if self._conn is None:
                return
            if self._ann_changed:
                self.save_index()
            self._conn.close()
            self._conn = None  # type: ignore[assignment]


def _png(chip: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(chip, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
