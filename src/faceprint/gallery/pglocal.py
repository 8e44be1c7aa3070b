"""A PostgreSQL gallery's vectors copied into the process: a usearch int8 HNSW graph per
process (per service replica), kept in step with the server through a change counter.

Why: pgvector 0.6.2's HNSW walk costs ~20 ms of server CPU per search at 1M faces for recall@1
0.99 (docs/shared_galleries.md); the SQLite gallery's int8 usearch graph with exact re-ranking
answers in under 2 ms. So a :class:`~faceprint.gallery.postgres.PostgresGallery` keeps such a
graph in memory and uses the server for what must be shared: the rows, the owners, the stored
vectors.

Staying in step (how another replica's enrollment is seen at once):

- every transaction that adds or deletes samples first raises ``gallery_meta.version`` by one.
  That ``UPDATE`` takes the row's lock, so such writers commit one after another and sample ids
  (assigned after the lock) become visible in increasing order;
- a deletion logs its sample ids in ``sample_removals(version, sample_id)``;
- before each search, :meth:`LocalIndex.sync` reads the version (one statement); when it moved,
  it reads, in one repeatable-read snapshot, the samples with ids above the last one it holds
  (``COPY ... (FORMAT BINARY)``, parsed by numpy) and the removals logged since, and applies
  them;
- each search's shortlist is resolved against the database (owner names and stored vectors, one
  statement) and re-ranked exactly, so renames and merges need no sync, and a sample deleted a
  moment ago is never returned.

Saved graphs: building a 1M graph takes minutes, so the graph is saved under the cache folder
(``pg-index/<gallery uuid>-<version>-<last sample id>.usearch``) after a build or a large
catch-up and when the gallery is closed, and a process opening the gallery loads the newest
saved graph not ahead of the database, then catches up from the log. The uuid is made with the
gallery's tables, so a dropped and re-created database never reuses a graph.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GalleryError
from .index import UsearchIndex, int8_scale

# the SQLite gallery's graph: its build and search widths (recall@1 0.992 at 1M there) and the
# shortlist re-ranked with the stored vectors
from .sqlite import ANN_EF as EF
from .sqlite import ANN_EF_ADD as EF_ADD
from .sqlite import RESCORE_MIN

log = logging.getLogger(__name__)
#: Save the graph again once this many changes (and at least :data:`SAVE_FRACTION` of its size)
#: were applied since it was loaded or saved: a small catch-up is cheaper to redo than to write.
SAVE_MIN_CHANGES = 1000
SAVE_FRACTION = 0.01
#: Rows parsed per step of the binary COPY.
CHUNK_ROWS = 20_000
_SAVED = re.compile(r"^(?P<uuid>[0-9a-f-]{36})-(?P<version>\d+)-(?P<last>\d+)\.usearch$")
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def _row_dtype(dim: int) -> np.dtype:
    """One row of ``COPY (SELECT id, vector ...) TO STDOUT (FORMAT BINARY)``: the field count,
    the bigint id with its length, and pgvector's send format (int16 dim, int16 unused, float4s),
    all big-endian."""
    return np.dtype([("fields", ">i2"), ("id_len", ">i4"), ("id", ">i8"), ("vec_len", ">i4"), ("dim", ">i2"),
                     ("unused", ">i2"), ("v", ">f4", (dim,))])


def copy_vectors(conn: Any, dim: int, after_id: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(ids (n,) int64, vectors (n, dim) float32)`` of the samples with ids above ``after_id``,
    in id order, :data:`CHUNK_ROWS` at a time (one binary COPY, no per-row Python).

    Raises:
        GalleryError: the stream is not the expected format (another dimension, a torn row).
    """
    rows = _row_dtype(dim)
    sql = f"COPY (SELECT id, vector FROM samples WHERE id > {int(after_id)} ORDER BY id) TO STDOUT (FORMAT BINARY)"
    pending, size, header = [], 0, False
    with conn.cursor().copy(sql) as copy:
        for block in copy:
            pending.append(bytes(block))
            size += len(block)
            if size < rows.itemsize * CHUNK_ROWS:
                continue
            data, header = _skip_header(b"".join(pending), header)
            n = len(data) // rows.itemsize
            pending, size = [data[n * rows.itemsize:]], len(data) - n * rows.itemsize
            if n:
                yield _parse(np.frombuffer(data, rows, n), dim)
    data, header = _skip_header(b"".join(pending), header)
    n = (len(data) - 2) // rows.itemsize
    if len(data) != n * rows.itemsize + 2 or data[-2:] != b"\xff\xff":
        raise GalleryError(f"the samples' vectors came back in an unexpected form ({len(data)} bytes at the end)")
    if n:
        yield _parse(np.frombuffer(data, rows, n), dim)


def _skip_header(data: bytes, done: bool) -> tuple[bytes, bool]:
    if done:
        return data, True
    if not data.startswith(_COPY_SIGNATURE) or len(data) < 19:
        raise GalleryError("the server's binary COPY has no PGCOPY header")
    extension = int.from_bytes(data[15:19], "big")
    return data[19 + extension:], True


