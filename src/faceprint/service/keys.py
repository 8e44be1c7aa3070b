"""API keys in the gallery's SQL database (the service's ``api_keys`` table): the shared SQLite
file, or the PostgreSQL database of a ``postgresql://`` gallery (:class:`PostgresKeyStore`), so
several service replicas on one database refuse a revoked key at once. A Milvus gallery has no
SQL side: its keys go to a SQLite file named by ``--keys-db`` (:func:`open_key_store`).

A key is ``fp_`` + 43 URL-safe characters (256 random bits). Only its SHA-256 is stored: a
fast hash is enough for secrets of that entropy (no dictionary to try), and lets a request be
checked with one indexed lookup. The clear key is shown once, by :meth:`KeyStore.create`.
Scopes nest: ``admin`` can do what ``enroll`` can, ``enroll`` what ``read`` can.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..sqlitedb import connect, migrate

COMPONENT = "service"
SCOPES: tuple[str, ...] = ("read", "enroll", "admin")
KEY_PREFIX = "fp_"

#: Ordered migrations of the service's tables (shared-database convention, :mod:`faceprint.sqlitedb`).
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY,
        key_hash TEXT NOT NULL UNIQUE,
        hint TEXT NOT NULL,
        scope TEXT NOT NULL CHECK (scope IN ('read', 'enroll', 'admin')),
        name TEXT NOT NULL DEFAULT '',
        rate_per_minute INTEGER CHECK (rate_per_minute IS NULL OR rate_per_minute >= 0),
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    """,
)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def scope_allows(granted: str, needed: str) -> bool:
    """``admin`` covers ``enroll`` covers ``read``."""
    return SCOPES.index(granted) >= SCOPES.index(needed)


@dataclass(frozen=True)
class ApiKey:
    """A stored key (never its clear text)."""

    id: int
    hint: str
    scope: str
    name: str
    rate_per_minute: int | None
    created_at: str
    revoked_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "hint": self.hint, "scope": self.scope, "name": self.name,
                "rate_per_minute": self.rate_per_minute, "created_at": self.created_at,
                "revoked": self.revoked_at is not None}


_COLUMNS = "id, hint, scope, name, rate_per_minute, created_at, revoked_at"


class KeyStore:
    """Create, look up, list and revoke API keys in a SQLite file; safe to share between threads.

    Subclasses for other databases provide the connection and :meth:`_exec` (placeholders are
    written ``?``)."""

    def __init__(self, db: str | Path) -> None:
        self.db = Path(db)
        self._conn = connect(self.db)
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._conn, COMPONENT, MIGRATIONS)

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """Run one statement (autocommit) and return its cursor."""
        return self._conn.execute(sql, params)

    def close(self) -> None:
        self._conn.close()

    def create(self, scope: str, name: str = "", rate_per_minute: int | None = None) -> tuple[ApiKey, str]:
        """A new key: the stored record and the clear key (show it once; it cannot be recovered).

        Raises:
            ConfigError: unknown scope or a negative rate.
        """
        if scope not in SCOPES:
            raise ConfigError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        if rate_per_minute is not None and rate_per_minute < 0:
            raise ConfigError(f"rate_per_minute must be >= 0, got {rate_per_minute}")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._lock:
            key_id = self._exec(
                "INSERT INTO api_keys (key_hash, hint, scope, name, rate_per_minute, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (hash_key(key), key[:7], scope, name, rate_per_minute, now)).fetchall()[0][0]
        record = self.get(int(key_id))
        assert record is not None
        return record, key

    def get(self, key_id: int) -> ApiKey | None:
        with self._lock:
            row = self._exec(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        return None if row is None else ApiKey(*row)

    def lookup(self, key: str) -> ApiKey | None:
        """The live (not revoked) key with this clear text, else ``None``."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        with self._lock:
            row = self._exec(f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
                                     (hash_key(key),)).fetchone()
        return None if row is None else ApiKey(*row)

    def list(self) -> list[ApiKey]:
        with self._lock:
            rows = self._exec(f"SELECT {_COLUMNS} FROM api_keys ORDER BY id").fetchall()
        return [ApiKey(*row) for row in rows]

    def revoke(self, key_id: int) -> ApiKey:
        """Mark a key revoked (kept for the record).

        Raises:
            ConfigError: no key with this id.
        """
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._lock:
            cur = self._exec("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
                                     (now, key_id))
        if cur.rowcount == 0:
            raise ConfigError(f"no API key with id {key_id}")
        record = self.get(key_id)
        assert record is not None
        return record


#: The service's tables in PostgreSQL (same columns; ids from an identity sequence).
PG_MIGRATIONS: tuple[str, ...] = (MIGRATIONS[0].replace("id INTEGER PRIMARY KEY", "id BIGSERIAL PRIMARY KEY"),)


class PostgresKeyStore(KeyStore):
    """API keys in the ``postgresql://`` gallery database: every lookup asks the server, so a key
    created or revoked through one replica holds for all of them at once."""

    def __init__(self, uri: str) -> None:
        from .. import pgdb
        from ..dburi import parse_db

        self.db = parse_db(uri).display()  # type: ignore[assignment]
        self._uri = uri
        self._conn = pgdb.connect(uri, vector=False)
        self._lock = threading.Lock()
        pgdb.migrate(self._conn, COMPONENT, PG_MIGRATIONS)

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        import psycopg

        from .. import pgdb

        if self._conn.broken:  # the server restarted or dropped us: reconnect
            self._conn = pgdb.connect(self._uri, vector=False)
        try:
            return self._conn.execute(sql.replace("?", "%s"), params)
        except psycopg.Error as exc:
            from ..errors import GalleryError

            raise GalleryError(f"{self.db}: API key query failed ({str(exc).strip().splitlines()[0]})") from exc


def open_key_store(db: str | Path, keys_db: str | Path | None = None) -> KeyStore:
    """The API keys of the gallery ``db``: in its SQL database (SQLite, PostgreSQL), or in the
    SQLite file ``keys_db`` (required for Milvus, which has no SQL side; it overrides the others).

    Raises:
        ConfigError: a Milvus gallery without ``keys_db``, or ``keys_db`` that is not a SQLite path.
        GalleryError: an unknown URI scheme or an unreachable server.
    """
    from ..dburi import parse_db, sqlite_path

    if keys_db is not None:
        return KeyStore(sqlite_path(keys_db, "--keys-db"))
    uri = parse_db(db)
    if uri.kind == "postgresql":
        return PostgresKeyStore(uri.text)
    if uri.kind != "sqlite" or uri.path is None:
        raise ConfigError(f"a {uri.kind} gallery keeps no SQL tables: name a SQLite file for the API keys "
                          "with --keys-db PATH")
    return KeyStore(uri.path)
