"""The shared SQLite convention: one file per ``--db PATH``, WAL, busy timeout, foreign keys,
and per-component schema versions.

Several components (gallery, photo index, service API keys) keep their tables in one file.
Each one versions its own tables in ``schema_versions(component, version)`` and brings them
up to date with :func:`migrate`, which runs the missing migrations in order inside one
``BEGIN IMMEDIATE`` transaction (so two processes opening a fresh file cannot both migrate).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Sequence

from .errors import GalleryError

#: Milliseconds a connection waits for another writer before failing (convention: >= 5000).
BUSY_TIMEOUT_MS = 10_000


def _set_wal(conn: sqlite3.Connection) -> None:
    """``PRAGMA journal_mode = WAL``, retried for up to the busy timeout: SQLite answers "database
    is locked" at once, without its busy handler, while another process is switching a fresh
    file to WAL (two enrollers starting on one new database)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open (creating unless ``readonly``) a SQLite file with the shared settings.

    The connection is in autocommit mode (``isolation_level=None``): callers open their own
    transactions (``BEGIN IMMEDIATE`` for writes, see :func:`transaction`).

    Raises:
        GalleryError: the file cannot be opened or is not a SQLite database.
    """
    path = Path(path)
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                                   timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
                                   check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not readonly:
            _set_wal(conn)
            conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except (sqlite3.DatabaseError, OSError) as exc:
        raise GalleryError(f"{path}: cannot open as a SQLite database ({exc})") from exc
    return conn


class transaction:
    """``with transaction(conn):`` runs the block in ``BEGIN IMMEDIATE`` ... ``COMMIT``
    (``ROLLBACK`` on any exception), so a write is all-or-nothing. SQLite errors inside the block
    surface as :class:`GalleryError`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")
        if isinstance(exc, sqlite3.Error):
            raise GalleryError(f"database write failed and was rolled back ({exc})") from exc


def schema_version(conn: sqlite3.Connection, component: str) -> int:
    """The schema version ``component`` is at (0 when it never migrated)."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_versions "
                 "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_versions WHERE component = ?", (component,)).fetchone()
    return 0 if row is None else int(row[0])


def migrate(conn: sqlite3.Connection, component: str, migrations: Sequence[str]) -> int:
    """Bring ``component``'s tables to version ``len(migrations)``; returns that version.

    ``migrations[i]`` is an SQL script taking the schema from version ``i`` to ``i + 1``.
    Already applied ones are skipped; the rest run in one transaction.

    Raises:
        GalleryError: the file's schema is newer than this code knows.
    """
    target = len(migrations)
    if schema_version(conn, component) == target:
        return target
    with transaction(conn):
        current = schema_version(conn, component)
        if current > target:
            raise GalleryError(f"{component} schema version {current} is newer than this faceprint "
                               f"supports ({target}); upgrade faceprint")
        for script in migrations[current:]:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute("INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                     "ON CONFLICT(component) DO UPDATE SET version = excluded.version", (component, target))
    return target