def _parse(arr: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    if (arr["fields"] != 2).any() or (arr["dim"] != dim).any() or (arr["vec_len"] != 4 + 4 * dim).any():
        raise GalleryError(f"a stored vector is not {dim}-dimensional")
    return arr["id"].astype(np.int64), arr["v"].astype(np.float32)


def saved_graphs(folder: Path | None, uuid: str) -> list[tuple[int, int, Path]]:
    """``(version, last sample id, path)`` of gallery ``uuid``'s graphs saved in ``folder``, newest first."""
    if folder is None or not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        m = _SAVED.match(path.name)
        if m and m["uuid"] == uuid:
            found.append((int(m["version"]), int(m["last"]), path))
    return sorted(found, reverse=True)


class LocalIndex:
    """The in-process search graph of one PostgreSQL gallery (see the module docstring).

    Args:
        uuid: the gallery's ``gallery_meta.uuid``.
        dim, metric: the gallery's vectors.
        folder: where graphs are saved (``None``: not saved).
    """

    def __init__(self, uuid: str, dim: int, metric: str, folder: Path | None) -> None:
        self.uuid, self.dim, self.metric, self.folder = uuid, int(dim), metric, folder
        self.index = self._fresh()
        self.version = -1         # gallery_meta.version the graph reflects (-1: none yet, read all)
        self.last_id = 0          # the largest sample id applied
        self._unsaved = 0         # changes applied since the graph was loaded or saved
        if folder is not None:
            self._load_saved()

    def _fresh(self) -> UsearchIndex:
        return UsearchIndex(self.dim, self.metric, dtype="i8", expansion_add=EF_ADD, expansion_search=EF,
                            int8_scale=int8_scale(self.metric))

    def __len__(self) -> int:
        return len(self.index)

    # ---- saved graphs ---------------------------------------------------------------------------
    def _saved(self) -> list[tuple[int, int, Path]]:
        return saved_graphs(self.folder, self.uuid)

    def _load_saved(self) -> None:
        for version, last, path in self._saved():
            try:
                self.index.load(path)
            except Exception as exc:  # noqa: BLE001 - a torn or foreign file: try an older one, else build
                log.warning("%s: cannot load the saved search graph (%s)", path, exc)
                self.index = self._fresh()
                continue
            self.version, self.last_id = version, last
            return

    def save(self) -> None:
        """Write the graph (atomically) and drop this gallery's older saved graphs."""
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.uuid}-{self.version}-{self.last_id}.usearch"
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        self.index.save(tmp)
        os.replace(tmp, path)
        for _version, _last, old in self._saved():
            if old != path:
                old.unlink(missing_ok=True)
        self._unsaved = 0

    def close(self) -> None:
        """Save the graph when changes are unsaved and no saved copy exists yet (a larger
        catch-up was already saved by :meth:`sync`; a small one is cheaper to redo)."""
        if self._unsaved and not self._saved():
            self.save_quietly()

    # ---- keeping in step --------------------------------------------------------------------------
    def sync(self, conn: Any, current: int) -> None:
        """Apply what changed up to the database's version ``current`` (read just before).

        ``conn`` is an autocommit psycopg connection; the reads run in one repeatable-read
        snapshot. A first build shows a progress bar (on a terminal). A saved graph ahead of the
        database (a restored backup) is dropped and the graph rebuilt.
        """
        from ..progress import progress_bar

        if current == self.version:
            return
        if current < self.version:
            log.warning("the saved search graph of gallery %s is ahead of the database (version %d > %d): "
                        "rebuilding it", self.uuid, self.version, current)
            self.index, self.version, self.last_id = self._fresh(), -1, 0
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            version = int(conn.execute("SELECT value FROM gallery_meta WHERE key = 'version'").fetchone()[0])
            total = int(conn.execute("SELECT count(*) FROM samples").fetchone()[0]) if self.last_id == 0 else 0
            added = 0
            with progress_bar(total, "building the search graph", "face", min_total=CHUNK_ROWS) as bar:
                task = bar.add_task("", total=total)
                for ids, vectors in copy_vectors(conn, self.dim, self.last_id):
                    self.index.add(ids, vectors, threads=0 if len(ids) >= 10_000 else 1)
                    self.last_id, added = int(ids[-1]), added + len(ids)
                    bar.advance(task, len(ids))
            removed = np.array([r[0] for r in conn.execute(
                "SELECT sample_id FROM sample_removals WHERE version > %s", (self.version,)).fetchall()], np.int64)
        self.index.remove(removed)  # ids the graph never held (added and removed since) are skipped
        self.version = version
        self._unsaved += added + len(removed)
        if self.folder is not None and self._unsaved >= max(SAVE_MIN_CHANGES, SAVE_FRACTION * len(self.index)):
            self.save_quietly()

    def save_quietly(self) -> None:
        """:meth:`save`, logging instead of raising when the cache folder cannot take it (full,
        read-only): the graph in memory stays good, only the next process's start is slower."""
        try:
            self.save()
        except OSError as exc:
            log.warning("cannot save the search graph of gallery %s under %s (%s)", self.uuid, self.folder, exc)

    def shortlist(self, vectors: np.ndarray, k: int) -> np.ndarray:
        """Per query, up to ``max(k, RESCORE_MIN)`` candidate sample ids (``-1`` padded)."""
        return self.index.search(vectors, max(k, RESCORE_MIN), threads=1)[1]
