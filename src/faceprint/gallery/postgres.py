"""The PostgreSQL gallery: the :class:`~faceprint.gallery.base.Gallery` on a shared server, with
vectors in pgvector ``vector(d)`` columns and pgvector's HNSW index.

Tables (component ``"gallery"`` in ``faceprint_schema``, see :mod:`faceprint.pgdb`):
``gallery_meta`` (model id, metric, dim), ``people``, ``samples`` (``ON DELETE CASCADE`` from
people), ``crops`` (aligned chips as PNG, cascading from samples) and ``cohort``. The vector
columns get their dimension, and ``samples`` its HNSW index (``vector_l2_ops`` or
``vector_cosine_ops``), when the first vectors fix the model.

Every call is one transaction, so an enrollment is all-or-nothing, and no rows are cached in
the process: several processes (service replicas) on one database see each other's writes at
once. Version 2 of the tables adds the change counter (``gallery_meta.version``, raised first
by every write that adds or deletes samples), the removal log ``sample_removals`` and the
gallery's ``uuid``: what an in-process search graph (:mod:`faceprint.gallery.pglocal`,
``local_index``) follows to stay in step, so a large gallery is searched in a few ms in each
process while the server keeps the rows. Person creation is ``INSERT ... ON CONFLICT``, so concurrent writers enrolling the same
new name share one person. What a search caches is only its width: the server's row estimate
behind :func:`auto_ef_search` is re-read every :data:`ESTIMATE_TTL_S` seconds, and
``hnsw.ef_search`` is set on the session when it changes, so one query is one statement.

An HNSW search reads a few thousand graph pages; when the index is larger than the server's
``shared_buffers`` most of them come from the OS cache through the buffer manager, several
times slower (docs/shared_galleries.md). Opening a gallery logs a warning then
(:meth:`PostgresGallery.index_memory`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from typing import Any, Iterator, Sequence

import numpy as np

from ..dburi import parse_db
from ..errors import ConfigError, GalleryError, PersonExistsError, PersonNotFoundError
from ..pgdb import connect, lock_id, migrate
from ..types import Embeddings
from .base import Gallery, check_sample_rows
from .names import check_name
from .results import Person
from .sqlite import _png

COMPONENT = "gallery"
log = logging.getLogger(__name__)
#: Seconds a search reuses the server's row estimate (:func:`auto_ef_search`) before re-reading it.
ESTIMATE_TTL_S = 60.0
#: ``local_index="auto"`` searches an in-process graph (:mod:`faceprint.gallery.pglocal`) from
#: this many samples (the largest sample id, which never shrinks), the SQLite gallery's ANN bound.
LOCAL_INDEX_THRESHOLD = 50_000
#: HNSW graph degree and build width.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
#: The automatic search width (queries take the ``ef_search`` nearest graph candidates) grows
#: with the gallery: :data:`EF_SEARCH` up to :data:`EF_SMALL_N` samples, :data:`EF_SEARCH_LARGE`
#: from :data:`EF_LARGE_N`, log-linear between. Anchors from the tuning half of
#: benchmarks/bench_postgres.py: recall@1 0.995 at ef 100 on 100k dlib-shaped faces; at 1M,
#: ef 250 reached 0.96 and ef 400 0.995 (docs/shared_galleries.md).
EF_SEARCH, EF_SMALL_N = 100, 100_000
EF_SEARCH_LARGE, EF_LARGE_N = 400, 1_000_000


def auto_ef_search(n_samples: float) -> int:
    """The search width for a gallery of about ``n_samples`` faces (see :data:`EF_SEARCH`)."""
    if n_samples <= EF_SMALL_N:
        return EF_SEARCH
    if n_samples >= EF_LARGE_N:
        return EF_SEARCH_LARGE
    t = np.log(n_samples / EF_SMALL_N) / np.log(EF_LARGE_N / EF_SMALL_N)
    return int(round(EF_SEARCH * (EF_SEARCH_LARGE / EF_SEARCH) ** t))
MIGRATIONS: list[str] = [
    """
    CREATE TABLE gallery_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE people (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        metadata JSONB NOT NULL DEFAULT '{}',
        created_at DOUBLE PRECISION NOT NULL);
    CREATE TABLE samples (
        id BIGSERIAL PRIMARY KEY,
        person_id BIGINT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        model_id TEXT NOT NULL,
        vector vector NOT NULL,
        source TEXT,
        photo_sha256 TEXT,
        created_at DOUBLE PRECISION NOT NULL);
    CREATE INDEX samples_person ON samples(person_id);
    CREATE INDEX samples_photo ON samples(photo_sha256);
    CREATE TABLE crops (
        sample_id BIGINT PRIMARY KEY REFERENCES samples(id) ON DELETE CASCADE,
        template TEXT NOT NULL,
        png BYTEA NOT NULL);
    CREATE TABLE cohort (
        id BIGSERIAL PRIMARY KEY,
        model_id TEXT NOT NULL,
        vector vector NOT NULL);
    """,
    # version 2: the change counter and removal log that in-process search graphs follow
    # (faceprint.gallery.pglocal), and the gallery's uuid that names their saved copies
    """
    INSERT INTO gallery_meta VALUES ('version', '0') ON CONFLICT (key) DO NOTHING;
    INSERT INTO gallery_meta VALUES ('uuid', gen_random_uuid()::text) ON CONFLICT (key) DO NOTHING;
    CREATE TABLE sample_removals (version BIGINT NOT NULL, sample_id BIGINT NOT NULL);
    CREATE INDEX sample_removals_version ON sample_removals(version);
    """,
]


class PostgresGallery(Gallery):
    """A gallery in a PostgreSQL database with pgvector.

    Args:
        uri: ``postgresql://user:pass@host:port/db`` (libpq URI; ``?host=/socket/dir`` works).
        model_id, metric: fix the gallery's model now (else the first ``add_faces`` does).
        exact: search every vector (a sequential scan) instead of the HNSW index.
        local_index: where searches run. An in-process usearch graph of the gallery's vectors
            (:mod:`faceprint.gallery.pglocal`, kept in step with the server before every search)
            answers in a few ms at 1M faces where pgvector's HNSW walk takes tens, but building
            it from the server's rows takes minutes at that size, so it is saved in the cache
            folder. ``"auto"`` (the default): from ``local_threshold`` samples, with usearch
            installed, the graph when a saved one exists (a one-off command never pays for a
            build), else the server. ``"build"`` (what ``faceprint serve`` uses): as ``"auto"``,
            and with no saved graph one is built in a background thread while searches go to
            the server, then used. ``"on"``: always the graph (built on the first search if
            needed). ``"off"``: always the server. Ignored with ``exact``.
        local_threshold: see ``local_index``.
        ef_search: HNSW search width (more = better recall, slower); ``None`` = grows with the
            gallery (:func:`auto_ef_search` of the server's row estimate).
        policy: default :class:`~faceprint.gallery.scoring.OpenSetPolicy` for :meth:`identify`.

    Raises:
        GalleryError: the server is unreachable, pgvector is missing, or the schema is newer.
        ModelMismatchError: ``model_id`` differs from the stored model.
    """

    def __init__(self, uri: str, *, model_id: str | None = None, metric: str | None = None, exact: bool = False,
                 ef_search: int | None = None, policy: Any = None, local_index: str = "auto",
                 local_threshold: int = LOCAL_INDEX_THRESHOLD) -> None:
        if ef_search is not None and int(ef_search) < 1:
            raise ConfigError(f"ef_search must be >= 1, got {ef_search}")
        if local_index not in ("auto", "build", "on", "off"):
            raise ConfigError(f"local_index must be 'auto', 'build', 'on' or 'off', got {local_index!r}")
        self.local_index, self.local_threshold = local_index, int(local_threshold)
        self._local: Any = None  # the in-process graph (pglocal.LocalIndex) once used
        self._builder: threading.Thread | None = None  # the background build of local_index="build"
        self._local_checked: float | None = None  # monotonic time "auto" last looked at the size
        self._uri, self.uri = uri, parse_db(uri).display()
        self.exact, self.policy = bool(exact), policy
        self.ef_search = None if ef_search is None else int(ef_search)
        self._lock = threading.RLock()
        self._estimate: tuple[float, float] | None = None  # (monotonic time read, row estimate)
        self._session_ef: int | None = None  # hnsw.ef_search as set on the current connection
        self._conn: Any = connect(uri)
        try:
            migrate(self._conn, COMPONENT, MIGRATIONS)
            self._load_meta()
            if model_id is not None:
                self._bind(Embeddings(np.zeros((0, self.dim or 1)), model_id, metric or self.metric or "euclidean"),
                           check_dim=False)
            self._warn_if_index_spills()
        except BaseException:
            self._conn.close()
            raise

    # ---- plumbing ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _session(self, transaction: bool = True) -> Iterator[Any]:
        """The connection (in one transaction unless ``transaction`` is false: each statement then
        commits alone); database errors become GalleryError (rolled back)."""
        import psycopg

        with self._lock:
            if self._conn is None:
                raise GalleryError(f"{self.uri}: the gallery is closed")
            if self._conn.broken:  # the server restarted or dropped us: the next call reconnects
                self._conn, self._session_ef = connect(self._uri), None
            try:
                with self._conn.transaction() if transaction else contextlib.nullcontext():
                    yield self._conn
            except psycopg.Error as exc:
                raise GalleryError(f"{self.uri}: database call failed and was rolled back "
                                   f"({str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r})") from exc

    def _tx(self) -> contextlib.AbstractContextManager[Any]:
        """One transaction on the connection (see :meth:`_session`)."""
        return self._session()

    def _load_meta(self) -> None:
        with self._tx() as c:
            meta = dict(c.execute("SELECT key, value FROM gallery_meta").fetchall())
        self.model_id, self.metric = meta.get("model_id"), meta.get("metric")
        self.dim = int(meta["dim"]) if "dim" in meta else None

    def _bind(self, emb: Embeddings, check_dim: bool = True) -> None:
        """Fix the model (and, with vectors, the dimension and the HNSW index) on first use;
        otherwise check ``emb`` against it."""
        if self.model_id is None or (self.dim is None and check_dim):
            with self._tx() as c:
                c.execute("SELECT pg_advisory_xact_lock(%s)", (lock_id("gallery-bind"),))
                meta = dict(c.execute("SELECT key, value FROM gallery_meta").fetchall())
                if "model_id" not in meta:
                    meta.update(model_id=emb.model_id, metric=emb.metric)
                    c.cursor().executemany("INSERT INTO gallery_meta VALUES (%s, %s)",
                                           [("model_id", emb.model_id), ("metric", emb.metric)])
                if "dim" not in meta and check_dim and (emb.model_id, emb.metric) == (meta["model_id"], meta["metric"]):
                    dim, ops = int(emb.dim), "vector_cosine_ops" if meta["metric"] == "cosine" else "vector_l2_ops"
                    c.execute(f"ALTER TABLE samples ALTER COLUMN vector TYPE vector({dim})")
                    c.execute(f"ALTER TABLE cohort ALTER COLUMN vector TYPE vector({dim})")
                    c.execute(f"CREATE INDEX samples_hnsw ON samples USING hnsw (vector {ops}) "
                              f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})")
                    c.execute("INSERT INTO gallery_meta VALUES ('dim', %s)", (str(dim),))
                    meta["dim"] = str(dim)
            self.model_id, self.metric = meta["model_id"], meta["metric"]
            self.dim = int(meta["dim"]) if "dim" in meta else None
        if check_dim or emb.model_id != self.model_id or emb.metric != self.metric:
            self.check_model(emb)

    def _known_dim(self) -> int | None:
        """The dimension, re-read when unknown here: another process may have bound it since."""
        if self.dim is None:
            self._load_meta()
        return self.dim

    def index_memory(self) -> tuple[int, int] | None:
        """``(HNSW index bytes, server shared_buffers bytes)``, or ``None`` before the index exists.
        A search is fastest when the index fits in shared_buffers (or is mostly cached there)."""
        with self._tx() as c:
            row = c.execute("SELECT pg_relation_size(to_regclass('samples_hnsw')), "
                            "pg_size_bytes(current_setting('shared_buffers'))").fetchone()
        return None if row[0] is None else (int(row[0]), int(row[1]))

    def _warn_if_index_spills(self) -> None:
        memory = self.index_memory()
        if memory is not None and memory[0] > memory[1]:
            log.warning("%s: the HNSW index (%.0f MB) is larger than the server's shared_buffers (%.0f MB), so "
                        "searches read graph pages from the OS cache (several times slower at 1M faces); set "
                        "shared_buffers above the index size (docs/shared_galleries.md)",
                        self.uri, memory[0] / 2**20, memory[1] / 2**20)

    def _auto_ef(self, c: Any) -> int:
        """:func:`auto_ef_search` of the server's row estimate, re-read every :data:`ESTIMATE_TTL_S`
        seconds (the planner's estimate: no count(*) per query)."""
        now = time.monotonic()
        if self._estimate is None or now - self._estimate[0] > ESTIMATE_TTL_S:
            rows = c.execute("SELECT reltuples FROM pg_class WHERE oid = 'samples'::regclass").fetchone()[0]
            self._estimate = (now, float(rows))
        return auto_ef_search(self._estimate[1])

    @property
    def _op(self) -> str:
        return "<=>" if self.metric == "cosine" else "<->"

    # ---- writes ------------------------------------------------------------------------------------
    def _insert_person(self, c: Any, name: str, metadata: dict[str, Any] | None) -> int:
        row = c.execute("INSERT INTO people (name, metadata, created_at) VALUES (%s, %s, %s) "
                        "ON CONFLICT (name) DO NOTHING RETURNING id",
                        (name, json.dumps(metadata or {}), time.time())).fetchone()
        if row is None:
            raise PersonExistsError(f"a person named {name!r} already exists in {self.uri}")
        return int(row[0])

    def _person_id(self, c: Any, name: str) -> int:
        row = c.execute("SELECT id FROM people WHERE name = %s", (name,)).fetchone()
        if row is None:
            raise PersonNotFoundError(f"no person named {name!r} in {self.uri}")
        return int(row[0])

    def add_person(self, name: str, metadata: dict[str, Any] | None = None) -> None:
        name = check_name(name)
        with self._tx() as c:
            self._insert_person(c, name, metadata)

    def add_faces(self, name: str, embeddings: Embeddings, *, sources: Sequence[str | None] | None = None,
                  crops: np.ndarray | None = None, create: bool = True, hashes: Sequence[str | None] | None = None,
                  metadata: dict[str, Any] | None = None, template: str = "") -> list[int]:
        name = check_name(name)
        n = check_sample_rows(len(embeddings), sources, crops, hashes)
        self._bind(embeddings)
        pngs = [_png(chip) for chip in crops] if crops is not None else None
        vectors, now = np.asarray(embeddings.vectors, np.float32), time.time()
        with self._tx() as c:
            _bump_version(c)
            row = c.execute("SELECT id FROM people WHERE name = %s", (name,)).fetchone()
            if row is None and not create:
                raise PersonNotFoundError(f"no person named {name!r} in {self.uri}")
            if row is None:  # a concurrent writer may create the same person: share it
                row = c.execute("INSERT INTO people (name, metadata, created_at) VALUES (%s, %s, %s) ON CONFLICT "
                                "(name) DO UPDATE SET name = excluded.name RETURNING id",
                                (name, json.dumps(metadata or {}), now)).fetchone()
            pid = int(row[0])
            ids: list[int] = []
            with c.cursor() as cur:
                cur.executemany("INSERT INTO samples (person_id, model_id, vector, source, photo_sha256, created_at) "
                                "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                                [(pid, self.model_id, vectors[i], None if sources is None else sources[i],
                                  None if hashes is None else hashes[i], now) for i in range(n)], returning=True)
                while n:
                    ids.append(int(cur.fetchone()[0]))
                    if not cur.nextset():
                        break
            if pngs is not None:
                c.cursor().executemany("INSERT INTO crops VALUES (%s, %s, %s)",
                                       [(i, template, p) for i, p in zip(ids, pngs)])
        return ids

    def rename(self, old: str, new: str) -> None:
        import psycopg

        new = check_name(new)
        try:
            with self._tx() as c:
                pid = self._person_id(c, old)
                c.execute("UPDATE people SET name = %s WHERE id = %s", (new, pid))
        except GalleryError as exc:
            if isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
                raise PersonExistsError(f"cannot rename {old!r}: a person named {new!r} already exists") from None
            raise

    def merge(self, src: str, dst: str) -> int:
        if src == dst:
            raise ConfigError(f"cannot merge {src!r} into itself")
        with self._tx() as c:
            s, d = self._person_id(c, src), self._person_id(c, dst)
            moved = c.execute("UPDATE samples SET person_id = %s WHERE person_id = %s", (d, s)).rowcount
            c.execute("DELETE FROM people WHERE id = %s", (s,))
        return int(moved)

    def remove(self, name: str) -> int:
        with self._tx() as c:
            version = _bump_version(c)
            pid = self._person_id(c, name)
            n = c.execute("INSERT INTO sample_removals SELECT %s, id FROM samples WHERE person_id = %s",
                          (version, pid)).rowcount
            c.execute("DELETE FROM people WHERE id = %s", (pid,))  # cascades to samples, crops
        return int(n)

    def add_cohort(self, embeddings: Embeddings) -> int:
        """Store non-enrolled faces used to normalise scores (see :mod:`faceprint.gallery.scoring`)."""
        self._bind(embeddings)
        with self._tx() as c:
            c.cursor().executemany("INSERT INTO cohort (model_id, vector) VALUES (%s, %s)",
                                   [(self.model_id, v) for v in np.asarray(embeddings.vectors, np.float32)])
        return len(embeddings)

    def _import_rows(self, people: list[dict[str, Any]], emb: Embeddings, names: list[str],
                     sources: list[str | None]) -> int:
        if len(emb):
            self._bind(emb)
        now = time.time()
        with self._tx() as c:
            _bump_version(c)
            pids = {p["name"]: self._insert_person(c, check_name(p["name"]), p.get("metadata")) for p in people}
            c.cursor().executemany(
                "INSERT INTO samples (person_id, model_id, vector, source, created_at) VALUES (%s, %s, %s, %s, %s)",
                [(pids[n], self.model_id, np.asarray(v, np.float32), s, now)
                 for n, v, s in zip(names, emb.vectors, sources)])
        return len(names)

    # ---- reads -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._tx() as c:
            return int(c.execute("SELECT count(*) FROM people").fetchone()[0])

    def sample_count(self) -> int:
        with self._tx() as c:
            return int(c.execute("SELECT count(*) FROM samples").fetchone()[0])

    def people(self) -> list[Person]:
        with self._tx() as c:
            rows = c.execute("SELECT p.name, count(s.id), p.metadata FROM people p LEFT JOIN samples s "
                             "ON s.person_id = p.id GROUP BY p.id ORDER BY p.name").fetchall()
        return sorted((Person(r[0], int(r[1]), r[2] or {}) for r in rows), key=lambda p: p.name)

    def person(self, name: str) -> Person:
        with self._tx() as c:
            row = c.execute("SELECT id, metadata FROM people WHERE name = %s", (name,)).fetchone()
            if row is None:
                raise PersonNotFoundError(f"no person named {name!r} in {self.uri}")
            srcs = c.execute("SELECT source FROM samples WHERE person_id = %s ORDER BY id", (row[0],)).fetchall()
        return Person(name, len(srcs), row[1] or {}, [s[0] for s in srcs if s[0]])

    def samples(self, name: str | None = None) -> tuple[Embeddings, list[str], list[int]]:
        with self._tx() as c:
            sql = "SELECT s.id, p.name, s.vector FROM samples s JOIN people p ON p.id = s.person_id"
            if name is None:
                rows = c.execute(sql + " ORDER BY s.id").fetchall()
            else:
                pid = self._person_id(c, name)
                rows = c.execute(sql + " WHERE s.person_id = %s ORDER BY s.id", (pid,)).fetchall()
        vec = np.array([r[2].to_numpy() for r in rows], np.float32).reshape(len(rows), self._known_dim() or 0)
        return (Embeddings(vec, self.model_id or "", self.metric or "euclidean"), [r[1] for r in rows],
                [int(r[0]) for r in rows])

    def find_photo(self, sha256: str) -> str | None:
        with self._tx() as c:
            row = c.execute("SELECT p.name FROM samples s JOIN people p ON p.id = s.person_id "
                            "WHERE s.photo_sha256 = %s LIMIT 1", (sha256,)).fetchone()
        return None if row is None else str(row[0])

    def crops(self, name: str) -> tuple[np.ndarray, list[int]]:
        """A person's stored aligned crops ``(N, H, W, 3)`` uint8 and their sample ids."""
        from ..image import load_image

        with self._tx() as c:
            pid = self._person_id(c, name)
            rows = c.execute("SELECT c.sample_id, c.png FROM crops c JOIN samples s ON s.id = c.sample_id "
                             "WHERE s.person_id = %s ORDER BY c.sample_id", (pid,)).fetchall()
        if not rows:
            return np.zeros((0, 0, 0, 3), np.uint8), []
        return np.stack([load_image(bytes(r[1])) for r in rows]), [int(r[0]) for r in rows]

    def _sources_for(self, sample_ids: Sequence[int]) -> list[str]:
        with self._tx() as c:
            got = dict(c.execute("SELECT id, source FROM samples WHERE id = ANY(%s)",
                                 ([int(i) for i in sample_ids],)).fetchall())
        return [got.get(int(i)) or "" for i in sample_ids]

    # ---- search ------------------------------------------------------------------------------------
    def _nearest(self, table: str, vectors: np.ndarray, k: int) -> list[list[tuple]]:
        """Per query, up to ``k`` ``(distance, id, owner name)`` rows, nearest first (one statement
        per query, all in one transaction)."""
        if self._known_dim() is None:
            return [[] for _ in range(len(vectors))]
        inner = f"SELECT vector {self._op} %s AS d, id{', person_id' if table == 'samples' else ''} FROM {table} " \
                f"ORDER BY vector {self._op} %s LIMIT %s"
        sql = (f"SELECT t.d, t.id, p.name FROM ({inner}) t JOIN people p ON p.id = t.person_id ORDER BY t.d"
               if table == "samples" else f"SELECT t.d, t.id, '' FROM ({inner}) t ORDER BY t.d")
        out = []
        exact = self.exact or table != "samples"
        # one query on the index is one statement: the width is a session setting (committed on
        # its own, so no rollback undoes it), set when it changes
        with self._session(transaction=False) as c:
            if table == "samples" and self._use_local(c):
                return self._local_neighbours(c, vectors, k)
            if not exact:
                ef = max(self._auto_ef(c) if self.ef_search is None else self.ef_search, k)
                if ef != self._session_ef:
                    c.execute(f"SET hnsw.ef_search = {ef}")
                    self._session_ef = ef
            with c.transaction() if exact or len(vectors) > 1 else contextlib.nullcontext():
                if exact:
                    c.execute("SET LOCAL enable_indexscan = off")
                for q in np.asarray(vectors, np.float32).reshape(len(vectors), -1):
                    out.append(c.execute(sql, (q, q, k)).fetchall())
        return out

    def _use_local(self, c: Any) -> bool:
        """Whether searches go to the in-process graph (see ``local_index``); ``"auto"`` and
        ``"build"`` look at the gallery again every :data:`ESTIMATE_TTL_S` seconds until it is used."""
        if self.exact or self.local_index == "off":
            return False
        if self._local is not None or self.local_index == "on":
            return True
        now = time.monotonic()
        if self._local_checked is not None and now - self._local_checked < ESTIMATE_TTL_S:
            return False
        self._local_checked = now
        largest = c.execute("SELECT max(id) FROM samples").fetchone()[0]
        if largest is None or int(largest) < self.local_threshold:
            return False
        try:
            import usearch.index  # noqa: F401
        except ImportError:
            log.warning("%s: searching on the server (pgvector); install usearch for the faster in-process "
                        "graph: pip install 'faceprint[postgres]'", self.uri)
            self.local_index = "off"
            return False
        from .pglocal import saved_graphs

        if saved_graphs(_graph_folder(), self._uuid(c)):
            return True
        if self.local_index == "build" and self._builder is None:
            self._builder = threading.Thread(target=self._build_local, name="faceprint-pg-graph", daemon=True)
            self._builder.start()
        return False

    @property
    def search_backend(self) -> str:
        """Where searches run now: ``"in-process graph"``, ``"pgvector (in-process graph
        building)"`` or ``"pgvector"`` (see ``local_index``; decided at the first search)."""
        if self._local is not None:
            return "in-process graph"
        if self._builder is not None and self._builder.is_alive():
            return "pgvector (in-process graph building)"
        return "pgvector"

    def _uuid(self, c: Any) -> str:
        return str(c.execute("SELECT value FROM gallery_meta WHERE key = 'uuid'").fetchone()[0])

    def _build_local(self) -> None:
        """Build (and save) the in-process graph on a connection of its own, then use it; until
        then searches go to the server. A failure is logged and leaves the server search."""
        try:
            conn = connect(self._uri)
            try:
                log.info("%s: building the in-process search graph", self.uri)
                local = self._open_local(conn)
                local.save_quietly()
            finally:
                conn.close()
        except Exception as exc:  # noqa: BLE001 - a background thread: report, keep serving from the server
            log.warning("%s: the in-process search graph was not built (%s); searching on the server", self.uri, exc)
            return
        with self._lock:
            self._local = local

    def _local_neighbours(self, c: Any, vectors: np.ndarray, k: int) -> list[list[tuple]]:
        """:meth:`_nearest` on the in-process graph: each query's shortlist is re-ranked with the
        stored vectors, read back with their owners and the gallery's change counter in one
        statement (binary), so distances are exact and a just-deleted sample never comes back.
        When the counter moved since the graph's last sync, the graph catches up and the search
        runs once more: whatever was committed before the call is seen, and an unchanged gallery
        costs one statement per search."""
        from .index import rerank

        if self._local is None:
            self._local = self._open_local(c)
        queries = np.asarray(vectors, np.float32).reshape(len(vectors), -1)
        for _attempt in range(2):  # a second round only after a catch-up
            short = self._local.shortlist(queries, k)
            wanted = [int(i) for i in np.unique(short[short >= 0])]
            rows = c.cursor(binary=True).execute(
                "SELECT m.value, s.id, p.name, s.vector FROM gallery_meta m LEFT JOIN (samples s JOIN people p "
                "ON p.id = s.person_id) ON s.id = ANY(%s) WHERE m.key = 'version'", (wanted,)).fetchall()
            version = int(rows[0][0])
            if version == self._local.version:
                break
            self._local.sync(c, version)
        rows = sorted(r[1:] for r in rows if r[1] is not None)  # the shortlist's samples still stored
        known = np.array([r[0] for r in rows], np.int64)
        stored = np.array([r[2].to_numpy() for r in rows], np.float32).reshape(len(rows), self.dim)
        dist, ids = rerank(queries, short, known, stored, k, self.metric or "euclidean")
        owner = dict(zip(known.tolist(), (r[1] for r in rows)))
        return [[(float(d), int(i), owner[int(i)]) for d, i in zip(dr, ir) if i >= 0] for dr, ir in zip(dist, ids)]

    def _open_local(self, c: Any) -> Any:
        """The in-process graph (:class:`~faceprint.gallery.pglocal.LocalIndex`): the newest saved
        one loaded, or a new one, brought up to date on connection ``c``."""
        from .pglocal import LocalIndex

        meta = dict(c.execute("SELECT key, value FROM gallery_meta WHERE key IN ('version', 'uuid')").fetchall())
        local = LocalIndex(meta["uuid"], self.dim, self.metric or "euclidean", _graph_folder())
        local.sync(c, int(meta["version"]))
        return local

    def _neighbours(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        rows = self._nearest("samples", vectors, k)
        dist = np.full((len(vectors), k), np.inf, np.float32)
        ids = np.full((len(vectors), k), -1, np.int64)
        owners = [[""] * k for _ in range(len(vectors))]
        for q, row in enumerate(rows):
            for j, (d, sid, name) in enumerate(row[:k]):
                dist[q, j], ids[q, j], owners[q][j] = d, sid, name
        return dist, ids, owners

    def _cohort_neighbours(self, vectors: np.ndarray, k: int) -> np.ndarray:
        rows = self._nearest("cohort", vectors, k)
        width = min((len(r) for r in rows), default=0)
        return np.array([[r[0] for r in row[:width]] for row in rows], np.float32).reshape(len(vectors), width)

    def close(self) -> None:
        with self._lock:
            if self._local is not None:
                self._local.close()
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _graph_folder() -> Any:
    """Where in-process graphs are saved: ``pg-index`` in the cache folder."""
    from ..cache import cache_dir

    return cache_dir() / "pg-index"


def _bump_version(c: Any) -> int:
    """Count a write that adds or deletes samples (first in its transaction): returns the new
    ``gallery_meta.version``. The row lock it takes orders such writers one after another, which
    is what lets in-process graphs follow the samples by id (:mod:`faceprint.gallery.pglocal`)."""
    return int(c.execute("UPDATE gallery_meta SET value = (value::bigint + 1)::text WHERE key = 'version' "
                         "RETURNING value").fetchone()[0])
