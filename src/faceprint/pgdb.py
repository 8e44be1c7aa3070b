"""The shared PostgreSQL convention, the server-side twin of :mod:`faceprint.sqlitedb`.

One ``postgresql://`` database holds the gallery and the service's API keys. Connections use
psycopg 3 with a bounded connect timeout and the pgvector adapter; each component versions its
tables in ``faceprint_schema(component, version)`` and :func:`migrate` runs the missing
migrations in one transaction under an advisory lock, so several processes opening a fresh
database migrate it once.
"""

from __future__ import annotations

import zlib
from typing import Any, Sequence

from .dburi import CONNECT_TIMEOUT_S, parse_db
from .errors import GalleryError


def connect(uri: str, *, vector: bool = True) -> Any:
    """An autocommit psycopg connection to ``uri`` (``postgresql://...``), with pgvector loaded
    when ``vector`` (the extension is created if missing).

    Raises:
        GalleryError: psycopg missing, the server unreachable within :data:`CONNECT_TIMEOUT_S`,
            bad credentials, or pgvector not installed on the server.
    """
    target = parse_db(uri)
    try:
        import psycopg
    except ImportError as exc:
        raise GalleryError("the PostgreSQL backend needs psycopg and pgvector: "
                           "pip install 'faceprint[postgres]'") from exc
    try:
        conn = psycopg.connect(target.text, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        raise GalleryError(f"cannot connect to {target.display()}: {_first_line(exc)}") from exc
    if vector:
        try:
            from pgvector.psycopg import register_vector

            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_id("extension"),))
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            register_vector(conn)
        except ImportError as exc:
            conn.close()
            raise GalleryError("the PostgreSQL backend needs the pgvector adapter: "
                               "pip install 'faceprint[postgres]'") from exc
        except psycopg.Error as exc:
            conn.close()
            raise GalleryError(f"{target.display()}: pgvector is not available ({_first_line(exc)})") from exc
    return conn


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def lock_id(component: str) -> int:
    """A stable advisory-lock key for ``component``'s one-time steps."""
    return zlib.crc32(f"faceprint:{component}".encode())


def migrate(conn: Any, component: str, migrations: Sequence[str]) -> int:
    """Bring ``component``'s tables to version ``len(migrations)``; returns that version.

    Raises:
        GalleryError: the database's schema is newer than this code knows, or a migration failed.
    """
    import psycopg

    target = len(migrations)
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_id("schema"),))
            conn.execute("CREATE TABLE IF NOT EXISTS faceprint_schema (component TEXT PRIMARY KEY, "
                         "version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM faceprint_schema WHERE component = %s", (component,)).fetchone()
            current = 0 if row is None else int(row[0])
            if current > target:
                raise GalleryError(f"{component} schema version {current} is newer than this faceprint "
                                   f"supports ({target}); upgrade faceprint")
            for script in migrations[current:]:
                conn.execute(script)
            if current != target:
                conn.execute("INSERT INTO faceprint_schema VALUES (%s, %s) ON CONFLICT (component) "
                             "DO UPDATE SET version = excluded.version", (component, target))
    except psycopg.Error as exc:
        raise GalleryError(f"cannot set up {component} tables ({_first_line(exc)})") from exc
    return target
